"""`make demo`: the three services, a small realistic working day of tickets, and the resulting SLA report.

The day is the last weekday before today in Asia/Shanghai: twelve tickets across P1-P4, with agent
replies, a wait on the customer, a reopen and a cancellation, under the "gold incidents" policy of DESIGN.md.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from scripts.localstack import discover
from scripts.processes import LocalPlatform

SHANGHAI = ZoneInfo("Asia/Shanghai")
BUNDLE = """
calendars:
  - name: cn-business
    timezone: Asia/Shanghai
    hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}
    holidays: {country: CN}
policies:
  - id: gold-incidents
    name: Gold incident SLA
    agreement: SLA
    match: {kind: incident, customer: [acme, globex]}
    metrics:
      - metric: response
        calendar: cn-business
        targets: {P1: 15m, P2: 1h, P3: 4h, P4: 1d}
        stop: {actions: [agent_replied], statuses: [resolved, closed]}
        cancel: {statuses: [cancelled]}
        warn_at: [50, 75, 90]
      - metric: resolution
        calendar: cn-business
        targets: {P1: 4h, P2: 8h, P3: 3d, P4: 5d}
        pause: {statuses: [pending_customer, pending_vendor]}
        stop: {statuses: [resolved, closed]}
        cancel: {statuses: [cancelled]}
        on_reopen: resume
        warn_at: [75, 90]
