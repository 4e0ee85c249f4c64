"""Reads the scenario files of this directory; used by the pure clock tests and the end-to-end replay.

A scenario is one ticket under one bundle: its events in arrival order, the instant `now` at which the clocks
are read, and the clocks expected then (see README.md here for the format).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

SCENARIO_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: Path
    bundle_text: str
    """The bundle as YAML text, ready for `parse_bundle` or `POST /v1/config:apply`."""
    ticket_id: str
    events: list[dict[str, Any]]
    """Ticket snapshots in arrival order: `id` (CloudEvent id), `time` (RFC 3339 text) and itsm.ticket.v1 data."""
    now: datetime
    expected_clocks: list[dict[str, Any]]


def _text_time(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def load_scenario(path: Path) -> Scenario:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A YAML alias repeats the same object (a redelivered event): give every event its own copy.
    events = [copy.deepcopy(event) for event in document["events"]]
    for event in events:
        event["time"] = _text_time(event["time"])
    now = datetime.fromisoformat(_text_time(document["now"]).replace("Z", "+00:00"))
    if now.tzinfo is None:
        raise ValueError(f"{path.name}: now must carry an offset")
    return Scenario(
        name=str(document.get("name", path.stem)),
        description=str(document.get("description", "")),
        path=path,
        bundle_text=yaml.safe_dump(document["bundle"], sort_keys=False, allow_unicode=True),
        ticket_id=str(document["ticket_id"]),
        events=events,
        now=now,
        expected_clocks=copy.deepcopy(document["expect"]["clocks"]),
    )


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every `*.yaml` scenario of the directory, by file name."""
    return [load_scenario(path) for path in sorted(directory.glob("*.yaml"))]
