"""Records a consumer could not process, kept with their original bytes and the reason, and shown to their tenant.

A record lands here only after the consumer pipeline (`slm_shared.consumer`) retried it and narrowed its batch
down to it alone. One row per (consumer group, topic, partition, offset): setting a record aside twice (a crash
before the offset commit, a redelivery) records it once, and the pipeline skips records found here.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Depends, Query
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slm_shared.auth import tenant_with

log = logging.getLogger(__name__)

RECORDS_SET_ASIDE = Counter(
    "slm_records_set_aside_total", "Consumed records set aside after failing alone", ["group", "topic"]
)
REASON_CHARS = 2000  # enough for any exception message worth reading; the bytes are kept whole
Position = tuple[str, int, int]  # topic, partition, offset
BIGINT_MAX = 2**63 - 1  # the id column's range: a larger `after` would fail to bind


def define_set_aside_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "set_aside",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("consumer_group", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("record_key", sa.LargeBinary, nullable=True),
        sa.Column("tenant_id", sa.Text, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("error_type", sa.Text, nullable=False),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("consumer_group", "topic", "partition", "offset", name="set_aside_once"),
        sa.Index("set_aside_by_tenant", "tenant_id", "id"),
    )


def _text(value: str, limit: int) -> str:
    """PostgreSQL text refuses NUL; a reason or tenant comes from untrusted bytes."""
    return value.replace("\x00", "\\0")[:limit]


def tenant_of(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The record's `tenantid` if its value is a JSON object that has one (the endpoint scopes by it)."""
    try:
        document = json.loads(record.value or b"")
    except (ValueError, RecursionError):
        return None
    tenant = document.get("tenantid") if isinstance(document, dict) else None
    return _text(tenant, 256) if isinstance(tenant, str) and tenant else None


def headers_of(record: ConsumerRecord[bytes, bytes]) -> list[dict[str, str]]:
    """Each header as text when it is UTF-8, else base64 (kept exactly either way)."""
    kept: list[dict[str, str]] = []
    for name, value in record.headers or ():
        try:
            text = value.decode("utf-8")
            kept.append(
                {"name": name, "value": text}
                if "\x00" not in text
                else {"name": name, "value_base64": base64.b64encode(value).decode()}
            )
        except (UnicodeDecodeError, AttributeError):
            kept.append({"name": name, "value_base64": base64.b64encode(bytes(value or b"")).decode()})
    return kept


def describe(error: BaseException) -> str:
    """The error in a line or two: for a database error, the driver's message without SQLAlchemy's statement dump."""
    orig = getattr(error, "orig", None)
    if isinstance(orig, BaseException):
        text = f"{type(error).__name__}: {orig}"
    else:
        text = f"{type(error).__name__}: {error}"
        if error.__cause__ is not None and str(error.__cause__) not in text:
            text += f" (caused by {type(error.__cause__).__name__}: {error.__cause__})"
    return _text(text, REASON_CHARS)


class SqlSetAside:
    """The `set_aside` table of one service's database; each call is its own short transaction."""

    def __init__(self, table: sa.Table, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._table = table
        self._sessions = sessions

    async def already_set_aside(self, group: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> set[Position]:
        """Which of `records` were set aside before: one indexed range scan per partition of the batch."""
        if not records:
            return set()
        table = self._table
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for record in records:
            low, high = spans.get((record.topic, record.partition), (record.offset, record.offset))
            spans[(record.topic, record.partition)] = (min(low, record.offset), max(high, record.offset))
        wanted = {(record.topic, record.partition, record.offset) for record in records}
        async with self._sessions() as session:
            rows = await session.execute(
                sa.select(table.c.topic, table.c.partition, table.c.offset).where(
                    table.c.consumer_group == group,
                    sa.or_(
                        *(
                            sa.and_(
                                table.c.topic == topic,
                                table.c.partition == partition,
                                table.c.offset.between(low, high),
                            )
                            for (topic, partition), (low, high) in sorted(spans.items())
                        )
                    ),
                )
            )
            return {(row.topic, row.partition, row.offset) for row in rows} & wanted

    async def set_aside(self, group: str, record: ConsumerRecord[bytes, bytes], error: BaseException) -> bool:
        """Keep the record with why it failed; True the first time, False if it already was."""
        statement = (
            insert(self._table)
            .values(
                consumer_group=group,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                record_key=record.key,
                tenant_id=tenant_of(record),
                value=record.value,
                headers=headers_of(record),
                reason=describe(error),
                error_type=_text(type(error).__name__, 200),
            )
            .on_conflict_do_nothing()
            .returning(self._table.c.id)
        )
        async with self._sessions() as session, session.begin():
            inserted = (await session.execute(statement)).first() is not None
        if inserted:
            RECORDS_SET_ASIDE.labels(group, record.topic).inc()
        return inserted


class SetAsideRecord(BaseModel):
    id: int
    consumer_group: str
    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    error_type: str
    set_aside_at: datetime
    value_base64: str | None
    headers: list[dict[str, str]]


class SetAsidePage(BaseModel):
    records: list[SetAsideRecord]
    next_after: int | None  # pass as `after` for the next page; null on the last one


def set_aside_router(table: sa.Table, sessions: async_sessionmaker[AsyncSession]) -> APIRouter:
    """`GET /v1/set-aside`: the caller's tenant's set-aside records, oldest first, a page at a time."""
    router = APIRouter(tags=["operations"])

    @router.get("/v1/set-aside", response_model=SetAsidePage)
    async def list_set_aside(
        tenant: Annotated[str, Depends(tenant_with("admin"))],
        after: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="the `next_after` of the previous page")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> SetAsidePage:
        async with sessions() as session:
            rows = (
                await session.execute(
                    sa.select(table)
                    .where(table.c.tenant_id == tenant, table.c.id > after)
                    .order_by(table.c.id)
                    .limit(limit)
                )
            ).all()
        records = [_record(row._mapping) for row in rows]
        return SetAsidePage(records=records, next_after=records[-1].id if len(records) == limit else None)

    return router


def _record(row: Any) -> SetAsideRecord:
    key: bytes | None = row["record_key"]
    value: bytes | None = row["value"]
    return SetAsideRecord(
        id=row["id"],
        consumer_group=row["consumer_group"],
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        key=key.decode("utf-8", "replace") if key is not None else None,
        reason=row["reason"],
        error_type=row["error_type"],
        set_aside_at=row["set_aside_at"],
        value_base64=base64.b64encode(value).decode() if value is not None else None,
        headers=row["headers"],
    )
