"""The demo's content: the bundle, a working day of tickets, the survey answers, the availability signals and
the reporting configuration, as the upstream systems and the SLA manager would send them (`make demo`).

Everything here is data and pure builders (time passed in); scripts/demo.py sends it and prints what came out.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
SLO_ID = "email-availability"

# The SLA of DESIGN.md's example, an OLA of the service desk under it (the review's OLA/UC section shows which
# internal breach sat under a customer breach), and an availability SLO of the email service whose daily
# maintenance window ({maintenance}, filled in by `bundle`) covers the planned restart of the demo's signals.
BUNDLE = """
calendars:
  - name: cn-business
    timezone: Asia/Shanghai
    hours: {{mon-fri: ["09:00-12:00", "13:00-18:00"]}}
    holidays: {{country: CN}}
policies:
  - id: gold-incidents
    name: Gold incident SLA
    agreement: SLA
    match: {{kind: incident, customer: [acme, globex]}}
    metrics:
      - metric: response
        calendar: cn-business
        targets: {{P1: 15m, P2: 1h, P3: 4h, P4: 1d}}
        stop: {{actions: [agent_replied], statuses: [resolved, closed]}}
        cancel: {{statuses: [cancelled]}}
        warn_at: [50, 75, 90]
      - metric: resolution
        calendar: cn-business
        targets: {{P1: 4h, P2: 8h, P3: 3d, P4: 5d}}
        pause: {{statuses: [pending_customer, pending_vendor]}}
        stop: {{statuses: [resolved, closed]}}
        cancel: {{statuses: [cancelled]}}
        on_reopen: resume
        warn_at: [75, 90]
  - id: desk-handover
    name: Service desk handover OLA
    agreement: OLA
    match: {{kind: incident, customer: [acme, globex]}}
    metrics:
      - metric: handover
        calendar: cn-business
        targets: {{P1: 10m, P2: 30m, P3: 2h, P4: 4h}}
        stop: {{actions: [agent_replied], statuses: [resolved, closed]}}
        cancel: {{statuses: [cancelled]}}
slos:
  - id: {slo_id}
    service: email
    sli:
      type: availability
      maintenance: [{{rrule: "FREQ=DAILY", dtstart: "{maintenance_start}", duration: 30m}}]
    objective: 99.5
    window: {{rolling: 1d}}
"""

# (ticket, priority, customer, [(local time, action, status)]) of the email service
DAY: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    (
        "INC-101",
        "P1",
        "acme",
        [("09:05", "created", "new"), ("09:12", "agent_replied", "in_progress"), ("11:40", "resolved", "resolved")],
    ),
    (
        "INC-102",
        "P1",
        "globex",
        [("10:00", "created", "new"), ("10:31", "agent_replied", "in_progress"), ("15:30", "resolved", "resolved")],
    ),
    (
        "INC-103",
        "P2",
        "acme",
        [
            ("09:30", "created", "new"),
            ("10:05", "agent_replied", "in_progress"),
            ("11:00", "updated", "pending_customer"),
            ("14:00", "customer_replied", "in_progress"),
            ("16:00", "resolved", "resolved"),
        ],
    ),
    ("INC-104", "P2", "acme", [("11:50", "created", "new"), ("13:20", "agent_replied", "in_progress")]),
    (
        "INC-105",
        "P3",
        "globex",
        [("09:45", "created", "new"), ("12:30", "agent_replied", "in_progress"), ("17:10", "resolved", "resolved")],
    ),
    (
        "INC-106",
        "P3",
        "acme",
        [
            ("13:05", "created", "new"),
            ("13:40", "agent_replied", "in_progress"),
            ("14:10", "resolved", "resolved"),
            ("15:00", "reopened", "in_progress"),
            ("16:30", "resolved", "resolved"),
        ],
    ),
    ("INC-107", "P4", "acme", [("14:00", "created", "new"), ("16:45", "agent_replied", "pending_customer")]),
    (
        "INC-108",
        "P2",
        "globex",
        [
            ("15:10", "created", "new"),
            ("15:25", "agent_replied", "in_progress"),
            ("17:55", "updated", "pending_vendor"),
        ],
    ),
    ("INC-109", "P4", "globex", [("16:20", "created", "new"), ("16:40", "cancelled", "cancelled")]),
    ("INC-110", "P1", "acme", [("17:30", "created", "new"), ("17:41", "agent_replied", "in_progress")]),
    (
        "INC-111",
        "P3",
        "acme",
        [
            ("10:15", "created", "new"),
            ("10:20", "agent_replied", "in_progress"),
            ("10:50", "updated", "pending_customer"),
        ],
    ),
    (
        "INC-112",
        "P2",
        "acme",
        [("12:10", "created", "new"), ("13:30", "agent_replied", "in_progress"), ("17:00", "resolved", "resolved")],
    ),
]
# Two VPN tickets of globex, both well within every target, whose customers were unhappy all the same: the
# review's experience-versus-SLA view flags the vpn service (a green SLA with unsatisfied customers).
VPN_DAY: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    (
        "INC-113",
        "P3",
        "globex",
        [("10:30", "created", "new"), ("10:40", "agent_replied", "in_progress"), ("11:30", "resolved", "resolved")],
    ),
    (
        "INC-114",
        "P3",
        "globex",
        [("14:20", "created", "new"), ("14:30", "agent_replied", "in_progress"), ("15:10", "resolved", "resolved")],
    ),
]
SERVICES = {"email": DAY, "vpn": VPN_DAY}


def tickets() -> list[tuple[str, str, str, str, list[tuple[str, str, str]]]]:
    """Every ticket of the day with its service: (service, ticket, priority, customer, steps)."""
    return [(service, *ticket) for service, day in SERVICES.items() for ticket in day]


# Survey answers of the resolved tickets, sent that evening: (ticket, service, local time, score of 5, comment).
# INC-106 was resolved, reopened and resolved again: its 1 of 5 is under the complaint ratio (0.6), as is
# INC-113's 2 of 5; the demo records the handling of the first and leaves the second open.
ANSWERS: list[tuple[str, str, str, int, str]] = [
    ("INC-101", "email", "18:10", 5, "Fixed within the morning, thank you"),
    ("INC-102", "email", "18:15", 4, "Good, though the first reply took a while"),
    ("INC-103", "email", "18:20", 5, "Very helpful agent"),
    ("INC-105", "email", "18:30", 3, "Took most of the day"),
    ("INC-106", "email", "18:40", 1, "Closed before it was fixed, I had to reopen it"),
    ("INC-113", "vpn", "18:50", 2, "Closed in an hour, but nobody checked the VPN actually worked"),
    ("INC-114", "vpn", "18:55", 3, "Fixed, though I had to explain it three times"),
]
COMPLAINT_TICKET = "INC-106"


def last_weekday(today: date) -> date:
    day = today - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _at(day: date, clock_time: str) -> datetime:
    hour, minute = (int(part) for part in clock_time.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def ticket_events(tenant: str, day: date) -> list[dict[str, Any]]:
    events = []
    for service, ticket, priority, customer, steps in tickets():
        for clock_time, action, status in steps:
            events.append(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "jira://demo.atlassian.net",
                    "type": "itsm.ticket.v1",
                    "time": _at(day, clock_time).isoformat(),
                    "tenantid": tenant,
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
                        "title": f"Demo ticket {ticket}",
                    },
                }
            )
    return sorted(events, key=lambda e: e["time"])


def feedback_events(tenant: str, day: date) -> list[dict[str, Any]]:
    """`itsm.feedback.v1` answers (DESIGN.md 2.3); reporting links them to the tickets' customers."""
    return [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "survey://demo",
            "type": "itsm.feedback.v1",
            "time": _at(day, clock_time).isoformat(),
            "tenantid": tenant,
            "subject": ticket,
            "data": {"ticket_id": ticket, "service": service, "score": score, "scale": 5, "comment": comment},
        }
        for ticket, service, clock_time, score, comment in ANSWERS
    ]


