"""Planning notifications: the rows a batch of events or a report publication makes due, in its transaction.

`plan_batch` runs inside the read-model handler's transaction: the notifications an event makes due commit
together with the read-model change that caused them, or not at all. Each row carries its idempotency key
(clock cycle or alert episode, trigger, rule, level), unique per tenant, and is inserted with ON CONFLICT DO
NOTHING: a redelivered batch, a replay from the start of the topic, or two replicas racing on one event plan
nothing new. Every method runs in the caller's transaction and never commits. The rows themselves:
notifications.planned_rows; the corrections a recalculation makes due: notifications.corrections.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.notifications import (
    BEFORE_DUE,
    LEAD_TRANSITIONS,
    RESOLVE,
    AlertFacts,
    ClockFacts,
    ReportFacts,
    plan,
)
from reporting.notifications.corrections import SqlCorrectionPlanner
from reporting.notifications.planned_rows import DEFAULT_LATENESS, alert_facts, arrived, clock_facts, planned_row
from reporting.notifications.policies import SqlPolicyRepository, StoredPolicy
from reporting.read_side.calendars import calendars_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.live import Calendars
    from reporting.domain.notification_sending import Lateness
    from slm_shared.events import ClockTransitionData, CloudEvent, ReportPublishedData, SloAlertData


class SqlNotificationPlanner:
    """Plans the notification rows of a batch or a publication under each tenant's latest policy."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._policies = SqlPolicyRepository(session)
        self._corrections = SqlCorrectionPlanner(session)

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
        rows.extend(await self._corrections.planned(policies, clocks, now, lateness))
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
