"""Accepting events: HTTP events, native webhooks and Kafka ingest records in; canonical events out.

All three paths apply the same acceptance rules (`intake.domain`) and end in one transaction that writes
the dedup ledger row, the archive, the outbox row (or the dead letter) and the rejection record together:
a retried request or a redelivered record is `duplicate` and never a second canonical event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
from prometheus_client import Counter

from intake.domain import (
    EventResult,
    Limits,
    Outcome,
    Rejected,
    Routed,
    accept,
    check_values,
    first_occurrences,
    parse_json,
)
from intake.domain.acceptance import reject_result
from intake.domain.adapters import ADAPTERS, Snapshot
from intake.domain.mapping import System, TicketMapping, effective_mapping
from intake.repository import Rejection, db_text
from slm_shared.logging import log_context
from slm_shared.outbox import OutgoingEvent, OutgoingRecord
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka.structs import ConsumerRecord

    from intake.ports import IntakeUnitOfWorkPort, IntakeUnitsOfWork
    from intake.settings import IntakeSettings

log = logging.getLogger(__name__)

EVENTS = Counter("intake_events_total", "Events received by intake", ["channel", "outcome"])
REJECTIONS = Counter("intake_rejections_total", "Events rejected by intake", ["channel", "code"])

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def limits_of(settings: IntakeSettings) -> Limits:
    return Limits(
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        max_event_bytes=settings.max_event_bytes,
        earliest_time=settings.earliest_event_time.astimezone(UTC),
        latest_time=settings.latest_event_time.astimezone(UTC),
        max_age=timedelta(days=settings.max_event_age_days),
    )


def _storage_fault(error: sa.exc.DBAPIError) -> bool:
    """A fault of the data (a value PostgreSQL refuses), not of the database: retrying would fail again."""
    return isinstance(error, sa.exc.DataError | sa.exc.IntegrityError) and not error.connection_invalidated


def _count(channel: str, results: Sequence[EventResult]) -> None:
    for result in results:
        EVENTS.labels(channel, result.outcome).inc()
        if result.code is not None:
            REJECTIONS.labels(channel, result.code).inc()


@dataclass(frozen=True)
class _Validated:
    routed: list[tuple[int, Routed, bytes | None]]
    rejected: dict[int, tuple[Rejected, Any, bytes | None]]

    @cached_property
    def ids(self) -> dict[int, str]:
        """Event id by index: looking each one up in `routed` made a batch's results quadratic."""
        return {index: item.event.id for index, item, _ in self.routed}


