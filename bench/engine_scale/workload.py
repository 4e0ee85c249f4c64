"""A realistic sla-engine workload: business calendars, bundles of N policies, and tickets that live a while.

Deterministic for a seed. The pieces, meant to be reused by any engine benchmark:
- `bundle_yaml(policies)`: a bundle (DESIGN.md section 3) with three calendars (China business hours with the
  national holidays, make-up workdays and a lunch break; Bavaria with its holidays and a lunch break; 24x7)
  and `policies` policies of 2 or 3 metrics each (pause, stop, cancel, reopen rules, warn_at). Policy n is the
  same in every bundle, so a smaller bundle is a prefix of a larger one, and it matches only tickets of
  "its" customer, service or group: a ticket matches about the same few policies whatever the bundle size.
- `make_ticket(...)` / `make_tickets(...)`: tickets of 6 to 10 events (created, agent and customer replies,
  pauses, priority changes, resolution, reopen, close; a few cancelled or moved to another customer), each
  with its snapshots in arrival order (some late: out of order by event time) as domain `TicketSnapshot`s
  and as `itsm.ticket.v1` CloudEvent JSON dicts (DESIGN.md 2.1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from sla_engine.domain.bundle import Bundle, parse_bundle
from sla_engine.domain.timeline import TicketSnapshot

TICKET_EVENT_TYPE = "itsm.ticket.v1"
SOURCE = "bench://engine-scale"
# Mid-September to late October 2026: crosses the Mid-Autumn festival and China's National Day week (with
# its make-up Saturdays/Sundays) and Germany's Unity Day.
WINDOW_START = datetime(2026, 9, 21, 0, 0, tzinfo=UTC)
WINDOW_DAYS = 35

CALENDARS: list[dict[str, Any]] = [
    {
        "name": "cn-business",
        "timezone": "Asia/Shanghai",
        "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"]},
        "holidays": {"country": "CN"},
        "extra_holidays": ["2026-10-09"],
        # Make-up working days around the 2026 National Day week, worked with a weekday's hours.
        "extra_workdays": {"2026-09-20": "mon", "2026-10-10": "fri", "2026-10-11": "mon"},
    },
    {
        "name": "de-business",
        "timezone": "Europe/Berlin",
        "hours": {"mon-thu": ["08:00-12:00", "12:30-17:00"], "fri": ["08:00-12:00", "12:30-15:00"]},
        "holidays": {"country": "DE", "subdivision": "BY"},
        "extra_holidays": ["2026-12-24"],
    },
    {"name": "24x7"},
]
_BUSINESS_CALENDARS = ("cn-business", "de-business", "24x7")
_PRIORITIES = ("P1", "P2", "P3", "P4")
_KINDS = ("incident", "service_request")


# -- the bundle --------------------------------------------------------------------------------------------


def customer_of(policy: int) -> str:
    return f"cust-{policy:04d}"


def service_of(policy: int) -> str:
    return f"svc-{policy:04d}"


def group_of(policy: int) -> str:
    return f"group-{policy:04d}"


def policy_match(policy: int) -> dict[str, Any]:
    """What policy n matches: one of four shapes, each naming values that belong to n alone."""
    shape = policy % 4
    if shape == 0:
        return {"kind": "incident", "customer": customer_of(policy)}
    if shape == 1:
        return {"customer": [customer_of(policy), f"{customer_of(policy)}-eu"], "service": service_of(policy)}
    if shape == 2:
        return {"service": service_of(policy), "priority": ["P1", "P2", "P3"]}
    return {
        "assignment_group": group_of(policy),
        "kind": ["incident", "service_request"],
        "attributes.region": ["apac", "emea"],
    }


def policy_definition(policy: int) -> dict[str, Any]:
    """Policy n: 2 or 3 metrics on a calendar picked by n, with warnings and reopen rules."""
    calendar = _BUSINESS_CALENDARS[policy % 3]
    scale = 1 + policy % 3
    metrics: list[dict[str, Any]] = [
        {
            "metric": "response",
            "calendar": calendar,
            "targets": {"P1": f"{15 * scale}m", "P2": f"{scale}h", "P3": f"{4 * scale}h", "P4": f"{scale}d"},
            "stop": {"actions": ["agent_replied"], "statuses": ["resolved", "closed"]},
            "cancel": {"statuses": ["cancelled"]},
            "warn_at": [50, 75, 90],
        },
        {
            "metric": "resolution",
            "calendar": calendar,
            "targets": {"P1": f"{4 * scale}h", "P2": f"{8 * scale}h", "P3": f"{3 * scale}d", "P4": f"{5 * scale}d"},
            "pause": {"statuses": ["pending_customer", "pending_vendor"]},
            "stop": {"statuses": ["resolved", "closed"]},
            "cancel": {"statuses": ["cancelled"]},
            "on_reopen": "resume",
            "warn_at": [75, 90],
        },
    ]
    if policy % 2 == 1:
        metrics.append(
            {
                "metric": "restoration",
                "calendar": "24x7",
                "targets": {"P1": "2h", "P2": "6h", "P3": "1d"},
                "pause": {"statuses": ["on_hold"]},
                "stop": {"statuses": ["resolved", "closed"]},
                "cancel": {"statuses": ["cancelled"]},
                "on_reopen": "new_cycle",
                "warn_at": [80],
                **({"start": {"retroactive": True}} if policy % 4 == 3 else {}),
            }
        )
    return {
        "id": f"policy-{policy:04d}",
        "name": f"Policy {policy}",
        "agreement": ("SLA", "OLA", "UC")[policy % 3],
        "match": policy_match(policy),
        "metrics": metrics,
    }


def bundle_yaml(policies: int) -> str:
    """The bundle's YAML text with `policies` policies (policy n is the same in every bundle)."""
    document = {"calendars": CALENDARS, "policies": [policy_definition(n) for n in range(policies)]}
    return yaml.safe_dump(document, sort_keys=False)


