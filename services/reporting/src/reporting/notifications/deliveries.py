"""What the delivery loop reads and writes: due notifications claimed with SKIP LOCKED, the read model's state
of their clocks and alerts, their outcomes and a ladder's next repeats. In the caller's transaction; never commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.notification_sending import ClockNow
from reporting.read_side.calendars import calendars_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.live import CalendarKey, Calendars

ACTIVE = ("pending", "retrying")


def cycle_of(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["ticket_id"], row["policy_id"], row["metric"], row["cycle"])


class SqlDeliveryRepository:
    """The notification rows as the delivery loop works through them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def overdue_tenants(self, now: datetime) -> list[str]:
        """The tenants with rows due by `now`, most overdue first."""
        t = tables.notifications
        return list(
            (
                await self._session.execute(
                    sa.select(t.c.tenant_id)
                    .where(t.c.status.in_(ACTIVE), t.c.next_attempt_at <= now)
                    .group_by(t.c.tenant_id)
                    .order_by(sa.func.min(t.c.next_attempt_at))
                )
            )
            .scalars()
            .all()
        )

    async def claim_due(self, tenant: str, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` of the tenant's due rows, locked until the transaction ends; rows another replica holds
        are skipped."""
        t = tables.notifications
        return [
            dict(row)
            for row in (
                await self._session.execute(
                    sa.select(t)
                    .where(t.c.tenant_id == tenant, t.c.status.in_(ACTIVE), t.c.next_attempt_at <= now)
                    .order_by(t.c.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).mappings()
        ]

    async def calendars(self, tenant: str, keys: Sequence[CalendarKey]) -> Calendars:
        return await calendars_of(self._session, tenant, keys)

    async def log(self, tenant: str, ticket: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        """The delivery log, newest first: of one ticket, in one status, or all."""
        t = tables.notifications
        statement = sa.select(
            t.c.id,
            t.c.ticket_id,
            t.c.policy_id,
            t.c.metric,
            t.c.cycle,
            t.c.slo_id,
            t.c.rule_id,
            t.c.trigger,
            t.c.level,
            t.c.channel,
            t.c.recipients,
            t.c.status,
            t.c.reason,
            t.c.attempts,
            t.c.last_error,
            t.c.event_at,
            t.c.due_at,
            t.c.next_attempt_at,
            t.c.sent_at,
            t.c.acked_at,
            t.c.policy_version,
            t.c.created_at,
        ).where(t.c.tenant_id == tenant)
        if ticket is not None:
            statement = statement.where(t.c.ticket_id == ticket)
        if status is not None:
            statement = statement.where(t.c.status == status)
        rows = (
            (await self._session.execute(statement.order_by(t.c.created_at.desc(), t.c.level.desc()).limit(limit)))
            .mappings()
            .all()
        )
        return [dict(row) for row in rows]

    async def tenant_of(self, notification_id: str) -> str | None:
        t = tables.notifications
        found = (await self._session.execute(sa.select(t.c.tenant_id).where(t.c.id == notification_id))).scalar()
        return str(found) if found is not None else None

    async def acknowledge(self, tenant: str, notification_id: str, at: datetime) -> list[str] | None:
        """Acknowledges the notification's ladder: the notification is marked, the ladder's pending levels are
        suppressed and no repeat follows. Returns the suppressed ids, or None when the tenant has no such
        notification."""
        t = tables.notifications
        if len(notification_id) > 128:
            return None
        ladder = (
            await self._session.execute(
                sa.select(t.c.ladder_key).where(t.c.tenant_id == tenant, t.c.id == notification_id)
            )
        ).scalar()
        if ladder is None:
            return None
        mine = sa.and_(t.c.tenant_id == tenant, t.c.ladder_key == ladder)
        await self._session.execute(
            sa.update(t).where(mine, t.c.id == notification_id, t.c.acked_at.is_(None)).values(acked_at=at)
        )
        stopped = (
            (
                await self._session.execute(
                    sa.update(t)
                    .where(mine, t.c.status.in_(ACTIVE))
                    .values(status="suppressed", reason="acknowledged")
                    .returning(t.c.id)
                )
            )
            .scalars()
            .all()
        )
        return sorted(stopped)

    async def record_outcomes(self, updates: Sequence[dict[str, Any]]) -> None:
        t = tables.notifications
        await self._session.execute(
            sa.update(t)
            .where(t.c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"),
                attempts=sa.bindparam("b_attempts"),
                next_attempt_at=sa.bindparam("b_next"),
                last_error=sa.bindparam("b_error"),
                reason=sa.bindparam("b_reason"),
                sent_at=sa.bindparam("b_sent"),
            ),
            updates,
        )

    async def add_repeats(self, repeats: Sequence[dict[str, Any]]) -> None:
        """A ladder's next repeats; one already planned (another replica, a retry) is kept once."""
        if repeats:
            await self._session.execute(
                insert(tables.notifications).on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"]),
                repeats,
            )

    async def clocks_now(self, tenant: str, rows: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], ClockNow]:
        """The read model's cycles of the rows, as they stand in this transaction."""
        keys = sorted({cycle_of(row) for row in rows if row["ticket_id"] is not None})
        if not keys:
            return {}
        c = tables.clock_outcomes
        found = (
            await self._session.execute(
                sa.select(c).where(
                    c.c.tenant_id == tenant, sa.tuple_(c.c.ticket_id, c.c.policy_id, c.c.metric, c.c.cycle).in_(keys)
                )
            )
        ).mappings()
        return {
            (r["ticket_id"], r["policy_id"], r["metric"], r["cycle"]): ClockNow(
                r["state"],
                r["breached"],
                r["target_seconds"],
                r["elapsed_seconds"],
                r["last_event_time"],
                r["due_at"],
                r["breached_at"],
                r["calendar"],
                r["policy_version"],
            )
            for r in found
        }

    async def acked_ladders(self, tenant: str, rows: Sequence[dict[str, Any]]) -> set[str]:
        t = tables.notifications
        ladders = sorted({row["ladder_key"] for row in rows})
        return set(
            (
                await self._session.execute(
                    sa.select(t.c.ladder_key)
                    .distinct()
                    .where(t.c.tenant_id == tenant, t.c.ladder_key.in_(ladders), t.c.acked_at.is_not(None))
                )
            ).scalars()
        )

    async def alerts_resolved(self, tenant: str, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], datetime]:
        """(slo_id, alert) of the SLO alert rows among `rows`: the instant of its latest `resolved` in the read
        model (the consumer writes it in the batch that receives it), for alerts that have one."""
        wanted = sorted(
            {
                (row["slo_id"], row["trigger"].removeprefix("slo:"))
                for row in rows
                if row["trigger"].startswith("slo:") and row["slo_id"] is not None
            }
        )
        if not wanted:
            return {}
        a = tables.slo_alerts
        found = (
            await self._session.execute(
                sa.select(a.c.slo_id, a.c.alert, sa.func.max(a.c.at))
                .where(a.c.tenant_id == tenant, a.c.state == "resolved", sa.tuple_(a.c.slo_id, a.c.alert).in_(wanted))
                .group_by(a.c.slo_id, a.c.alert)
            )
        ).all()
        return {(slo_id, alert): at for slo_id, alert, at in found}

    async def paged_cycles(self, tenant: str, rows: Sequence[dict[str, Any]]) -> set[tuple[Any, ...]]:
        """(cycle..., rule) of the resolves among `rows` for which a trigger was sent: only those are resolved."""
        wanted = sorted({(*cycle_of(row), row["rule_id"]) for row in rows if row["trigger"] == "resolve"})
        if not wanted:
            return set()
        t = tables.notifications
        found = (
            await self._session.execute(
                sa.select(t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id)
                .distinct()
                .where(
                    t.c.tenant_id == tenant,
                    t.c.status == "sent",
                    t.c.trigger != "resolve",
                    sa.tuple_(t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.rule_id).in_(wanted),
                )
            )
        ).all()
        return {tuple(row) for row in found}
