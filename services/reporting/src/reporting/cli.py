"""`slm-reporting`: run the service."""

from __future__ import annotations

import argparse

from reporting.app import create_app
from reporting.settings import ReportingSettings
from slm_shared.serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slm-reporting")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the reporting service")
    parser.parse_args(argv)
    settings = ReportingSettings()  # fields come from the environment
    serve(create_app(settings), settings)
