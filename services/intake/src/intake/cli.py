"""`slm-intake`: run the service; manage tenants' API keys and webhook secrets; replay a tenant's archive;
purge by retention; import a service desk's history."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from intake.app import create_app, webhook_cipher
from intake.domain.mapping import SYSTEMS, System
from intake.handlers.intake import EventIntake
from intake.handlers.keys import KeyAdmin
from intake.handlers.purge import Purger
from intake.handlers.replay import Replayer
from intake.importer import HistoryImport
from intake.keys import UnknownKey
from intake.settings import IntakeSettings
from intake.unit_of_work import IntakeUnitOfWork
from intake.webhook_secrets import SqlWebhookSecrets, check_system
from slm_shared.auth import parse_scopes
from slm_shared.db import create_engine, session_factory
from slm_shared.events import API_SCOPES
from slm_shared.secret_cipher import SecretsNotConfigured
from slm_shared.serve import serve
from slm_shared.signing import AnnouncementSigner, generate_signing_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")


def _with_sessions(settings: IntakeSettings, work: Callable[..., Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.database_url.get_secret_value(), pool_size=2)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _with_units(settings: IntakeSettings, work: Callable[[Callable[[], IntakeUnitOfWork]], Awaitable[T]]) -> T:
    """`work` given the factory of intake's units of work, on a short-lived engine."""
    cipher = webhook_cipher(settings)

    async def with_sessions(sessions: async_sessionmaker[AsyncSession]) -> T:
        return await work(lambda: IntakeUnitOfWork(sessions, cipher))

    return _with_sessions(settings, with_sessions)


def _with_webhook_secrets(settings: IntakeSettings, act: Callable[[SqlWebhookSecrets], Awaitable[T]]) -> T:
    """`act` on the webhook secrets in one committed transaction."""

    async def work(units: Callable[[], IntakeUnitOfWork]) -> T:
        async with units() as uow:
            result = await act(uow.webhook_secrets)
            await uow.commit()
        return result

    return _with_units(settings, work)


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset (add Z or +hh:mm)")
    return parsed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slm-intake")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the intake service")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a tenant's API key (prints it once)")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--scopes",
        default=",".join(API_SCOPES),
        type=parse_scopes,
        help=f"comma-separated, of {', '.join(API_SCOPES)} (default: all); e.g. `ingest` for an "
        "upstream system, `read` for a report consumer",
    )
    rotate = keys.add_parser("rotate", help="issue a new key for the same tenant and revoke the old one")
    rotate.add_argument("key_id")
    revoke = keys.add_parser("revoke", help="revoke a key everywhere")
    revoke.add_argument("key_id")
    listing = keys.add_parser("list", help="list keys (ids, tenants, status, scopes; never the keys)")
    listing.add_argument("--tenant")
    keys.add_parser("reannounce", help="announce every key again, signed with the current signing key")
    keys.add_parser("signing-key", help="print a new Ed25519 key pair for the key announcements (private, public)")
    hooks = commands.add_parser("webhooks", help="manage tenants' webhook secrets").add_subparsers(
        dest="action", required=True
    )
    for name, text in (
        ("create", "issue a tenant's webhook secret for a system (prints it once)"),
        ("rotate", "a new secret; the old one stays valid for the grace period"),
    ):
        command = hooks.add_parser(name, help=text)
        command.add_argument("--tenant", required=True)
        command.add_argument("--system", required=True, type=check_system)
        command.add_argument(
            "--secret-stdin",
            action="store_true",
            help="read the system's own secret from stdin (Zendesk generates its own)",
        )
        if name == "rotate":
            command.add_argument("--grace-hours", type=float, help="default: INTAKE_WEBHOOK_ROTATION_GRACE_HOURS")
    revoke_hook = hooks.add_parser("revoke", help="revoke a tenant's secrets for a system at once")
    revoke_hook.add_argument("--tenant", required=True)
    revoke_hook.add_argument("--system", required=True, type=check_system)
    hooks_list = hooks.add_parser("list", help="list secrets (ids, validity; never the secrets)")
    hooks_list.add_argument("--tenant")
    hooks.add_parser("reencrypt", help="re-encrypt every secret with the first INTAKE_WEBHOOK_SECRET_KEYS key")
    replay = commands.add_parser("replay", help="re-publish a tenant's archived events of a time range")
    replay.add_argument("--tenant", required=True)
    replay.add_argument("--from", dest="start", required=True, type=_aware, help="RFC 3339, inclusive")
    replay.add_argument("--to", dest="end", required=True, type=_aware, help="RFC 3339, exclusive")
    replay.add_argument("--type", dest="types", action="append", help="only this event type (repeatable)")
    commands.add_parser("purge", help="apply the retention settings once")
    history = commands.add_parser("import", help="import a service desk's history export (one event per change)")
    history.add_argument("system", choices=SYSTEMS)
    history.add_argument("path", type=Path, help="a JSON export, a JSON Lines file (a ticket a line) or a directory")
    history.add_argument("--tenant", required=True)
    history.add_argument("--instance", help="ServiceNow: the instance host (the source webhooks name)")
    history.add_argument("--account", help="Zendesk: the account id (the source webhooks name)")
    history.add_argument("--restart", action="store_true", help="ignore the resume point of an interrupted run")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = IntakeSettings()  # fields come from the environment

    if args.command == "serve":
        serve(create_app(settings), settings)
    elif args.command == "keys":
        _keys(settings, args)
    elif args.command == "webhooks":
        _webhooks(settings, args)
    elif args.command == "replay":
        _replay(settings, args.tenant, args.start, args.end, args.types)
    elif args.command == "import":
        _import(settings, args)
    elif args.command == "purge":
        totals = _with_units(settings, lambda units: Purger(units, settings).purge())
        print(", ".join(f"{name}: {count}" for name, count in totals.items()))


