"""The ports the engine's handlers, loops and HTTP queries depend on: the repositories' methods they call and
the unit of work exposing them. `unit_of_work.EngineUnitOfWork` is the PostgreSQL adapter; the handler unit
tests (tests/unit/sla_engine/fakes.py) are the in-memory one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from slm_shared.unit_of_work import InboxPort, OutboxPort, UnitOfWork

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from decimal import Decimal

    from sla_engine.clocks.publication import ReconciledTicket
    from sla_engine.domain.clocks import Clock
    from sla_engine.domain.reconciliation import TicketState
    from sla_engine.domain.slo.definition import ThresholdSli
    from sla_engine.domain.slo.rollups import AvailabilityMinute, MaintenanceWindow, RatioMinute, StateChange
    from sla_engine.domain.slo.series import MinuteSeries
    from sla_engine.domain.timeline import TicketSnapshot

# -- the values that cross the ports -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigVersion:
    tenant_id: str
    version: int
    bundle: dict[str, Any]
    source_text: str
    created_at: datetime


@dataclass(frozen=True)
class BundleSource:
    """A configuration version as parsing it needs it: its identity and source text. The stored JSONB form is
    not read: decoding it costs as much CPU as parsing, on the event loop, for every row that selects it."""

    tenant_id: str
    version: int
    source_text: str


VersionKey = tuple[str, int]  # tenant, configuration version


# The timer reason of a ticket made due by new snapshots (the others name the clock transition coming due).
EVENTS_DUE = "events"


@dataclass(frozen=True)
class StoredSnapshot:
    """One consumed snapshot as the store path writes it: `snapshot` is the stored JSON text of its data."""

    tenant_id: str
    source: str
    event_id: str
    ticket_id: str
    event_time: datetime
    snapshot: str
    traceparent: str | None = None


@dataclass(frozen=True)
class DueTimer:
    tenant_id: str
    ticket_id: str
    due_at: datetime
    reason: str = EVENTS_DUE
    traceparent: str | None = None


@dataclass(frozen=True)
class StoredEvaluation:
    firing: frozenset[str]
    status: dict[str, Any] | None
    published_at: datetime | None


# -- the ports ---------------------------------------------------------------------------------------------


class TicketEvents(Protocol):
    """Stored ticket snapshots (clocks/tickets.py)."""

    async def store_snapshots(
        self, consumer: str, snapshots: Sequence[StoredSnapshot], now: datetime
    ) -> tuple[set[tuple[str, str, str]], int]: ...

    async def lock_ticket(self, tenant_id: str, ticket_id: str) -> None: ...

    async def timeline(self, tenant_id: str, ticket_id: str) -> list[TicketSnapshot]: ...

    async def tickets(self, tenant_id: str, *, only_open: bool) -> list[str]: ...

    async def tickets_active_between(self, tenant_id: str, start: datetime, end: datetime) -> list[str]: ...


class ClockStates(Protocol):
    """What reconciling tickets reads and writes back (clocks/states.py)."""

    async def load_states(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[TicketState, VersionKey | None]]: ...

    async def save_reconciliations(self, results: Sequence[ReconciledTicket], now: datetime) -> None: ...

    async def count_clocks(self) -> dict[tuple[str, bool], int]: ...


class DueQueue(Protocol):
    """The tickets' timers (clocks/due_queue.py)."""

    async def due_tickets(
        self,
        now: datetime,
        limit: int,
        per_tenant: int,
        caps: Mapping[str, int] | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> list[DueTimer]: ...

    async def next_timer_due(self) -> datetime | None: ...

    async def read_marks(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    async def reschedule(self, timers: Sequence[tuple[str, str, tuple[datetime, str] | None]]) -> None: ...


class BundleVersions(Protocol):
    """Configuration versions and the tickets' pins (bundles/repository.py)."""

    async def bundle_sources(self, versions: Sequence[VersionKey]) -> dict[VersionKey, BundleSource]: ...

    async def latest_config(self, tenant_id: str) -> ConfigVersion | None: ...

    async def latest_source(self, tenant_id: str, *, only_with_slos: bool = False) -> BundleSource | None: ...

    async def config(self, tenant_id: str, version: int) -> BundleSource | None: ...

    async def config_for_ticket(
        self, tenant_id: str, ticket_id: str, first_event_at: datetime
    ) -> BundleSource | None: ...

    async def pin_version(self, tenant_id: str, ticket_ids: Sequence[str], version: int) -> None: ...

    async def add_config(self, tenant_id: str, bundle: dict[str, Any], source_text: str) -> int: ...

    async def tenants_with_config(self) -> list[str]: ...


class SloSignals(Protocol):
    """The SLO signals as received: state changes, maintenance windows, threshold samples (slos/signals.py)."""

    async def add_state_changes(self, rows: Sequence[dict[str, Any]]) -> None: ...

    async def upsert_maintenance(self, rows: Sequence[dict[str, Any]]) -> None: ...

    async def add_samples(self, rows: Sequence[dict[str, Any]]) -> None: ...

    async def lock_samples_shared(self, tenant_ids: Sequence[str]) -> None: ...

    async def lock_samples_exclusive(self, tenant_id: str) -> None: ...

    async def purge_samples(self, before: datetime) -> int: ...

    async def state_changes_since(self, tenant_id: str, service: str, since: datetime) -> list[StateChange]: ...

    async def first_state_change(self, tenant_id: str, service: str) -> datetime | None: ...

    async def maintenance_between(
        self, tenant_id: str, service: str, start: datetime, end: datetime
    ) -> list[MaintenanceWindow]: ...


class SloRollups(Protocol):
    """The per-minute and per-day rollups as written (slos/rollups.py)."""

    async def add_ratio_minutes(self, tenant_id: str, service: str, sli: str, rows: Sequence[RatioMinute]) -> None: ...

    async def rebuild_threshold_series(self, tenant_id: str, service: str, threshold: ThresholdSli) -> None: ...

    async def lock_availability(self, tenant_id: str, service: str) -> None: ...

    async def replace_availability_minutes(
        self, tenant_id: str, service: str, since: datetime, rows: Sequence[AvailabilityMinute]
    ) -> None: ...

    async def last_availability_minute(self, tenant_id: str, service: str) -> datetime | None: ...


class SloSeries(Protocol):
    """The rollups and the stopped clocks read back as series for evaluating an SLO (slos/series.py)."""

    async def availability_series(
        self,
        tenant_id: str,
        service: str,
        start: datetime,
        end: datetime,
        degraded_weight: Decimal,
        split: datetime | None = None,
    ) -> MinuteSeries: ...

    async def ratio_series(
        self, tenant_id: str, service: str, sli: str, start: datetime, end: datetime, split: datetime | None = None
    ) -> MinuteSeries: ...

    async def ticket_sla_minutes(
        self,
        tenant_id: str,
        service: str,
        policy: str,
        metric: str,
        priorities: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[RatioMinute]: ...


class SloEvaluations(Protocol):
    """Each SLO's last evaluation: status published, alerts firing (slos/evaluations.py)."""

    async def lock_evaluation(self, tenant_id: str, slo_id: str) -> StoredEvaluation: ...

    async def save_evaluation(
        self,
        tenant_id: str,
        slo_id: str,
        firing: frozenset[str],
        status: dict[str, Any] | None,
        published_at: datetime | None,
    ) -> None: ...


class EngineUnit(UnitOfWork, Protocol):
    """One transaction of the engine and the repositories working in it."""

    @property
    def tickets(self) -> TicketEvents: ...

    @property
    def states(self) -> ClockStates: ...

    @property
    def timers(self) -> DueQueue: ...

    @property
    def bundles(self) -> BundleVersions: ...

    @property
    def signals(self) -> SloSignals: ...

    @property
    def rollups(self) -> SloRollups: ...

    @property
    def series(self) -> SloSeries: ...

    @property
    def evaluations(self) -> SloEvaluations: ...

    @property
    def outbox(self) -> OutboxPort: ...

    @property
    def inbox(self) -> InboxPort:
        """The signal consumer's inbox."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[object]: ...


EngineUnits = Callable[[], EngineUnit]


class Reconciler(Protocol):
    """Reconciles one ticket inside the caller's unit of work (a recalculation's; clocks/handlers.py)."""

    async def reconcile(self, uow: EngineUnit, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]: ...