"""

# (ticket, priority, customer, [(local time, action, status)])
DAY: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    ("INC-101", "P1", "acme", [("09:05", "created", "new"), ("09:12", "agent_replied", "in_progress"),
                               ("11:40", "resolved", "resolved")]),
    ("INC-102", "P1", "globex", [("10:00", "created", "new"), ("10:31", "agent_replied", "in_progress"),
                                 ("15:30", "resolved", "resolved")]),
    ("INC-103", "P2", "acme", [("09:30", "created", "new"), ("10:05", "agent_replied", "in_progress"),
                               ("11:00", "updated", "pending_customer"), ("14:00", "customer_replied", "in_progress"),
                               ("16:00", "resolved", "resolved")]),
    ("INC-104", "P2", "acme", [("11:50", "created", "new"), ("13:20", "agent_replied", "in_progress")]),
    ("INC-105", "P3", "globex", [("09:45", "created", "new"), ("12:30", "agent_replied", "in_progress"),
                                 ("17:10", "resolved", "resolved")]),
    ("INC-106", "P3", "acme", [("13:05", "created", "new"), ("13:40", "agent_replied", "in_progress"),
                               ("14:10", "resolved", "resolved"), ("15:00", "reopened", "in_progress"),
                               ("16:30", "resolved", "resolved")]),
    ("INC-107", "P4", "acme", [("14:00", "created", "new"), ("16:45", "agent_replied", "pending_customer")]),
    ("INC-108", "P2", "globex", [("15:10", "created", "new"), ("15:25", "agent_replied", "in_progress"),
                                 ("17:55", "updated", "pending_vendor")]),
    ("INC-109", "P4", "globex", [("16:20", "created", "new"), ("16:40", "cancelled", "cancelled")]),
    ("INC-110", "P1", "acme", [("17:30", "created", "new"), ("17:41", "agent_replied", "in_progress")]),
    ("INC-111", "P3", "acme", [("10:15", "created", "new"), ("10:20", "agent_replied", "in_progress"),
                               ("10:50", "updated", "pending_customer")]),
    ("INC-112", "P2", "acme", [("12:10", "created", "new"), ("13:30", "agent_replied", "in_progress"),
                               ("17:00", "resolved", "resolved")]),
]


def last_weekday(today: date) -> date:
    day = today - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def events_for(tenant: str, day: date) -> list[dict[str, Any]]:
    events = []
    for ticket, priority, customer, steps in DAY:
        for clock_time, action, status in steps:
            hour, minute = (int(part) for part in clock_time.split(":"))
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
            events.append({
                "specversion": "1.0", "id": str(uuid.uuid4()), "source": "jira://demo.atlassian.net",
                "type": "itsm.ticket.v1", "time": at.isoformat(), "tenantid": tenant, "subject": ticket,
                "data": {"ticket_id": ticket, "action": action, "kind": "incident", "service": "email",
                         "customer": customer, "priority": priority, "status": status,
                         "assignment_group": "service-desk", "title": f"Demo ticket {ticket}"},
            })
    return sorted(events, key=lambda e: e["time"])


def duration(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def print_report(report: dict[str, Any]) -> None:
    clocks = sorted(report["clocks"], key=lambda c: (c["ticket_id"], c["metric"], c["cycle"]))
    print(f"\nService Level Report for tenant {report['header']['tenant']}")
    print(f"{'ticket':9} {'prio':4} {'metric':10} {'cycle':>5} {'state':9} {'elapsed':>8} {'target':>8} breached")
    for c in clocks:
        over = "yes" if c["breached"] else "no"
        print(f"{c['ticket_id']:9} {c['priority']:4} {c['metric']:10} {c['cycle']:>5} {c['state']:9} "
              f"{duration(c['elapsed_seconds']):>8} {duration(c['target_seconds']):>8} {over}")
    print("\nAttainment of the cycles that stopped in the period (met / met + breached, against target):")
    for row in report["attainment"]:
        ratio = row["attainment"]
        print(f"  {row['agreement']} {row['metric']:10} {row['priority']}: {ratio['numerator']}/{ratio['denominator']}"
              f" = {ratio['percent']}%  target {row['target_percent']}%  {row['status']}")
    print("(a running or paused clock shows its elapsed time as of its last transition;"
          " GET /v1/tickets/{id}/clocks on the sla-engine shows it now, explained)")


def main() -> int:
    stack = discover()
    if stack is None:
        print("no stack found: run `make up` first", file=sys.stderr)
        return 1
    platform = LocalPlatform.start(stack, prefix="demo-")
    try:
        intake, engine, reporting = platform.processes
        tenant = f"demo-{uuid.uuid4().hex[:6]}"
        # Least privilege: each party gets a key with only the scope it needs (docs/security.md).
        config_key = platform.new_tenant(tenant, scopes="config")   # the SLA manager applying the bundle
        ingest_key = platform.new_tenant(tenant, scopes="ingest")   # the upstream service desk posting events
        key = platform.new_tenant(tenant, scopes="read")            # report consumers and the dashboard
        headers = {"Authorization": f"Bearer {key}"}
        answer = httpx.post(f"{engine.url}/v1/config:apply", content=BUNDLE, timeout=30,
                            headers={"Authorization": f"Bearer {config_key}", "Content-Type": "application/yaml"})
        answer.raise_for_status()
        day = last_weekday(datetime.now(SHANGHAI).date())
        events = events_for(tenant, day)
        answer = httpx.post(f"{intake.url}/v1/events", json=events, timeout=30,
                            headers={"Authorization": f"Bearer {ingest_key}",
                                     "Content-Type": "application/cloudevents-batch+json"})
        answer.raise_for_status()
        print(f"sent {answer.json()['accepted']} ticket events for {day} (Asia/Shanghai)")
        # Every ticket here is an acme/globex incident: two clocks each, one more for the reopened cycle.
        period = {"from": (datetime.now(UTC) - timedelta(days=10)).isoformat(), "to": datetime.now(UTC).isoformat()}
        deadline = time.monotonic() + 60
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = httpx.get(f"{reporting.url}/v1/reports/slr", params={**period, "format": "json"},
                               headers=headers, timeout=30).json()
            if len({(c["ticket_id"], c["metric"]) for c in report["clocks"]}) >= 2 * len(DAY):
                break
            time.sleep(0.5)
        print_report(report)
        refused = httpx.post(f"{intake.url}/v1/events", json=events[:1], timeout=30,
                             headers={**headers, "Content-Type": "application/cloudevents+json"})
        print(f"\nthe read-only key posting an event: {refused.status_code} {refused.json()['detail']}")
        print(f"\ndemo tenant: {tenant}\nread-only key (reports, dashboard): {key}"
              f"\ningest-only key (upstream systems): {ingest_key}\nconfig key (SLA bundles):           {config_key}")
        print(f"intake {intake.url}  sla-engine {engine.url}  reporting {reporting.url}")
        print(f"the report as HTML: {reporting.url}/v1/reports/slr?format=html (Authorization: Bearer <key>)")
        print(f"the live dashboard: {reporting.url}/v1/dashboard (sign in with the key)")
        if os.environ.get("KEEP"):
            print("services keep running; Ctrl-C stops them")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        platform.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