def signer_of(settings: IntakeSettings) -> AnnouncementSigner | None:
    if settings.key_signing_key is None:
        return None
    return AnnouncementSigner(settings.key_signing_key.get_secret_value())


def _keys(settings: IntakeSettings, args: argparse.Namespace) -> None:
    if args.action == "signing-key":
        private, public = generate_signing_key()
        print(f"INTAKE_KEY_SIGNING_KEY={private}\n<PREFIX>_KEY_ANNOUNCEMENT_PUBLIC_KEYS={public}")
        return
    signer = signer_of(settings)
    if signer is None and args.action in ("create", "rotate", "revoke", "reannounce"):
        print(
            "warning: INTAKE_KEY_SIGNING_KEY is not set; the sla-engine and reporting will ignore this "
            "key's announcement",
            file=sys.stderr,
        )

    def admin(units: Callable[[], IntakeUnitOfWork]) -> KeyAdmin:
        return KeyAdmin(units, signer)

    try:
        if args.action == "create":
            issued = _with_units(settings, lambda units: admin(units).create(args.tenant, args.scopes))
            print(issued.plaintext)
        elif args.action == "rotate":
            issued = _with_units(settings, lambda units: admin(units).rotate(args.key_id))
            print(issued.plaintext)
        elif args.action == "revoke":
            revoked = _with_units(settings, lambda units: admin(units).revoke(args.key_id))
            print(f"revoked {revoked.key_id} of tenant {revoked.tenant_id}")
        elif args.action == "reannounce":
            print(f"{_with_units(settings, lambda units: admin(units).reannounce())} keys announced")
        elif args.action == "list":
            for key in _with_units(settings, lambda units: admin(units).list(args.tenant)):
                print(f"{key.key_id}\t{key.tenant_id}\t{key.status}\t{','.join(key.scopes)}")
    except (UnknownKey, ValueError) as error:
        raise SystemExit(str(error)) from error


def _webhooks(settings: IntakeSettings, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    try:
        if args.action in ("create", "rotate"):
            given = sys.stdin.readline().strip() if args.secret_stdin else None
            hours = getattr(args, "grace_hours", None)
            grace = timedelta(hours=settings.webhook_rotation_grace_hours if hours is None else hours)
            issued = _with_webhook_secrets(
                settings, lambda secrets: secrets.issue(args.tenant, args.system, now, grace, given)
            )
            if args.action == "create" and issued.previous_valid_until is not None:
                print(
                    f"note: the previous secret stays valid until {issued.previous_valid_until.isoformat()}",
                    file=sys.stderr,
                )
            print(f"{issued.secret_id}\t/v1/webhooks/{args.system}/{args.tenant}")
            if given is None:
                print(issued.secret)
        elif args.action == "revoke":
            count = _with_webhook_secrets(settings, lambda secrets: secrets.revoke(args.tenant, args.system))
            print(f"revoked {count} {args.system} webhook secret(s) of tenant {args.tenant}")
        elif args.action == "list":
            for info in _with_webhook_secrets(settings, lambda secrets: secrets.list(args.tenant)):
                until = info.valid_until.isoformat() if info.valid_until else "active"
                print(f"{info.secret_id}\t{info.tenant_id}\t{info.system}\t{until}")
        elif args.action == "reencrypt":
            print(f"{_with_webhook_secrets(settings, lambda secrets: secrets.reencrypt())} secrets re-encrypted")
    except (SecretsNotConfigured, ValueError) as error:
        raise SystemExit(str(error)) from error


def _replay(settings: IntakeSettings, tenant: str, start: datetime, end: datetime, types: list[str] | None) -> None:
    async def work(units: Callable[[], IntakeUnitOfWork]) -> tuple[int, str]:
        replayer = Replayer(units, settings.replay_page_size, settings.output_topic_prefix)
        total = await replayer.count(tenant, start, end, types)
        with tqdm(total=total, unit="event", desc=f"replay {tenant}", file=sys.stderr) as bar:
            summary = await replayer.replay(tenant, start, end, types, progress=lambda done: bar.update(done))
        return summary.events, summary.replay_id

    events, replay_id = _with_units(settings, work)
    print(f"replay {replay_id}: {events} events re-published")


def _import(settings: IntakeSettings, args: argparse.Namespace) -> None:
    system: System = args.system
    if not args.path.exists():
        raise SystemExit(f"{args.path}: no such file or directory")

    async def work(units: Callable[[], IntakeUnitOfWork]) -> list[str]:
        importer = HistoryImport(EventIntake(units, settings), units, settings)
        with tqdm(unit="ticket", desc=f"import {system}", file=sys.stderr) as bar:
            summary = await importer.run(
                args.tenant,
                system,
                args.path,
                instance=args.instance,
                account=args.account,
                restart=args.restart,
                progress=lambda done: bar.update(done),
            )
        return summary.lines()

    print("\n".join(_with_units(settings, work)))
