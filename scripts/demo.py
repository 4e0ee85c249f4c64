"""`make demo`: the three services, a working day of the whole product, and where to look at it.

The day is the last weekday before today in Asia/Shanghai (scripts/demo_day.py): fourteen tickets across P1-P4
under an SLA with an OLA beneath it, survey answers with a complaint, availability signals with a planned
maintenance window and an outage under an SLO, quality targets and a workload limit, an improvement entry.
One notification rule (SLO alerts and SLA breaches to a signed webhook) is applied before the day goes in; its
channel is a receiver the demo itself serves on loopback (scripts/demo_receiver.py), which writes every
notification it takes to a file whose path is printed with what reporting's delivery log says went out.
It prints the SLA report and a summary of the month's service review pack, then the URLs and keys, and keeps
the services running until Ctrl-C (`DEMO_EXIT=1`: stop after printing, as tests/e2e/test_demo.py runs it).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from scripts import demo_day
from scripts.demo_receiver import DemoReceiver, new_secret
from scripts.localstack import REPO, discover
from scripts.processes import LocalPlatform, ServiceProcess

BATCH = "application/cloudevents-batch+json"
WAIT_SECONDS = 120
NOTIFICATIONS_DIR = REPO / ".stack" / "demo"
NOTIFICATION_RULE = "demo-alerts"


def notification_policy(receiver: DemoReceiver) -> dict[str, Any]:
    """One rule: the SLO's alerts and every SLA breach, at once, to the demo's receiver (Standard Webhooks)."""
    return {
        "language": "en",
        "channels": [{"name": "demo-receiver", "type": "webhook", "url": receiver.url, "secret": receiver.secret}],
        "rules": [
            {
                "id": NOTIFICATION_RULE,
                "channel": "demo-receiver",
                "recipients": ["sla-manager@example.com"],
                "triggers": [
                    "breached",
                    {"event": "slo_alert", "alert": "page"},
                    {"event": "slo_alert", "alert": "ticket"},
                ],
            }
        ],
    }


def duration(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def ratio(found: dict[str, Any]) -> str:
    percent = "n/a" if found["percent"] is None else f"{found['percent']}%"
    return f"{found['numerator']}/{found['denominator']} = {percent}"


def print_report(report: dict[str, Any]) -> None:
    clocks = sorted(report["clocks"], key=lambda c: (c["ticket_id"], c["agreement"], c["metric"], c["cycle"]))
    print(f"\nService Level Report for tenant {report['header']['tenant']}")
    print(
        f"{'ticket':9} {'prio':4} {'agr':3} {'metric':10} {'cycle':>5} {'state':9} {'elapsed':>8} {'target':>8} "
        "breached"
    )
    for c in clocks:
        over = "yes" if c["breached"] else "no"
        print(
            f"{c['ticket_id']:9} {c['priority']:4} {c['agreement']:3} {c['metric']:10} {c['cycle']:>5} "
            f"{c['state']:9} {duration(c['elapsed_seconds']):>8} {duration(c['target_seconds']):>8} {over}"
        )
    print("\nAttainment of the cycles that stopped in the period (met / met + breached, against target):")
    for row in report["attainment"]:
        print(
            f"  {row['agreement']} {row['metric']:10} {row['priority']}: {ratio(row['attainment'])}"
            f"  target {row['target_percent']}%  {row['status']}"
        )
    print("OLA/UC under the SLA:")
    for row in report["ola_uc"]:
        print(
            f"  {row['agreement']} {row['policy_id']} {row['metric']}: {ratio(row['attainment'])}  {row['status']};"
            f" SLA-breached tickets also breached here {ratio(row['sla_breaches_also_breached_here'])}"
        )
    print("SLOs (availability, planned maintenance excluded):")
    for slo in report["slos"]:
        alerts = ", ".join(f"{a['alert']} fired {a['fired']}" for a in slo["alerts"]) or "no alerts"
        print(
            f"  SLO {slo['slo_id']}: SLI {slo['sli_value']:.2f}% objective {slo['objective']}%  error budget "
            f"{slo['error_budget_remaining']:.0f}/{slo['error_budget_total']:.0f} s left  {slo['status']}  {alerts}"
        )
    csat = report["csat"]
    print(
        f"CSAT: satisfied {ratio(csat['score'])}, mean score {csat['mean_score_percent']}%,"
        f" response rate {ratio(csat['response_rate'])}"
    )
    print("Quality targets:")
    for target in report["quality"]:
        print(
            f"  target {target['target_id']}: {target['standard']}: value {target['value']}{target['unit']}"
            f"  {target['status']}"
        )
    print(
        "(running clocks are shown live at the report's instant, in their calendar's working time; one whose"
        " calendar reporting has not received yet is shown as of its last transition:"
        " GET /v1/tickets/{id}/clocks on the sla-engine shows them now, explained)"
    )


def print_review(review: dict[str, Any]) -> None:
    banner = review["banner"]
    print(
        f"\nService review pack {banner['period']['label']} (config version {banner['config_version']}, "
        f"{len(banner['policies'])} policies, calendars: {', '.join(c['name'] for c in banner['calendars'])})"
    )
    for row in review["sla"]:
        trend = " -> ".join(f"{p['label']} {ratio(p['attainment'])}" for p in row["trend"])
        print(f"  review sla {row['service']}: {row['status']}  ({trend})")
    for row in review["workload"]:
        print(
            f"  review workload {row['customer'] or '*'}/{row['service'] or '*'}: {row['created']} tickets,"
            f" limit {row['limit']}, over limit: {row['over_limit']}, exception: {row['exception']}"
        )
    print(
        f"  review ola_uc: {len(review['ola_uc'])} rows; slos: {len(review['slos'])} rows; quality: "
        + ", ".join(f"{q['target_id']} {q['status']}" for q in review["quality"])
    )
    for row in review["satisfaction"]["rows"]:
        print(
            f"  review csat {row['service']}/{row['customer']}: {row['answers']} answers, satisfied "
            f"{ratio(row['satisfied'])}, response rate {ratio(row['response_rate'])}"
            + (f" ({row['note']})" if row["note"] else "")
        )
    for complaint in review["satisfaction"]["complaints"]:
        print(
            f"  review complaint {complaint['ticket_id']} ({complaint['customer']}): {complaint['score']}/"
            f'{complaint["scale"]} "{complaint["comment"]}" status {complaint["status"]}'
            f" improvement {complaint['improvement_id']}"
        )
    for row in review["experience"]:
        print(
            f"  review experience {row['service']}: SLA {row['sla_status']}, CSAT satisfied "
            f"{row['csat_satisfied']['percent']}%, reopens {row['reopen_rate']['percent']}%, flagged "
            f"{row['flagged']} {'; '.join(row['reasons'])}"
        )
    for item in review["improvements"]:
        print(
            f"  review improvement {item['improvement_id']} {item['movement']}: {item['title']} "
            f"(baseline {item['baseline_value']}, target {item['comparison']} {item['target_value']})"
        )
    print(
        f"  review distribution: {len(review['distribution'])} published snapshots (the month's close publishes"
        " them); approval: " + ("none yet" if review["approval"] is None else review["approval"]["approved_by"])
    )


def post(url: str, key: str, body: Any, content_type: str = "application/json") -> httpx.Response:
    data = body if isinstance(body, str) else None
    answer = httpx.post(
        url,
        content=data,
        json=None if data is not None else body,
        timeout=30,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
    )
    answer.raise_for_status()
    return answer


def wait_for_report(reporting: ServiceProcess, key: str, since: datetime) -> dict[str, Any]:
    """Events travel through Kafka: poll until every clock, answer and SLO evaluation has reached reporting.
    Each poll's report ends now: SLO evaluations carry the instant they were made."""
    clocks = 3 * len(demo_day.tickets())  # response, resolution (SLA) and handover (OLA) per ticket
    deadline = time.monotonic() + WAIT_SECONDS
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        period = {"from": since.isoformat(), "to": datetime.now(UTC).isoformat(), "format": "json"}
        report = httpx.get(
            f"{reporting.url}/v1/reports/slr", params=period, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()
        if (
            len({(c["ticket_id"], c["metric"]) for c in report["clocks"]}) >= clocks
            and report["csat"]["score"]["denominator"] >= len(demo_day.ANSWERS)
            and any(s["total"] - s["good"] > 0 for s in report["slos"])
        ):
            break
        time.sleep(1)
    return report


def wait_for_notifications(reporting: ServiceProcess, key: str, receiver: DemoReceiver) -> list[dict[str, Any]]:
    """The delivery log once nothing in it is waiting any more and the receiver holds every one sent."""
    deadline = time.monotonic() + WAIT_SECONDS
    log: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        log = httpx.get(
            f"{reporting.url}/v1/notifications",
            params={"limit": 1000},
            timeout=30,
            headers={"Authorization": f"Bearer {key}"},
        ).json()["notifications"]
        sent = [n for n in log if n["status"] == "sent"]
        if (
            sent
            and all(n["status"] not in ("pending", "retrying") for n in log)
            and len(receiver.received) >= len(sent)
        ):
            break
        time.sleep(0.5)
    return log


def print_notifications(log: list[dict[str, Any]], receiver: DemoReceiver) -> None:
    counts = {state: sum(n["status"] == state for n in log) for state in ("sent", "suppressed", "dead")}
    print(
        f"\nnotifications of rule {NOTIFICATION_RULE} (SLO alerts and SLA breaches): {counts['sent']} sent, "
        f"{counts['suppressed']} suppressed, {counts['dead']} dead"
    )
    print(f"notification receiver: {receiver.url} (the demo's own, Standard Webhooks signature checked)")
    print(f"notifications file: {receiver.file} ({len(receiver.received)} received)")
    for entry in receiver.received:
        data = entry["body"]["data"]
        print(
            f'  received {data["trigger"]} "{data["title"]}" at {entry["received_at"]}'
            f" signature {'verified' if entry['signature_ok'] else 'WRONG'}"
        )
    for n in log:
        if n["status"] == "suppressed":
            print(f"  suppressed {n['trigger']} {n['ticket_id'] or n['slo_id']} {n['metric'] or ''}: {n['reason']}")


def run(platform: LocalPlatform, receiver: DemoReceiver) -> dict[str, str]:
    """The day of the whole product; returns the tenant, keys and the review's period label."""
    intake, engine, reporting = platform.processes
    tenant = f"demo-{uuid.uuid4().hex[:6]}"
    # Least privilege: each party gets a key with only the scope it needs (docs/security.md).
    config_key = platform.new_tenant(tenant, scopes="config")  # the SLA manager: bundle, targets, register
    ingest_key = platform.new_tenant(tenant, scopes="ingest")  # the service desk, survey tool and probes
    key = platform.new_tenant(tenant, scopes="read")  # report consumers and the dashboard
    now = datetime.now(UTC)
    post(f"{engine.url}/v1/config:apply", config_key, demo_day.bundle(now), "application/yaml")
    answer = httpx.put(
        f"{reporting.url}/v1/reporting-config",
        json=demo_day.REPORTING_CONFIG,
        timeout=30,
        headers={"Authorization": f"Bearer {config_key}"},
    )
    answer.raise_for_status()
    print(
        f"reporting configuration version {answer.json()['version']}: "
        f"{len(demo_day.REPORTING_CONFIG['quality_targets'])} quality targets, a workload limit for acme"
    )
    # Before the day goes in: notifications are planned as the events arrive, under the policy of that moment.
    applied = httpx.put(
        f"{reporting.url}/v1/notification-policies",
        json=notification_policy(receiver),
        timeout=30,
        headers={"Authorization": f"Bearer {config_key}"},
    )
    applied.raise_for_status()
    print(f"notification policy version {applied.json()['version']}: rule {NOTIFICATION_RULE} to {receiver.url}")
    day = demo_day.last_weekday(now.astimezone(demo_day.SHANGHAI).date())
    events = demo_day.ticket_events(tenant, day)
    sent = post(f"{intake.url}/v1/events", ingest_key, events, BATCH).json()["accepted"]
    answers = post(f"{intake.url}/v1/events", ingest_key, demo_day.feedback_events(tenant, day), BATCH)
    signals = post(f"{intake.url}/v1/events", ingest_key, demo_day.availability_events(tenant, now), BATCH)
    print(
        f"sent {sent} ticket events for {day} (Asia/Shanghai), {answers.json()['accepted']} survey answers,"
        f" {signals.json()['accepted']} availability signals of the last four hours"
    )
    print_report(wait_for_report(reporting, key, now - timedelta(days=10)))
    # After the day reached reporting: the baseline is measured from it.
    entry = post(f"{reporting.url}/v1/improvements", config_key, demo_day.improvement(day)).json()
    print(
        f"improvement {entry['improvement_id']} opened: {entry['title']} (reopen rate baseline "
        f"{entry['baseline_value']}% measured on {day}, target <= {entry['target_value']}%)"
    )
    handled = httpx.patch(
        f"{reporting.url}/v1/complaints/{demo_day.COMPLAINT_TICKET}",
        timeout=30,
        headers={"Authorization": f"Bearer {config_key}"},
        json={
            "status": "acknowledged",
            "owner": "li.wei",
            "improvement_id": entry["improvement_id"],
            "note": "called the customer back",
        },
    )
    handled.raise_for_status()
    label = f"{day.year}-{day.month:02d}"
    review = httpx.get(
        f"{reporting.url}/v1/reviews/{label}",
        params={"format": "json"},
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
    )
    review.raise_for_status()
    print_review(review.json())
    print_notifications(wait_for_notifications(reporting, key, receiver), receiver)
    refused = httpx.post(
        f"{intake.url}/v1/events",
        json=events[:1],
        timeout=30,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"},
    )
    print(f"\nthe read-only key posting an event: {refused.status_code} {refused.json()['detail']}")
    return {"tenant": tenant, "read": key, "ingest": ingest_key, "config": config_key, "label": label}


def print_where(platform: LocalPlatform, found: dict[str, str]) -> None:
    intake, engine, reporting = platform.processes
    r, label = reporting.url, found["label"]
    print(
        f"\ndemo tenant: {found['tenant']}\nread-only key (reports, dashboard, review): {found['read']}"
        f"\ningest-only key (upstream systems):          {found['ingest']}"
        f"\nconfig key (bundles, targets, improvements): {found['config']}"
    )
    print(f"intake: {intake.url}\nsla-engine: {engine.url}\nreporting: {r}")
    print(f"dashboard: {r}/v1/dashboard (sign in with the read-only key; {r}/v1/dashboard?lang=zh in Chinese)")
    print("with the header Authorization: Bearer <read-only key>:")
    print(f"report HTML: {r}/v1/reports/slr?format=html\nreport PDF: {r}/v1/reports/slr?format=pdf")
    print(
        f"report HTML (zh): {r}/v1/reports/slr?format=html&lang=zh"
        f"\nreport PDF (zh): {r}/v1/reports/slr?format=pdf&lang=zh"
    )
    print(f"review JSON: {r}/v1/reviews/{label}?format=json\nreview HTML: {r}/v1/reviews/{label}?format=html")
    print(f"review PDF: {r}/v1/reviews/{label}?format=pdf\nreview PDF (zh): {r}/v1/reviews/{label}?format=pdf&lang=zh")
    print(f"improvement register: {r}/v1/improvements\nSLOs now: {engine.url}/v1/slos")
    print(
        f"e.g. curl -H 'Authorization: Bearer {found['read']}' '{r}/v1/reviews/{label}?format=html&lang=zh'", flush=True
    )


def main() -> int:
    stack = discover()
    if stack is None:
        print("no stack found: run `make up` first", file=sys.stderr)
        return 1
    platform = LocalPlatform.start(stack, prefix="demo-")
    receiver = DemoReceiver(NOTIFICATIONS_DIR / f"notifications-{uuid.uuid4().hex[:6]}.jsonl", new_secret()).start()
    try:
        print_where(platform, run(platform, receiver))
        if not os.environ.get("DEMO_EXIT"):
            print("\nthe services keep running: Ctrl-C stops them", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the services")
    finally:
        platform.stop()
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
