"""The production ACLs (deploy/k8s/base/kafka/users.yaml) enforced by the local broker's SASL listener.

`make up` gives each KafkaUser a SCRAM-SHA-512 credential and exactly its ACLs (scripts/kafka_users.py) under
Kafka's StandardAuthorizer. Here each principal logs in as the services would in production: what its
KafkaUser allows goes through, a write or read without the ACL is refused by the broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from pydantic import SecretStr

from scripts.kafka_users import AclBinding, bindings, existing_bindings, kafka_users, local_password
from scripts.localstack import Stack
from slm_shared import topics
from slm_shared.settings import KafkaSettings
from tests.integration.shared.test_kafka_sasl import sasl_bootstrap

pytestmark = pytest.mark.integration
__all__ = ["sasl_bootstrap"]  # the SASL listener fixture, shared with the SCRAM tests


def as_user(bootstrap: str, user: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=SecretStr(local_password(user)),
    )


@pytest.fixture(scope="module")
async def existing_topics(stack: Stack) -> AsyncIterator[None]:
    """Every topic of the design exists (over PLAINTEXT, the developer path, whose principal is a super user)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="test-acls-admin")
    await admin.start()
    try:
        missing = set(topics.ALL_TOPICS) - set(await admin.list_topics())
        if missing:
            await admin.create_topics([NewTopic(name, 1, 1) for name in sorted(missing)])
        yield
    finally:
        await admin.close()


async def produce(settings: KafkaSettings, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(
        **settings.client_options(), acks="all", enable_idempotence=True, request_timeout_ms=10_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"acl-test/1")
    finally:
        await producer.stop()


async def test_the_broker_holds_exactly_the_acls_of_the_kafka_users(stack: Stack) -> None:
    users = kafka_users()
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="test-acls-describe")
    await admin.start()
    try:
        present = await existing_bindings(admin, {f"User:{user['metadata']['name']}" for user in users})
    finally:
        await admin.close()
    assert present == bindings(users)
    # Spot check against the matrix, written out here rather than derived from the file.
    assert AclBinding("User:intake", 2, topics.TENANTS, 3, 4) in present  # intake writes key announcements
    assert not any(
        b.principal != "User:intake" and b.resource_name == topics.TENANTS and b.operation == 4 for b in present
    )


async def test_intake_writes_tickets_and_key_announcements(sasl_bootstrap: str, existing_topics: None) -> None:
    intake = as_user(sasl_bootstrap, "intake")
    await produce(intake, topics.TICKETS, b'{"acl-test": "tickets"}')
    await produce(intake, topics.TENANTS, b'{"acl-test": "tenants"}')


async def test_a_principal_without_the_write_acl_is_refused(sasl_bootstrap: str, existing_topics: None) -> None:
    # reporting may read itsm.tickets.v1 but never write it; upstream producers may not announce API keys.
    for user, topic in (
        ("reporting", topics.TICKETS),
        ("itsm-upstream", topics.TENANTS),
        ("sla-engine", topics.REPORTS),
        ("itsm-upstream", topics.CLOCKS),
    ):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(as_user(sasl_bootstrap, user), topic, b'{"forged": true}')


async def test_upstream_producers_write_the_ingest_topic_and_nothing_else(
    sasl_bootstrap: str, existing_topics: None
) -> None:
    upstream = as_user(sasl_bootstrap, "itsm-upstream")
    await produce(upstream, topics.INGEST, b'{"acl-test": "ingest"}')
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(upstream, topics.TICKETS, b'{"forged": true}')


async def test_a_principal_reads_only_what_it_consumes_with_its_own_groups(
    sasl_bootstrap: str, existing_topics: None
) -> None:
    async def read(user: str, topic: str, group: str) -> int:
        consumer = AIOKafkaConsumer(
            topic,
            **as_user(sasl_bootstrap, user).client_options(),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
        )
        try:
            await consumer.start()
            batch = await consumer.getmany(timeout_ms=5000, max_records=10)
            await consumer.commit()
            return sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()

    await produce(as_user(sasl_bootstrap, "sla-engine"), topics.CLOCKS, b'{"acl-test": "clocks"}')
    assert await read("reporting", topics.CLOCKS, f"reporting-acl-{uuid.uuid4().hex[:6]}") > 0
    with pytest.raises(TopicAuthorizationFailedError):  # the sla-engine never consumes reports
        await read("sla-engine", topics.REPORTS, f"sla-engine-acl-{uuid.uuid4().hex[:6]}")
    with pytest.raises(GroupAuthorizationFailedError):  # another service's group name
        await read("reporting", topics.CLOCKS, f"intake-acl-{uuid.uuid4().hex[:6]}")
