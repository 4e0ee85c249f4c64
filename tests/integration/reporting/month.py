"""A small realistic month for one tenant (Asia/Shanghai, October 2026), as the other services would report it.

Thirty incidents of the "gold incidents" SLA (cn-business calendar 09:00-12:00 and 13:00-18:00 on weekdays;
1-7 and 9 October are holidays), a desk OLA and a vendor UC, two September tickets for the trend, survey
answers, and an email outage of 90 minutes of which 30 fell in planned maintenance. Every elapsed value below
is working time computed by hand from that calendar; the expected report is in test_service_level_report.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slm_shared.events import CloudEvent
from tests.integration.reporting.events import (
    TARGETS,
    clock_event,
    feedback_event,
    local,
    slo_alert_event,
    slo_status_event,
    ticket_event,
)

UTC_PERIOD = ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")  # October 2026 in Asia/Shanghai


@dataclass(frozen=True)
class Outcome:
    """One clock cycle: stopped at `stop` (None: still running) with `elapsed` working seconds."""

    stop: str | None
    elapsed: int
    breached_at: str | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class Incident:
    ticket: str
    priority: str
    created: str
    response: Outcome
    resolution: Outcome
    service: str = "email"
    customer: str = "acme"
    version: int = 3
    snapshots: list[tuple[str, str, str]] = field(default_factory=list)  # extra (time, action, status)


INCIDENTS = [
    Incident(
        "INC-01",
        "P1",
        "10-08 09:00",
        Outcome("10-08 09:10", 600),
        Outcome("10-08 12:00", 10800),
        snapshots=[("10-20 10:00", "closed", "closed")],
    ),
    Incident("INC-02", "P1", "10-08 10:00", Outcome("10-08 10:25", 1500, "10-08 10:15"), Outcome("10-08 14:30", 12600)),
    Incident(
        "INC-03",
        "P1",
        "10-08 13:00",
        Outcome("10-08 13:05", 300),
        Outcome("10-08 18:00", 18000, "10-08 17:00"),
        service="vpn",
        customer="globex",
    ),
    Incident(
        "INC-04",
        "P2",
        "10-12 09:00",
        Outcome("10-12 09:30", 1800),
        Outcome("10-13 14:33:20", 20000),
        snapshots=[("10-12 10:00", "updated", "pending_customer"), ("10-13 09:00", "customer_replied", "in_progress")],
    ),
    Incident("INC-05", "P2", "10-12 13:00", Outcome("10-12 14:00", 3600), Outcome("10-13 12:00", 28800)),
    Incident(
        "INC-06",
        "P2",
        "10-14 09:00",
        Outcome("10-14 09:20", 1200),
        Outcome("10-15 11:00", 36000, "10-15 09:00"),
        customer="globex",
    ),
    Incident(
        "INC-07",
        "P2",
        "10-14 10:00",
        Outcome("10-14 11:06:40", 4000, "10-14 11:00"),
        Outcome("10-14 17:56:40", 25000),
        service="vpn",
    ),
    Incident("INC-08", "P2", "10-15 09:00", Outcome("10-15 09:15", 900), Outcome("10-15 15:06:40", 14000)),
    Incident("INC-09", "P3", "10-16 09:00", Outcome("10-16 11:00", 7200), Outcome("10-21 13:46:40", 100000)),
    Incident("INC-10", "P3", "10-16 10:00", Outcome("10-16 10:50", 3000), Outcome("10-23 11:40", 150000)),
    Incident(
        "INC-11",
        "P3",
        "10-08 09:00",
        Outcome("10-08 14:00", 14400),
        Outcome("10-23 13:20", 300000, "10-21 18:00"),
        service="vpn",
        customer="globex",
    ),
    Incident("INC-12", "P3", "09-30 17:00", Outcome("09-30 17:10", 600), Outcome("10-13 18:00", 90000)),
    Incident("INC-13", "P3", "10-26 09:00", Outcome("10-26 10:23:20", 5000), Outcome(None, 0)),
    Incident(
        "INC-14",
        "P3",
        "10-16 09:00",
        Outcome("10-16 09:33:20", 2000),
        Outcome(None, 259200, "10-28 18:00"),
        customer="globex",
    ),
    Incident("INC-15", "P4", "10-19 09:00", Outcome("10-19 15:33:20", 20000), Outcome("10-27 17:33:20", 200000)),
    Incident("INC-16", "P4", "10-08 09:00", Outcome("10-12 15:53:20", 50000), Outcome("10-28 17:06:40", 400000)),
    Incident(
        "INC-17",
        "P4",
        "10-12 09:00",
        Outcome("10-15 10:00", 90000, "10-14 18:00"),
        Outcome("10-30 14:40", 420000),
        service="vpn",
    ),
    Incident(
        "INC-18",
        "P4",
        "10-20 09:00",
        Outcome("10-20 09:16:40", 1000, cancelled=True),
        Outcome("10-20 09:16:40", 1000, cancelled=True),
    ),
    Incident("INC-19", "P2", "10-20 09:00", Outcome("10-20 09:40", 2400), Outcome("10-20 17:13:20", 26000)),
    Incident("INC-20", "P2", "10-21 09:00", Outcome("10-21 09:10", 600), Outcome("10-21 10:56:40", 7000)),
    Incident("INC-21", "P1", "10-21 13:00", Outcome("10-21 13:07", 420), Outcome("10-21 15:30", 9000)),
    Incident("INC-22", "P3", "10-22 09:00", Outcome("10-22 11:46:40", 10000), Outcome("10-30 17:33:20", 200000)),
    Incident(
        "INC-23", "P4", "10-08 13:00", Outcome("10-12 13:20", 30000), Outcome("10-23 16:20", 300000), customer="globex"
    ),
    Incident("INC-24", "P2", "10-22 09:00", Outcome("10-22 09:50", 3000), Outcome("10-23 09:20", 30000, "10-22 18:00")),
    Incident("INC-25", "P3", "10-26 09:00", Outcome("10-26 09:16:40", 1000), Outcome("10-30 10:20", 120000)),
    Incident("INC-26", "P1", "10-30 17:00", Outcome("10-30 17:08:20", 500), Outcome("11-02 11:53:20", 14000)),
    Incident("INC-27", "P2", "10-30 09:00", Outcome("10-30 09:16:40", 1000), Outcome("10-31 23:59:59", 28000)),
    Incident("INC-28", "P2", "10-31 23:50", Outcome("11-01 00:05", 0), Outcome(None, 0)),
    Incident("INC-29", "P3", "10-20 09:00", Outcome("10-20 10:06:40", 4000), Outcome("10-28 11:00", 180000), version=4),
    Incident(
        "INC-30", "P4", "10-12 13:00", Outcome("10-13 16:06:40", 40000), Outcome("10-28 14:13:20", 350000), version=4
    ),
    # September, for the trend: a breached and a met response, two met resolutions.
    Incident(
        "INC-S1", "P2", "09-15 09:00", Outcome("09-15 10:06:40", 4000, "09-15 10:00"), Outcome("09-15 15:33:20", 20000)
    ),
    Incident("INC-S2", "P2", "09-16 09:00", Outcome("09-16 09:20", 1200), Outcome("09-16 11:46:40", 10000)),
]

# The desk's OLA (assignment within 1 h for P1, 30 min for P2, 2 h for P3) and the vendor's UC, both 24x7.
UNDERPINNING = [
    # ticket, agreement, policy, version, metric, priority, target, stop, elapsed, breached_at, service, customer
    ("INC-02", "OLA", "desk-ola", 1, "assignment", "P1", 3600, "10-08 10:20", 1200, None, "email", "acme"),
    ("INC-03", "OLA", "desk-ola", 1, "assignment", "P1", 3600, "10-08 14:23:20", 5000, "10-08 14:00", "vpn", "globex"),
    ("INC-06", "OLA", "desk-ola", 1, "assignment", "P2", 1800, "10-14 09:45", 2700, "10-14 09:30", "email", "globex"),
    ("INC-11", "OLA", "desk-ola", 1, "assignment", "P3", 7200, "10-08 09:50", 3000, None, "vpn", "globex"),
    ("INC-03", "UC", "vendor-uc", 2, "resolution", "P1", 21600, "10-08 18:00", 18000, None, "vpn", "globex"),
    (
        "INC-11",
        "UC",
        "vendor-uc",
        2,
        "resolution",
        "P3",
        172800,
        "10-10 16:33:20",
        200000,
        "10-10 09:00",
        "vpn",
        "globex",
    ),
]


def _cycle(tenant: str, incident: Incident, metric: str, outcome: Outcome) -> list[CloudEvent]:
    created = local(incident.created)
    common: dict[str, Any] = {
        "metric": metric,
        "priority": incident.priority,
        "started_at": created,
        "service": incident.service,
        "customer": incident.customer,
        "version": incident.version,
    }
    target = TARGETS[(metric, incident.priority)]
    events = [
        clock_event(tenant, incident.ticket, "started", created, state="running", elapsed=0, due_at=None, **common)
    ]
    breached_at = local(outcome.breached_at) if outcome.breached_at else None
    if breached_at is not None:
        events.append(
            clock_event(
                tenant,
                incident.ticket,
                "breached",
                breached_at,
                state="running",
                elapsed=target,
                breached_at=breached_at,
                **common,
            )
        )
    if outcome.stop is not None:
        stop = local(outcome.stop)
        if outcome.cancelled:
            transition, state = "cancelled", "cancelled"
        elif breached_at is not None:
            transition, state = "stopped_breached", "breached"
        else:
            transition, state = "met", "met"
        events.append(
            clock_event(
                tenant,
                incident.ticket,
                transition,
                stop,
                state=state,
                elapsed=outcome.elapsed,
                stopped_at=stop,
                breached_at=breached_at,
                **common,
            )
        )
    return events


def _snapshots(tenant: str, incident: Incident) -> list[tuple[datetime, str, str]]:
    found = [(local(incident.created), "created", "new")]
    if incident.response.cancelled:
        found.append((local(incident.response.stop or incident.created), "cancelled", "cancelled"))
        return found
    if incident.response.stop:
        found.append((local(incident.response.stop), "agent_replied", "in_progress"))
    found.extend((local(t), a, s) for t, a, s in incident.snapshots)
    if incident.resolution.stop:
        found.append((local(incident.resolution.stop), "resolved", "resolved"))
    return sorted(found)


def month_events(tenant: str) -> list[CloudEvent]:
    events: list[CloudEvent] = []
    for incident in INCIDENTS:
        snapshots = _snapshots(tenant, incident)
        if incident.ticket == "INC-08":
            # Resolved, reopened (the resolution clock resumes) and resolved again...
            snapshots = sorted(
                [
                    *snapshots,
                    (local("10-15 11:46:40"), "resolved", "resolved"),
                    (local("10-15 14:00"), "reopened", "in_progress"),
                ]
            )
        ticket_events = [
            ticket_event(
                tenant,
                incident.ticket,
                at,
                action,
                status,
                priority=incident.priority,
                service=incident.service,
                customer=incident.customer,
            )
            for at, action, status in snapshots
        ]
        if incident.ticket == "INC-08":
            ticket_events.reverse()  # ...and its snapshots delivered newest first: 4 out-of-order events.
        events.extend(ticket_events)
        response = _cycle(tenant, incident, "response", incident.response)
        if incident.ticket == "INC-25":
            response.reverse()  # the `met` arrives before `started`: one out-of-order clock event
        events.extend(response)
        resolution = _cycle(tenant, incident, "resolution", incident.resolution)
        if incident.ticket == "INC-08":
            common: dict[str, Any] = {"metric": "resolution", "priority": "P2", "started_at": local("10-15 09:00")}
            resolution[1:1] = [
                clock_event(
                    tenant,
                    "INC-08",
                    "met",
                    local("10-15 11:46:40"),
                    state="met",
                    elapsed=10000,
                    stopped_at=local("10-15 11:46:40"),
                    **common,
                ),
                clock_event(
                    tenant, "INC-08", "resumed", local("10-15 14:00"), state="running", elapsed=10000, **common
                ),
            ]
        if incident.ticket == "INC-04":
            # Waiting on the customer from 10:00 on the 12th to 09:00 on the 13th: the clock pauses at 3,600 s.
            common = {"metric": "resolution", "priority": "P2", "started_at": local("10-12 09:00")}
            resolution[1:1] = [
                clock_event(tenant, "INC-04", "paused", local("10-12 10:00"), state="paused", elapsed=3600, **common),
                clock_event(
                    tenant,
                    "INC-04",
                    "resumed",
                    local("10-13 09:00"),
                    state="running",
                    elapsed=3600,
                    due_at=local("10-13 16:00"),
                    **common,
                ),
            ]
        if incident.ticket == "INC-24":
            # First stopped met at 17:30; a late snapshot moved the stop to the next morning: recalculated.
            common = {"metric": "resolution", "priority": "P2", "started_at": local("10-22 09:00")}
            final = resolution[-1]
            resolution = [
                resolution[0],
                clock_event(
                    tenant,
                    "INC-24",
                    "met",
                    local("10-22 17:30"),
                    state="met",
                    elapsed=27000,
                    stopped_at=local("10-22 17:30"),
                    **common,
                ),
                clock_event(
                    tenant,
                    "INC-24",
                    "recalculated",
                    local("10-23 10:00"),
                    state="breached",
                    elapsed=30000,
                    stopped_at=local("10-23 09:20"),
                    breached_at=local("10-22 18:00"),
                    **common,
                ),
            ]
            del final
        events.extend(resolution)
    for (
        ticket,
        agreement,
        policy,
        version,
        metric,
        priority,
        target,
        stop,
        elapsed,
        breached,
        service,
        customer,
    ) in UNDERPINNING:
        started = next(local(i.created) for i in INCIDENTS if i.ticket == ticket)
        breached_at = local(breached) if breached else None
        events.append(
            clock_event(
                tenant,
                ticket,
                "stopped_breached" if breached_at else "met",
                local(stop),
                state="breached" if breached_at else "met",
                elapsed=elapsed,
                priority=priority,
                started_at=started,
                target=target,
                stopped_at=local(stop),
                breached_at=breached_at,
                policy=policy,
                version=version,
                agreement=agreement,
                calendar="24x7",
                service=service,
                customer=customer,
                metric=metric,
            )
        )
    # A redelivery: the same event twice changes nothing.
    events.append(
        next(e for e in events if e.type == "sla.clock.v1" and e.subject == "INC-01" and e.data["transition"] == "met")
    )
    events.extend(feedback(tenant))
    events.extend(slos(tenant))
    return events


def feedback(tenant: str) -> list[CloudEvent]:
    return [
        feedback_event(tenant, "INC-12", local("09-30 17:30"), 5),
        feedback_event(tenant, "INC-01", local("10-08 13:00"), 5),
        feedback_event(tenant, "INC-02", local("10-08 15:00"), 2, comment="Two hours for a P1 reply"),
        feedback_event(tenant, "INC-04", local("10-13 15:00"), 4),
        feedback_event(tenant, "INC-05", local("10-13 13:00"), 3),
        feedback_event(tenant, "INC-08", local("10-16 09:00"), 1),
        feedback_event(tenant, "INC-08", local("10-25 09:00"), 4),  # the latest answer of a ticket counts
        feedback_event(tenant, "INC-09", local("10-21 14:00"), 5, comment="Fixed before lunch, thank you"),
        feedback_event(tenant, "INC-15", local("10-28 09:00"), 4),
        feedback_event(tenant, "INC-17", local("10-30 15:00"), 2, service="vpn", comment="VPN down all week"),
        feedback_event(tenant, "INC-21", local("10-21 16:00"), 9, scale=10),
    ]


MONTH_WINDOW = {"window_start": local("10-01 00:00"), "window_end": local("11-01 00:00")}


def slos(tenant: str) -> list[CloudEvent]:
    """October has 44,640 minutes; 30 of them planned maintenance, so 44,610 count (2,676,600 s). The outage
    of 90 minutes minus the 30 in maintenance leaves 3,600 bad seconds: good 2,673,000, SLI 99.8655 %,
    budget 0.1 % of 2,676,600 s = 2,676.6 s, remaining 2,676.6 - 3,600 = -923.4 s."""
    return [
        slo_status_event(
            tenant,
            local("10-10 12:00"),
            slo_id="email-availability",
            service="email",
            sli_value=100.0,
            objective=99.9,
            good=777600,
            total=777600,
            error_budget_total=2676.6,
            error_budget_remaining=2676.6,
            burn_rates={"1h": 0.0},
            **MONTH_WINDOW,
        ),
        slo_status_event(
            tenant,
            local("10-31 23:59:30"),
            slo_id="email-availability",
            service="email",
            sli_value=99.8655,
            objective=99.9,
            good=2673000,
            total=2676600,
            error_budget_total=2676.6,
            error_budget_remaining=-923.4,
            burn_rates={"1h": 0.0, "6h": 0.0},
            **MONTH_WINDOW,
        ),
        slo_status_event(
            tenant,
            local("11-01 00:30"),
            slo_id="email-availability",
            service="email",
            sli_value=100.0,
            objective=99.9,
            good=1800,
            total=1800,
            error_budget_total=2592.0,
            error_budget_remaining=2592.0,
            window_start=local("11-01 00:00"),
            window_end=local("12-01 00:00"),
        ),
        slo_status_event(
            tenant,
            local("10-31 12:00"),
            slo_id="vpn-latency",
            service="vpn",
            sli_value=99.5,
            objective=99.0,
            good=99500,
            total=100000,
            error_budget_total=1000,
            error_budget_remaining=500,
            window_start=local("10-03 12:00"),
            window_end=local("10-31 12:00"),
        ),
        slo_alert_event(
            tenant,
            local("10-14 10:50"),
            "email",
            slo_id="email-availability",
            alert="page",
            state="firing",
            burn_rate=14.4,
            windows=["1h", "5m"],
        ),
        slo_alert_event(
            tenant, local("10-14 11:20"), "email", slo_id="email-availability", alert="budget_exhausted", state="firing"
        ),
        slo_alert_event(
            tenant,
            local("10-14 11:40"),
            "email",
            slo_id="email-availability",
            alert="page",
            state="resolved",
            burn_rate=0.0,
            windows=["1h", "5m"],
        ),
    ]
