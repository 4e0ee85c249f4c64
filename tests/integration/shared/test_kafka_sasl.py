"""The Kafka security settings against the local broker's SASL_PLAINTEXT listener (SCRAM-SHA-256).

Production brokers use SASL_SSL; the SASL handshake and the SCRAM exchange are the same, so this proves
`KafkaSettings.client_options()` and `broker_security()` hand the clients what they need.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from pydantic import SecretStr

from scripts.localstack import REPO, Stack
from slm_shared.settings import KafkaSettings

pytestmark = pytest.mark.integration

USERNAME = "slm"
PASSWORD = "slm-secret"  # the local stack's SCRAM user (deploy/local/stack.sh)


@pytest.fixture(scope="module")
def sasl_bootstrap(stack: Stack) -> str:
    """The SASL listener `make up` announces in .stack/env (a testcontainers stack has none)."""
    env_file = REPO / ".stack" / "env"
    values = (
        dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        if env_file.exists()
        else {}
    )
    bootstrap = values.get("KAFKA_SASL_BOOTSTRAP_SERVERS", "").strip()
    if not bootstrap:
        pytest.skip("the stack has no SASL listener (KAFKA_SASL_BOOTSTRAP_SERVERS is not in .stack/env)")
    return bootstrap


def scram(bootstrap: str, password: str = PASSWORD) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USERNAME,
        sasl_password=SecretStr(password),
    )


@pytest.fixture
async def topic(sasl_bootstrap: str) -> AsyncIterator[str]:
    name = f"test.sasl.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**scram(sasl_bootstrap).client_options(), client_id="test-sasl-admin")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def read_one(settings: KafkaSettings, topic: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        topic,
        **settings.client_options(),
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await consumer.getone()
        value: bytes | None = record.value
        return value
    finally:
        await consumer.stop()


async def test_a_record_produced_and_consumed_with_the_scram_client_options_round_trips(
    sasl_bootstrap: str,
    topic: str,
) -> None:
    settings = scram(sasl_bootstrap)
    producer = AIOKafkaProducer(**settings.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over scram", key=b"acme/INC-1")
    finally:
        await producer.stop()

    assert await read_one(settings, topic) == b"over scram"


async def test_a_faststream_broker_built_with_broker_security_connects_and_publishes(
    sasl_bootstrap: str,
    topic: str,
) -> None:
    settings = scram(sasl_bootstrap)
    broker = KafkaBroker(settings.bootstrap_servers, security=settings.broker_security())
    async with broker:
        await broker.start()
        assert await broker.ping(timeout=5.0)
        await broker.publish(b"from faststream", topic=topic, key=b"acme/api")

    assert await read_one(settings, topic) == b"from faststream"


async def test_a_wrong_password_is_refused(sasl_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    producer = AIOKafkaProducer(
        **scram(sasl_bootstrap, password="not-the-secret").client_options(), request_timeout_ms=5000
    )
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
    # Refused by the SCRAM exchange, not merely unreachable.
    assert "SaslAuthenticationFailed" in caplog.text


async def test_the_plaintext_settings_cannot_talk_to_the_sasl_listener(sasl_bootstrap: str) -> None:
    producer = AIOKafkaProducer(
        **KafkaSettings(bootstrap_servers=sasl_bootstrap).client_options(), request_timeout_ms=3000
    )
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
