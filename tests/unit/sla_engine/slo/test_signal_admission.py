"""Signals the engine refuses before computing anything: too old to count, instants out of range, names too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sla_engine.domain.slo.admission import MAX_NAME_BYTES, signal_refusal
from slm_shared.events import AVAILABILITY_EVENT, MAINTENANCE_EVENT, MEASUREMENT_EVENT, CloudEvent, parse_cloudevent

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=100)


def signal(kind: str, data: dict[str, Any], time: str = "2026-12-06T11:00:00Z") -> CloudEvent:
    return parse_cloudevent(
        {
            "specversion": "1.0",
            "id": "sig-1",
            "source": "probe://edge",
            "type": kind,
            "time": time,
            "tenantid": "acme",
            "data": data,
        }
    )


def availability(time: str, service: str = "email") -> CloudEvent:
    return signal(AVAILABILITY_EVENT, {"service": service, "component": "smtp", "state": "down"}, time)


def maintenance(start: str, end: str) -> CloudEvent:
    return signal(
        MAINTENANCE_EVENT, {"service": "email", "window_id": "mw-1", "start": start, "end": end, "status": "scheduled"}
    )


def test_a_recent_signal_with_ordinary_names_is_taken() -> None:
    assert signal_refusal(availability("2026-12-06T11:59:00Z"), NOW, RETENTION) is None
    assert signal_refusal(maintenance("2026-12-07T01:00:00Z", "2026-12-07T03:00:00Z"), NOW, RETENTION) is None


def test_an_availability_signal_timed_in_1900_is_refused_as_older_than_retention() -> None:
    reason = signal_refusal(availability("1900-01-01T00:00:00Z"), NOW, RETENTION)
    assert reason is not None
    assert reason.startswith("time: 1900-01-01T00:00:00+00:00 is more than 100 days old")


def test_a_maintenance_window_starting_in_1900_is_refused() -> None:
    reason = signal_refusal(maintenance("1900-01-01T00:00:00Z", "2026-12-07T00:00:00Z"), NOW, RETENTION)
    assert reason is not None
    assert reason.startswith("start: 1900-01-01")


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01T00:30:00+01:00", "2026-12-07T00:00:00Z", "start"),
        ("2026-12-07T00:00:00Z", "9999-12-31T23:30:00-01:00", "end"),
    ],
)
def test_a_maintenance_window_whose_instant_overflows_in_utc_is_refused(start: str, end: str, field: str) -> None:
    reason = signal_refusal(maintenance(start, end), NOW, RETENTION)
    assert reason is not None
    assert reason.startswith(f"{field}: ")
    assert "outside the range of UTC instants" in reason


def test_a_maintenance_window_ending_just_before_the_end_of_the_calendar_is_refused() -> None:
    reason = signal_refusal(maintenance("2026-12-07T00:00:00Z", "9999-12-31T00:00:00Z"), NOW, RETENTION)
    assert reason == "end: 9999-12-31T00:00:00+00:00 is after 9997"


def test_a_measurement_whose_names_are_512_four_byte_characters_is_refused() -> None:
    name = "\U0001f600" * 512
    event = signal(MEASUREMENT_EVENT, {"service": name, "sli": name, "value": 1.0})
    assert signal_refusal(event, NOW, RETENTION) == f"data.service: longer than {MAX_NAME_BYTES} bytes in UTF-8"


def test_a_name_of_fifty_four_byte_characters_is_taken() -> None:
    event = signal(MEASUREMENT_EVENT, {"service": "\U0001f600" * 50, "sli": "latency", "value": 1.0})
    assert signal_refusal(event, NOW, RETENTION) is None


def test_an_old_measurement_is_taken_since_it_is_one_row_the_retention_purge_removes() -> None:
    event = signal(MEASUREMENT_EVENT, {"service": "api", "sli": "latency_ms", "value": 1.0}, "1900-01-01T00:00:00Z")
    assert signal_refusal(event, NOW, RETENTION) is None
