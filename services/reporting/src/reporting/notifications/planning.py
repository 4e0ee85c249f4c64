"""Planning notifications: the rows a batch of events (or a report publication) makes due, in the transaction
of the change that caused them.

`plan_batch` runs inside the read-model handler's transaction: the notifications an event makes due commit
together with the read-model change that caused them, or not at all. Each row carries its idempotency key
(clock cycle or alert episode, trigger, rule, level), unique per tenant, and is inserted with ON CONFLICT DO
NOTHING: a redelivered batch, a replay from the start of the topic, or two replicas racing on one event plan
nothing new. Every method runs in the caller's transaction and never commits.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert

from reporting import tables
from reporting.domain.notification_corrections import Retracted, Said, corrections
from reporting.domain.notification_sending import Lateness, on_arrival
from reporting.domain.notifications import (
    BEFORE_DUE,
    LEAD_TRANSITIONS,
    RESOLVE,
    AlertFacts,
    ClockFacts,
    Facts,
    Planned,
    ReportFacts,
    plan,
)
from reporting.notifications.policies import SqlPolicyRepository, StoredPolicy
from reporting.read_side.calendars import calendars_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.live import Calendars
    from slm_shared.events import ClockTransitionData, CloudEvent, ReportPublishedData, SloAlertData

DEFAULT_LATENESS = Lateness()


def clock_facts(event: CloudEvent, data: ClockTransitionData) -> ClockFacts:
    return ClockFacts(
        ticket_id=data.ticket_id,
        policy_id=data.policy_id,
        metric=data.metric,
        cycle=data.cycle,
        transition=data.transition,
        at=event.time,
        threshold=data.threshold,
        agreement=data.agreement,
        priority=data.priority,
        service=data.service,
        customer=data.customer,
        state=data.state,
        due_at=data.due_at,
        elapsed_seconds=data.elapsed_seconds,
        target_seconds=data.target_seconds,
        calendar=data.calendar,
        policy_version=data.policy_version,
    )


def alert_facts(event: CloudEvent, data: SloAlertData) -> AlertFacts:
    return AlertFacts(
        slo_id=data.slo_id, service=event.subject or "", alert=data.alert, state=data.state, at=event.time
    )


def new_id() -> str:
    return f"ntf_{secrets.token_hex(10)}"


def planned_row(
    tenant: str, version: int, planned: Planned, facts: Facts, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    clock = facts if isinstance(facts, ClockFacts) else None
    return {
        "id": new_id(),
        "tenant_id": tenant,
        "idempotency_key": planned.key,
        "ladder_key": planned.ladder,
        "policy_version": version,
        "rule_id": planned.rule_id,
        "trigger": planned.trigger,
        "level": planned.level,
        "channel": planned.channel,
        "recipients": list(planned.recipients),
        "ticket_id": clock.ticket_id if clock else None,
        "policy_id": clock.policy_id if clock else None,
        "metric": clock.metric if clock else None,
        "cycle": clock.cycle if clock else None,
        "slo_id": facts.slo_id if isinstance(facts, AlertFacts) else None,
        "facts": data,
        "event_at": planned.event_at,
        "due_at": planned.due_at,
        "next_attempt_at": planned.due_at,
        "status": "pending",
        "reason": None,
        "attempts": 0,
        "created_at": now,
    }


def arrived(
    row: dict[str, Any], event_at: datetime, received_at: datetime, lateness: Lateness, newest: bool = True
) -> dict[str, Any]:
    """The planned row as its event's arrival makes it: pending on time, suppressed, or late (due after the
    backlog has settled, with the instant it should have gone out kept in its facts for the message)."""
    arrival = on_arrival(row["due_at"], event_at, received_at, lateness, newest)
    if arrival.suppressed is not None:
        return row | {"status": "suppressed", "reason": arrival.suppressed}
    if not arrival.late:
        return row
    late = {"received_at": received_at.isoformat(), "should_have_gone_at": row["due_at"].isoformat()}
    return row | {"due_at": arrival.due_at, "next_attempt_at": arrival.due_at, "facts": row["facts"] | {"late": late}}


def said(trigger: str, data: dict[str, Any]) -> Said:
    due = data.get("due_at")
    return Said(
        trigger=trigger,
        state=str(data.get("state")),
        breached=bool(data.get("breached")),
        due_at=datetime.fromisoformat(due) if isinstance(due, str) else None,
        threshold=data.get("threshold"),
    )


def _figures(told: Said) -> dict[str, Any]:
    # The instant as the events' JSON writes it (pydantic: `Z` for UTC).
    due = told.due_at.isoformat().replace("+00:00", "Z") if told.due_at else None
    return {"state": told.state, "breached": told.breached, "due_at": due}


class SqlNotificationPlanner:
    """Plans the notification rows of a batch or a publication under each tenant's latest policy."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._policies = SqlPolicyRepository(session)

    async def plan_batch(
        self,
        clocks: Sequence[tuple[CloudEvent, ClockTransitionData]],
        alerts: Sequence[tuple[CloudEvent, SloAlertData]],
        now: datetime,
        lateness: Lateness = DEFAULT_LATENESS,
    ) -> int:
        """The notifications the batch's first deliveries make due, under each tenant's latest policy; one
        statement to read the policies, one to write the rows. Returns how many were planned (a replay's are then
        skipped).

        An event received late is judged by `on_arrival` (reporting.domain.notification_sending): history beyond the
        horizon and a late transition its cycle had already moved past are logged as `suppressed`, never sent;
        any other late one waits for the backlog behind it and carries when it should have gone out, so the
        message says how late it is. A PagerDuty `resolve` is planned only for a cycle and rule that has a trigger
        notification to resolve."""
        tenants = sorted({event.tenantid for event, _ in (*clocks, *alerts)})
        if not tenants:
            return 0
        policies = await self._policies.latest(tenants)
        if not policies:
            return 0
        calendars = await self._lead_calendars(policies, clocks)
        rows: list[dict[str, Any]] = []
        groups = await self._assignment_groups(policies, clocks)
        overtaken = await self._overtaken(
            [
                (event, data)
                for event, data in clocks
                if event.tenantid in policies and lateness.late_after < now - event.time <= lateness.horizon
            ]
        )
        items: list[tuple[CloudEvent, ClockFacts | AlertFacts, dict[str, Any]]] = [
            *(
                (
                    event,
                    replace(clock_facts(event, data), assignment_group=groups.get((event.tenantid, data.ticket_id))),
                    data.model_dump(mode="json"),
                )
                for event, data in clocks
            ),
            *((event, alert_facts(event, data), data.model_dump(mode="json")) for event, data in alerts),
        ]
        for event, facts, data in items:
            stored = policies.get(event.tenantid)
            if stored is None:
                continue
            newest = event.dedup_key not in overtaken
            rows.extend(
                arrived(
                    planned_row(event.tenantid, stored.version, planned, facts, data, now),
                    event.time,
                    now,
                    lateness,
                    newest,
                )
                for planned in plan(facts, stored.policy, calendars.get(event.tenantid))
            )
        rows.extend(await self._corrections(policies, clocks, now, lateness))
        rows = await self._with_something_to_resolve(rows)
        await self._insert_planned(rows)
        return len(rows)

    async def plan_report_published(
        self, event: CloudEvent, data: ReportPublishedData, label: str, kind: str, now: datetime
    ) -> int:
        """The notifications of a report publication, planned in the transaction that freezes the snapshot and
        adds `report.published.v1` to the outbox: the report is published and its distribution planned together,
        or neither. Returns how many were planned."""
        stored = (await self._policies.latest([event.tenantid])).get(event.tenantid)
        if stored is None:
            return 0
        facts = ReportFacts(
            report_id=data.report_id,
            service=data.scope.get("service"),
            customer=data.scope.get("customer"),
            at=event.time,
        )
        document = data.model_dump(mode="json") | {
            "label": label,
            "kind": kind,
            "service": facts.service,
            "customer": facts.customer,
        }
        rows = [
            planned_row(event.tenantid, stored.version, planned, facts, document, now)
            for planned in plan(facts, stored.policy)
        ]
        await self._insert_planned(rows)
        return len(rows)

    async def _insert_planned(self, rows: list[dict[str, Any]]) -> None:
        """Rows whose key is already stored are skipped: that is what makes a replay notify nothing. A lead-time
        row planned again (a resume, a recalculation) re-arms its stored row for the new instant, unless that one
        was sent (or is dead): a key still goes out at most once."""
        t = tables.notifications
        # One row per key (ON CONFLICT touches a row once per statement): the batch's latest transition wins.
        leads = list(
            {
                row["idempotency_key"]: row
                for row in rows
                if row["trigger"].startswith(BEFORE_DUE) and row["status"] == "pending"
            }.values()
        )
        others = [row for row in rows if not (row["trigger"].startswith(BEFORE_DUE) and row["status"] == "pending")]
        if others:
            await self._session.execute(
                insert(t).on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"]), others
            )
        if leads:
            statement = insert(t)
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.c.tenant_id, t.c.idempotency_key],
                    set_={
                        name: statement.excluded[name]
                        for name in (
                            "policy_version",
                            "facts",
                            "event_at",
                            "due_at",
                            "next_attempt_at",
                            "status",
                            "reason",
                        )
                    },
                    where=t.c.status.in_(("pending", "retrying", "suppressed")),
                ),
                leads,
            )

    async def _lead_calendars(
        self, policies: dict[str, StoredPolicy], clocks: Sequence[tuple[CloudEvent, ClockTransitionData]]
    ) -> dict[str, Calendars]:
        """Per tenant whose policy has a lead-time trigger, the calendars of its clocks that a transition of the
        batch leaves running towards a due instant (one statement per such tenant)."""
        wanted: dict[str, set[tuple[str, int]]] = {}
        for event, data in clocks:
            stored = policies.get(event.tenantid)
            if (
                stored is not None
                and data.transition in LEAD_TRANSITIONS
                and data.state == "running"
                and any(trigger.event == BEFORE_DUE for rule in stored.policy.rules for trigger in rule.triggers)
            ):
                wanted.setdefault(event.tenantid, set()).add((data.calendar, data.policy_version))
        return {tenant: await calendars_of(self._session, tenant, sorted(keys)) for tenant, keys in wanted.items()}

    async def _overtaken(self, clocks: Sequence[tuple[CloudEvent, ClockTransitionData]]) -> set[tuple[str, str, str]]:
        """The dedup keys of `clocks` whose cycle the read model (this batch applied) holds at a later publication
        (the engine's `sequence`): transitions a late backlog or a replay brings after their cycle moved on."""
        numbered = [(event, data) for event, data in clocks if data.sequence is not None]
        if not numbered:
            return set()
        c = tables.clock_outcomes
        latest = {
            tuple(row[:5]): row.last_sequence
            for row in (
                await self._session.execute(
                    sa.select(
                        c.c.tenant_id, c.c.ticket_id, c.c.policy_id, c.c.metric, c.c.cycle, c.c.last_sequence
                    ).where(
                        sa.tuple_(c.c.tenant_id, c.c.ticket_id, c.c.policy_id, c.c.metric, c.c.cycle).in_(
                            sorted(
                                {(event.tenantid, d.ticket_id, d.policy_id, d.metric, d.cycle) for event, d in numbered}
                            )
                        )
                    )
                )
            ).all()
        }
        return {
            event.dedup_key
            for event, d in numbered
            if (found := latest.get((event.tenantid, d.ticket_id, d.policy_id, d.metric, d.cycle))) is not None
            and d.sequence is not None
            and found > d.sequence
        }

    async def _corrections(
        self,
        policies: dict[str, StoredPolicy],
        clocks: Sequence[tuple[CloudEvent, ClockTransitionData]],
        now: datetime,
        lateness: Lateness,
    ) -> list[dict[str, Any]]:
        """The corrections the batch's recalculations make due: for tenants with a rule that asks for them, the
        latest sent notification of each recalculated cycle and rule (one statement) against the recalculation."""
        recalculated = [
            (event, data)
            for event, data in clocks
            if data.transition == "recalculated"
            and (stored := policies.get(event.tenantid)) is not None
            and any(rule.on_recalculation == "correct" for rule in stored.policy.rules)
        ]
        if not recalculated:
            return []
        t = tables.notifications
        cycles = sorted({(event.tenantid, d.ticket_id, d.policy_id, d.metric, d.cycle) for event, d in recalculated})
        latest = (
            await self._session.execute(
                sa.select(
                    t.c.tenant_id,
                    t.c.ticket_id,
                    t.c.policy_id,
                    t.c.metric,
                    t.c.cycle,
                    t.c.rule_id,
                    t.c.trigger,
                    t.c.facts,
                )
                .where(
                    t.c.status == "sent",
                    t.c.trigger != RESOLVE,
                    sa.tuple_(t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle).in_(cycles),
                )
                .order_by(
                    t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id, t.c.sent_at.desc()
                )
                .ext(distinct_on(t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id))
            )
        ).all()
        sent: dict[tuple[Any, ...], dict[str, Said]] = {}
        for found in latest:
            sent.setdefault(tuple(found)[:5], {})[found.rule_id] = said(found.trigger, found.facts)
        rows: list[dict[str, Any]] = []
        for event, data in recalculated:
            stored = policies[event.tenantid]
            before = sent.get((event.tenantid, data.ticket_id, data.policy_id, data.metric, data.cycle))
            if not before:
                continue
            document = data.model_dump(mode="json")
            after = said("recalculated", document)
            retracted = (
                Retracted(data.retracts.transition, data.retracts.at, data.retracts.threshold)
                if data.retracts
                else None
            )
            # The engine's publication number identifies the recalculation in its cycle; the event id otherwise.
            recalculation = str(data.sequence) if data.sequence is not None else event.id
            facts = clock_facts(event, data)
            for planned, changed in corrections(facts, recalculation, after, retracted, before, stored.policy):
                was = before[planned.rule_id]
                correction = {
                    "changed": changed,
                    "corrects": was.trigger,
                    "before": _figures(was),
                    "after": _figures(after),
                }
                rows.append(
                    arrived(
                        planned_row(
                            event.tenantid, stored.version, planned, facts, document | {"correction": correction}, now
                        ),
                        event.time,
                        now,
                        lateness,
                    )
                )
        return rows

    async def _assignment_groups(
        self, policies: dict[str, StoredPolicy], clocks: Sequence[tuple[CloudEvent, ClockTransitionData]]
    ) -> dict[tuple[str, str], str]:
        """The tickets' assignment groups (clock transitions do not carry them), read only for tenants whose policy
        filters on them: the latest ticket snapshot's, as the read model holds it."""
        wanted = sorted(
            {
                (event.tenantid, data.ticket_id)
                for event, data in clocks
                if (stored := policies.get(event.tenantid)) is not None
                and any(rule.match.assignment_group for rule in stored.policy.rules)
            }
        )
        if not wanted:
            return {}
        f = tables.ticket_facts
        found = (
            await self._session.execute(
                sa.select(f.c.tenant_id, f.c.ticket_id, f.c.assignment_group).where(
                    sa.tuple_(f.c.tenant_id, f.c.ticket_id).in_(wanted), f.c.assignment_group.is_not(None)
                )
            )
        ).all()
        return {(row.tenant_id, row.ticket_id): row.assignment_group for row in found}

    async def _with_something_to_resolve(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`rows` without the resolves whose cycle and rule have no trigger notification (stored or in `rows`):
        a tenant with a PagerDuty rule would otherwise log a suppressed resolve for every clock that stops."""

        def scope(row: dict[str, Any]) -> tuple[Any, ...]:
            return (row["tenant_id"], row["ticket_id"], row["policy_id"], row["metric"], row["cycle"], row["rule_id"])

        resolves = {scope(row) for row in rows if row["trigger"] == RESOLVE}
        if not resolves:
            return rows
        t = tables.notifications
        triggered = {scope(row) for row in rows if row["trigger"] != RESOLVE} | {
            tuple(found)
            for found in (
                await self._session.execute(
                    sa.select(t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id)
                    .distinct()
                    .where(
                        t.c.trigger != RESOLVE,
                        sa.tuple_(t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id).in_(
                            sorted(resolves)
                        ),
                    )
                )
            ).all()
        }
        return [row for row in rows if row["trigger"] != RESOLVE or scope(row) in triggered]
