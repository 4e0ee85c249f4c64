"""Intake's rule 3 and 7 bounds: times normalised to UTC inside the accepted range and age, identifiers
counted in UTF-8 bytes; and webhook payloads an adapter cannot read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.domain import Limits, Rejected, accept
from intake.domain.adapters import jira_event, servicenow_event
from intake.domain.mapping import JIRA_DEFAULTS, SERVICENOW_DEFAULTS
from tests.unit.intake.test_acceptance import NOW, measurement, ticket

LIMITS = Limits(max_future_skew=timedelta(minutes=5), max_event_bytes=64 * 1024, max_age=timedelta(days=800))


def rejected(document: dict[str, Any]) -> Rejected:
    with pytest.raises(Rejected) as caught:
        accept(document, tenant_id="acme", now=NOW, limits=LIMITS)
    return caught.value


def test_an_accepted_time_and_the_times_in_data_are_normalised_to_utc() -> None:
    routed = accept(ticket(time="2026-11-20T10:00:00+08:00"), tenant_id="acme", now=NOW, limits=LIMITS)
    assert routed.event.time == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    assert json.loads(routed.canonical)["time"] == "2026-11-20T02:00:00Z"
    window = accept(
        measurement(good=1, total=2, window_start="2026-11-20T12:00:00+02:00", window_end="2026-11-20T11:00:00Z"),
        tenant_id="acme",
        now=NOW,
        limits=LIMITS,
    )
    assert window.event.data["window_start"] == "2026-11-20T10:00:00Z"


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "can hold in UTC"),
        ("9999-12-31T23:59:59-05:00", "can hold in UTC"),
        ("1969-12-31T23:59:59Z", "outside [1970-01-01"),
        ("2200-01-01T00:00:00Z", "outside [1970-01-01"),
        ("2024-09-01T00:00:00Z", "more than 800 days old"),
    ],
)
def test_a_time_outside_the_range_or_too_old_is_rejected_with_its_reason(time: str, reason: str) -> None:
    error = rejected(ticket(time=time))
    assert error.code == "time_out_of_range"
    assert error.reason.startswith("time: ")
    assert reason in error.reason


def test_a_time_in_data_is_held_to_the_same_range() -> None:
    error = rejected(
        measurement(good=1, total=2, window_start="0001-01-01T00:00:00+01:00", window_end="2026-11-20T11:00:00Z")
    )
    assert (error.code, error.reason.split(":")[0]) == ("time_out_of_range", "data.window_start")


def test_identifiers_are_limited_in_utf8_bytes_not_characters() -> None:
    accept(ticket(data_ticket_id="é" * 256), tenant_id="acme", now=NOW, limits=LIMITS)  # 512 bytes: fits
    error = rejected(ticket(data_ticket_id="𝄞" * 200))  # 200 characters, 800 bytes
    assert (error.code, error.reason) == ("identifier_too_long", "data.ticket_id: 800 bytes of UTF-8, over 512")
    assert rejected(ticket(source="ü" * 300)).reason.startswith("source: 600 bytes")


def test_a_jira_self_link_that_is_not_a_url_names_no_site() -> None:
    payload = {
        "webhookEvent": "jira:issue_created",
        "timestamp": 1778058000123,
        "issue": {"id": "1", "key": "K-1", "self": "http://[not-a-url", "fields": {"status": {"name": "Open"}}},
    }
    assert jira_event(payload, JIRA_DEFAULTS)["source"] == "jira://unknown"


def test_a_servicenow_time_shaped_like_a_date_but_impossible_is_a_rejection() -> None:
    payload = {"record": {"sys_id": "a", "number": "INC1", "state": "1", "sys_updated_on": "2026-13-45 99:99:99"}}
    with pytest.raises(Rejected) as caught:
        servicenow_event(payload, SERVICENOW_DEFAULTS)
    assert (caught.value.code, caught.value.reason) == (
        "invalid_webhook",
        "sys_updated_on: '2026-13-45 99:99:99' is not a valid date/time",
    )
