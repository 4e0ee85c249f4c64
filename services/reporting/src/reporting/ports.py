"""The ports reporting's handlers depend on: the repositories' methods they call and the units of work that
expose them (reporting.unit_of_work builds the PostgreSQL ones; tests/unit/reporting/fakes.py the in-memory
ones)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slm_shared.unit_of_work import InboxPort, UnitOfWork

if TYPE_CHECKING:
    from datetime import datetime

    from reporting.domain.notification_sending import Lateness
    from reporting.domain.rollups import CycleKey, Deltas, TicketKey
    from reporting.domain.tickets import Snapshot, VolumeTransition
    from slm_shared.events import (
        ClockTransitionData,
        CloudEvent,
        FeedbackData,
        SloAlertData,
        SloStatusData,
        TicketSnapshotData,
    )


class ReadModelRepository(Protocol):
    """The read models' rows and rollups, as the read-model handler loads and writes them."""

    async def lock_tenant_shared(self, tenant: str) -> None: ...

    async def lock_tickets(self, tickets: Sequence[TicketKey]) -> None: ...

    async def closed_periods(self, tenant: str) -> list[tuple[datetime, datetime]]: ...

    async def lock_cycles(self, keys: Sequence[CycleKey]) -> dict[CycleKey, dict[str, Any]]: ...

    async def save_cycles(self, rows: dict[CycleKey, dict[str, Any]]) -> None: ...

    async def add_snapshots(self, items: Sequence[tuple[CloudEvent, TicketSnapshotData]]) -> list[int]: ...

    async def timelines(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[tuple[int, Snapshot]]]: ...

    async def take_transitions(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[VolumeTransition]]: ...

    async def store_transitions(self, transitions: dict[TicketKey, list[VolumeTransition]]) -> None: ...

    async def store_heads(
        self, heads: dict[TicketKey, tuple[datetime, Snapshot]], groups: dict[str, str | None]
    ) -> None: ...

    async def add_feedback(self, event: CloudEvent, data: FeedbackData) -> None: ...

    async def add_slo_status(self, event: CloudEvent, data: SloStatusData) -> None: ...

    async def add_slo_alert(self, event: CloudEvent, data: SloAlertData) -> None: ...

    async def flush(self, deltas: Deltas) -> None: ...


class NotificationPlanner(Protocol):
    """Plans the notifications a batch's first deliveries make due, in the batch's transaction."""

    async def plan_batch(
        self,
        clocks: Sequence[tuple[CloudEvent, ClockTransitionData]],
        alerts: Sequence[tuple[CloudEvent, SloAlertData]],
        now: datetime,
        lateness: Lateness = ...,
    ) -> int: ...


class ReadModelUnitOfWork(UnitOfWork, Protocol):
    """One batch of consumed events: its inbox, the read models and the notifications it plans."""

    # Read-only: a unit exposing a subtype (the SQL repositories, the fakes) satisfies it.
    @property
    def inbox(self) -> InboxPort: ...

    @property
    def read_models(self) -> ReadModelRepository: ...

    @property
    def notifications(self) -> NotificationPlanner: ...


ReadModelUnits = Callable[[], ReadModelUnitOfWork]