def maintenance_start(now: datetime) -> datetime:
    """The maintenance window's start: two hours before the demo runs, on a whole minute (UTC, the SLO's zone)."""
    return now.replace(second=0, microsecond=0) - timedelta(hours=2)


def bundle(now: datetime) -> str:
    return BUNDLE.format(slo_id=SLO_ID, maintenance_start=maintenance_start(now).strftime("%Y-%m-%dT%H:%M"))


def availability_events(tenant: str, now: datetime) -> list[dict[str, Any]]:
    """The smtp component over the last four hours: a planned restart inside the maintenance window (excluded
    from the SLI) and an unplanned 5-minute outage after it (it spends most of the 99.5 % day's budget).

    They are relative to now, not to the ticket day: the SLO is a rolling day evaluated at now."""
    start = maintenance_start(now)
    changes = [
        (start - timedelta(hours=2), "up"),
        (start + timedelta(minutes=5), "down"),
        (start + timedelta(minutes=20), "up"),
        (start + timedelta(minutes=70), "down"),
        (start + timedelta(minutes=75), "up"),
    ]
    return [
        {
            "specversion": "1.0",
            "id": f"av-{uuid.uuid4().hex}",
            "source": "probe://demo",
            "type": "itsm.availability.v1",
            "time": at.isoformat(),
            "tenantid": tenant,
            "subject": "email",
            "data": {"service": "email", "component": "smtp", "state": state},
        }
        for at, state in changes
    ]


# The SLA manager's quality targets (docs/service-review.md): one per KPI, so every row of the report's and
# the review's quality section has data; acme's workload limit is below its eight tickets of the day.
REPORTING_CONFIG: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "period": "monthly",
    "quality_targets": [
        {"id": "email-satisfied", "kpi": "csat_satisfied", "threshold": 80, "service": "email", "min_sample": 3},
        {"id": "csat-mean", "kpi": "csat_mean", "threshold": 70},
        {"id": "reopens", "kpi": "reopen_rate", "threshold": 5},
        {"id": "first-contact", "kpi": "first_contact_resolution", "threshold": 80, "customer": "acme"},
        {"id": "backlog-age", "kpi": "backlog_age_p90", "threshold": 3 * 86400},
        {"id": "desk-ola-breaches", "kpi": "breach_rate", "threshold": 25, "agreement": "OLA"},
        {
            "id": "globex-resolution",
            "kpi": "sla_attainment",
            "threshold": 90,
            "customer": "globex",
            "metric": "resolution",
        },
        {"id": SLO_ID, "kpi": "slo_attainment", "threshold": 99.5, "slo_id": SLO_ID},
    ],
    "workload_limits": [{"customer": "acme", "tickets_per_period": 6}],
    "complaint_below_ratio": 0.6,
    "csat_min_answers": 3,
}


def improvement(day: date) -> dict[str, Any]:
    """The register entry the complaint leads to; its baseline is measured on the demo day, not typed in."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return {
        "title": "Confirm the fix with the customer before resolving",
        "trigger": {"kind": "complaint", "ref": COMPLAINT_TICKET},
        "kpi": {"kpi": "reopen_rate", "service": "email"},
        "target_value": 5,
        "owner": "li.wei",
        "due": (day + timedelta(days=30)).isoformat(),
        "baseline_period": {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()},
    }
