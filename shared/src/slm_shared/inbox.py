"""Idempotent inbox: processed event ids, recorded in the same transaction as the effect."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from slm_shared.events import CloudEvent


def define_inbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


class Inbox:
    """`first_delivery` inserts the event's key and says whether this is the first time it is seen.

    Run it inside the handler's transaction: if the effect rolls back, so does the inbox row, and a
    redelivery is processed again; if the effect commits, a redelivery is a no-op.
    """

    def __init__(self, table: sa.Table, consumer: str) -> None:
        self._table = table
        self._consumer = consumer

    async def first_delivery(self, session: AsyncSession, tenant_id: str, source: str, event_id: str) -> bool:
        statement = (
            insert(self._table)
            .values(consumer=self._consumer, tenant_id=tenant_id, source=source, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(self._table.c.event_id)
        )
        return (await session.execute(statement)).first() is not None

    async def first_deliveries(self, session: AsyncSession, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        """The events of a batch seen for the first time, in order; one statement for the whole batch.

        A key repeated inside the batch counts once (its first occurrence).
        """
        unique: dict[tuple[str, str, str], CloudEvent] = {}
        for event in events:
            unique.setdefault(event.dedup_key, event)
        if not unique:
            return []
        statement = (
            insert(self._table)
            .on_conflict_do_nothing()
            .returning(self._table.c.tenant_id, self._table.c.source, self._table.c.event_id)
        )
        # Rows as parameters (insertmanyvalues), not `.values([...])`: the statement is compiled once and cached.
        rows = [{"consumer": self._consumer, "tenant_id": t, "source": s, "event_id": i} for t, s, i in unique]
        fresh = {(row[0], row[1], row[2]) for row in await session.execute(statement, rows)}
        return [event for key, event in unique.items() if key in fresh]
