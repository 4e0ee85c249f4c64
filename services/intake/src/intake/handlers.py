"""Intake's handlers: HTTP events, native webhooks and Kafka ingest records in; canonical events out.

All three paths apply the same acceptance rules (`intake.domain`) and end in one transaction that writes
the dedup ledger row, the archive, the outbox row (or the dead letter) and the rejection record together:
a retried request or a redelivered record is `duplicate` and never a second canonical event.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeAlias

import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake.domain import EventResult, Limits, Outcome, Rejected, Routed, accept, check_values, parse_json, route
from intake.domain.acceptance import reject_result
from intake.domain.adapters import ADAPTERS, Snapshot
from intake.domain.mapping import System, TicketMapping, effective_mapping
from intake.repository import ArchivedEvent, IntakeRepository, Rejection, db_text
from intake.settings import IntakeSettings
from intake.webhook_secrets import WebhookSecrets
from slm_shared.background import PeriodicTask, for_each_isolated
from slm_shared.events import CloudEvent
from slm_shared.logging import log_context
from slm_shared.outbox import OutgoingEvent

log = logging.getLogger(__name__)

EVENTS = Counter("intake_events_total", "Events received by intake", ["channel", "outcome"])
REJECTIONS = Counter("intake_rejections_total", "Events rejected by intake", ["channel", "code"])

Now = Callable[[], datetime]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def utc_now() -> datetime:
    return datetime.now(UTC)


def limits_of(settings: IntakeSettings) -> Limits:
    return Limits(max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
                  max_event_bytes=settings.max_event_bytes, earliest_time=settings.earliest_event_time.astimezone(UTC),
                  latest_time=settings.latest_event_time.astimezone(UTC),
                  max_age=timedelta(days=settings.max_event_age_days))


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
        sessions: async_sessionmaker[AsyncSession],
        repository: IntakeRepository,
        settings: IntakeSettings,
        now: Now = utc_now,
    ) -> None:
        self._sessions = sessions
        self._repository = repository
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
                rejected[index] = (Rejected("internal_error", f"body: could not be validated ({type(error).__name__})"),
                                   document, raw)
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
            async with self._sessions() as session:
                override = await self._repository.mapping_override(session, tenant_id, system)
                ref = adapter.ref(payload)
                previous = None if ref is None else await self._repository.last_snapshot(session, tenant_id, ref)
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
        validated = _Validated([entry for entry in validated.routed if entry[0] not in validated.rejected],
                               validated.rejected)
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
            async with self._sessions() as session, session.begin():
                return await self._write(session, channel, validated, tenant_id, dead_letters, known_tenants_only)
        except sa.exc.DBAPIError as error:
            if not _storage_fault(error):
                raise
            log.warning("a batch could not be stored (%s); storing its events one by one", type(error.orig).__name__)
        outcomes: dict[int, Outcome | Rejected] = {}
        for entry in validated.routed:
            try:
                async with self._sessions() as session, session.begin():
                    outcomes.update(await self._write(
                        session, channel, _Validated([entry], {}), tenant_id, (), known_tenants_only))
            except sa.exc.DBAPIError as error:
                if not _storage_fault(error):
                    raise
                log.warning("event %s could not be stored: %s", entry[1].event.id, type(error.orig).__name__)
                outcomes[entry[0]] = Rejected("storage_error", "body: a value could not be stored")
        async with self._sessions() as session, session.begin():
            await self._write(session, channel, _Validated([], validated.rejected), tenant_id, dead_letters, False)
        return outcomes

    async def _write(
        self,
        session: AsyncSession,
        channel: str,
        validated: _Validated,
        tenant_id: str | None,
        dead_letters: Sequence[tuple[Record, Rejected]],
        known_tenants_only: bool,
    ) -> dict[int, Outcome | Rejected]:
        outcomes: dict[int, Outcome | Rejected] = {}
        routed = validated.routed
        if known_tenants_only and routed:
            known = await self._repository.known_tenants(session, {item.event.tenantid for _, item, _ in routed})
            for index, item, _ in routed:
                if item.event.tenantid not in known:
                    outcomes[index] = Rejected(
                        "unknown_tenant", f"tenantid: {item.event.tenantid[:64]!r} has no active API key")
            routed = [entry for entry in routed if entry[0] not in outcomes]
        outcomes.update(await self._repository.record(session, channel, routed))
        rejections = [
            Rejection(error.code, error.reason, _id_of(document), raw, tenant_id)
            for error, document, raw in validated.rejected.values()
        ]
        await self._repository.reject(session, channel, rejections)
        for record, error in dead_letters:
            await self._dead_letter(session, record, error)
        return outcomes

    async def _dead_letter(self, session: AsyncSession, record: Record, error: Rejected) -> None:
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
        await self._repository.outbox.add_raw(session, self._dead_letter_topic, key, record.value or b"", headers)
        await self._repository.reject(session, "kafka", [Rejection(error.code, error.reason, None, record.value)])

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
            "kafka", _Validated(validated.routed, {}), tenant_id=None, known_tenants_only=True,
            dead_letters=[(records[index], fault) for index, (fault, _, _) in sorted(rejected.items())],
        )
        late_rejects = [(index, outcome) for index, outcome in outcomes.items() if isinstance(outcome, Rejected)]
        if late_rejects:  # unknown tenant or a refused value: dead-letter them too, in their own transaction
            async with self._sessions() as session, session.begin():
                for index, fault in late_rejects:
                    await self._dead_letter(session, records[index], fault)
                    rejected[index] = (fault, documents[index][0], records[index].value)
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
            raise Rejected("invalid_webhook", f"body: the {system} payload holds no change intake takes "
                                              "(a rating only offered, say)")
        return documents
    except Rejected:
        raise
    except Exception as error:
        log.warning("the %s adapter could not map a webhook", system, exc_info=True)
        raise Rejected("invalid_webhook",
                       f"body: the {system} payload cannot become a ticket event ({type(error).__name__})") from error


def _id_of(document: Any) -> str | None:
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _tenant_of(document: Any) -> str | None:
    value = document.get("tenantid") if isinstance(document, dict) else None
    return db_text(value, 128) if isinstance(value, str) else None


@dataclass(frozen=True)
class ReplaySummary:
    replay_id: str
    events: int
    skipped: int


class Replayer:
    """Re-publishes a tenant's archived canonical events of a time range through the outbox.

    Safe to repeat: every event keeps its id, so downstream inboxes skip what they already applied; a
    replay repairs consumers whose state was lost or rebuilt. Pages of `page_size` events, one transaction
    each, in event-time order; every record carries the header `slm-replay: <replay id>`.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], repository: IntakeRepository, page_size: int):
        self._sessions = sessions
        self._repository = repository
        self._page_size = page_size

    async def count(self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None) -> int:
        async with self._sessions() as session:
            return await self._repository.count_archive(session, tenant_id, start, end, types)

    async def replay(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        types: Sequence[str] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> ReplaySummary:
        replay_id = uuid.uuid4().hex
        published = skipped = 0
        after: ArchivedEvent | None = None
        while True:
            async with self._sessions() as session, session.begin():
                page = await self._repository.archive_page(
                    session, tenant_id, start, end, types, after, self._page_size)
                outgoing = []
                for archived in page:
                    try:
                        event = CloudEvent.model_validate_json(archived.canonical)
                        topic, key = route(event)
                    except (ValueError, KeyError):
                        skipped += 1
                        continue
                    outgoing.append(OutgoingEvent(topic=self._repository.topic_prefix + topic, key=key, event=event,
                                                  headers={"slm-replay": replay_id}))
                await self._repository.outbox.add(session, outgoing)
            published += len(outgoing)
            if progress is not None and page:
                progress(len(page))
            if len(page) < self._page_size:
                break
            after = page[-1]
        log.info("replay %s of tenant %s: %d events re-published, %d skipped", replay_id, tenant_id, published,
                 skipped)
        return ReplaySummary(replay_id, published, skipped)


class Purger:
    """Retention: clears archived payloads, forgets old dedup keys, drops old rejections and old signed
    webhook deliveries (kept at least twice the replay window, so a timestamped one is refused for its age
    before it is forgotten), every interval."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], repository: IntakeRepository,
                 settings: IntakeSettings, now: Now = utc_now, webhook_secrets: WebhookSecrets | None = None) -> None:
        self._webhook_secrets = webhook_secrets
        self._sessions = sessions
        self._repository = repository
        self._settings = settings
        self._now = now
        self._loop = PeriodicTask("retention purge", settings.purge_interval_seconds, self._purge_and_report)

    async def purge(self, tenant_id: str | None = None, at: datetime | None = None) -> dict[str, int]:
        at = at or self._now()
        settings = self._settings
        totals = {"archive_cleared": 0, "dedup_forgotten": 0, "rejections_dropped": 0}
        while True:
            async with self._sessions() as session, session.begin():
                counts = await self._repository.purge(
                    session,
                    archive_before=at - timedelta(days=settings.archive_retention_days),
                    dedup_before=at - timedelta(days=settings.dedup_retention_days),
                    rejected_before=at - timedelta(days=settings.rejected_retention_days),
                    tenant_id=tenant_id,
                )
            for name, value in counts.items():
                totals[name] += value
            if not any(counts.values()):
                return totals

    async def run(self) -> None:
        """Purge every `purge_interval_seconds` until stopped; a failed pass waits for the next (never urgent)."""
        await self._loop.run()

    async def stop(self) -> None:
        await self._loop.stop()

    async def purge_each_tenant(self) -> dict[str, int]:
        """One pass: each tenant's data in turn, isolated (a tenant that fails is logged and counted in
        `slm_background_failures_total{task="retention purge"}`, the others go on), then whatever no tenant
        with a key owns (rejections without a tenant)."""
        async with self._sessions() as session:
            tenants: list[str | None] = [*await self._repository.tenants_with_keys(session), None]
        at = self._now()
        passes = await for_each_isolated("retention purge", tenants, lambda tenant: self.purge(tenant, at),
                                         describe=lambda tenant: tenant or "data of no tenant")
        totals = {"archive_cleared": 0, "dedup_forgotten": 0, "rejections_dropped": 0}
        for counts in passes:
            for name, value in counts.items():
                totals[name] += value
        return totals

    async def forget_webhook_deliveries(self) -> int:
        if self._webhook_secrets is None:
            return 0
        keep = max(timedelta(days=self._settings.webhook_delivery_retention_days),
                   2 * timedelta(seconds=self._settings.webhook_replay_window_seconds))
        return await self._webhook_secrets.forget_deliveries(self._now() - keep)

    async def _purge_and_report(self) -> None:
        totals = await self.purge_each_tenant()
        totals["webhook_deliveries_forgotten"] = await self.forget_webhook_deliveries()
        if any(totals.values()):
            log.info("retention purge: %s", totals)
