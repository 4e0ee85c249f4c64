"""The consumer pipeline's failure rules with a handler that commits all of a call or nothing (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from slm_shared.background import is_unavailable
from slm_shared.consumer import (
    MAX_KEY_PART_BYTES,
    ConsumerPipeline,
    Record,
    RecordsRefused,
    RetryPolicy,
    parse_batch,
)
from slm_shared.events import TICKET_EVENT
from slm_shared.set_aside import Position, describe, headers_of, tenant_of
from tests.support.events import ticket_event

GROUP = "test-group"


def records(values: Sequence[bytes], topic: str = "itsm.signals.v1", first_offset: int = 100) -> tuple[Record, ...]:
    return tuple(
        ConsumerRecord(
            topic=topic,
            partition=3,
            offset=first_offset + n,
            timestamp=0,
            timestamp_type=0,
            key=b"acme/svc",
            value=value,
            checksum=None,
            serialized_key_size=8,
            serialized_value_size=len(value),
            headers=[],
        )
        for n, value in enumerate(values)
    )


class Poison(Exception):
    pass


class TransactionalHandler:
    """Applies a call's records only if none of them fails, as one database transaction would."""

    def __init__(
        self, failures: dict[bytes, list[BaseException]] | None = None, always_failing: frozenset[bytes] = frozenset()
    ) -> None:
        self.applied: list[bytes] = []
        self.calls: list[list[bytes]] = []
        self._failures = failures or {}  # errors raised, one per call, by a value's first calls
        self._always_failing = always_failing

    async def __call__(self, batch: Sequence[Record]) -> list[str]:
        values = [record.value or b"" for record in batch]
        self.calls.append(values)
        for value in values:
            if value in self._always_failing:
                raise Poison(f"cannot store {value!r}")
            pending = self._failures.get(value)
            if pending:
                raise pending.pop(0)
        self.applied.extend(values)
        return ["applied"] * len(values)


class MemorySetAside:
    def __init__(self) -> None:
        self.rows: dict[Position, tuple[bytes | None, str]] = {}

    async def already_set_aside(self, group: str, batch: Sequence[Record]) -> set[Position]:
        return {(r.topic, r.partition, r.offset) for r in batch} & set(self.rows)

    async def set_aside(self, group: str, record: Record, error: BaseException) -> bool:
        position = (record.topic, record.partition, record.offset)
        if position in self.rows:
            return False
        self.rows[position] = (record.value, f"{type(error).__name__}: {error}")
        return True


class Pauses:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def pipeline(handler: TransactionalHandler, store: MemorySetAside, pauses: Pauses) -> ConsumerPipeline:
    return ConsumerPipeline(GROUP, handler, store, RetryPolicy(attempts=3), sleep=pauses)


GOOD = [f"good-{n}".encode() for n in range(10)]


async def test_a_poison_record_is_set_aside_once_and_every_other_record_takes_effect_once() -> None:
    handler, store, pauses = TransactionalHandler(always_failing=frozenset({b"poison"})), MemorySetAside(), Pauses()
    batch = records([*GOOD[:6], b"poison", *GOOD[6:]])
    await pipeline(handler, store, pauses)(batch)
    assert sorted(handler.applied) == sorted(GOOD)
    assert store.rows == {("itsm.signals.v1", 3, 106): (b"poison", "Poison: cannot store b'poison'")}


async def test_outcomes_say_which_record_was_set_aside() -> None:
    handler, store, pauses = TransactionalHandler(always_failing=frozenset({b"poison"})), MemorySetAside(), Pauses()
    outcomes = await pipeline(handler, store, pauses).process(records([GOOD[0], b"poison", GOOD[1]]))
    assert outcomes == ["applied", "set_aside", "applied"]


async def test_the_lone_failing_record_is_tried_the_policy_s_number_of_times_before_it_is_set_aside() -> None:
    handler, store, pauses = TransactionalHandler(always_failing=frozenset({b"poison"})), MemorySetAside(), Pauses()
    await pipeline(handler, store, pauses).process(records([b"poison"]))
    assert handler.calls == [[b"poison"]] * 3
    assert len(store.rows) == 1


async def test_two_poison_records_in_one_batch_are_both_set_aside() -> None:
    handler = TransactionalHandler(always_failing=frozenset({b"poison-a", b"poison-b"}))
    store, pauses = MemorySetAside(), Pauses()
    await pipeline(handler, store, pauses).process(records([b"poison-a", *GOOD[:5], b"poison-b", *GOOD[5:]]))
    assert sorted(handler.applied) == sorted(GOOD)
    assert sorted(value for value, _ in store.rows.values() if value) == [b"poison-a", b"poison-b"]


