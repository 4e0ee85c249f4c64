"""In-memory adapters of the sla-engine's ports (sla_engine/ports.py), for handler tests without a database.

One `FakeStore` holds what the tables would; `FakeUnitOfWork` works on it and, like a transaction, puts it
back as it was when left without `commit` (a deep copy taken on entry). The fakes keep the rules the handlers
rely on (the inbox drops a key seen before, a new snapshot makes its ticket due unless the tenant has no
configuration, a reschedule moves or clears the timer) and nothing of the SQL's concurrency (marks, locks).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sla_engine.clocks.publication import ReconciledTicket
from sla_engine.domain.reconciliation import TicketState
from sla_engine.domain.slo.definition import ThresholdSli
from sla_engine.domain.slo.rollups import AvailabilityMinute, MaintenanceWindow, RatioMinute, StateChange
from sla_engine.domain.slo.series import MinuteSeries, ratio_counts
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.ports import (
    EVENTS_DUE,
    BundleSource,
    ConfigVersion,
    DueTimer,
    StoredEvaluation,
    StoredSnapshot,
    VersionKey,
)
from slm_shared.events import CloudEvent
from slm_shared.outbox import OutgoingEvent, OutgoingRecord
from tests.unit.in_memory_units import InMemoryDatabase, InMemoryUnitOfWork

Pair = tuple[str, str]


@dataclass
class FakeStore:
    """The engine's tables, in memory."""

    inbox: set[tuple[str, str, str, str]] = field(default_factory=set)  # consumer, tenant, source, event id
    snapshots: dict[Pair, list[TicketSnapshot]] = field(default_factory=dict)
    arrivals: int = 0
    timers: dict[Pair, DueTimer] = field(default_factory=dict)
    versions: dict[str, list[str]] = field(default_factory=dict)  # tenant: source texts, version 1 first
    pins: dict[Pair, int] = field(default_factory=dict)
    emitted: dict[Pair, set[Any]] = field(default_factory=dict)
    clocks: dict[Pair, list[dict[str, Any]]] = field(default_factory=dict)
    sequences: dict[Pair, dict[Any, int]] = field(default_factory=dict)
    outbox: list[OutgoingEvent | OutgoingRecord] = field(default_factory=list)
    ratio_minutes: dict[tuple[str, str, str], dict[datetime, tuple[int, int]]] = field(default_factory=dict)
    evaluations: dict[tuple[str, str], StoredEvaluation] = field(default_factory=dict)


class FakeTicketEvents:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def store_snapshots(
        self, consumer: str, snapshots: Sequence[StoredSnapshot], now: datetime
    ) -> tuple[set[tuple[str, str, str]], int]:
        fresh: set[tuple[str, str, str]] = set()
        touched: set[Pair] = set()
        for stored in snapshots:
            key = (consumer, stored.tenant_id, stored.source, stored.event_id)
            if key in self._store.inbox:
                continue
            self._store.inbox.add(key)
            fresh.add(key[1:])
            data = json.loads(stored.snapshot)
            self._store.arrivals += 1
            self._store.snapshots.setdefault((stored.tenant_id, stored.ticket_id), []).append(
                TicketSnapshot(
                    event_id=stored.event_id,
                    time=stored.event_time,
                    arrival=self._store.arrivals,
                    ticket_id=stored.ticket_id,
                    action=data["action"],
                    kind=data["kind"],
                    status=data["status"],
                    priority=data["priority"],
                    service=data["service"],
                    customer=data["customer"],
                    assignment_group=data.get("assignment_group"),
                    assignee=data.get("assignee"),
                    attributes=data.get("attributes") or {},
                )
            )
            if stored.tenant_id in self._store.versions:
                touched.add((stored.tenant_id, stored.ticket_id))
        for pair in touched:
            timer = self._store.timers.get(pair)
            if timer is None or now < timer.due_at:
                self._store.timers[pair] = DueTimer(*pair, now, EVENTS_DUE)
        return fresh, len(touched)

    async def lock_ticket(self, tenant_id: str, ticket_id: str) -> None:
        """Nothing: one test, one task."""

    async def timeline(self, tenant_id: str, ticket_id: str) -> list[TicketSnapshot]:
        return sorted(self._store.snapshots.get((tenant_id, ticket_id), []), key=lambda s: (s.time, s.arrival))

    async def tickets(self, tenant_id: str, *, only_open: bool) -> list[str]:
        return sorted(
            ticket
            for (tenant, ticket), rows in self._store.clocks.items()
            if tenant == tenant_id and (not only_open or any(row["state"] in ("running", "paused") for row in rows))
        )

    async def tickets_active_between(self, tenant_id: str, start: datetime, end: datetime) -> list[str]:
        return sorted(
            ticket
            for (tenant, ticket), rows in self._store.snapshots.items()
            if tenant == tenant_id and any(start <= row.time < end for row in rows)
        )


