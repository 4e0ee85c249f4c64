"""A recorded upstream workload: tickets, signals and feedback, delivered late, out of order and twice.

Generated from a seed relative to a start instant S (every event time is before S), then saved to JSON so the
clean run and the faulted run send exactly the same deliveries. Calendars are 24x7 so the generator knows when
every open clock's warnings and breach fall due: a share of tickets is placed so that their breach falls due
while the faults run, and no ticket has anything due in the quiet window in which both runs are compared.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

TENANT_PLACEHOLDER = "@tenant@"
SOURCE = "jira://faults.example"
WARN_AT = (50, 75, 90)
RESPONSE_TARGETS = {
    "P1": timedelta(minutes=15),
    "P2": timedelta(hours=1),
    "P3": timedelta(hours=4),
    "P4": timedelta(days=1),
}
RESOLUTION_TARGETS = {
    "P1": timedelta(hours=4),
    "P2": timedelta(hours=8),
    "P3": timedelta(days=3),
    "P4": timedelta(days=5),
}
SERVICES = ("email", "vpn")
CUSTOMERS = ("acme", "globex")

BUNDLE = f"""
calendars: []
policies:
  - id: faults-incidents
    name: Incidents under faults
    agreement: SLA
    match: {{kind: incident, customer: [acme, globex]}}
    metrics:
      - metric: response
        calendar: 24x7
        targets: {{P1: 15m, P2: 1h, P3: 4h, P4: 1d}}
        stop: {{actions: [agent_replied], statuses: [resolved, closed]}}
        cancel: {{statuses: [cancelled]}}
        warn_at: {list(WARN_AT)}
      - metric: resolution
        calendar: 24x7
        targets: {{P1: 4h, P2: 8h, P3: 3d, P4: 5d}}
        pause: {{statuses: [pending_customer]}}
        stop: {{statuses: [resolved, closed]}}
        cancel: {{statuses: [cancelled]}}
        warn_at: {list(WARN_AT)}
slos:
  - id: email-availability
    service: email
    sli: {{type: availability}}
    objective: 95
    window: {{rolling: 1d}}
  - id: vpn-availability
    service: vpn
    sli: {{type: availability}}
    objective: 99
    window: {{rolling: 1d}}
