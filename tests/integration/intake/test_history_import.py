"""`slm-intake import`: each vendor's export of a multi-change ticket, imported on the real stack, gives the
clocks computed here by hand; a later webhook of an imported change is a duplicate; a rerun imports
nothing twice; an interrupted import resumes after the last committed ticket.

The clocks are computed from what intake publishes (the outbox, in publication order) with the sla-engine's
pure clock logic under a 24x7 bundle: response stops at the first agent reply, resolution pauses while the
ticket waits for the customer. Each expectation is worked out in a comment from the export's times.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import webhook_cipher
from intake.cli import main
from intake.handlers.intake import EventIntake
from intake.importer import HistoryImport, ImportSummary
from intake.settings import IntakeSettings
from intake.unit_of_work import IntakeUnitOfWork
from scripts.localstack import Stack
from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.timeline import TicketSnapshot
from slm_shared.db import session_factory
from tests.integration.intake.support import Keys, RunningIntake, Tenant, intake_settings

pytestmark = pytest.mark.integration

EXPORTS = Path(__file__).resolve().parents[2] / "fixtures" / "imports"
BUNDLE = """
calendars: []
policies:
- id: imported
  name: Imported history
  agreement: SLA
  match: {kind: incident}
  metrics:
  - metric: response
    calendar: 24x7
    targets: {P1: 1h, P2: 4h, P3: 8h, P4: 24h}
    stop: {actions: [agent_replied], statuses: [resolved, closed]}
    cancel: {statuses: [cancelled]}
  - metric: resolution
    calendar: 24x7
    targets: {P1: 4h, P2: 8h, P3: 24h, P4: 72h}
    pause: {statuses: [pending_customer, pending_vendor, on_hold]}
    stop: {statuses: [resolved, closed]}
    cancel: {statuses: [cancelled]}
"""
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def importer(engine: AsyncEngine, settings: IntakeSettings) -> HistoryImport:
    sessions = session_factory(engine)

    def units() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(sessions, webhook_cipher(settings))

    return HistoryImport(EventIntake(units, settings), units, settings)


async def published(engine: AsyncEngine, tenant: Tenant) -> list[dict[str, Any]]:
    """The tenant's events in the order intake queued them for Kafka."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT payload FROM outbox WHERE key LIKE :prefix ORDER BY id"), {"prefix": f"{tenant.id}/%"}
        )
    return [json.loads(row.payload) for row in rows]


def clocks(events: list[dict[str, Any]]) -> dict[str, Clock]:
    snapshots = [
        TicketSnapshot(
            event_id=e["id"],
            time=datetime.fromisoformat(e["time"]),
            arrival=arrival,
            ticket_id=e["data"]["ticket_id"],
            action=e["data"]["action"],
            kind=e["data"]["kind"],
            status=e["data"]["status"],
            priority=e["data"]["priority"],
            service=e["data"]["service"],
            customer=e["data"]["customer"],
            assignment_group=e["data"]["assignment_group"],
            assignee=e["data"]["assignee"],
            attributes=e["data"]["attributes"],
        )
        for arrival, e in enumerate(events)
        if e["type"] == "itsm.ticket.v1"
    ]
    found = evaluate_ticket(snapshots, parse_bundle(BUNDLE), policy_version=1, at=NOW)
    return {clock.metric: clock for clock in found}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_jira_issue_with_its_changelog_and_comments_gives_the_clocks_worked_out_by_hand(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine, stack: Stack, tmp_path: Path
) -> None:
    tenant = await keys.tenant()
    summary = await importer(engine, intake_settings(stack)).run(
        tenant.id, "jira", EXPORTS / "jira_search_expand_changelog.json"
    )
    # created, 5 histories, 2 comments = 8 snapshots; the Satisfaction history is also one CSAT answer.
    assert (summary.imported, summary.duplicate, sum(summary.rejected.values())) == (9, 0, 0)
    events = await published(engine, tenant)
    tickets = [e for e in events if e["type"] == "itsm.ticket.v1"]
    assert [(e["data"]["action"], e["data"]["status"]) for e in tickets] == [
        ("created", "open"),
        ("updated", "in_progress"),
        ("agent_replied", "in_progress"),
        ("updated", "pending_customer"),
        ("customer_replied", "pending_customer"),
        ("updated", "in_progress"),
        ("resolved", "resolved"),
        ("updated", "resolved"),
    ]
    assert tickets[0]["data"]["assignee"] is None  # undone from the first history: unassigned at creation
    result = clocks(events)
    # Response: created 09:00+08 (01:00Z), Li Wei's public comment 10:00+08 -> met after 3600 s.
    assert (result["response"].state, result["response"].elapsed_seconds) == ("met", 3600)
    assert result["response"].stopped_at == at("2026-11-02T02:00:00+00:00")
    # Resolution: 01:00Z-03:00Z running (7200), waiting for customer 03:00Z-05:05Z, running 05:05Z-07:00Z
    # (6900): 14100 s, met at 07:00Z (Resolved at 15:00+08).
    assert (result["resolution"].state, result["resolution"].elapsed_seconds) == ("met", 14100)
    assert result["resolution"].stopped_at == at("2026-11-02T07:00:00+00:00")
    feedback = [e for e in events if e["type"] == "itsm.feedback.v1"]
    assert [(f["data"]["ticket_id"], f["data"]["score"], f["data"]["scale"], f["time"]) for f in feedback] == [
        ("ITSM-7", 5, 5, "2026-11-02T08:00:00Z")
    ]

    # A webhook of an imported change is a duplicate: the history id is the webhook's changelog id.
    webhook = {
        "timestamp": 1793595600000,
        "webhookEvent": "jira:issue_updated",
        "issue": {
            "id": "30001",
            "key": "ITSM-7",
            "self": "https://acme.atlassian.net/rest/api/2/issue/30001",
            "fields": {"status": {"name": "Waiting for customer"}},
        },
        "changelog": {
            "id": "20002",
            "items": [{"field": "status", "fromString": "In Progress", "toString": "Waiting for customer"}],
        },
    }
    answer = await intake.client.post("/v1/webhooks/jira", json=webhook, headers=tenant.headers)
    assert (answer.status_code, answer.json()["results"][0]["result"]) == (202, "duplicate")

    again = await importer(engine, intake_settings(stack)).run(
        tenant.id, "jira", EXPORTS / "jira_search_expand_changelog.json"
    )
    assert (again.imported, again.duplicate) == (0, 9)