async def test_a_failure_that_passes_on_retry_sets_nothing_aside_and_does_not_split_the_batch() -> None:
    handler = TransactionalHandler(failures={GOOD[3]: [Poison("deadlock detected"), Poison("deadlock detected")]})
    store, pauses = MemorySetAside(), Pauses()
    await pipeline(handler, store, pauses).process(records(GOOD))
    assert handler.calls == [GOOD] * 3
    assert handler.applied == GOOD
    assert store.rows == {}


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        sa.exc.OperationalError("SELECT 1", {}, ConnectionResetError("reset by peer")),
        sa.exc.DBAPIError("INSERT", {}, Exception("connection is closed"), connection_invalidated=True),
        TimeoutError(),
    ],
)
async def test_an_infrastructure_error_rewinds_the_batch_after_a_pause_and_sets_nothing_aside(error: Exception) -> None:
    handler, store, pauses = TransactionalHandler(failures={GOOD[2]: [error]}), MemorySetAside(), Pauses()
    with pytest.raises(type(error)):
        await pipeline(handler, store, pauses)(records(GOOD))
    assert handler.calls == [GOOD]  # neither retried in place nor split: the subscriber rewinds and redelivers
    assert store.rows == {}
    assert len(pauses.seconds) == 1


async def test_pauses_while_the_infrastructure_is_away_grow_up_to_the_cap() -> None:
    errors: list[BaseException] = [ConnectionRefusedError() for _ in range(12)]
    handler, store, pauses = TransactionalHandler(failures={GOOD[0]: errors}), MemorySetAside(), Pauses()
    consume = ConsumerPipeline(
        GROUP,
        handler,
        store,
        RetryPolicy(transient_backoff_seconds=0.5, transient_backoff_cap_seconds=10.0),
        sleep=pauses,
    )
    for _ in range(12):
        with pytest.raises(ConnectionRefusedError):
            await consume(records(GOOD))
    await consume(records(GOOD))
    assert handler.applied == GOOD
    assert 0.25 <= pauses.seconds[0] <= 0.5
    assert all(5.0 <= pause <= 10.0 for pause in pauses.seconds[6:])
    assert store.rows == {}


async def test_a_record_set_aside_before_is_skipped_when_delivered_again() -> None:
    handler, store, pauses = TransactionalHandler(always_failing=frozenset({b"poison"})), MemorySetAside(), Pauses()
    batch = records([GOOD[0], b"poison", GOOD[1]])
    await pipeline(handler, store, pauses).process(batch)
    again = TransactionalHandler(always_failing=frozenset({b"poison"}))
    outcomes = await pipeline(again, store, pauses).process(batch)  # a restart before the offsets were committed
    assert outcomes == ["applied", "skipped", "applied"]
    assert again.calls == [[GOOD[0], GOOD[1]]]
    assert len(store.rows) == 1


async def test_records_the_handler_refuses_are_set_aside_at_once_with_its_reason() -> None:
    store, pauses = MemorySetAside(), Pauses()
    seen: list[list[bytes]] = []

    async def refusing(batch: Sequence[Record]) -> list[str]:
        seen.append([record.value or b"" for record in batch])
        refused = {n: "time: 1900-01-01T00:00:00+00:00 is too old" for n, r in enumerate(batch) if r.value == b"1900"}
        if refused:
            raise RecordsRefused(refused)
        return ["applied"] * len(batch)

    consume = ConsumerPipeline(GROUP, refusing, store, sleep=pauses)
    outcomes = await consume.process(records([GOOD[0], b"1900", GOOD[1]]))
    assert outcomes == ["applied", "set_aside", "applied"]
    assert seen == [[GOOD[0], b"1900", GOOD[1]], [GOOD[0], GOOD[1]]]
    assert list(store.rows.values()) == [(b"1900", "RecordRefused: time: 1900-01-01T00:00:00+00:00 is too old")]
    assert pauses.seconds == []


def test_errors_of_the_data_are_not_transient() -> None:
    assert not is_unavailable(sa.exc.DataError("INSERT", {}, ValueError("year 0 is out of range")))
    assert not is_unavailable(sa.exc.DBAPIError("INSERT", {}, Exception("index row size 4112 exceeds maximum 2704")))
    assert not is_unavailable(OverflowError("date value out of range"))


