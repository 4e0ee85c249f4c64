"""In-memory stand-ins for reporting's ports (reporting.ports): a database of plain dicts, repositories over it,
and a unit of work that works on a copy and keeps it only when committed, as a transaction would."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reporting.domain.notification_sending import Lateness
from reporting.domain.rollups import CycleKey, Deltas, TicketKey
from reporting.domain.tickets import Snapshot, VolumeTransition
from reporting.notifications.planned_rows import DEFAULT_LATENESS
from slm_shared.events import (
    ClockTransitionData,
    CloudEvent,
    FeedbackData,
    SloAlertData,
    SloStatusData,
    TicketSnapshotData,
)
from tests.unit.in_memory_units import InMemoryDatabase, InMemoryUnitOfWork


@dataclass
class Planned:
    """What the handler handed the notification planner."""

    clocks: list[tuple[CloudEvent, ClockTransitionData]]
    alerts: list[tuple[CloudEvent, SloAlertData]]
    now: datetime


@dataclass
class Tables:
    """The rows a committed transaction leaves."""

    inbox: set[tuple[str, str, str]] = field(default_factory=set)
    closed: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    cycles: dict[CycleKey, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[TicketKey, list[tuple[int, Snapshot]]] = field(default_factory=dict)
    transitions: dict[TicketKey, list[VolumeTransition]] = field(default_factory=dict)
    heads: dict[TicketKey, tuple[datetime, Snapshot, str | None]] = field(default_factory=dict)
    feedback: dict[tuple[str, str, str], FeedbackData] = field(default_factory=dict)
    slo_statuses: dict[tuple[str, str, datetime], SloStatusData] = field(default_factory=dict)
    slo_alerts: dict[tuple[str, str, str], SloAlertData] = field(default_factory=dict)
    flushed: list[Deltas] = field(default_factory=list)
    planned: list[Planned] = field(default_factory=list)
    next_sequence: int = 1


class FakeInbox:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def first_deliveries(self, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        fresh = []
        for event in events:
            if event.dedup_key not in self._tables.inbox:
                self._tables.inbox.add(event.dedup_key)
                fresh.append(event)
        return fresh


class FakeReadModels:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self.locked: list[str] = []

    async def lock_tenant_shared(self, tenant: str) -> None:
        self.locked.append(tenant)

    async def lock_tickets(self, tickets: Sequence[TicketKey]) -> None:
        self.locked.extend(f"{tenant}/{ticket}" for tenant, ticket in tickets)

    async def closed_periods(self, tenant: str) -> list[tuple[datetime, datetime]]:
        return list(self._tables.closed.get(tenant, []))

    async def lock_cycles(self, keys: Sequence[CycleKey]) -> dict[CycleKey, dict[str, Any]]:
        return {key: dict(self._tables.cycles[key]) for key in keys if key in self._tables.cycles}

    async def save_cycles(self, rows: dict[CycleKey, dict[str, Any]]) -> None:
        self._tables.cycles.update({key: dict(row) for key, row in rows.items()})

    async def add_snapshots(self, items: Sequence[tuple[CloudEvent, TicketSnapshotData]]) -> list[int]:
        sequences = []
        for event, data in items:
            sequence = self._tables.next_sequence
            self._tables.next_sequence += 1
            self._tables.snapshots.setdefault((event.tenantid, data.ticket_id), []).append(
                (
                    sequence,
                    Snapshot(
                        event.time,
                        sequence,
                        event.id,
                        data.action,
                        data.status,
                        data.priority,
                        data.service,
                        data.customer,
                        data.kind,
                    ),
                )
            )
            sequences.append(sequence)
        return sequences

    async def timelines(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[tuple[int, Snapshot]]]:
        return {
            ticket: sorted(self._tables.snapshots.get(ticket, []), key=lambda s: (s[1].at, s[0])) for ticket in tickets
        }

    async def take_transitions(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[VolumeTransition]]:
        return {ticket: self._tables.transitions.pop(ticket, []) for ticket in tickets}

    async def store_transitions(self, transitions: dict[TicketKey, list[VolumeTransition]]) -> None:
        self._tables.transitions.update({ticket: list(found) for ticket, found in transitions.items() if found})

    async def store_heads(
        self, heads: dict[TicketKey, tuple[datetime, Snapshot]], groups: dict[str, str | None]
    ) -> None:
        for ticket, (created, head) in heads.items():
            self._tables.heads[ticket] = (created, head, groups.get(head.event_id))

    async def add_feedback(self, event: CloudEvent, data: FeedbackData) -> None:
        self._tables.feedback.setdefault((event.tenantid, event.source, event.id), data)

    async def add_slo_status(self, event: CloudEvent, data: SloStatusData) -> None:
        self._tables.slo_statuses[(event.tenantid, data.slo_id, event.time)] = data

    async def add_slo_alert(self, event: CloudEvent, data: SloAlertData) -> None:
        self._tables.slo_alerts.setdefault((event.tenantid, event.source, event.id), data)

    async def flush(self, deltas: Deltas) -> None:
        self._tables.flushed.append(deltas)


class FakeNotificationPlanner:
    def __init__(self, tables: Tables, failure: Exception | None = None) -> None:
        self._tables = tables
        self._failure = failure

    async def plan_batch(
        self,
        clocks: Sequence[tuple[CloudEvent, ClockTransitionData]],
        alerts: Sequence[tuple[CloudEvent, SloAlertData]],
        now: datetime,
        lateness: Lateness = DEFAULT_LATENESS,
    ) -> int:
        if self._failure is not None:
            raise self._failure
        self._tables.planned.append(Planned(list(clocks), list(alerts), now))
        return len(clocks) + len(alerts)


class FakeDatabase(InMemoryDatabase[Tables]):
    """What has been committed; each unit of work starts from it."""

    def __init__(self) -> None:
        super().__init__(Tables())
        self.planning_fails_with: Exception | None = None

    @property
    def tables(self) -> Tables:
        return self.state

    def unit(self) -> FakeUnitOfWork:
        """The unit-of-work factory the handler takes (`reporting.ports.ReadModelUnits`)."""
        return FakeUnitOfWork(self)


class FakeUnitOfWork(InMemoryUnitOfWork[Tables]):
    """Satisfies `reporting.ports.ReadModelUnitOfWork`."""

    _database: FakeDatabase
    inbox: FakeInbox
    read_models: FakeReadModels
    notifications: FakeNotificationPlanner

    def _open(self, work: Tables) -> None:
        self.inbox = FakeInbox(work)
        self.read_models = FakeReadModels(work)
        self.notifications = FakeNotificationPlanner(work, self._database.planning_fails_with)
