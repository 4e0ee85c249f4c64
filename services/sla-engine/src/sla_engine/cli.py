"""`slm-sla-engine`: run the service, or apply a configuration bundle from a file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from sla_engine.api import report_body
from sla_engine.app import create_app
from sla_engine.config import BundleCache, ConfigService
from sla_engine.domain.bundle import BundleError
from sla_engine.handlers import ClockKeeper, utc_now
from sla_engine.settings import SlaEngineSettings
from slm_shared.db import create_engine, session_factory
from slm_shared.runtime import serve


async def apply_file(settings: SlaEngineSettings, tenant: str, path: Path, mode: str) -> int:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    sessions = session_factory(engine)
    bundles = BundleCache()
    service = ConfigService(sessions, bundles, ClockKeeper(sessions, bundles))
    try:
        content_type = "json" if path.suffix == ".json" else "yaml"
        text = await asyncio.to_thread(path.read_text)
        report = await service.apply(tenant, text, content_type, mode, utc_now())  # type: ignore[arg-type]
    except BundleError as error:
        for issue in error.errors:
            print(f"{path}:{issue.line or '?'}: {issue.path}: {issue.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(json.dumps(report_body(report), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slm-sla-engine")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the sla-engine service")
    apply = commands.add_parser("apply", help="apply a YAML/JSON bundle file as the tenant's new version")
    apply.add_argument("file", type=Path)
    apply.add_argument("--tenant", required=True)
    apply.add_argument("--recalculate", choices=["none", "ongoing", "all"], default="none")
    args = parser.parse_args(argv)
    settings = SlaEngineSettings()  # fields come from the environment
    if args.command == "serve":
        serve(create_app(settings), settings)
    else:
        raise SystemExit(asyncio.run(apply_file(settings, args.tenant, args.file, args.recalculate)))
