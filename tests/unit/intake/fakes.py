"""In-memory stand-ins for intake's ports (`intake.ports`): the handlers run against them with no database.

`FakeStore` is what a database would hold; each `FakeUnitOfWork` works on a copy of it and writes the copy
back on `commit`, so leaving without a commit loses the unit's work, as a rolled-back transaction does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from intake.domain import Routed
from intake.domain.adapters import Snapshot, TicketRef
from intake.domain.mapping import MappingOverride, System
from intake.keys import UnknownKey
from intake.repository import ArchivedEvent, DedupKey, Rejection
from intake.webhook_secrets import IssuedSecret, SecretInfo
from slm_shared.events import ApiKeyData
from slm_shared.outbox import OutgoingEvent, OutgoingRecord
from tests.unit.in_memory_units import InMemoryDatabase, InMemoryUnitOfWork


@dataclass
class LedgerRow:
    routed: Routed
    channel: str
    raw: bytes | None
    canonical: bytes | None
    received_at: datetime


@dataclass
class StoredRejection:
    channel: str
    rejection: Rejection
    received_at: datetime


@dataclass
class State:
    ledger: dict[DedupKey, LedgerRow] = field(default_factory=dict)
    rejections: list[StoredRejection] = field(default_factory=list)
    mappings: dict[tuple[str, System], MappingOverride] = field(default_factory=dict)
    active_tenants: set[str] = field(default_factory=set)
    webhook_deliveries: dict[tuple[str, System, str], datetime] = field(default_factory=dict)
    outbox: list[OutgoingEvent | OutgoingRecord] = field(default_factory=list)
    api_keys: dict[str, ApiKeyData] = field(default_factory=dict)


class FakeReceivedEvents:
    def __init__(self, state: State, received_at: datetime) -> None:
        self._state = state
        self._received_at = received_at

    async def insert_new(self, channel: str, items: Sequence[tuple[Routed, bytes | None]]) -> set[DedupKey]:
        inserted = set()
        for routed, raw in items:
            if routed.dedup_key not in self._state.ledger:
                self._state.ledger[routed.dedup_key] = LedgerRow(
                    routed, channel, raw, routed.canonical, self._received_at
                )
                inserted.add(routed.dedup_key)
        return inserted

    async def last_snapshot(self, tenant_id: str, ref: TicketRef) -> Snapshot | None:
        return None  # the webhooks' adapters are tested on their own (test_webhook_adapters.py)

    def _archived(
        self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None
    ) -> list[ArchivedEvent]:
        found = [
            ArchivedEvent(row.canonical, row.routed.event.time, row.routed.event.source, row.routed.event.id)
            for row in self._state.ledger.values()
            if row.canonical is not None
            and row.routed.event.tenantid == tenant_id
            and start <= row.routed.event.time < end
            and (not types or row.routed.event.type in types)
        ]
        return sorted(found, key=lambda event: (event.event_time, event.source, event.event_id))

    async def count_archive(self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None) -> int:
        return len(self._archived(tenant_id, start, end, types))

    async def archive_page(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        types: Sequence[str] | None,
        after: ArchivedEvent | None,
        limit: int,
    ) -> list[ArchivedEvent]:
        events = self._archived(tenant_id, start, end, types)
        if after is not None:
            position = (after.event_time, after.source, after.event_id)
            events = [event for event in events if (event.event_time, event.source, event.event_id) > position]
        return events[:limit]

    async def purge(self, *, archive_before: datetime, dedup_before: datetime, tenant_id: str | None) -> dict[str, int]:
        cleared = forgotten = 0
        for key, row in list(self._state.ledger.items()):
            if tenant_id is not None and row.routed.event.tenantid != tenant_id:
                continue
            if row.received_at < archive_before and row.canonical is not None:
                row.raw = row.canonical = None
                cleared += 1
            if row.received_at < dedup_before:
                del self._state.ledger[key]
                forgotten += 1
        return {"archive_cleared": cleared, "dedup_forgotten": forgotten}


class FakeRejections:
    def __init__(self, state: State, received_at: datetime) -> None:
        self._state = state
        self._received_at = received_at

    async def add(self, channel: str, rejections: Sequence[Rejection]) -> None:
        self._state.rejections.extend(StoredRejection(channel, item, self._received_at) for item in rejections)

    async def recent(self, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        mine = [stored for stored in self._state.rejections if stored.rejection.tenant_id == tenant_id]
        return [{"channel": stored.channel, "code": stored.rejection.code} for stored in reversed(mine)][:limit]

    async def purge(self, *, before: datetime, tenant_id: str | None) -> int:
        kept = [
            stored
            for stored in self._state.rejections
            if stored.received_at >= before or (tenant_id is not None and stored.rejection.tenant_id != tenant_id)
        ]
        dropped = len(self._state.rejections) - len(kept)
        self._state.rejections = kept
        return dropped


class FakeMappings:
    def __init__(self, state: State) -> None:
        self._state = state

    async def override(self, tenant_id: str, system: System) -> MappingOverride | None:
        return self._state.mappings.get((tenant_id, system))

    async def save(self, tenant_id: str, system: System, override: MappingOverride) -> None:
        self._state.mappings[(tenant_id, system)] = override


class FakeTenants:
    def __init__(self, state: State) -> None:
        self._state = state

    async def with_keys(self) -> list[str]:
        return sorted(self._state.active_tenants)

    async def known(self, tenants: set[str]) -> set[str]:
        return tenants & self._state.active_tenants


class FakeWebhookSecrets:
    """The signed deliveries only: issuing and checking secrets is the routes' business (tested with the stack)."""

    def __init__(self, state: State) -> None:
        self._state = state

    async def issue(
        self, tenant_id: str, system: System, now: datetime, grace: timedelta, secret: str | None = None
    ) -> IssuedSecret:
        raise NotImplementedError

    async def revoke(self, tenant_id: str, system: System) -> int:
        raise NotImplementedError

    async def list(self, tenant_id: str | None = None) -> Sequence[SecretInfo]:
        raise NotImplementedError

    async def valid(self, tenant_id: str, system: System, now: datetime) -> Sequence[bytes]:
        raise NotImplementedError

    async def seen(self, tenant_id: str, system: System, delivery: str) -> bool:
        return (tenant_id, system, delivery) in self._state.webhook_deliveries

    async def remember(self, tenant_id: str, system: System, delivery: str, now: datetime) -> None:
        self._state.webhook_deliveries.setdefault((tenant_id, system, delivery), now)

    async def forget_deliveries(self, before: datetime) -> int:
        old = [key for key, at in self._state.webhook_deliveries.items() if at < before]
        for key in old:
            del self._state.webhook_deliveries[key]
        return len(old)