async def test_a_servicenow_record_with_its_sys_audit_gives_the_clocks_worked_out_by_hand(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine, stack: Stack
) -> None:
    tenant = await keys.tenant()
    summary = await importer(engine, intake_settings(stack)).run(
        tenant.id, "servicenow", EXPORTS / "servicenow_incidents_with_sys_audit.json", instance="acme.service-now.com"
    )
    # The insert and 5 checkpoints = 6 snapshots, and the survey instance = 1 CSAT answer.
    assert (summary.imported, sum(summary.rejected.values())) == (7, 0)
    events = await published(engine, tenant)
    tickets = [e for e in events if e["type"] == "itsm.ticket.v1"]
    assert [e["id"].rsplit("-", 1)[1] for e in tickets] == ["0", "1", "2", "3", "4", "5"]
    assert [(e["data"]["action"], e["data"]["status"]) for e in tickets] == [
        ("created", "new"),
        ("updated", "in_progress"),
        ("agent_replied", "in_progress"),
        ("updated", "pending_customer"),
        ("customer_replied", "in_progress"),
        ("resolved", "resolved"),
    ]
    assert tickets[0]["source"] == "servicenow://acme.service-now.com"
    result = clocks(events)
    # Response: inserted 01:00Z, Abel Tuter's customer-visible comment at 02:00Z -> 3600 s.
    assert (result["response"].state, result["response"].elapsed_seconds) == ("met", 3600)
    # Resolution: 01:00-03:00 (7200), on hold awaiting the caller 03:00-05:00, 05:00-06:30 (5400) = 12600 s.
    assert (result["resolution"].state, result["resolution"].elapsed_seconds) == ("met", 12600)
    assert result["resolution"].stopped_at == at("2026-11-03T06:30:00+00:00")
    feedback = [e["data"] for e in events if e["type"] == "itsm.feedback.v1"]
    assert [(f["ticket_id"], f["service"], f["score"], f["scale"]) for f in feedback] == [("INC0020001", "Email", 3, 5)]


