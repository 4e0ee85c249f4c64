"""The one pipeline every Kafka consumer runs: parse once, inbox and effect in one transaction, then commit.

A subscriber hands its batch to `ConsumerPipeline`; the service's handler takes the records and returns one
outcome per record, owning one database transaction per call (inbox rows and effect together). What happens
when the handler raises depends on why:

- **Infrastructure away** (database or broker down, a connection reset, a timeout: the kit's one test,
  `slm_shared.background.is_unavailable`): nothing is set aside. The pipeline waits (capped exponential backoff
  with jitter) and re-raises, so the subscriber's NACK_ON_ERROR rewinds the partitions to the batch start and
  the batch comes again, for as long as it takes.
- **Anything else** (a value the database refuses, a bug a record triggers): the batch is tried a few times
  (a deadlock passes), then split in halves, each its own handler call and transaction, down to the record that
  fails alone. That record is tried a few times more and then set aside (`slm_shared.set_aside`) with its bytes
  and the reason; the rest of the batch takes effect and the offsets move on. A poison record costs its own
  effect, never its partition.

Records already set aside are skipped when delivered again, so a restart never processes one twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeAlias

from faststream import Context
from prometheus_client import Counter, Histogram
from pydantic import BaseModel

from slm_shared.background import is_unavailable
from slm_shared.events import CloudEvent, InvalidEvent, parse_cloudevent_and_data
from slm_shared.logging import log_context
from slm_shared.set_aside import Position, describe, tenant_of
from slm_shared.tracing import KafkaHeaders, TraceContext, consuming_batch, context_from_headers

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

LOGGED_REASON_CHARS = 300  # a retry's log line; the set-aside row keeps the whole reason
# An envelope's tenant, source and id each hold at most this many bytes of UTF-8: together they are the inbox's
# key, and PostgreSQL caps a btree entry at 2,704 bytes. (The envelope model bounds them in characters, which let
# a 512-character id of four-byte characters through: its batch failed three times before it was set aside.)
MAX_KEY_PART_BYTES = 512

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
BatchHandler = Callable[[Sequence[Record]], Awaitable[Sequence[str]]]

EVENTS_CONSUMED = Counter("slm_events_consumed_total", "Kafka records consumed", ["topic", "outcome"])
PROCESSING_SECONDS = Histogram(
    "slm_event_processing_seconds",
    "Time to process one consumed record",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# The raw records of a batch subscriber: key, headers, offsets and the original bytes.
RawRecords = Annotated[Any, Context("message.raw_message")]


def records_of(raw: Any) -> tuple[Record, ...]:
    return raw if isinstance(raw, tuple) else (raw,)


async def keep_raw_bytes(message: Any) -> Any:
    """Decoder that hands the handler the bytes as received (set-aside and DLQ entries keep them unaltered)."""
    return message.body


@dataclass
class ParsedBatch:
    """A batch's records as events: `outcomes` has one entry per record, `events` the accepted ones in order,
    `data` each event's validated `data` model (validated once, here: handlers use it rather than again)."""

    events: list[CloudEvent] = field(default_factory=list)
    data: list[BaseModel] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # where each event's outcome stands in `outcomes`
    headers: list[KafkaHeaders] = field(default_factory=list)  # every record's, in record order

    def trace_parents(self) -> dict[tuple[str, str, str], TraceContext]:
        """Each event's producer trace context by dedup key (for a span of the effect it caused)."""
        return {
            event.dedup_key: context_from_headers(self.headers[position])
            for event, position in zip(self.events, self.positions, strict=True)
        }

    def traceparent(self, index: int) -> str | None:
        """The `traceparent` header of the record behind `events[index]`, if it has one."""
        for name, value in self.headers[self.positions[index]] or ():
            if name.lower() == "traceparent":
                return value.decode("latin-1")
        return None

    def mark_duplicates(self, fresh: Sequence[CloudEvent]) -> list[str]:
        """Outcomes with every event the inbox did not pass (or already saw in this batch) as `duplicate`."""
        first_time = {event.dedup_key for event in fresh}
        seen: set[tuple[str, str, str]] = set()
        for event, position in zip(self.events, self.positions, strict=True):
            if event.dedup_key not in first_time or event.dedup_key in seen:
                self.outcomes[position] = "duplicate"
            seen.add(event.dedup_key)
        return self.outcomes


