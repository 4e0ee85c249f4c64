"""Intake's acceptance rules: every reject reason, and what an accepted event becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.domain import Limits, Rejected, accept, parse_json, split_json_array
from slm_shared import topics

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_future_skew=timedelta(minutes=5), max_event_bytes=64 * 1024)


def ticket(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "test://helpdesk",
        "type": "itsm.ticket.v1",
        "time": "2026-11-20T10:00:00+08:00",
        "tenantid": "acme",
        "data": {
            "ticket_id": "INC-1",
            "action": "created",
            "kind": "incident",
            "service": "email",
            "customer": "acme",
            "priority": "P2",
            "status": "new",
        },
    }
    for key, value in overrides.items():
        if key.startswith("data_"):
            event["data"][key.removeprefix("data_")] = value
        else:
            event[key] = value
    return {k: v for k, v in event.items() if v is not DROP}


DROP = object()


def measurement(**data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "m-1",
        "source": "probe://eu",
        "type": "itsm.measurement.v1",
        "time": "2026-11-20T11:00:00Z",
        "tenantid": "acme",
        "data": {"service": "api", "sli": "requests", **data},
    }


def rejection(document: Any, tenant: str | None = "acme") -> Rejected:
    with pytest.raises(Rejected) as caught:
        accept(document, tenant_id=tenant, now=NOW, limits=LIMITS)
    return caught.value


def test_a_valid_ticket_event_is_routed_to_the_tickets_topic_keyed_by_tenant_and_ticket() -> None:
    routed = accept(ticket(), tenant_id="acme", now=NOW, limits=LIMITS)
    assert routed.topic == topics.TICKETS
    assert routed.key == "acme/INC-1"
    assert routed.event.subject == "INC-1"
    assert json.loads(routed.canonical)["tenantid"] == "acme"


def test_a_missing_tenantid_is_filled_in_from_the_api_key() -> None:
    routed = accept(ticket(tenantid=DROP), tenant_id="acme", now=NOW, limits=LIMITS)
    assert routed.event.tenantid == "acme"


def test_signals_are_keyed_by_tenant_and_service() -> None:
    routed = accept(measurement(good=9, total=10), tenant_id="acme", now=NOW, limits=LIMITS)
    assert (routed.topic, routed.key) == (topics.SIGNALS, "acme/api")


def test_valid_extension_attributes_are_kept() -> None:
    routed = accept(ticket(traceparent="00-abc-def-01", priorityclass=3), tenant_id="acme", now=NOW, limits=LIMITS)
    assert json.loads(routed.canonical)["traceparent"] == "00-abc-def-01"


@pytest.mark.parametrize(
    ("document", "code", "field"),
    [
        ([1, 2], "not_an_object", "body"),
        (ticket(tenantid="globex"), "tenant_mismatch", "tenantid"),
        (ticket(time="2026-11-20T10:00:00"), "time_without_offset", "time"),
        (ticket(time=1_763_640_000), "invalid_time", "time"),
        (ticket(time="20 Nov 2026"), "invalid_time", "time"),
        (ticket(time="2026-02-30T10:00:00Z"), "invalid_time", "time"),
        (ticket(time=DROP), "invalid_envelope", "time"),
        (ticket(time="2026-11-20T12:06:00Z"), "time_in_future", "time"),
        (ticket(specversion="0.3"), "invalid_envelope", "specversion"),
        (ticket(id=""), "invalid_envelope", "id"),
        (ticket(id=DROP), "invalid_envelope", "id"),
        (ticket(source="   "), "invalid_envelope", "source"),
        (ticket(type="com.example.other"), "unknown_type", "type"),
        (ticket(type="sla.clock.v1"), "unknown_type", "type"),
        (ticket(data="text"), "invalid_envelope", "data"),
        (ticket(data_priority=DROP), "invalid_data", "data.priority"),
        (ticket(data_status="waiting"), "invalid_data", "data.status"),
        (ticket(data_colour="red"), "invalid_data", "data.colour"),
        (ticket(datacontenttype="application/xml"), "invalid_envelope", "datacontenttype"),
        ({**ticket(), "data_base64": "AAAA"}, "binary_data", "data_base64"),
        (ticket(**{"Bad-Name": "x"}), "invalid_extension", "Bad-Name"),
        (ticket(traceinfo={"a": 1}), "invalid_extension", "traceinfo"),
        (ticket(data_title="nul\x00byte"), "invalid_text", "data.title"),
        (ticket(data_title="lone \ud800 surrogate"), "invalid_text", "data.title"),
        (ticket(data_attributes={"n": 2**70}), "invalid_number", "data.attributes.n"),
        (ticket(data_attributes={"x": float("inf")}), "invalid_number", "data.attributes.x"),
        (measurement(good=11, total=10), "inconsistent_data", "data.good"),
        (measurement(good=1), "inconsistent_data", "data.good/total"),
        (measurement(value=1.0, good=1, total=2), "inconsistent_data", "data"),
        (
            measurement(window_start="2026-11-20T10:00:00Z", window_end="2026-11-20T09:00:00Z", value=1.0),
            "inconsistent_data",
            "data.window_end",
        ),
        (
            measurement(window_start="2026-11-20T10:00:00", window_end="2026-11-20T11:00:00Z", value=1.0),
            "time_without_offset",
            "data.window_start",
        ),
        (ticket(data_attributes={"blob": "x" * 70_000}), "event_too_large", "body"),
    ],
)
def test_each_reject_reason_names_the_field_and_carries_its_code(document: Any, code: str, field: str) -> None:
    error = rejection(document)
    assert error.code == code
    assert error.reason.startswith(f"{field}:") or error.reason.split(";")[0].startswith(field), error.reason


def test_the_kafka_path_requires_a_tenantid() -> None:
    assert rejection(ticket(tenantid=DROP), tenant=None).code == "missing_tenant"


def test_an_event_nested_too_deep_is_rejected_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = {"a": deep}
    assert rejection(ticket(data_attributes=deep)).code == "too_deep"


def test_maintenance_windows_and_feedback_scores_are_checked_for_consistency() -> None:
    maintenance = {
        "specversion": "1.0",
        "id": "w-1",
        "source": "cab://",
        "type": "itsm.maintenance.v1",
        "time": "2026-11-20T11:00:00Z",
        "tenantid": "acme",
        "data": {
            "service": "email",
            "window_id": "chg-77",
            "start": "2026-11-21T02:00:00Z",
            "end": "2026-11-21T01:00:00Z",
            "status": "scheduled",
        },
    }
    feedback = {
        "specversion": "1.0",
        "id": "f-1",
        "source": "survey://",
        "type": "itsm.feedback.v1",
        "time": "2026-11-20T11:00:00Z",
        "tenantid": "acme",
        "data": {"ticket_id": "INC-1", "service": "email", "score": 6, "scale": 5},
    }
    assert rejection(maintenance).code == "inconsistent_data"
    assert rejection(feedback).code == "inconsistent_data"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "body: not valid JSON"),
        (b"\xff\xfe{}", "body: not UTF-8"),
        (b'{"a": NaN}', "body: not valid JSON"),
        (b'{"a": 1} trailing', "body: not valid JSON"),
        (b"[" * 100_000, "body:"),
    ],
)
def test_a_body_that_is_not_strict_json_is_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_json(body)
    assert caught.value.reason.startswith(reason)


def test_a_batch_keeps_each_events_bytes_exactly_as_sent() -> None:
    body = b' [ {"id": "a",  "x": [1, 2]} ,\n{"id":"b"}]  '
    items = split_json_array(body)
    assert [raw for _, raw in items] == [b'{"id": "a",  "x": [1, 2]}', b'{"id":"b"}']
    assert [document["id"] for document, _ in items] == ["a", "b"]


@pytest.mark.parametrize("body", [b"", b"{}", b"[1,", b"[1 2]", b"[1]]", b"[]x", '["\u00e9"'.encode("latin-1")])
def test_a_batch_that_is_not_a_json_array_is_malformed(body: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        split_json_array(body)
    assert caught.value.code == "malformed_json"


def test_an_empty_batch_is_an_empty_list() -> None:
    assert split_json_array(b" [ ] ") == []
