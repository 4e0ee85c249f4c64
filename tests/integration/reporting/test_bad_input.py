"""Bad input never blocks a partition nor loses the good events around it; it is set aside, visible to its tenant."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from slm_shared import topics
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, local
from tests.support.poison import eventually

pytestmark = pytest.mark.integration


async def test_an_event_the_database_refuses_is_set_aside_and_its_neighbours_are_applied(reporting: Reporting) -> None:
    tenant = await reporting.tenant("poison")
    common: dict[str, Any] = {"metric": "response", "priority": "P2", "started_at": local("10-08 09:00")}
    good = [
        clock_event(
            tenant.name,
            f"INC-{n}",
            "met",
            local("10-08 09:30"),
            state="met",
            elapsed=1800,
            stopped_at=local("10-08 09:30"),
            **common,
        )
        for n in (1, 3)
    ]
    # Valid by the contract, but 3e9 seconds do not fit the read model's integer column.
    poison = clock_event(
        tenant.name,
        "INC-2",
        "met",
        local("10-08 09:30"),
        state="met",
        elapsed=3_000_000_000,
        target=3_000_000_000,
        stopped_at=local("10-08 09:30"),
        **common,
    )
    await reporting.publish([good[0], poison, good[1]])
    await reporting.wait_applied(tenant.name, 2)

    async def set_aside() -> bool:
        return bool((await tenant.get("/v1/set-aside")).json()["records"])

    await eventually(set_aside, "the poison event visible through GET /v1/set-aside")
    [record] = (await tenant.get("/v1/set-aside")).json()["records"]
    assert base64.b64decode(record["value_base64"]) == poison.to_json_bytes()
    assert record["topic"] == topics.CLOCKS
    assert "out of int32 range" in record["reason"]
    other = await reporting.tenant("other")
    assert (await other.get("/v1/set-aside")).json() == {"records": [], "next_after": None}
    report = (
        await tenant.get("/v1/reports/slr", **{"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"})
    ).json()
    assert sorted(c["ticket_id"] for c in report["clocks"]) == ["INC-1", "INC-3"]
    assert report["summary"]["overall"] == {"numerator": 2, "denominator": 2, "percent": 100.0}