"""


@dataclass(frozen=True)
class WorkloadShape:
    tickets: int
    stream_seconds: float  # how long the deliveries take, and the span in which timers fall due
    quiet_minutes: int = 60  # after the stream: nothing falls due, so both runs compare equal in it
    seed: int = 18
    batch_size: int = 25
    late_share: float = 0.15
    duplicate_share: float = 0.10
    due_in_run_share: float = 0.08


@dataclass
class Workload:
    start: datetime  # S: every event's time is before it
    stream_seconds: float
    quiet_from: datetime
    quiet_to: datetime
    events: dict[str, dict[str, Any]]  # event id -> CloudEvent with the tenant placeholder
    batches: list[list[str]]  # deliveries, in order; an id may come twice
    due_in_stream: int = 0  # breaches placed to fall due while the faults run
    tickets: list[str] = field(default_factory=list)

    def batch_for(self, index: int, tenant: str) -> list[dict[str, Any]]:
        return [{**self.events[event_id], "tenantid": tenant} for event_id in self.batches[index]]

    @property
    def deliveries(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "start": self.start.isoformat(),
                    "stream_seconds": self.stream_seconds,
                    "quiet_from": self.quiet_from.isoformat(),
                    "quiet_to": self.quiet_to.isoformat(),
                    "events": self.events,
                    "batches": self.batches,
                    "due_in_stream": self.due_in_stream,
                    "tickets": self.tickets,
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> Workload:
        raw = json.loads(path.read_text())
        return cls(
            datetime.fromisoformat(raw["start"]),
            raw["stream_seconds"],
            datetime.fromisoformat(raw["quiet_from"]),
            datetime.fromisoformat(raw["quiet_to"]),
            raw["events"],
            raw["batches"],
            raw["due_in_stream"],
            raw["tickets"],
        )


# (offset from created, action, status) steps of a ticket; the generator cuts a timeline at S.
Step = tuple[timedelta, str, str]


def open_clock_instants(created: datetime, steps: list[tuple[datetime, str, str]], priority: str) -> list[datetime]:
    """When the warnings and breach of each clock still running at the end of the timeline fall due (24x7)."""
    instants: list[datetime] = []
    for metric, targets in (("response", RESPONSE_TARGETS), ("resolution", RESOLUTION_TARGETS)):
        running_since: datetime | None = created
        elapsed = timedelta()
        stopped = False
        for at, action, status in steps:
            replied = metric == "response" and action == "agent_replied"
            stops = replied or status in ("resolved", "closed", "cancelled")
            pauses = metric == "resolution" and status == "pending_customer"
            if stops:
                stopped = True
                break
            if pauses and running_since is not None:
                elapsed += at - running_since
                running_since = None
            elif not pauses and running_since is None:
                running_since = at
        if stopped or running_since is None:
            continue
        for percent in (*WARN_AT, 100):
            instants.append(running_since + targets[priority] * percent / 100 - elapsed)
    return instants


def _flow(rng: random.Random) -> list[Step]:
    def minutes(low: float, high: float) -> timedelta:
        return timedelta(minutes=rng.uniform(low, high))

    steps: list[Step] = [(timedelta(), "created", "new")]
    at = timedelta()
    for _ in range(rng.randint(0, 3)):  # reassignments and notes: snapshots that change no clock
        at += minutes(1, 30)
        steps.append((at, "updated", "open"))
    roll = rng.random()
    if roll < 0.1:
        steps.append((at + minutes(1, 60), "cancelled", "cancelled"))
        return steps
    if roll < 0.25:
        return steps  # nobody answered yet
    at += minutes(2, 90)
    steps.append((at, "agent_replied", "in_progress"))
    if rng.random() < 0.4:
        at += minutes(5, 120)
        steps.append((at, "updated", "pending_customer"))
        at += minutes(5, 240)
        steps.append((at, "customer_replied", "in_progress"))
    if rng.random() < 0.7:
        at += minutes(10, 600)
        steps.append((at, "resolved", "resolved"))
        if rng.random() < 0.5:
            at += minutes(30, 600)
            steps.append((at, "closed", "closed"))
    return steps


def _ticket_event(
    ticket: str, at: datetime, action: str, status: str, priority: str, service: str, customer: str, rng: random.Random
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "source": SOURCE,
        "type": "itsm.ticket.v1",
        "time": at.isoformat(),
        "tenantid": TENANT_PLACEHOLDER,
        "subject": ticket,
        "data": {
            "ticket_id": ticket,
            "action": action,
            "kind": "incident",
            "service": service,
            "customer": customer,
            "priority": priority,
            "status": status,
            "assignment_group": "service-desk",
        },
    }


def _signals(start: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """Availability of each service over the six hours before S: outages that end before S."""
    events = []
    for service in SERVICES:
        at = start - timedelta(hours=6)
        state = "up"
        while at < start - timedelta(minutes=10):
            events.append(
                {
                    "specversion": "1.0",
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "source": "probe://faults",
                    "type": "itsm.availability.v1",
                    "time": at.isoformat(),
                    "tenantid": TENANT_PLACEHOLDER,
                    "subject": service,
                    "data": {"service": service, "component": "core", "state": state},
                }
            )
            at += timedelta(minutes=rng.uniform(3, 25) if state != "up" else rng.uniform(20, 60))
            state = "up" if state != "up" else rng.choice(("down", "degraded"))
        if state != "up":  # the last outage ends before S
            ended = min(at, start - timedelta(minutes=5))
            events.append(
                {
                    **events[-1],
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "time": ended.isoformat(),
                    "data": {"service": service, "component": "core", "state": "up"},
                }
            )
    return events


def generate(shape: WorkloadShape, start: datetime) -> Workload:
    rng = random.Random(shape.seed)
    stream = timedelta(seconds=shape.stream_seconds)
    quiet_from, quiet_to = start + stream, start + stream + timedelta(minutes=shape.quiet_minutes)
    events: list[dict[str, Any]] = []
    tickets: list[str] = []
    due_in_stream = 0
    for number in range(shape.tickets):
        ticket = f"INC-{number + 1:05d}"
        priority = rng.choice(tuple(RESPONSE_TARGETS))
        service, customer = rng.choice(SERVICES), rng.choice(CUSTOMERS)
        placed_due = rng.random() < shape.due_in_run_share
        while True:
            if placed_due:  # unanswered, its response breach falls due while the faults run
                created = start - RESPONSE_TARGETS[priority] + stream * rng.uniform(0.05, 0.85)
                flow: list[Step] = [(timedelta(), "created", "new")]
            else:
                created = start - timedelta(hours=rng.uniform(0.5, 30))
                flow = _flow(rng)
            steps = [
                (created + offset, action, status)
                for offset, action, status in flow
                if created + offset < start - timedelta(minutes=1)
            ]
            if not steps:
                continue
            instants = open_clock_instants(created, steps[1:], priority)
            quiet = all(not quiet_from <= due <= quiet_to for due in instants)
            in_stream = [due for due in instants if start < due < quiet_from]
            if quiet and (not in_stream or placed_due) and created < start - timedelta(minutes=1):
                break
        due_in_stream += placed_due
        tickets.append(ticket)
        timeline = [
            _ticket_event(ticket, at, action, status, priority, service, customer, rng) for at, action, status in steps
        ]
        events.extend(timeline)
        if steps[-1][2] in ("resolved", "closed") and rng.random() < 0.3:
            events.append(
                {
                    **timeline[-1],
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "type": "itsm.feedback.v1",
                    "data": {
                        "ticket_id": ticket,
                        "service": service,
                        "score": rng.randint(1, 5),
                        "scale": 5,
                        "comment": "survey",
                    },
                }
            )
    events.extend(_signals(start, rng))
    events.sort(key=lambda event: event["time"])
    order = [event["id"] for event in events]
    _delay_some(order, rng, shape.late_share)
    for event_id in rng.sample(order, int(len(order) * shape.duplicate_share)):  # a sender's retry, later
        position = order.index(event_id)
        order.insert(min(len(order), position + rng.randint(1, 400)), event_id)
    batches = [order[at : at + shape.batch_size] for at in range(0, len(order), shape.batch_size)]
    return Workload(
        start, shape.stream_seconds, quiet_from, quiet_to, {e["id"]: e for e in events}, batches, due_in_stream, tickets
    )


def _delay_some(order: list[str], rng: random.Random, share: float) -> None:
    """Late arrivals: a share of events is delivered up to 300 deliveries after its place in time order."""
    for event_id in rng.sample(order, int(len(order) * share)):
        position = order.index(event_id)
        order.pop(position)
        order.insert(min(len(order), position + rng.randint(5, 300)), event_id)