class EventIntake:
    """Accepts events for a tenant: validated, deduplicated on (tenantid, source, id), archived, routed.

    Idempotent: the ledger row and the outbox row are written in the same transaction.
    """

    def __init__(
        self,
        units: IntakeUnitsOfWork,
        settings: IntakeSettings,
        now: Now = utc_now,
    ) -> None:
        self._units = units
        self._topic_prefix = settings.output_topic_prefix
        self._limits = limits_of(settings)
        self._dead_letter_topic = settings.dead_letter_topic
        self._now = now

    def _validate(self, tenant_id: str | None, items: Sequence[tuple[Any, bytes | None]]) -> _Validated:
        now = self._now()
        routed: list[tuple[int, Routed, bytes | None]] = []
        rejected: dict[int, tuple[Rejected, Any, bytes | None]] = {}
        for index, (document, raw) in enumerate(items):
            try:
                routed.append((index, accept(document, tenant_id=tenant_id, now=now, limits=self._limits), raw))
            except Rejected as error:
                rejected[index] = (error, document, raw)
            except Exception as error:  # a bug in a rule must cost one event, never the batch
                log.exception("validating event %s failed", index)
                rejected[index] = (
                    Rejected("internal_error", f"body: could not be validated ({type(error).__name__})"),
                    document,
                    raw,
                )
        return _Validated(routed, rejected)

    async def accept_batch(
        self, tenant_id: str, items: Sequence[tuple[Any, bytes | None]], channel: str = "http"
    ) -> list[EventResult]:
        """Per event `accepted | duplicate | rejected`; one bad event never fails the others."""
        validated = self._validate(tenant_id, items)
        outcomes = await self._store(channel, validated, tenant_id=tenant_id)
        results = [self._result(index, validated, outcomes) for index in range(len(items))]
        _count(channel, results)
        return results

    async def accept_webhook(self, tenant_id: str, system: System, body: bytes) -> list[EventResult]:
        """A native webhook: mapped with the tenant's mapping for `system` and the ticket's last archived
        snapshot (for what the payload leaves out), then the same rules; one result per canonical event."""
        try:
            payload = parse_json(body)
            check_values(payload)
            adapter = ADAPTERS[system]
            async with self._units() as uow:
                override = await uow.mappings.override(tenant_id, system)
                ref = adapter.ref(payload)
                previous = None if ref is None else await uow.received.last_snapshot(tenant_id, ref)
            documents = _adapted(system, payload, effective_mapping(system, override), previous)
        except Rejected as error:
            return await self.accept_mapped(tenant_id, f"webhook:{system}", [(error, body)])
        return await self.accept_mapped(tenant_id, f"webhook:{system}", [(document, body) for document in documents])

    async def accept_mapped(
        self, tenant_id: str, channel: str, items: Sequence[tuple[dict[str, Any] | Rejected, bytes | None]]
    ) -> list[EventResult]:
        """Canonical events an adapter made (or its rejections), through the same rules, in one transaction."""
        validated = self._validate(tenant_id, [(None if isinstance(d, Rejected) else d, raw) for d, raw in items])
        for index, (document, raw) in enumerate(items):
            if isinstance(document, Rejected):
                validated.rejected[index] = (document, None, raw)
        validated = _Validated(
            [entry for entry in validated.routed if entry[0] not in validated.rejected], validated.rejected
        )
        outcomes = await self._store(channel, validated, tenant_id=tenant_id)
        results = [self._result(index, validated, outcomes) for index in range(len(items))]
        _count(channel, results)
        return results

    def _result(self, index: int, validated: _Validated, outcomes: dict[int, Outcome | Rejected]) -> EventResult:
        if index in validated.rejected:
            error, document, _ = validated.rejected[index]
            return reject_result(index, document, error)
        outcome = outcomes[index]
        event_id = validated.ids[index]
        if isinstance(outcome, Rejected):
            return EventResult(index, "rejected", event_id, outcome.reason, outcome.code)
        return EventResult(index, outcome, event_id)

    async def _store(
        self,
        channel: str,
        validated: _Validated,
        *,
        tenant_id: str | None,
        dead_letters: Sequence[tuple[Record, Rejected]] = (),
        known_tenants_only: bool = False,
    ) -> dict[int, Outcome | Rejected]:
        """One transaction for everything; if PostgreSQL refuses a value, one transaction per event."""
        try:
            async with self._units() as uow:
                stored = await self._write(uow, channel, validated, tenant_id, dead_letters, known_tenants_only)
                await uow.commit()
                return stored
        except sa.exc.DBAPIError as error:
            if not _storage_fault(error):
                raise
            log.warning("a batch could not be stored (%s); storing its events one by one", type(error.orig).__name__)
        outcomes: dict[int, Outcome | Rejected] = {}
        for entry in validated.routed:
            try:
                async with self._units() as uow:
                    outcomes.update(
                        await self._write(uow, channel, _Validated([entry], {}), tenant_id, (), known_tenants_only)
                    )
                    await uow.commit()
            except sa.exc.DBAPIError as error:
                if not _storage_fault(error):
                    raise
                log.warning("event %s could not be stored: %s", entry[1].event.id, type(error.orig).__name__)
                outcomes[entry[0]] = Rejected("storage_error", "body: a value could not be stored")
        async with self._units() as uow:
            await self._write(uow, channel, _Validated([], validated.rejected), tenant_id, dead_letters, False)
            await uow.commit()
        return outcomes

    async def _write(
        self,
        uow: IntakeUnitOfWorkPort,
        channel: str,
        validated: _Validated,
        tenant_id: str | None,
        dead_letters: Sequence[tuple[Record, Rejected]],
        known_tenants_only: bool,
    ) -> dict[int, Outcome | Rejected]:
        outcomes: dict[int, Outcome | Rejected] = {}
        routed = validated.routed
        if known_tenants_only and routed:
            known = await uow.tenants.known({item.event.tenantid for _, item, _ in routed})
            for index, item, _ in routed:
                if item.event.tenantid not in known:
                    outcomes[index] = Rejected(
                        "unknown_tenant", f"tenantid: {item.event.tenantid[:64]!r} has no active API key"
                    )
            routed = [entry for entry in routed if entry[0] not in outcomes]
        outcomes.update(await self._record(uow, channel, routed))
        rejections = [
            Rejection(error.code, error.reason, _id_of(document), raw, tenant_id)
            for error, document, raw in validated.rejected.values()
        ]
        await uow.rejections.add(channel, rejections)
        for record, error in dead_letters:
            await self._dead_letter(uow, record, error)
        return outcomes

    async def _record(
        self, uow: IntakeUnitOfWorkPort, channel: str, items: Sequence[tuple[int, Routed, bytes | None]]
    ) -> dict[int, Outcome]:
        """Ledger rows for the events not seen before and their outbox rows; `duplicate` for the others.

        The outbox rows keep the batch's order, which is the order one ticket's events are published in.
        """
        outcomes: dict[int, Outcome] = {index: "duplicate" for index, _, _ in items}
        raws = {index: raw for index, _, raw in items}
        firsts = [(index, item) for index, item, first in first_occurrences([(i, r) for i, r, _ in items]) if first]
        if not firsts:
            return outcomes
        inserted = await uow.received.insert_new(channel, [(item, raws[index]) for index, item in firsts])
        outgoing = []
        for index, item in firsts:
            if item.dedup_key in inserted:
                outcomes[index] = "accepted"
                outgoing.append(OutgoingEvent(topic=self._topic_prefix + item.topic, key=item.key, event=item.event))
        await uow.outbox.add(outgoing)
        return outcomes

    async def _dead_letter(self, uow: IntakeUnitOfWorkPort, record: Record, error: Rejected) -> None:
        """The record's original bytes to the DLQ topic, with why and where from in its headers."""
        headers = {
            "dlq-code": error.code,
            "dlq-reason": db_text(error.reason, 1024) or "",
            "dlq-topic": record.topic,
            "dlq-partition": str(record.partition),
            "dlq-offset": str(record.offset),
            "dlq-at": self._now().isoformat(),
        }
        for name, value in record.headers or ():
            try:
                headers.setdefault(f"original-{name}", value.decode("utf-8").replace("\x00", ""))
            except (UnicodeDecodeError, AttributeError):
                continue
        key = db_text(record.key.decode("utf-8", "replace") if record.key else "", 1024) or ""
        # The bytes as received, byte for byte: a dead letter is what the sender sent, not what intake parsed.
        await uow.outbox.add([OutgoingRecord(self._dead_letter_topic, key, record.value or b"", headers)])
        await uow.rejections.add("kafka", [Rejection(error.code, error.reason, None, record.value)])

    async def on_ingest_records(self, records: Sequence[Record]) -> list[str]:
        """A poll's records from `itsm.ingest.v1`: valid ones accepted, invalid ones dead-lettered; one outcome
        per record (`accepted`, `duplicate`, `rejected`).

        Idempotent: one transaction for the batch holds the ledger rows, outbox rows and dead letters; the
        offsets are committed after it (the consumer pipeline retries or splits the batch if it fails, and the
        ledger turns the records already accepted into duplicates). The tenant is the event's `tenantid`, which
        must have an active API key.
        """
        documents: list[tuple[Any, bytes | None]] = []
        unparsed: dict[int, Rejected] = {}
        for index, record in enumerate(records):
            try:
                documents.append((parse_json(record.value or b""), record.value))
            except Rejected as error:
                unparsed[index] = error
                documents.append((None, record.value))
        validated = self._validate(None, [(None if i in unparsed else d, raw) for i, (d, raw) in enumerate(documents)])
        for index, fault in unparsed.items():
            validated.rejected[index] = (fault, None, documents[index][1])
        rejected = dict(validated.rejected)
        outcomes = await self._store(
            "kafka",
            _Validated(validated.routed, {}),
            tenant_id=None,
            known_tenants_only=True,
            dead_letters=[(records[index], fault) for index, (fault, _, _) in sorted(rejected.items())],
        )
        late_rejects = [(index, outcome) for index, outcome in outcomes.items() if isinstance(outcome, Rejected)]
        if late_rejects:  # unknown tenant or a refused value: dead-letter them too, in their own transaction
            async with self._units() as uow:
                for index, fault in late_rejects:
                    await self._dead_letter(uow, records[index], fault)
                    rejected[index] = (fault, documents[index][0], records[index].value)
                await uow.commit()
        results = []
        for index, record in enumerate(records):
            if index in rejected:
                fault, document, _ = rejected[index]
                result = reject_result(index, document, fault)
                with log_context(topic=record.topic, tenant=_tenant_of(document)):
                    log.info("dead-lettered %s@%s:%s: %s", record.topic, record.partition, record.offset, fault)
            else:
                outcome = outcomes[index]
                assert not isinstance(outcome, Rejected)
                result = EventResult(index, outcome)
            results.append(result)
        _count("kafka", results)
        return [result.outcome for result in results]


def _adapted(system: System, payload: Any, mapping: TicketMapping, previous: Snapshot | None) -> list[dict[str, Any]]:
    """The adapter's canonical events; any fault of the payload (or an adapter bug) is a rejection, never a 500."""
    try:
        documents = ADAPTERS[system].events(payload, mapping, previous)
        if not documents:
            raise Rejected(
                "invalid_webhook",
                f"body: the {system} payload holds no change intake takes (a rating only offered, say)",
            )
        return documents
    except Rejected:
        raise
    except Exception as error:
        log.warning("the %s adapter could not map a webhook", system, exc_info=True)
        raise Rejected(
            "invalid_webhook", f"body: the {system} payload cannot become a ticket event ({type(error).__name__})"
        ) from error


def _id_of(document: Any) -> str | None:
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _tenant_of(document: Any) -> str | None:
    value = document.get("tenantid") if isinstance(document, dict) else None
    return db_text(value, 128) if isinstance(value, str) else None