class FakeClockStates:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def load_states(self, pairs: Sequence[Pair]) -> list[tuple[TicketState, VersionKey | None]]:
        loaded: list[tuple[TicketState, VersionKey | None]] = []
        for tenant, ticket in pairs:
            pair = (tenant, ticket)
            state = TicketState(
                tenant,
                ticket,
                timeline=await FakeTicketEvents(self._store).timeline(tenant, ticket),
                pinned=pair in self._store.pins,
                emitted=set(self._store.emitted.get(pair, set())),
                saved={
                    (row["policy_id"], row["metric"], row["cycle"]): copy.deepcopy(row["clock"])
                    for row in self._store.clocks.get(pair, [])
                },
                sequences=dict(self._store.sequences.get(pair, {})),
            )
            version = self._store.pins.get(pair, len(self._store.versions.get(tenant, [])) or None)
            loaded.append((state, None if version is None else (tenant, version)))
        return loaded

    async def save_reconciliations(self, results: Sequence[ReconciledTicket], now: datetime) -> None:
        for result in results:
            pair = (result.tenant_id, result.ticket_id)
            emitted = self._store.emitted.setdefault(pair, set())
            emitted |= set(result.published)
            emitted -= set(result.retracted)
            self._store.sequences.setdefault(pair, {}).update(result.sequences)
            self._store.clocks[pair] = result.clock_rows()
            if result.pin_version is not None:
                self._store.pins.setdefault(pair, result.pin_version)

    async def count_clocks(self) -> dict[tuple[str, bool], int]:
        counts: dict[tuple[str, bool], int] = {}
        for rows in self._store.clocks.values():
            for row in rows:
                counts[(row["state"], row["breached"])] = counts.get((row["state"], row["breached"]), 0) + 1
        return counts


