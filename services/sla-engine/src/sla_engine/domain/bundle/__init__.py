"""The configuration bundle: calendars, policies and SLOs (DESIGN.md section 3), parsed and validated.

Rules:
- A bundle is YAML (or JSON, which is YAML too). Every problem is reported, not only the first, as a
  `BundleIssue` naming the exact field (`policies[0].metrics[1].targets.P2`) and its line in the source.
- Unknown keys are errors, so a typo never silently drops a rule.
- Durations are `<n>d<n>h<n>m<n>s` with at least one part, in that order (`15m`, `4h30m`, `90s`); they are
  always business time on the metric's calendar, and `1d` is 24 working hours (86400 business seconds).
- Statuses and actions are the canonical values of DESIGN.md 2.1; a status may sit in at most one of
  `pause`, `stop` and `cancel`, since the clock could not honour two of them at once.
- `24x7` is built in (every second counts). A bundle may list it as `{name: 24x7}` but not redefine it.
- `dump_bundle` gives the canonical JSON-able form; `parse_bundle` of that form gives an equal bundle.
"""

from __future__ import annotations

from typing import Literal

from sla_engine.domain.bundle.calendars import parse_calendar
from sla_engine.domain.bundle.dump import dump_bundle
from sla_engine.domain.bundle.model import (
    AGREEMENTS,
    MATCH_FIELDS,
    ON_REOPEN,
    Bundle,
    BundleError,
    BundleIssue,
    MetricRule,
    OnReopen,
    Policy,
    SloConfig,
    format_duration,
    parse_duration,
)
from sla_engine.domain.bundle.policies import parse_policy, parse_slo
from sla_engine.domain.bundle.source import Checker, join_path, load
from slm_shared.business_time import TWENTY_FOUR_SEVEN, CalendarConfig

__all__ = [
    "AGREEMENTS",
    "MATCH_FIELDS",
    "ON_REOPEN",
    "Bundle",
    "BundleError",
    "BundleIssue",
    "CalendarConfig",
    "MetricRule",
    "OnReopen",
    "Policy",
    "SloConfig",
    "dump_bundle",
    "format_duration",
    "parse_bundle",
    "parse_duration",
]


def parse_bundle(text: str, *, content_type: Literal["yaml", "json"] = "yaml", stored: bool = False) -> Bundle:
    """Parse and validate a bundle; raises `BundleError` listing every problem with its path and line.

    `stored`: a bundle read back from storage, accepted when it was applied; the SLO bounds added since
    (`sla_engine.domain.bundle.slos`) are not re-checked, so it keeps working as applied."""
    data, lines, issues = load(text, content_type)
    if issues and data is None:
        raise BundleError(issues)
    check = Checker(lines, issues)
    if data is None:
        check.error("", "the bundle is empty; expected a mapping with calendars, policies and slos")
        raise BundleError(check.issues)
    top = check.mapping(data, "", ("calendars", "policies", "slos"))
    if top is None:
        raise BundleError(check.issues)

    calendars: list[CalendarConfig] = []
    names = {TWENTY_FOUR_SEVEN.name}
    for position, raw in enumerate(check.sequence(top.get("calendars"), "calendars")):
        path = join_path("calendars", position)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name != TWENTY_FOUR_SEVEN.name and name in names:
            check.error(join_path(path, "name"), f"duplicate calendar name {name!r}")
        config = parse_calendar(check, raw, path)
        if isinstance(name, str):
            names.add(name)
        if config is not None:
            calendars.append(config)

    policies: list[Policy] = []
    policy_ids: set[str] = set()
    for position, raw in enumerate(check.sequence(top.get("policies"), "policies")):
        path = join_path("policies", position)
        policy_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(policy_id, str) and policy_id in policy_ids:
            check.error(join_path(path, "id"), f"duplicate policy id {policy_id!r}")
        if isinstance(policy_id, str):
            policy_ids.add(policy_id)
        policy = parse_policy(check, raw, path, names)
        if policy is not None:
            policies.append(policy)

    slos: list[SloConfig] = []
    slo_ids: set[str] = set()
    for position, raw in enumerate(check.sequence(top.get("slos"), "slos")):
        path = join_path("slos", position)
        slo = parse_slo(check, raw, path, names, bounded=not stored)
        if slo is not None and slo.id in slo_ids:
            check.error(join_path(path, "id"), f"duplicate SLO id {slo.id!r}")
        elif slo is not None:
            slo_ids.add(slo.id)
            slos.append(slo)

    if check.issues:
        raise BundleError(check.issues)
    return Bundle(calendars=tuple(calendars), policies=tuple(policies), slos=tuple(slos))
