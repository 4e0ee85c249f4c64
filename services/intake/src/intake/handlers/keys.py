"""Tenants' API keys: create, rotate, revoke, announce again. Every change is announced on `itsm.tenants.v1`
through the outbox, signed with intake's key signing key (`slm_shared.signing`) so the other services can tell
it came from here; a key's scopes are chosen when it is created and kept by a rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intake.keys import TENANT_ID
from slm_shared import topics
from slm_shared.auth import IssuedKey, issue_key, parse_scopes
from slm_shared.events import API_KEY_EVENT, API_SCOPES, ApiKeyData, ApiScope, make_event
from slm_shared.outbox import OutgoingEvent
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from intake.ports import IntakeUnitOfWorkPort, IntakeUnitsOfWork
    from slm_shared.signing import AnnouncementSigner


class KeyAdmin:
    """`signer`: without one the announcements go out unsigned, and the other services ignore them."""

    def __init__(self, units: IntakeUnitsOfWork, signer: AnnouncementSigner | None = None, now: Now = utc_now) -> None:
        self._units = units
        self._signer = signer
        self._now = now

    async def create(self, tenant_id: str, scopes: tuple[ApiScope, ...] = API_SCOPES) -> IssuedKey:
        if not TENANT_ID.fullmatch(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r}: 1-128 letters, digits, '.', '_' or '-'")
        issued = issue_key(tenant_id, parse_scopes(" ".join(scopes)))
        async with self._units() as uow:
            await self._store(
                uow,
                ApiKeyData(
                    key_id=issued.key_id,
                    tenant_id=tenant_id,
                    key_hash=issued.key_hash,
                    status="active",
                    scopes=issued.scopes,
                ),
            )
            await uow.commit()
        return issued

    async def rotate(self, key_id: str) -> IssuedKey:
        """A new key for the same tenant and scopes and the old one revoked, in one transaction."""
        async with self._units() as uow:
            old = await uow.api_keys.find(key_id)
            issued = issue_key(old.tenant_id, old.scopes)
            await self._store(
                uow,
                ApiKeyData(
                    key_id=issued.key_id,
                    tenant_id=old.tenant_id,
                    key_hash=issued.key_hash,
                    status="active",
                    scopes=old.scopes,
                ),
            )
            await self._store(uow, old.model_copy(update={"status": "revoked"}))
            await uow.commit()
        return issued

    async def reannounce(self) -> int:
        """Announce every key again, signed with the current key (after the signing key was rotated); the
        other services' upsert makes this harmless, and a revocation stays final."""
        async with self._units() as uow:
            keys = await uow.api_keys.every()
            for key in keys:
                await self._announce(uow, key, self._now(), again=True)
            await uow.commit()
        return len(keys)

    async def revoke(self, key_id: str) -> ApiKeyData:
        async with self._units() as uow:
            revoked = (await uow.api_keys.find(key_id)).model_copy(update={"status": "revoked"})
            await self._store(uow, revoked)
            await uow.commit()
        return revoked

    async def list(self, tenant_id: str | None = None) -> Sequence[ApiKeyData]:
        async with self._units() as uow:
            return await uow.api_keys.listed(tenant_id)

    async def _store(self, uow: IntakeUnitOfWorkPort, key: ApiKeyData) -> None:
        """Store the key and announce it to the other services, in the unit's transaction."""
        now = self._now()
        await uow.api_keys.store(key, now)
        await self._announce(uow, key, now)

    async def _announce(self, uow: IntakeUnitOfWorkPort, key: ApiKeyData, now: datetime, again: bool = False) -> None:
        signed = self._signer.sign(key) if self._signer is not None else key
        # A re-announcement needs an id of its own, or the other services' inboxes would drop it as a duplicate.
        suffix = f"-{now.strftime('%Y%m%dT%H%M%S%f')}" if again else ""
        event = make_event(
            event_id=f"{key.key_id}-{key.status}{suffix}",
            source="slm://intake/keys",
            event_type=API_KEY_EVENT,
            time=now,
            tenant_id=key.tenant_id,
            subject=key.key_id,
            data=signed,
        )
        await uow.outbox.add([OutgoingEvent(topic=topics.TENANTS, key=f"{key.tenant_id}/{key.key_id}", event=event)])