def parse_batch(records: Sequence[Record], accepted_types: Collection[str]) -> ParsedBatch:
    """Parse each record: invalid ones are `rejected` (logged), other event types `ignored`, the rest `applied`.

    Raises `RecordsRefused` (the pipeline sets those records aside at once, with the reason) for events whose
    inbox key could not be stored (`MAX_KEY_PART_BYTES`).
    """
    batch = ParsedBatch()
    refused: dict[int, str] = {}
    for index, record in enumerate(records):
        batch.headers.append(record.headers)
        try:
            event, data = parse_cloudevent_and_data(record.value or b"")
        except InvalidEvent as error:
            log.error(
                "dropping an invalid record from %s@%s:%s: %s", record.topic, record.partition, record.offset, error
            )
            batch.outcomes.append("rejected")
            continue
        if event.type not in accepted_types:
            batch.outcomes.append("ignored")
            continue
        for name in ("tenantid", "source", "id"):
            if (size := len(str(getattr(event, name)).encode())) > MAX_KEY_PART_BYTES:
                refused.setdefault(index, f"{name}: {size} bytes of UTF-8, over {MAX_KEY_PART_BYTES}")
        batch.positions.append(len(batch.outcomes))
        batch.events.append(event)
        batch.data.append(data)
        batch.outcomes.append("applied")
    if refused:
        raise RecordsRefused(refused)
    return batch


class RecordRefused(Exception):
    """Why one record can never be processed (its reason is what the set-aside row keeps)."""


