"""Small builders for SLO unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import SloDefinition


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slo_from_yaml(entry: str) -> SloDefinition:
    """Parse a single `slos:` entry (indented as a list item) through the real bundle parser."""
    bundle = parse_bundle("slos:\n" + entry)
    return slo_definition(bundle.slos[0])


def percent(text: str) -> Decimal:
    return Decimal(text)