def make_bundle(policies: int) -> Bundle:
    return parse_bundle(bundle_yaml(policies))


# -- tickets -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """One ticket's events in arrival order: the domain snapshots and the same events as CloudEvent dicts."""

    ticket_id: str
    snapshots: tuple[TicketSnapshot, ...]
    events: tuple[dict[str, Any], ...]


@dataclass
class _State:
    kind: str
    status: str
    priority: str
    service: str
    customer: str
    group: str | None
    assignee: str | None
    region: str


def _fields_for(policy: int, rng: random.Random) -> _State:
    """Ticket fields that policy n matches (the other policies of the bundle do not)."""
    shape = policy % 4
    state = _State(
        kind="incident",
        status="new",
        priority=rng.choice(("P1", "P2", "P2", "P3", "P3", "P4")),
        service="svc-shared",
        customer="cust-shared",
        group="service-desk",
        assignee=None,
        region=rng.choice(("apac", "emea", "amer")),
    )
    if shape == 0:
        state.customer = customer_of(policy)
    elif shape == 1:
        state.customer = rng.choice((customer_of(policy), f"{customer_of(policy)}-eu"))
        state.service = service_of(policy)
    elif shape == 2:
        state.service = service_of(policy)
        state.priority = rng.choice(("P1", "P2", "P3"))
    else:
        state.group = group_of(policy)
        state.kind = rng.choice(_KINDS)
        state.region = rng.choice(("apac", "emea"))
    return state


def _steps(rng: random.Random, count: int) -> list[str]:
    """The story of a ticket after `created`, `count - 1` steps long."""
    middle = [
        "agent_replied",
        "pause",
        "customer_replied",
        "priority",
        "pause",
        "customer_replied",
        "priority",
        "vendor",
        "resume",
        "hold",
        "resume",
        "update",
    ]
    ending = rng.choice(("resolve_close", "resolve_reopen", "resolve_reopen", "cancel", "move", "open"))
    tail = {
        "resolve_close": ["resolved", "closed"],
        "resolve_reopen": ["resolved", "reopened", "resolved"],
        "cancel": ["cancelled"],
        "move": ["move", "update"],
        "open": [],
    }[ending]
    story = [rng.choice(middle) for _ in range(max(0, count - 1 - len(tail)))]
    if story and rng.random() < 0.8:
        story[0] = "agent_replied"
    return (story + tail)[: count - 1]


def _apply(step: str, state: _State, rng: random.Random) -> str:
    """Move the ticket one step; returns the event's action."""
    if step == "agent_replied":
        state.status, state.assignee = "in_progress", state.assignee or rng.choice(("li.wei", "anna.k", "omar.s"))
        return "agent_replied"
    if step == "pause":
        state.status = "pending_customer"
        return "agent_replied"
    if step == "vendor":
        state.status = "pending_vendor"
        return "updated"
    if step == "hold":
        state.status = "on_hold"
        return "updated"
    if step in ("customer_replied", "resume"):
        state.status = "open" if step == "customer_replied" else "in_progress"
        return "customer_replied" if step == "customer_replied" else "updated"
    if step == "priority":
        position = _PRIORITIES.index(state.priority) if state.priority in _PRIORITIES else 1
        state.priority = _PRIORITIES[max(0, min(3, position + rng.choice((-1, 1))))]
        return "updated"
    if step == "move":  # reassigned to a customer no policy names: matching policies cancel
        state.customer, state.service, state.group = "cust-unmatched", "svc-unmatched", "other-desk"
        return "updated"
    if step in ("resolved", "closed", "cancelled", "reopened"):
        state.status = {"reopened": "open"}.get(step, step)
        return step
    state.assignee = rng.choice(("li.wei", "anna.k", "omar.s"))
    return "updated"