class FakeApiKeys:
    def __init__(self, state: State) -> None:
        self._state = state

    async def find(self, key_id: str) -> ApiKeyData:
        if key_id not in self._state.api_keys:
            raise UnknownKey(f"no API key with id {key_id}")
        return self._state.api_keys[key_id]

    async def store(self, key: ApiKeyData, now: datetime) -> None:
        known = self._state.api_keys.get(key.key_id)
        # As the SQL upsert: a known key changes only its status.
        self._state.api_keys[key.key_id] = key if known is None else known.model_copy(update={"status": key.status})

    async def every(self) -> list[ApiKeyData]:
        return list(self._state.api_keys.values())

    async def listed(self, tenant_id: str | None = None) -> list[ApiKeyData]:
        keys = [k for k in self._state.api_keys.values() if tenant_id in (None, k.tenant_id)]
        return sorted(keys, key=lambda k: (k.tenant_id, k.key_id))


class FakeOutbox:
    def __init__(self, state: State, failure: Exception | None) -> None:
        self._state = state
        self._failure = failure

    async def add(self, events: Sequence[OutgoingEvent | OutgoingRecord]) -> None:
        if self._failure is not None:
            raise self._failure
        self._state.outbox.extend(events)


class FakeStore(InMemoryDatabase[State]):
    """The committed state, the units handed out and the time rows are received at."""

    def __init__(self, received_at: datetime = datetime(2026, 12, 1, tzinfo=UTC)) -> None:
        super().__init__(State())
        self.received_at = received_at
        self.outbox_failure: Exception | None = None  # raised by every outbox add, once set

    def unit(self) -> FakeUnitOfWork:
        """The factory the handlers take (`intake.ports.IntakeUnitsOfWork`)."""
        return FakeUnitOfWork(self)


class FakeUnitOfWork(InMemoryUnitOfWork[State]):
    """Satisfies `intake.ports.IntakeUnitOfWorkPort`."""

    _database: FakeStore

    def _open(self, work: State) -> None:
        received_at = self._database.received_at
        self.received = FakeReceivedEvents(work, received_at)
        self.rejections = FakeRejections(work, received_at)
        self.mappings = FakeMappings(work)
        self.tenants = FakeTenants(work)
        self.webhook_secrets = FakeWebhookSecrets(work)
        self.api_keys = FakeApiKeys(work)
        self.outbox = FakeOutbox(work, self._database.outbox_failure)


def canonical_of(item: OutgoingEvent | OutgoingRecord) -> dict[str, Any]:
    """An outbox row's event as JSON, whichever form it was added in."""
    payload = item.payload if isinstance(item, OutgoingRecord) else item.event.to_json_bytes()
    result: dict[str, Any] = json.loads(payload)
    return result
