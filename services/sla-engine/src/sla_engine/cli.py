"""`slm-sla-engine`: run the service, apply a configuration bundle from a file, or import OpenSLO SLOs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import yaml

from sla_engine.api import report_body
from sla_engine.app import create_app
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.domain.bundle import BundleError
from sla_engine.domain.bundle.openslo import import_openslo
from sla_engine.settings import SlaEngineSettings
from sla_engine.unit_of_work import engine_units
from slm_shared.db import create_engine, session_factory
from slm_shared.serve import serve
from slm_shared.time_source import utc_now


async def apply_file(settings: SlaEngineSettings, tenant: str, path: Path, mode: str) -> int:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    units = engine_units(session_factory(engine))
    bundles = BundleCache()
    service = ConfigService(units, bundles, ClockKeeper(units, bundles))
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


def print_openslo(path: Path) -> int:
    """Print the `slos:` section for an OpenSLO file; what is not carried over goes to stderr as notes."""
    imported = import_openslo(path.read_text())
    for line in imported.unsupported:
        print(f"note: {line}", file=sys.stderr)
    for line in imported.errors:
        print(f"error: {line}", file=sys.stderr)
    if imported.errors:
        return 1
    print(yaml.safe_dump({"slos": imported.entries}, sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slm-sla-engine")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the sla-engine service")
    apply = commands.add_parser("apply", help="apply a YAML/JSON bundle file as the tenant's new version")
    apply.add_argument("file", type=Path)
    apply.add_argument("--tenant", required=True)
    apply.add_argument("--recalculate", choices=["none", "ongoing", "all"], default="none")
    openslo = commands.add_parser("openslo", help="print the slos: section for an OpenSLO v1/v1alpha YAML file")
    openslo.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "openslo":
        raise SystemExit(print_openslo(args.file))
    settings = SlaEngineSettings()  # fields come from the environment
    if args.command == "serve":
        serve(create_app(settings), settings)
    else:
        raise SystemExit(asyncio.run(apply_file(settings, args.tenant, args.file, args.recalculate)))
