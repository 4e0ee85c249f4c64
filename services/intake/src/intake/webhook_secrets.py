"""Tenants' webhook secrets per upstream system: issue, import, rotate with a grace period, revoke; and the
memory of signed deliveries already taken, so a replayed one is refused. A repository of the unit of work
(`IntakeUnitOfWork.webhook_secrets`): built with its session, never commits.

A verifier needs the secret itself (HMAC), so secrets are stored encrypted, not hashed: Fernet (AES-128-CBC
with HMAC-SHA256, the kit's `slm_shared.secret_cipher`) under `INTAKE_WEBHOOK_SECRET_KEYS`, a comma-separated
list whose first key encrypts and all of which decrypt, so the encryption key can be rotated too
(`slm-intake webhooks reencrypt`). Secrets are never logged; they are shown once, when issued.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from intake import tables
from intake.domain.mapping import SYSTEMS, System

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from slm_shared.secret_cipher import SecretCipher

MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class IssuedSecret:
    secret_id: str
    tenant_id: str
    system: System
    secret: str
    previous_valid_until: datetime | None  # when the secret it replaced stops working (rotation), if any


@dataclass(frozen=True)
class SecretInfo:
    secret_id: str
    tenant_id: str
    system: str
    created_at: datetime
    valid_until: datetime | None


def check_system(system: str) -> System:
    if system not in SYSTEMS:
        raise ValueError(f"system {system!r}: one of {', '.join(SYSTEMS)}")
    return system


class SqlWebhookSecrets:
    def __init__(self, session: AsyncSession, cipher: SecretCipher) -> None:
        self._session = session
        self._cipher = cipher

    async def issue(
        self, tenant_id: str, system: System, now: datetime, grace: timedelta, secret: str | None = None
    ) -> IssuedSecret:
        """A new active secret (generated, or `secret` as the vendor generated it, e.g. Zendesk's signing
        secret). A secret active until now stays valid for `grace` (zero: revoked at once)."""
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"a webhook secret has at least {MIN_SECRET_CHARS} characters")
        plaintext = secret or secrets.token_urlsafe(32)
        ciphertext = self._cipher.encrypt(plaintext)
        t = tables.webhook_secrets
        secret_id = f"whs_{secrets.token_hex(6)}"
        previous_until = now + grace if grace > timedelta(0) else None
        session = self._session
        mine = sa.and_(t.c.tenant_id == tenant_id, t.c.system == system)
        await session.execute(sa.delete(t).where(mine, t.c.valid_until <= now))
        replaced = (
            await session.execute(
                sa.update(t)
                .where(mine, t.c.valid_until.is_(None))
                .values(valid_until=now + grace)
                .returning(t.c.secret_id)
            )
        ).all()
        await session.execute(
            insert(t).values(
                secret_id=secret_id,
                tenant_id=tenant_id,
                system=system,
                ciphertext=ciphertext,
                created_at=now,
                valid_until=None,
            )
        )
        return IssuedSecret(secret_id, tenant_id, system, plaintext, previous_until if replaced else None)

    async def revoke(self, tenant_id: str, system: System) -> int:
        """Every secret of the tenant for the system, at once; its signed webhooks stop until a new one."""
        t = tables.webhook_secrets
        result = await self._session.execute(
            sa.delete(t).where(t.c.tenant_id == tenant_id, t.c.system == system).returning(t.c.secret_id)
        )
        return len(result.all())

    async def list(self, tenant_id: str | None = None) -> Sequence[SecretInfo]:
        t = tables.webhook_secrets
        statement = sa.select(t.c.secret_id, t.c.tenant_id, t.c.system, t.c.created_at, t.c.valid_until).order_by(
            t.c.tenant_id, t.c.system, t.c.created_at
        )
        if tenant_id is not None:
            statement = statement.where(t.c.tenant_id == tenant_id)
        rows = (await self._session.execute(statement)).all()
        return [SecretInfo(r.secret_id, r.tenant_id, r.system, r.created_at, r.valid_until) for r in rows]

    async def valid(self, tenant_id: str, system: System, now: datetime) -> Sequence[bytes]:
        """The secrets a delivery may be signed with now: the active one and those in their grace period."""
        t = tables.webhook_secrets
        rows = (
            await self._session.execute(
                sa.select(t.c.ciphertext).where(
                    t.c.tenant_id == tenant_id,
                    t.c.system == system,
                    sa.or_(t.c.valid_until.is_(None), t.c.valid_until > now),
                )
            )
        ).all()
        if not rows:
            return []
        return [plain for row in rows if (plain := self._cipher.decrypt(row.ciphertext)) is not None]

    async def reencrypt(self) -> int:
        """Every secret under the first configured key (after a new one was put first)."""
        t = tables.webhook_secrets
        rows = (await self._session.execute(sa.select(t.c.secret_id, t.c.ciphertext).with_for_update())).all()
        for row in rows:
            await self._session.execute(
                sa.update(t)
                .where(t.c.secret_id == row.secret_id)
                .values(ciphertext=self._cipher.reencrypt(row.ciphertext))
            )
        return len(rows)

    async def seen(self, tenant_id: str, system: System, delivery: str) -> bool:
        t = tables.webhook_deliveries
        found = (
            await self._session.execute(
                sa.select(t.c.delivery).where(
                    t.c.tenant_id == tenant_id, t.c.system == system, t.c.delivery == delivery
                )
            )
        ).first()
        return found is not None

    async def remember(self, tenant_id: str, system: System, delivery: str, now: datetime) -> None:
        """After the delivery took effect: a crash before this lets a retry in, which the dedup ledger makes a
        duplicate, so nothing is applied twice either way."""
        t = tables.webhook_deliveries
        await self._session.execute(
            insert(t)
            .values(tenant_id=tenant_id, system=system, delivery=delivery, received_at=now)
            .on_conflict_do_nothing()
        )

    async def forget_deliveries(self, before: datetime) -> int:
        t = tables.webhook_deliveries
        result = await self._session.execute(sa.delete(t).where(t.c.received_at < before).returning(t.c.delivery))
        return len(result.all())