async def test_zendesk_tickets_with_audits_and_ratings_give_the_clocks_worked_out_by_hand(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine, stack: Stack
) -> None:
    tenant = await keys.tenant()
    summary = await importer(engine, intake_settings(stack)).run(
        tenant.id, "zendesk", EXPORTS / "zendesk_tickets_audits_ratings.json", account="acmehelp"
    )
    # 5 audits: created; reply+open; reply+pending; reply+open; solved = 8 snapshots, and 1 rating.
    assert (summary.imported, sum(summary.rejected.values())) == (9, 0)
    events = await published(engine, tenant)
    tickets = [e for e in events if e["type"] == "itsm.ticket.v1"]
    assert [(e["data"]["action"], e["data"]["status"]) for e in tickets] == [
        ("created", "new"),
        ("agent_replied", "new"),
        ("updated", "open"),
        ("agent_replied", "open"),
        ("updated", "pending_customer"),
        ("customer_replied", "pending_customer"),
        ("updated", "open"),
        ("resolved", "resolved"),
    ]
    result = clocks(events)
    # Response: created 01:00Z, the agent's public reply at 01:45Z -> 2700 s.
    assert (result["response"].state, result["response"].elapsed_seconds) == ("met", 2700)
    # Resolution: 01:00-02:00 (3600), pending 02:00-04:00, 04:00-05:30 (5400) = 9000 s.
    assert (result["resolution"].state, result["resolution"].elapsed_seconds) == ("met", 9000)
    assert result["resolution"].stopped_at == at("2026-11-04T05:30:00+00:00")
    feedback = [e for e in events if e["type"] == "itsm.feedback.v1"]
    assert [(f["data"]["ticket_id"], f["data"]["score"], f["data"]["scale"], f["time"]) for f in feedback] == [
        ("35500", 1, 1, "2026-11-04T06:00:00Z")
    ]
    # A trigger webhook of the solving update names the same id (`<ticket id>-<updated_at>`): a duplicate.
    trigger = {
        "event": "updated",
        "account": "acmehelp",
        "ticket": {
            "id": "35500",
            "status": "solved",
            "priority": "high",
            "type": "incident",
            "updated_at": "2026-11-04T05:30:00Z",
        },
    }
    answer = await intake.client.post("/v1/webhooks/zendesk", json=trigger, headers=tenant.headers)
    assert (answer.status_code, answer.json()["results"][0]["result"]) == (202, "duplicate")


async def test_an_interrupted_import_resumes_after_the_last_committed_ticket(
    keys: Keys, engine: AsyncEngine, stack: Stack, tmp_path: Path
) -> None:
    tenant = await keys.tenant()
    issue = json.loads((EXPORTS / "jira_search_expand_changelog.json").read_text())["issues"][0]
    second = json.loads(json.dumps(issue).replace("30001", "30002").replace("ITSM-7", "ITSM-8"))
    export = tmp_path / "issues.jsonl"
    export.write_text(json.dumps(issue) + "\n" + json.dumps(second) + "\n")
    settings = intake_settings(stack, max_batch_events=5)  # each ticket (9 events) is its own transaction

    class Interrupted(Exception):
        pass

    def stop_after_second(_: int) -> None:
        raise Interrupted

    seen: list[int] = []
    with pytest.raises(Interrupted):
        await importer(engine, settings).run(
            tenant.id, "jira", export, progress=lambda n: seen.append(n) if not seen else stop_after_second(n)
        )
    state = json.loads((tmp_path / f"issues.jsonl.import-{tenant.id}.json").read_text())
    assert state["tickets_done"] == 1  # ticket 1 was committed when ticket 2's events arrived
    resumed = await importer(engine, settings).run(tenant.id, "jira", export)
    assert (resumed.resumed_tickets, resumed.imported, resumed.duplicate) == (1, 9, 0)
    assert not (tmp_path / f"issues.jsonl.import-{tenant.id}.json").exists()
    ids = {e["data"]["ticket_id"] for e in await published(engine, tenant) if e["type"] == "itsm.ticket.v1"}
    assert ids == {"ITSM-7", "ITSM-8"}


async def test_an_export_beyond_the_limits_is_rejected_ticket_by_ticket_with_reasons(
    keys: Keys, engine: AsyncEngine, stack: Stack, tmp_path: Path
) -> None:
    tenant = await keys.tenant()
    issue = json.loads((EXPORTS / "jira_search_expand_changelog.json").read_text())["issues"][0]
    old = json.loads(json.dumps(issue).replace("30001", "30003").replace("2026-11-02", "2020-01-02"))
    export = tmp_path / "mixed.jsonl"
    export.write_text("\n".join([json.dumps(old), "{not json", json.dumps({"id": "1"})]) + "\n")
    summary: ImportSummary = await importer(engine, intake_settings(stack)).run(tenant.id, "jira", export)
    assert summary.imported == 0
    # 2020 is older than max_event_age_days (800) before intake's clock: each of the 9 events says so.
    assert summary.rejected == {"time_out_of_range": 9, "malformed_json": 1, "invalid_webhook": 1}
    assert summary.examples["malformed_json"][0].startswith("ticket #2")


def test_the_cli_imports_an_export_and_prints_the_summary(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "zendesk.json"
    shutil.copy(EXPORTS / "zendesk_tickets_audits_ratings.json", export)
    monkeypatch.setenv("INTAKE_DATABASE_URL", stack.database_urls["intake"])
    tenant = f"cli-import-{datetime.now(UTC).strftime('%H%M%S%f')}"
    main(["import", "zendesk", str(export), "--tenant", tenant, "--account", "acmehelp"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "tickets: 1 (0 skipped, done by an earlier run)",
        "imported: 9 events",
        "skipped: 0 events already in intake",
        "rejected: 0 events",
    ]
