"""`slm-intake`: run the service, and manage tenants' API keys (create, rotate, revoke)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa

from intake import tables
from intake.app import create_app
from intake.settings import IntakeSettings
from slm_shared import topics
from slm_shared.auth import issue_key
from slm_shared.db import create_engine, session_factory
from slm_shared.events import API_KEY_EVENT, ApiKeyData, make_event
from slm_shared.outbox import Outbox, OutgoingEvent
from slm_shared.runtime import serve


async def _announce(settings: IntakeSettings, key: ApiKeyData) -> None:
    """Store the key and announce it to the other services, in one transaction."""
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    now = datetime.now(UTC)
    try:
        async with session_factory(engine)() as session, session.begin():
            await session.execute(
                sa.dialects.postgresql.insert(tables.api_keys)
                .values(key_id=key.key_id, tenant_id=key.tenant_id, key_hash=key.key_hash,
                        status=key.status, updated_at=now)
                .on_conflict_do_update(index_elements=["key_id"], set_={"status": key.status, "updated_at": now})
            )
            event = make_event(event_id=f"{key.key_id}-{key.status}", source="slm://intake/keys",
                               event_type=API_KEY_EVENT, time=now, tenant_id=key.tenant_id, subject=key.key_id,
                               data=key)
            await Outbox(tables.outbox).add(
                session, [OutgoingEvent(topic=topics.TENANTS, key=f"{key.tenant_id}/{key.key_id}", event=event)]
            )
    finally:
        await engine.dispose()


async def _find_key(settings: IntakeSettings, key_id: str) -> ApiKeyData:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(
                sa.select(tables.api_keys).where(tables.api_keys.c.key_id == key_id))).first()
    finally:
        await engine.dispose()
    if row is None:
        raise SystemExit(f"no API key with id {key_id}")
    return ApiKeyData(key_id=row.key_id, tenant_id=row.tenant_id, key_hash=row.key_hash, status=row.status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slm-intake")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the intake service")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a tenant's API key (prints it once)")
    create.add_argument("--tenant", required=True)
    rotate = keys.add_parser("rotate", help="issue a new key for the same tenant and revoke the old one")
    rotate.add_argument("key_id")
    revoke = keys.add_parser("revoke", help="revoke a key everywhere")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    settings = IntakeSettings()  # fields come from the environment

    if args.command == "serve":
        serve(create_app(settings), settings)
        return
    if args.action == "create":
        issued = issue_key(args.tenant)
        asyncio.run(_announce(settings, ApiKeyData(key_id=issued.key_id, tenant_id=issued.tenant_id,
                                                   key_hash=issued.key_hash, status="active")))
        print(issued.plaintext)
    elif args.action == "rotate":
        old = asyncio.run(_find_key(settings, args.key_id))
        issued = issue_key(old.tenant_id)
        asyncio.run(_announce(settings, ApiKeyData(key_id=issued.key_id, tenant_id=issued.tenant_id,
                                                   key_hash=issued.key_hash, status="active")))
        asyncio.run(_announce(settings, old.model_copy(update={"status": "revoked"})))
        print(issued.plaintext)
    elif args.action == "revoke":
        old = asyncio.run(_find_key(settings, args.key_id))
        asyncio.run(_announce(settings, old.model_copy(update={"status": "revoked"})))