def make_ticket(
    ticket_id: str,
    *,
    policy: int,
    events: int,
    seed: int = 0,
    late: float = 0.25,
    start: datetime | None = None,
    tenant_id: str = "bench",
) -> Ticket:
    """A ticket of `events` events whose fields match policy n; `late` of the events arrive out of order."""
    if events < 1:
        raise ValueError("a ticket needs at least its created event")
    rng = random.Random(f"{seed}:{ticket_id}")
    state = _fields_for(policy, rng)
    created = start or WINDOW_START + timedelta(seconds=rng.randrange(WINDOW_DAYS * 86_400))
    at = created.replace(microsecond=0)
    in_time_order: list[tuple[datetime, str, _State]] = [(at, "created", _copy(state))]
    for step in _steps(rng, events):
        at += timedelta(seconds=rng.choice((rng.randrange(60, 3_600), rng.randrange(3_600, 30 * 3_600))))
        action = _apply(step, state, rng)
        in_time_order.append((at, action, _copy(state)))
    arrival_order = list(range(len(in_time_order)))
    for position in range(1, len(arrival_order)):
        if rng.random() < late:  # this event arrives before the one it follows in event time
            arrival_order[position - 1], arrival_order[position] = arrival_order[position], arrival_order[position - 1]
    snapshots: list[TicketSnapshot] = []
    cloud_events: list[dict[str, Any]] = []
    for arrival, index in enumerate(arrival_order):
        time, action, fields = in_time_order[index]
        event_id = f"{ticket_id}-e{index:02d}"
        data = _data(ticket_id, action, fields)
        snapshots.append(
            TicketSnapshot(
                event_id=event_id,
                time=time,
                arrival=arrival,
                ticket_id=ticket_id,
                action=action,
                kind=fields.kind,
                status=fields.status,
                priority=fields.priority,
                service=fields.service,
                customer=fields.customer,
                assignment_group=fields.group,
                assignee=fields.assignee,
                attributes=data["attributes"],
            )
        )
        cloud_events.append(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": SOURCE,
                "type": TICKET_EVENT_TYPE,
                "time": time.isoformat(),
                "tenantid": tenant_id,
                "subject": ticket_id,
                "datacontenttype": "application/json",
                "data": data,
            }
        )
    return Ticket(ticket_id=ticket_id, snapshots=tuple(snapshots), events=tuple(cloud_events))


def make_tickets(
    count: int,
    *,
    policies: int,
    seed: int = 0,
    events: tuple[int, int] = (6, 10),
    late: float = 0.25,
    tenant_id: str = "bench",
) -> list[Ticket]:
    """`count` tickets spread over the bundle's first `policies` policies, 6 to 10 events each."""
    rng = random.Random(seed)
    tickets = []
    for number in range(count):
        tickets.append(
            make_ticket(
                f"T-{number:07d}",
                policy=rng.randrange(policies),
                events=rng.randint(*events),
                seed=seed,
                late=late,
                tenant_id=tenant_id,
            )
        )
    return tickets


def with_tenant(ticket: Ticket, tenant_id: str) -> Ticket:
    """The same ticket with its CloudEvents addressed to another tenant."""
    events = tuple({**event, "tenantid": tenant_id} for event in ticket.events)
    return Ticket(ticket_id=ticket.ticket_id, snapshots=ticket.snapshots, events=events)


def last_event_time(ticket: Ticket) -> datetime:
    return max(snapshot.time for snapshot in ticket.snapshots)


def _copy(state: _State) -> _State:
    return _State(**vars(state))


def _data(ticket_id: str, action: str, state: _State) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "action": action,
        "kind": state.kind,
        "service": state.service,
        "customer": state.customer,
        "priority": state.priority,
        "status": state.status,
        "assignment_group": state.group,
        "assignee": state.assignee,
        "title": f"{state.service} trouble",
        "attributes": {"region": state.region, "channel": "portal"},
    }
