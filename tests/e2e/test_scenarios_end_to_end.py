"""Every clock scenario of the contract, end to end: intake -> Kafka -> sla-engine, read back two ways.

Each scenario gets its own tenant (bundles are per tenant). Events are posted to intake in the file's arrival
order. The engine's clocks at the scenario's `now` must equal the expected ones, and the transitions it
published on `sla.clocks.v1` (net of those it retracted with `recalculated`) must equal the expected list.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TenantClient
from tests.scenarios.loader import Scenario, load_scenarios
from tests.support.kafka import collect

pytestmark = pytest.mark.e2e
SCENARIOS = load_scenarios()


def instant(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cloudevent(tenant: str, scenario: Scenario, event: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in event.items() if k not in ("id", "time")}
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": "scenario://" + scenario.name,
        "type": "itsm.ticket.v1",
        "time": event["time"],
        "tenantid": tenant,
        "subject": scenario.ticket_id,
        "data": {"ticket_id": scenario.ticket_id, **data},
    }


def net_transitions(events: list[dict[str, Any]], now: datetime) -> set[tuple[Any, ...]]:
    published: set[tuple[Any, ...]] = set()
    for event in events:
        data = event["data"]
        clock = (data["policy_id"], data["metric"], data["cycle"])
        if data["transition"] == "recalculated":
            gone = data.get("retracts")
            if gone:
                published.discard((*clock, gone["transition"], instant(gone["at"]), gone.get("threshold")))
            continue
        published.add((*clock, data["transition"], instant(event["time"]), data.get("threshold")))
    return {t for t in published if t[4] is not None and t[4] <= now}


def clock_differences(got_clocks: list[dict[str, Any]], expected_clocks: list[dict[str, Any]]) -> list[str]:
    """Every expected field that the engine's clocks do not have, as readable lines."""
    got = {(c["policy_id"], c["metric"], c["cycle"]): c for c in got_clocks}
    want = {(c["policy_id"], c["metric"], c["cycle"]): c for c in expected_clocks}
    if got.keys() != want.keys():
        return [f"clocks {sorted(got)} != {sorted(want)}"]
    differences = []
    for key, expected in want.items():
        for field in ("state", "breached", "elapsed_seconds", "target_seconds"):
            if got[key][field] != expected[field]:
                differences.append(f"{key} {field}: {got[key][field]!r} != {expected[field]!r}")
        for field in ("started_at", "stopped_at", "breached_at", "due_at"):
            if instant(got[key][field]) != instant(expected[field]):
                differences.append(f"{key} {field}: {got[key][field]!r} != {expected[field]!r}")
    return differences


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_the_scenario_gives_the_expected_clocks_through_the_running_services(
    scenario: Scenario, tenant: TenantClient
) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post(
            "/v1/config:apply", content=scenario.bundle_text, headers={"Content-Type": "application/yaml"}
        )
        assert applied.status_code == 200, applied.text
    with tenant.client(tenant.platform.intake) as intake:
        for event in scenario.events:
            answer = intake.post("/v1/events", json=cloudevent(tenant.tenant, scenario, event))
            assert answer.status_code == 202, answer.text
    # The engine may answer before its consumer has the last snapshot (an earlier prefix of the timeline gives
    # other clocks): poll until nothing differs, then the assertion reports whatever still does.
    now = scenario.now
    deadline = time.monotonic() + 60
    differences: list[str] = ["no answer yet"]
    async with httpx.AsyncClient(base_url=tenant.platform.sla_engine.url, headers=tenant.headers) as engine:
        while differences and time.monotonic() < deadline:
            answer = await engine.get(f"/v1/tickets/{scenario.ticket_id}/clocks", params={"at": now.isoformat()})
            if answer.status_code == 200:
                differences = clock_differences(answer.json()["clocks"], scenario.expected_clocks)
            if differences:
                await asyncio.sleep(0.3)
    assert differences == []

    want_transitions = {
        (c["policy_id"], c["metric"], c["cycle"], t["transition"], instant(t["at"]), t.get("threshold"))
        for c in scenario.expected_clocks
        for t in c["transitions"]
    }
    published = await collect(
        tenant.platform.stack.kafka_bootstrap,
        "sla.clocks.v1",
        lambda got: net_transitions(got, now) == want_transitions,
        tenant=tenant.tenant,
        within=60,
    )
    assert net_transitions(published, now) == want_transitions
