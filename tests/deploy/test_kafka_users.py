"""The Strimzi KafkaUsers grant each principal what its service's code does with Kafka, and nothing more.

The consumed topics and the consumer groups come from the services themselves (each app is built, nothing
connects), so a new subscriber without its ACL fails here, not in production. The writers of each topic are
the issue's matrix, written out below.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from intake.app import create_app as create_intake
from intake.settings import IntakeSettings
from reporting.app import create_app as create_reporting
from reporting.settings import ReportingSettings
from sla_engine.app import create_app as create_sla_engine
from sla_engine.settings import SlaEngineSettings
from slm_shared import topics
from tests.deploy.support import OVERLAYS, SERVICES, render

STRIMZI_OPERATIONS = {
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "AlterConfigs",
    "DescribeConfigs",
    "IdempotentWrite",
    "All",
}
# Who may write each topic (issue 13): intake the ticket-side topics and key announcements (and its dead
# letters), the sla-engine clocks and SLOs, reporting the published reports, upstream producers the ingest topic.
WRITERS = {
    topics.INGEST: {"itsm-upstream"},
    topics.INGEST_DLQ: {"intake"},
    topics.TICKETS: {"intake"},
    topics.SIGNALS: {"intake"},
    topics.FEEDBACK: {"intake"},
    topics.TENANTS: {"intake"},
    topics.CLOCKS: {"sla-engine"},
    topics.SLO_STATUS: {"sla-engine"},
    topics.SLO_ALERTS: {"sla-engine"},
    topics.CALENDARS: {"sla-engine"},
    topics.REPORTS: {"reporting"},
}
DATABASE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # never connected: the apps are only built


def users(overlay: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render(overlay) if d["kind"] == "KafkaUser"}


def rules(user: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(resource type, name, pattern type, operation) of every ACL rule of the user."""
    return [
        (
            rule["resource"]["type"],
            rule["resource"].get("name", ""),
            rule["resource"].get("patternType", "literal"),
            operation,
        )
        for rule in user["spec"]["authorization"]["acls"]
        for operation in rule["operations"]
    ]


def allowed(user: dict[str, Any], kind: str, name: str, operation: str) -> bool:
    return any(
        rule_kind == kind
        and op == operation
        and (rule_name == name if pattern == "literal" else name.startswith(rule_name))
        for rule_kind, rule_name, pattern, op in rules(user)
    )


def consumed_by_service() -> dict[str, dict[str, list[str]]]:
    """Each service's consumer groups and their topics, from its own subscribers (with the default settings)."""
    apps = {
        "intake": create_intake(IntakeSettings(database_url=DATABASE)),
        "sla-engine": create_sla_engine(SlaEngineSettings(database_url=DATABASE)),
        "reporting": create_reporting(ReportingSettings(database_url=DATABASE)),
    }
    return {service: app.state.runtime.consumer_groups() for service, app in apps.items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_and_the_upstream_producers_have_a_scram_kafka_user_of_the_v1_api(overlay: str) -> None:
    found = users(overlay)
    assert set(found) == {*SERVICES, "itsm-upstream"}
    [cluster] = {d["metadata"]["labels"]["strimzi.io/cluster"] for d in render(overlay) if d["kind"] == "KafkaTopic"}
    for user in found.values():
        assert user["apiVersion"] == "kafka.strimzi.io/v1"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["spec"]["authorization"]["type"] == "simple"
        for kind, name, pattern, operation in rules(user):
            assert operation in STRIMZI_OPERATIONS
            assert operation != "All", f"{user['metadata']['name']}: `All` is not least privilege"
            assert kind in {"topic", "group"}, f"{user['metadata']['name']} needs no {kind} rights"
            assert pattern in {"literal", "prefix"}
            assert name not in {"", "*"}, f"{user['metadata']['name']}: a wildcard {kind}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_topic_is_written_by_exactly_its_owner(overlay: str) -> None:
    writers: dict[str, set[str]] = defaultdict(set)
    for name, user in users(overlay).items():
        for topic in topics.ALL_TOPICS:
            if allowed(user, "topic", topic, "Write"):
                writers[topic].add(name)
    assert dict(writers) == WRITERS
    for user in users(overlay).values():  # no write rule on a topic that is not of the design
        assert {name for kind, name, _, op in rules(user) if kind == "topic" and op == "Write"} <= set(WRITERS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_reads_what_its_code_consumes_in_groups_it_may_join(overlay: str) -> None:
    found = users(overlay)
    for service, groups in consumed_by_service().items():
        user = found[service]
        assert groups, f"{service} has no consumer"
        for group, group_topics in groups.items():
            assert allowed(user, "group", group, "Read"), f"{service} may not join its group {group}"
            for topic in group_topics:
                assert allowed(user, "topic", topic, "Read"), f"{service} may not read {topic} (group {group})"
        consumed = {topic for group_topics in groups.values() for topic in group_topics}
        readable = {topic for topic in topics.ALL_TOPICS if allowed(user, "topic", topic, "Read")}
        assert readable == consumed, f"{service} may read more than it consumes: {sorted(readable - consumed)}"
    upstream = found["itsm-upstream"]
    assert not [rule for rule in rules(upstream) if rule[3] == "Read"], "upstream producers read nothing"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_service_may_join_another_service_consumer_groups(overlay: str) -> None:
    found = users(overlay)
    groups = consumed_by_service()
    for service, user in found.items():
        for other, other_groups in groups.items():
            if other != service:
                assert not any(allowed(user, "group", group, "Read") for group in other_groups), (service, other)


def test_production_services_log_in_as_their_kafka_user() -> None:
    found = users("prod")
    for service in SERVICES:
        prefix = service.replace("-", "_").upper()
        [config] = [
            d for d in render("prod") if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{service}-config"
        ]
        assert config["data"][f"{prefix}_KAFKA__SASL_USERNAME"] in found
        assert config["data"][f"{prefix}_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
