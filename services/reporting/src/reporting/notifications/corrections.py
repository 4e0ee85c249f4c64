"""Planning corrections: what each recalculated cycle's rule last told (or is about to tell: a correction still
on its way) against its recalculation."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from reporting import tables
from reporting.domain.notification_corrections import Retracted, Said, corrections
from reporting.domain.notifications import CORRECTION, RESOLVE
from reporting.notifications.planned_rows import arrived, clock_facts, planned_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.notification_sending import Lateness
    from reporting.notifications.policies import StoredPolicy
    from slm_shared.events import ClockTransitionData, CloudEvent


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


class SqlCorrectionPlanner:
    """Plans the correction rows of a batch's recalculations, in the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def planned(
        self,
        policies: dict[str, StoredPolicy],
        clocks: Sequence[tuple[CloudEvent, ClockTransitionData]],
        now: datetime,
        lateness: Lateness,
    ) -> list[dict[str, Any]]:
        """The corrections the batch's recalculations make due: for tenants with a rule that asks for them, the
        latest notification of each recalculated cycle and rule (one statement) against the recalculation.

        The latest is the last sent, unless a correction is still on its way (pending or retrying): that is what
        the rule is about to say. Compared with sent rows only, a second recalculation applied while the first
        one's correction was being delivered repeated that correction."""
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
        cycle = (t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle)
        latest = (
            await self._session.execute(
                sa.select(*cycle, t.c.rule_id, t.c.trigger, t.c.facts)
                .where(
                    sa.or_(
                        t.c.status == "sent",
                        sa.and_(t.c.trigger == CORRECTION, t.c.status.in_(("pending", "retrying"))),
                    ),
                    t.c.trigger != RESOLVE,
                    sa.tuple_(*cycle).in_(cycles),
                )
                .order_by(
                    *cycle,
                    t.c.rule_id,
                    t.c.sent_at.desc().nulls_first(),  # a correction on its way comes after everything sent
                    t.c.created_at.desc(),
                )
                .ext(distinct_on(*cycle, t.c.rule_id))
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
