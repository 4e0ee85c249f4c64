"""The contract's clock scenarios and the project's own (tests/scenarios_project), run through the pure clock logic."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.timeline import TicketSnapshot
from tests.scenarios.loader import SCENARIO_DIR, Scenario, load_scenarios

PROJECT_SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios_project"
SCENARIOS = load_scenarios() + load_scenarios(PROJECT_SCENARIO_DIR)
SHARED_SCENARIOS = Path(__file__).resolve().parents[3].parent / "shared" / "scenarios"
CLOCK_KEY_FIELDS = ("policy_id", "metric", "cycle")
INSTANT_FIELDS = ("started_at", "stopped_at", "breached_at", "due_at")


def snapshots_of(scenario: Scenario, order: list[int] | None = None) -> list[TicketSnapshot]:
    """The scenario's events as snapshots; `order` re-delivers them in another arrival order."""
    positions = order if order is not None else list(range(len(scenario.events)))
    snapshots = []
    for arrival, position in enumerate(positions):
        event = scenario.events[position]
        snapshots.append(
            TicketSnapshot(
                event_id=event["id"],
                time=datetime.fromisoformat(event["time"]),
                arrival=arrival,
                ticket_id=scenario.ticket_id,
                action=event["action"],
                kind=event["kind"],
                status=event["status"],
                priority=event["priority"],
                service=event["service"],
                customer=event["customer"],
                assignment_group=event.get("assignment_group"),
                assignee=event.get("assignee"),
                attributes=event.get("attributes") or {},
            )
        )
    return snapshots


def evaluate(scenario: Scenario, order: list[int] | None = None) -> list[Clock]:
    bundle = parse_bundle(scenario.bundle_text)
    return evaluate_ticket(snapshots_of(scenario, order), bundle, policy_version=1, at=scenario.now)


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def same_second(actual: datetime | None, expected: datetime | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return int(actual.timestamp()) == int(expected.timestamp())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_scenario_ends_with_exactly_the_expected_clocks(scenario: Scenario) -> None:
    clocks = {(c.policy_id, c.metric, c.cycle): c for c in evaluate(scenario)}
    expected: dict[tuple[Any, ...], dict[str, Any]] = {
        tuple(e[k] for k in CLOCK_KEY_FIELDS): e for e in scenario.expected_clocks
    }
    assert sorted(clocks) == sorted(expected)
    for key, wanted in expected.items():
        clock = clocks[key]
        for name, value in wanted.items():
            if name in CLOCK_KEY_FIELDS or name == "transitions":
                continue
            actual = getattr(clock, name)
            if name in INSTANT_FIELDS:
                assert same_second(actual, instant(value)), f"{key} {name}: {actual} != {value}"
            else:
                assert actual == value, f"{key} {name}: {actual!r} != {value!r}"
        actual_transitions = [(t.transition, t.at, t.threshold) for t in clock.transitions]
        assert len(actual_transitions) == len(wanted["transitions"]), f"{key}: {actual_transitions}"
        for (name, at, threshold), want in zip(actual_transitions, wanted["transitions"], strict=True):
            assert name == want["transition"], f"{key}: {actual_transitions}"
            assert same_second(at, instant(want["at"])), f"{key} {name}: {at} != {want['at']}"
            assert threshold == want.get("threshold"), f"{key} {name}: threshold {threshold}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_delivering_the_scenario_backwards_gives_the_same_clocks(scenario: Scenario) -> None:
    backwards = list(reversed(range(len(scenario.events))))
    assert evaluate(scenario, backwards) == evaluate(scenario)


def test_the_scenario_copies_are_byte_identical_to_the_shared_contract() -> None:
    if not SHARED_SCENARIOS.is_dir():
        pytest.skip(f"{SHARED_SCENARIOS} is not present in this checkout")
    shared = {p.name: p.read_bytes() for p in SHARED_SCENARIOS.iterdir() if p.is_file()}
    copied = {p.name: p.read_bytes() for p in SCENARIO_DIR.iterdir() if p.is_file() and p.suffix not in {".py", ".pyc"}}
    assert sorted(copied) == sorted(shared), "the scenario file sets differ"
    changed = [name for name in shared if copied[name] != shared[name]]
    assert not changed, f"copies differ from ../shared/scenarios: {changed}"


def test_every_scenario_file_is_loaded() -> None:
    project = list(PROJECT_SCENARIO_DIR.glob("*.yaml"))
    assert len(SCENARIOS) == len(list(SCENARIO_DIR.glob("*.yaml"))) + len(project)
    assert len(SCENARIOS) - len(project) >= 13
    assert project
