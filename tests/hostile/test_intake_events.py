"""Events with hostile times, identifiers and text, sent in batches beside good ones through intake's HTTP API.

Each bad event is rejected with its code and a reason naming the field; every good event of the same batch is
accepted and reaches the sla-engine (its ticket has a timeline there)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import TenantClient
from tests.hostile.conftest import Tally, tickets_known_downstream
from tests.support.events import BATCH_HEADERS, ticket_event

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC)


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, "id": f"bad-{uuid.uuid4()}", **changes}


def _with_data(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**event, "id": f"bad-{uuid.uuid4()}", "data": {**event["data"], **changes}}


def hostile_events(tenant: str) -> list[tuple[dict[str, Any], str, str]]:
    """(event, expected code, a fragment of the reason) for each hostile event."""
    base = ticket_event(tenant, "HOSTILE", NOW - timedelta(minutes=5))  # each case below gets its own id
    measurement = {
        "specversion": "1.0",
        "id": "m",
        "source": "probe://x",
        "type": "itsm.measurement.v1",
        "time": (NOW - timedelta(minutes=5)).isoformat(),
        "tenantid": tenant,
        "data": {
            "service": "email",
            "sli": "latency",
            "good": 1,
            "total": 2,
            "window_start": "0001-01-01T00:00:00+01:00",
            "window_end": (NOW - timedelta(minutes=6)).isoformat(),
        },
    }
    maintenance = {
        "specversion": "1.0",
        "id": "mw",
        "source": "cab://x",
        "type": "itsm.maintenance.v1",
        "time": (NOW - timedelta(minutes=5)).isoformat(),
        "tenantid": tenant,
        "data": {
            "service": "email",
            "window_id": "w1",
            "status": "scheduled",
            "start": "2026-01-01T00:00:00Z",
            "end": "9999-12-31T23:59:59-05:00",
        },
    }
    wide = "𝄞" * 200  # 200 characters, 800 bytes of UTF-8
    return [
        (_with(base, time="0001-01-01T00:00:00+01:00"), "time_out_of_range", "can hold in UTC"),
        (_with(base, time="0001-01-01T00:00:00Z"), "time_out_of_range", "outside"),
        (_with(base, time="9999-12-31T23:59:59-05:00"), "time_out_of_range", "time:"),
        (_with(base, time="1969-12-31T23:59:59Z"), "time_out_of_range", "1970"),
        (_with(base, time="2201-01-01T00:00:00+14:00"), "time_out_of_range", "2200"),
        (_with(base, time=(NOW - timedelta(days=900)).isoformat()), "time_out_of_range", "days old"),
        (_with(base, time="2026-02-30T10:00:00Z"), "invalid_time", "time:"),
        (_with(base, time="2026-05-04T10:00:00"), "time_without_offset", "time:"),
        (_with(measurement), "time_out_of_range", "data.window_start"),
        (_with(maintenance), "time_out_of_range", "data.end"),
        (_with(base, id=wide), "identifier_too_long", "id: 800 bytes"),
        (_with(base, source=wide), "identifier_too_long", "source: 800 bytes"),
        (_with_data(base, ticket_id=wide), "identifier_too_long", "data.ticket_id: 800 bytes"),
        (_with_data(base, customer=wide), "identifier_too_long", "data.customer"),
        (_with(base, subject=wide), "identifier_too_long", "subject"),
        (_with_data(base, ticket_id="INC\x00-1"), "invalid_text", "U+0000"),
        (_with(base, id="evt\x00"), "invalid_text", "U+0000"),
        (_with(base, time=NOW.isoformat() + "\x00"), "invalid_text", "U+0000"),
        (_with_data(base, title="\ud800"), "invalid_text", "surrogate"),
        (_with_data(base, attributes={"n": 2**70}), "invalid_number", "64-bit"),
        (_with_data(base, attributes={"blob": "x" * 600_000}), "event_too_large", "bytes"),
    ]


def test_hostile_times_and_identifiers_are_rejected_and_the_good_events_beside_them_count(
    tenant: TenantClient, tally: Tally
) -> None:
    hostile = hostile_events(tenant.tenant)
    good_tickets = [f"GOOD-{n}" for n in range(len(hostile))]
    batch: list[dict[str, Any]] = []
    for (event, _, _), ticket in zip(hostile, good_tickets, strict=True):
        batch.append(event)
        batch.append(
            ticket_event(
                tenant.tenant, ticket, NOW - timedelta(minutes=10), source="hostile://desk", event_id=f"good-{ticket}"
            )
        )
    with tenant.client(tenant.platform.intake) as intake:
        response = intake.post("/v1/events", content=json.dumps(batch), headers=BATCH_HEADERS)
        tally.sent("intake: hostile times/ids/text", response)
    assert response.status_code == 202, response.text[:500]
    body = response.json()
    results = body["results"]
    for position, (_, code, fragment) in enumerate(hostile):
        bad = results[2 * position]
        assert (bad["result"], bad["code"]) == ("rejected", code), (position, bad)
        assert fragment in bad["reason"], (position, bad)
        assert len(bad["reason"]) < 400
    assert [r["result"] for r in results[1::2]] == ["accepted"] * len(good_tickets)
    assert (body["accepted"], body["rejected"]) == (len(good_tickets), len(hostile))
    assert tickets_known_downstream(tenant, good_tickets) == set(good_tickets)