class RecordsRefused(Exception):
    """Raised by a handler before any effect, for records it can tell it will never process (`reasons` by index
    in the records it was given): the pipeline sets them aside at once and hands it the others again."""

    def __init__(self, reasons: Mapping[int, str]) -> None:
        super().__init__(f"{len(reasons)} records refused")
        self.reasons = dict(reasons)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries of a whole batch, and of a lone record, before splitting or setting it aside
    retry_backoff_seconds: float = 0.1  # first pause between tries of a failing batch; doubles each time
    transient_backoff_seconds: float = 0.5  # first pause while the infrastructure is away; doubles each time
    transient_backoff_cap_seconds: float = 10.0  # below the drain timeout, so shutdown is never held up long

    @staticmethod
    def pause(first: float, failures: int, cap: float) -> float:
        """Exponential with "equal jitter" (AWS Architecture Blog, "Exponential Backoff and Jitter"): replicas that
        failed together do not retry together."""
        ceiling = min(cap, first * 2.0 ** max(0, failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


class SetAsideStore(Protocol):
    async def already_set_aside(self, group: str, records: Sequence[Record]) -> set[Position]: ...

    async def set_aside(self, group: str, record: Record, error: BaseException) -> bool: ...


Sleep = Callable[[float], Awaitable[None]]


class ConsumerPipeline:
    """Runs one subscriber's batches through `handle` with the failure rules of the module docstring."""

    def __init__(
        self,
        group: str,
        handle: BatchHandler,
        store: SetAsideStore,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.group = group
        self._handle = handle
        self._store = store
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._transient_failures = 0  # consecutive batches that met the infrastructure away
        # Per partition, the offset after the last batch this process settled. A batch that starts there is new
        # to this process, so none of its records can have been set aside: the lookup is skipped. A rewind, a
        # rebalance or a restart starts elsewhere (or with nothing known) and looks up.
        self._next_offset: dict[tuple[str, int], int] = {}

    async def __call__(self, raw: Any) -> None:
        """The subscriber's body: process the batch, count its outcomes; re-raise only what rewinds it."""
        records = records_of(raw)
        started = time.perf_counter()
        try:
            with consuming_batch(
                f"{records[0].topic} process batch" if records else "process batch",
                [record.headers for record in records],
            ):
                outcomes = await self.process(records)
        except Exception as error:
            for record in records:
                EVENTS_CONSUMED.labels(record.topic, "error").inc()
            await self.wait_out(error, len(records))
            raise
        self._transient_failures = 0
        per_record = (time.perf_counter() - started) / max(1, len(records))
        for record, outcome in zip(records, outcomes, strict=True):
            EVENTS_CONSUMED.labels(record.topic, outcome).inc()
            PROCESSING_SECONDS.labels(record.topic).observe(per_record)

    async def wait_out(self, error: BaseException, size: int) -> None:
        """The pause before a batch that met the infrastructure away is delivered again."""
        self._transient_failures += 1
        policy = self._policy
        pause = policy.pause(
            policy.transient_backoff_seconds, self._transient_failures, policy.transient_backoff_cap_seconds
        )
        log.warning(
            "%s: a batch of %d records met the infrastructure away (%s); it is delivered again in %.1f s "
            "(failure %d in a row)",
            self.group,
            size,
            describe(error)[:LOGGED_REASON_CHARS],
            pause,
            self._transient_failures,
        )
        await self._sleep(pause)

    async def process(self, records: Sequence[Record]) -> list[str]:
        """One outcome per record: the handler's, `set_aside` for a record that failed alone, `skipped` for one
        set aside before. Raises only transient errors (after which nothing of the batch is assumed done)."""
        partitions = {(record.topic, record.partition) for record in records}
        try:
            done = set() if self._continues(records) else await self._store.already_set_aside(self.group, records)
            pending = [
                index
                for index, record in enumerate(records)
                if (record.topic, record.partition, record.offset) not in done
            ]
            outcomes = ["skipped"] * len(records)
            settled = await self._settle([records[index] for index in pending], self._policy.attempts)
        except BaseException:
            for partition in partitions:  # some of the batch may be set aside by now: the redelivery looks up
                self._next_offset.pop(partition, None)
            raise
        for index, outcome in zip(pending, settled, strict=True):
            outcomes[index] = outcome
        for record in records:
            self._next_offset[(record.topic, record.partition)] = record.offset + 1
        return outcomes

    def _continues(self, records: Sequence[Record]) -> bool:
        """Whether, on every partition, the batch starts where the last one this process settled ended."""
        starts: dict[tuple[str, int], int] = {}
        for record in records:  # a partition's records come in offset order
            starts.setdefault((record.topic, record.partition), record.offset)
        return bool(starts) and all(self._next_offset.get(partition) == start for partition, start in starts.items())

    async def _settle(self, records: Sequence[Record], attempts: int) -> list[str]:
        """Handle `records`, retrying `attempts` times; then split, or set aside a lone record."""
        if not records:
            return []
        failures = 0
        while True:
            try:
                outcomes = list(await self._handle(records))
            except RecordsRefused as refused:
                return await self._set_aside_refused(records, refused, attempts)
            except Exception as error:
                if is_unavailable(error):
                    raise
                failures += 1
                if failures < attempts:
                    log.warning(
                        "%s: %d records failed (%s), try %d of %d",
                        self.group,
                        len(records),
                        describe(error)[:LOGGED_REASON_CHARS],
                        failures,
                        attempts,
                    )
                    await self._sleep(self._policy.pause(self._policy.retry_backoff_seconds, failures, 5.0))
                    continue
                if len(records) > 1:
                    middle = len(records) // 2
                    log.warning(
                        "%s: %d records keep failing (%s); splitting them to find the one at fault",
                        self.group,
                        len(records),
                        describe(error)[:LOGGED_REASON_CHARS],
                    )
                    # Halves of more than one record get one try: a failure just splits further.
                    halves = records[:middle], records[middle:]
                    return [
                        outcome
                        for half in halves
                        for outcome in await self._settle(half, self._policy.attempts if len(half) == 1 else 1)
                    ]
                await self._set_aside(records[0], error, tries=failures)
                return ["set_aside"]
            if len(outcomes) != len(records):
                raise RuntimeError(
                    f"{self.group}: the handler returned {len(outcomes)} outcomes for {len(records)} records"
                )
            return outcomes

    async def _set_aside_refused(self, records: Sequence[Record], refused: RecordsRefused, attempts: int) -> list[str]:
        outcomes: dict[int, str] = {}
        for index, reason in sorted(refused.reasons.items()):
            await self._set_aside(records[index], RecordRefused(reason), tries=1)
            outcomes[index] = "set_aside"
        others = [index for index in range(len(records)) if index not in outcomes]
        settled = await self._settle([records[index] for index in others], attempts)
        outcomes.update(zip(others, settled, strict=True))
        return [outcomes[index] for index in range(len(records))]

    async def _set_aside(self, record: Record, error: BaseException, tries: int) -> None:
        key = record.key.decode("utf-8", "replace") if record.key else None
        with log_context(kafka_key=key, topic=record.topic, tenant=tenant_of(record)):
            first = await self._store.set_aside(self.group, record, error)
            log.error(
                "%s: set aside %s@%s:%s after %d tries: %s%s",
                self.group,
                record.topic,
                record.partition,
                record.offset,
                tries,
                describe(error),
                "" if first else " (already set aside)",
                exc_info=None if isinstance(error, RecordRefused) else error,
            )
