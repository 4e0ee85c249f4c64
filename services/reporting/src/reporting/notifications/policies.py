"""Notification policies: versioned per tenant, channel secrets sealed apart from the policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from reporting import tables
from reporting.domain.notification_fields import STORED
from reporting.domain.notification_policy import NotificationPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from slm_shared.secret_cipher import SecretCipher

# Serialises a tenant's policy applies, so versions are 1, 2, 3... without gaps or clashes.
POLICY_LOCK_CLASS = 7302


@dataclass(frozen=True)
class StoredPolicy:
    version: int
    policy: NotificationPolicy  # channel secrets left out: `PolicyStore.secret` reads them
    document: dict[str, Any]


class PolicyStore:
    """Seals a policy for storage (channel secrets encrypted, apart from the policy) and opens it again."""

    def __init__(self, cipher: SecretCipher) -> None:
        self._cipher = cipher

    @property
    def can_store_secrets(self) -> bool:
        return self._cipher.configured

    def seal(self, policy: NotificationPolicy) -> dict[str, Any]:
        body: dict[str, Any] = policy.model_dump(mode="json", exclude_none=True)
        sealed: dict[str, str] = {}
        for channel, dumped in zip(policy.channels, body["channels"], strict=True):
            dumped.pop("secret", None)
            if channel.secret is not None:
                sealed[channel.name] = self._cipher.encrypt(channel.secret.get_secret_value()).decode()
        return {"policy": body, "secrets": sealed}

    @staticmethod
    def open(document: dict[str, Any]) -> NotificationPolicy:
        return NotificationPolicy.model_validate(document["policy"], context={STORED: True})

    @staticmethod
    def shown(document: dict[str, Any]) -> dict[str, Any]:
        """The policy as GET shows it: a channel with a secret says so, never what it is."""
        body: dict[str, Any] = {
            **document["policy"],
            "channels": [
                {**channel, **({"secret": "**********"} if channel["name"] in document["secrets"] else {})}
                for channel in document["policy"].get("channels", [])
            ],
        }
        return body

    def secret(self, document: dict[str, Any], channel: str) -> str | None:
        """The channel's secret in clear, or None (none configured, or unreadable under the current keys)."""
        token = document["secrets"].get(channel)
        if token is None:
            return None
        plain = self._cipher.decrypt(token.encode())
        return plain.decode() if plain is not None else None


class SqlPolicyRepository:
    """The stored policy versions; works in the caller's transaction and never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save(self, tenant: str, document: dict[str, Any], now: datetime) -> int:
        """A new version of the tenant's policy; the earlier ones stay (what each notification was planned under)."""
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:c, hashtext(:t))"), {"c": POLICY_LOCK_CLASS, "t": tenant}
        )
        t = tables.notification_policies
        version = (
            int(
                (
                    await self._session.execute(
                        sa.select(sa.func.coalesce(sa.func.max(t.c.version), 0)).where(t.c.tenant_id == tenant)
                    )
                ).scalar_one()
            )
            + 1
        )
        await self._session.execute(
            sa.insert(t).values(tenant_id=tenant, version=version, document=document, created_at=now)
        )
        return version

    async def latest(self, tenants: Sequence[str], version: int | None = None) -> dict[str, StoredPolicy]:
        """Each tenant's latest policy (or `version` of it), in one statement."""
        t = tables.notification_policies
        statement = sa.select(t.c.tenant_id, t.c.version, t.c.document).where(t.c.tenant_id.in_(tenants))
        if version is not None:
            statement = statement.where(t.c.version == version)
        rows = (
            await self._session.execute(
                statement.order_by(t.c.tenant_id, t.c.version.desc()).ext(distinct_on(t.c.tenant_id))
            )
        ).all()
        return {row.tenant_id: StoredPolicy(row.version, PolicyStore.open(row.document), row.document) for row in rows}