def test_pauses_between_tries_have_jitter_within_half_of_the_exponential_ceiling() -> None:
    pauses = [RetryPolicy.pause(1.0, failures, 8.0) for failures in range(1, 7) for _ in range(20)]
    assert all(0.5 <= pause <= 8.0 for pause in pauses)
    assert all(4.0 <= RetryPolicy.pause(1.0, 10, 8.0) <= 8.0 for _ in range(20))


def test_a_set_aside_row_keeps_the_tenant_named_in_the_bytes_and_every_header_exactly() -> None:
    [record] = records([b'{"tenantid": "acme\\u0000x", "id": "1"}'])
    record.headers = [("traceparent", b"00-abc-01"), ("raw", b"\xff\x00")]
    assert tenant_of(record) == "acme\\0x"  # PostgreSQL text refuses NUL
    assert headers_of(record) == [
        {"name": "traceparent", "value": "00-abc-01"},
        {"name": "raw", "value_base64": "/wA="},
    ]
    [unreadable] = records([b"\xff not json"])
    assert tenant_of(unreadable) is None


def test_a_database_error_s_reason_is_the_driver_s_message_without_the_statement() -> None:
    error = sa.exc.DBAPIError("INSERT INTO inbox VALUES ($1)", {"a": "x" * 5000}, Exception("index row size 4152"))
    assert describe(error) == "DBAPIError: index row size 4152"


class CountingSetAside(MemorySetAside):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def already_set_aside(self, group: str, batch: Sequence[Record]) -> set[Position]:
        self.lookups += 1
        return await super().already_set_aside(group, batch)


async def test_set_aside_records_are_looked_up_only_when_a_batch_does_not_continue_the_last_one() -> None:
    handler, store, pauses = TransactionalHandler(), CountingSetAside(), Pauses()
    consume = pipeline(handler, store, pauses)
    await consume.process(records(GOOD[:5], first_offset=100))
    await consume.process(records(GOOD[5:], first_offset=105))  # the next poll: nothing new to look up
    assert store.lookups == 1
    await consume.process(records(GOOD[:5], first_offset=100))  # a rewind
    assert store.lookups == 2


async def test_a_batch_that_failed_after_setting_a_record_aside_looks_it_up_when_delivered_again() -> None:
    handler = TransactionalHandler(failures={GOOD[4]: [ConnectionResetError()]}, always_failing=frozenset({b"p"}))
    store, pauses = CountingSetAside(), Pauses()
    consume = pipeline(handler, store, pauses)
    await consume.process(records(GOOD[:2], first_offset=98))
    batch = records([GOOD[2], b"p", GOOD[3], GOOD[4]], first_offset=100)
    with pytest.raises(ConnectionResetError):  # the poison is set aside, then the database goes away
        await consume.process(batch)
    assert [value for value, _ in store.rows.values()] == [b"p"]
    assert await consume.process(batch) == ["applied", "skipped", "applied", "applied"]
    assert store.lookups == 2  # the first batch (nothing known yet) and the redelivery


async def test_an_event_whose_inbox_key_cannot_be_stored_is_set_aside_at_once_with_its_reason() -> None:
    """512 four-byte characters fit the envelope model (512 characters) but not the inbox's btree entry: the
    record is set aside at parsing, after one try, and the events beside it are handled."""
    when = datetime(2026, 11, 2, 8, tzinfo=UTC)
    values = [json.dumps(ticket_event("acme", f"INC-{n}", when)).encode() for n in range(3)]
    oversized = ticket_event("acme", "INC-X", when, event_id="\U0001f300" * 129)  # 516 bytes
    handled: list[list[str]] = []

    async def handle(batch: Sequence[Record]) -> list[str]:
        parsed = parse_batch(batch, {TICKET_EVENT})
        handled.append([str(event.data["ticket_id"]) for event in parsed.events])
        return parsed.outcomes

    store = MemorySetAside()
    outcomes = await ConsumerPipeline(GROUP, handle, store, RetryPolicy(attempts=3), sleep=Pauses()).process(
        records([values[0], json.dumps(oversized).encode(), *values[1:]], topic="itsm.tickets.v1")
    )
    assert outcomes == ["applied", "set_aside", "applied", "applied"]
    assert handled == [["INC-0", "INC-1", "INC-2"]]
    assert [reason for _, reason in store.rows.values()] == [
        f"RecordRefused: id: 516 bytes of UTF-8, over {MAX_KEY_PART_BYTES}"
    ]
