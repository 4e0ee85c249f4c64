"""The ports intake's handlers and routes depend on: its repositories and the unit of work that holds them.

The SQL repositories (`intake.repository`) and `IntakeUnitOfWork` satisfy them; the handler unit tests hand
in fakes instead (tests/unit/intake/fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from slm_shared.unit_of_work import OutboxPort, UnitOfWork

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from intake.domain import Routed
    from intake.domain.adapters import Snapshot, TicketRef
    from intake.domain.mapping import MappingOverride, System
    from intake.repository import ArchivedEvent, DedupKey, Rejection
    from intake.webhook_secrets import IssuedSecret, SecretInfo
    from slm_shared.events import ApiKeyData


class ReceivedEvents(Protocol):
    """The dedup ledger and the archive of the events it took."""

    async def insert_new(self, channel: str, items: Sequence[tuple[Routed, bytes | None]]) -> set[DedupKey]: ...

    async def last_snapshot(self, tenant_id: str, ref: TicketRef) -> Snapshot | None: ...

    async def count_archive(
        self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None
    ) -> int: ...

    async def archive_page(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        types: Sequence[str] | None,
        after: ArchivedEvent | None,
        limit: int,
    ) -> list[ArchivedEvent]: ...

    async def purge(
        self, *, archive_before: datetime, dedup_before: datetime, tenant_id: str | None
    ) -> dict[str, int]: ...


class Rejections(Protocol):
    async def add(self, channel: str, rejections: Sequence[Rejection]) -> None: ...

    async def recent(self, tenant_id: str, limit: int) -> list[dict[str, Any]]: ...

    async def purge(self, *, before: datetime, tenant_id: str | None) -> int: ...


class Mappings(Protocol):
    async def override(self, tenant_id: str, system: System) -> MappingOverride | None: ...

    async def save(self, tenant_id: str, system: System, override: MappingOverride) -> None: ...


class Tenants(Protocol):
    async def with_keys(self) -> list[str]: ...

    async def known(self, tenants: set[str]) -> set[str]: ...


class ApiKeys(Protocol):
    """Tenants' API keys, stored hashed (intake.handlers.keys announces every change)."""

    async def find(self, key_id: str) -> ApiKeyData: ...

    async def store(self, key: ApiKeyData, now: datetime) -> None: ...

    async def every(self) -> list[ApiKeyData]: ...

    async def listed(self, tenant_id: str | None = None) -> list[ApiKeyData]: ...


class WebhookSecrets(Protocol):
    """Tenants' webhook secrets and the signed deliveries already taken."""

    async def issue(
        self, tenant_id: str, system: System, now: datetime, grace: timedelta, secret: str | None = None
    ) -> IssuedSecret: ...

    async def revoke(self, tenant_id: str, system: System) -> int: ...

    async def list(self, tenant_id: str | None = None) -> Sequence[SecretInfo]: ...

    async def valid(self, tenant_id: str, system: System, now: datetime) -> Sequence[bytes]: ...

    async def seen(self, tenant_id: str, system: System, delivery: str) -> bool: ...

    async def remember(self, tenant_id: str, system: System, delivery: str, now: datetime) -> None: ...

    async def forget_deliveries(self, before: datetime) -> int: ...


class IntakeUnitOfWorkPort(UnitOfWork, Protocol):
    """One transaction and intake's repositories in it (read-only: what the handlers use, never reassign)."""

    @property
    def received(self) -> ReceivedEvents: ...

    @property
    def rejections(self) -> Rejections: ...

    @property
    def mappings(self) -> Mappings: ...

    @property
    def tenants(self) -> Tenants: ...

    @property
    def webhook_secrets(self) -> WebhookSecrets: ...

    @property
    def api_keys(self) -> ApiKeys: ...

    @property
    def outbox(self) -> OutboxPort: ...


IntakeUnitsOfWork = Callable[[], IntakeUnitOfWorkPort]
"""What `create_app` injects into the handlers and routes: a fresh unit of work per transaction."""