class FakeDueQueue:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def due_tickets(
        self,
        now: datetime,
        limit: int,
        per_tenant: int,
        caps: Mapping[str, int] | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> list[DueTimer]:
        due = sorted((t for t in self._store.timers.values() if t.due_at <= now), key=lambda t: t.due_at)
        return due[:limit]

    async def next_timer_due(self) -> datetime | None:
        return min((t.due_at for t in self._store.timers.values()), default=None)

    async def read_marks(self, pairs: Sequence[Pair]) -> None:
        """Nothing: no consumer runs beside a unit test's round."""

    async def reschedule(self, timers: Sequence[tuple[str, str, tuple[datetime, str] | None]]) -> None:
        for tenant, ticket, timer in timers:
            if timer is None:
                self._store.timers.pop((tenant, ticket), None)
            else:
                self._store.timers[(tenant, ticket)] = DueTimer(tenant, ticket, timer[0], timer[1])


class FakeBundleVersions:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def bundle_sources(self, versions: Sequence[VersionKey]) -> dict[VersionKey, BundleSource]:
        return {
            (tenant, version): BundleSource(tenant, version, self._store.versions[tenant][version - 1])
            for tenant, version in versions
            if 0 < version <= len(self._store.versions.get(tenant, []))
        }

    async def latest_config(self, tenant_id: str) -> ConfigVersion | None:
        raise NotImplementedError  # the HTTP query, not a handler's

    async def latest_source(self, tenant_id: str, *, only_with_slos: bool = False) -> BundleSource | None:
        texts = self._store.versions.get(tenant_id, [])
        if not texts or (only_with_slos and "slos:" not in texts[-1]):
            return None
        return BundleSource(tenant_id, len(texts), texts[-1])

    async def config(self, tenant_id: str, version: int) -> BundleSource | None:
        return (await self.bundle_sources([(tenant_id, version)])).get((tenant_id, version))

    async def config_for_ticket(self, tenant_id: str, ticket_id: str, first_event_at: datetime) -> BundleSource | None:
        pinned = self._store.pins.get((tenant_id, ticket_id))
        if pinned is not None:
            return await self.config(tenant_id, pinned)
        latest = await self.latest_source(tenant_id)
        if latest is not None:
            self._store.pins[(tenant_id, ticket_id)] = latest.version
        return latest

    async def pin_version(self, tenant_id: str, ticket_ids: Sequence[str], version: int) -> None:
        for ticket_id in ticket_ids:
            self._store.pins[(tenant_id, ticket_id)] = version

    async def add_config(self, tenant_id: str, bundle: dict[str, Any], source_text: str) -> int:
        self._store.versions.setdefault(tenant_id, []).append(source_text)
        return len(self._store.versions[tenant_id])

    async def tenants_with_config(self) -> list[str]:
        return sorted(self._store.versions)


class FakeSloSignals:
    """Nothing stored: the SLO handler test drives ratio SLIs (good/total measurements) only."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def add_state_changes(self, rows: Sequence[dict[str, Any]]) -> None:
        assert not rows, "availability signals are not faked"

    async def upsert_maintenance(self, rows: Sequence[dict[str, Any]]) -> None:
        assert not rows, "maintenance signals are not faked"

    async def add_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        assert not rows, "threshold samples are not faked"

    async def lock_samples_shared(self, tenant_ids: Sequence[str]) -> None:
        """Nothing: one test, one task."""

    async def lock_samples_exclusive(self, tenant_id: str) -> None:
        """Nothing: one test, one task."""

    async def purge_samples(self, before: datetime) -> int:
        return 0

    async def state_changes_since(self, tenant_id: str, service: str, since: datetime) -> list[StateChange]:
        return []

    async def first_state_change(self, tenant_id: str, service: str) -> datetime | None:
        return None

    async def maintenance_between(
        self, tenant_id: str, service: str, start: datetime, end: datetime
    ) -> list[MaintenanceWindow]:
        return []


class FakeSloRollups:
    """Ratio minutes only, added to as the SQL adds them."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def add_ratio_minutes(self, tenant_id: str, service: str, sli: str, rows: Sequence[RatioMinute]) -> None:
        minutes = self._store.ratio_minutes.setdefault((tenant_id, service, sli), {})
        for row in rows:
            good, total = minutes.get(row.minute, (0, 0))
            minutes[row.minute] = (good + row.good, total + row.total)

    async def rebuild_threshold_series(self, tenant_id: str, service: str, threshold: ThresholdSli) -> None:
        raise NotImplementedError

    async def lock_availability(self, tenant_id: str, service: str) -> None:
        """Nothing: one test, one task."""

    async def replace_availability_minutes(
        self, tenant_id: str, service: str, since: datetime, rows: Sequence[AvailabilityMinute]
    ) -> None:
        raise NotImplementedError

    async def last_availability_minute(self, tenant_id: str, service: str) -> datetime | None:
        return None


class FakeSloSeries:
    """Ratio series only, read from the ratio minutes."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def availability_series(
        self,
        tenant_id: str,
        service: str,
        start: datetime,
        end: datetime,
        degraded_weight: Decimal,
        split: datetime | None = None,
    ) -> MinuteSeries:
        raise NotImplementedError

    async def ratio_series(
        self, tenant_id: str, service: str, sli: str, start: datetime, end: datetime, split: datetime | None = None
    ) -> MinuteSeries:
        minutes = self._store.ratio_minutes.get((tenant_id, service, sli), {})
        return ratio_counts(
            [
                RatioMinute(minute, good, total)
                for minute, (good, total) in sorted(minutes.items())
                if start <= minute < end
            ]
        )

    async def ticket_sla_minutes(
        self,
        tenant_id: str,
        service: str,
        policy: str,
        metric: str,
        priorities: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[RatioMinute]:
        return []


class FakeSloEvaluations:
    """Each SLO's stored evaluation."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def lock_evaluation(self, tenant_id: str, slo_id: str) -> StoredEvaluation:
        return self._store.evaluations.get((tenant_id, slo_id), StoredEvaluation(frozenset(), None, None))

    async def save_evaluation(
        self,
        tenant_id: str,
        slo_id: str,
        firing: frozenset[str],
        status: dict[str, Any] | None,
        published_at: datetime | None,
    ) -> None:
        self._store.evaluations[(tenant_id, slo_id)] = StoredEvaluation(firing, status, published_at)


class FakeOutbox:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def add(self, events: Sequence[OutgoingEvent | OutgoingRecord]) -> None:
        self._store.outbox.extend(events)


class FakeInbox:
    """The signal consumer's inbox."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def first_deliveries(self, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        fresh = []
        for event in events:
            key = ("sla-engine.signals", event.tenantid, event.source, event.id)
            if key not in self._store.inbox:
                self._store.inbox.add(key)
                fresh.append(event)
        return fresh


class FakeUnitOfWork(InMemoryUnitOfWork[FakeStore]):
    """Satisfies `sla_engine.ports.EngineUnit`: its repositories work on the unit's copy of the store."""

    def _open(self, work: FakeStore) -> None:
        self.tickets = FakeTicketEvents(work)
        self.states = FakeClockStates(work)
        self.timers = FakeDueQueue(work)
        self.bundles = FakeBundleVersions(work)
        self.signals = FakeSloSignals(work)
        self.rollups = FakeSloRollups(work)
        self.series = FakeSloSeries(work)
        self.evaluations = FakeSloEvaluations(work)
        self.outbox = FakeOutbox(work)
        self.inbox = FakeInbox(work)

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        return _savepoint(self._work)


@asynccontextmanager
async def _savepoint(store: FakeStore) -> AsyncIterator[object]:
    before = copy.deepcopy(store)
    try:
        yield store
    except BaseException:
        vars(store).update(vars(before))
        raise


class FakeUnits(InMemoryDatabase[FakeStore]):
    """The unit-of-work factory: the committed store, and every unit it made, in order, for the test to inspect."""

    def __init__(self, store: FakeStore | None = None) -> None:
        super().__init__(store or FakeStore())

    @property
    def store(self) -> FakeStore:
        return self.state

    @property
    def made(self) -> list[InMemoryUnitOfWork[FakeStore]]:
        return self.units

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)
