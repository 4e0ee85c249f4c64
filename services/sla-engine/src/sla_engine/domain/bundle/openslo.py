"""Import OpenSLO `SLO`/`SLI` documents (v1, and the v1alpha form Sloth reads) into `slos:` bundle entries.

Rules:
- Every document of a multi-document YAML stream is read; `kind: SLI` documents are indicators an `SLO` can
  name with `indicatorRef`. Other kinds (`Service`, `AlertPolicy`, ...) are reported as unsupported.
- A ratio indicator (`ratioMetric` in v1, `ratioMetrics` in v1alpha) becomes `{type: ratio, sli: <name>}`
  where the name is the indicator's `metadata.name` (or the SLO's name for an inline v1alpha ratio): its
  good/total come from `itsm.measurement.v1` windows with that `sli`. The metric sources and queries are
  reported as not used, since the platform is fed by events, not by querying a metrics backend.
- A rolling window of `<n>m|h|d|w` becomes `{rolling: ...}`; a calendar window of one week, month or
  quarter becomes `{calendar: week|month|quarter, timezone: ...}`.
- A threshold indicator (`thresholdMetric`) becomes `{type: threshold, sli: <name>, op, value}` from the
  objective's `op` (`lt`, `lte`, `gt`, `gte`) and `value`: each `itsm.measurement.v1` sample of that `sli` is
  one event, good when the comparison holds.
- `target` 0.995 (or `targetPercent` 99.5) becomes objective 99.5 (exactly, as Decimal text). `Timeslices`
  and `RatioTimeslices` become `timeslices` / `ratio_timeslices` with `timeslice: <timeSliceWindow>` (whole
  minutes dividing a day; 1m when absent). With several objectives, each becomes its own SLO, named
  `<slo>-<objective name or n>`.
- Nothing is dropped silently: every field that is not carried over is listed in `unsupported` with its path.
  The entries are then validated like any bundle entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from sla_engine.domain.bundle.model import format_duration
from sla_engine.domain.bundle.slos import parse_slo_definition
from sla_engine.domain.bundle.source import MAX_ISSUES, Checker, load_all, shorten, unstorable_text
from sla_engine.domain.slo.definition import SloDefinition

_UNITS = {"m": "m", "h": "h", "d": "d"}
_V1ALPHA_UNITS = {"Second": "s", "Minute": "m", "Hour": "h", "Day": "d"}
_CALENDAR = {
    ("1", "w"): "week",
    ("1", "M"): "month",
    ("1", "Q"): "quarter",
    ("3", "M"): "quarter",
    ("Week", 1): "week",
    ("Month", 1): "month",
    ("Quarter", 1): "quarter",
    ("Month", 3): "quarter",
}
_IGNORED_METADATA = ("displayName", "labels", "annotations", "namespace")
_BUDGETING = {"Occurrences": "occurrences", "Timeslices": "timeslices", "RatioTimeslices": "ratio_timeslices"}
_OPERATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_SHORTHAND = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_SHORTHAND_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


@dataclass
class OpenSloImport:
    entries: list[dict[str, Any]] = field(default_factory=list)
    definitions: list[SloDefinition] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def import_openslo(text: str) -> OpenSloImport:
    """Translate OpenSLO YAML into bundle entries, listing what is not carried over and what is invalid."""
    result = OpenSloImport()
    try:
        documents = [document for document in load_all(text) if document is not None]
    except yaml.YAMLError as error:
        result.errors.append(shorten(f"<document>: not valid YAML ({error})"))
        return result
    if unreadable := unstorable_text(documents, {}):
        result.errors += [f"documents{issue.path}: {issue.message}" for issue in unreadable]
        return result
    indicators: dict[str, dict[str, Any]] = {}
    slos: list[tuple[str, dict[str, Any]]] = []
    for position, document in enumerate(documents):
        path = f"documents[{position}]"
        if not isinstance(document, dict):
            result.errors.append(f"{path}: must be a mapping")
            continue
        version, kind = document.get("apiVersion"), document.get("kind")
        if version not in ("openslo/v1", "openslo/v1alpha"):
            result.errors.append(f"{path}.apiVersion: {version!r} is not openslo/v1 or openslo/v1alpha")
        elif kind == "SLI":
            name = _name(document)
            if name is not None:
                indicators[name] = document
        elif kind == "SLO":
            slos.append((path, document))
        else:
            result.unsupported.append(f"{path}.kind: {kind!r} documents are not imported")
    for path, document in slos:
        _import_slo(result, path, document, indicators)
    check = Checker({}, [])
    for position, entry in enumerate(result.entries):
        definition = parse_slo_definition(check, entry, f"slos[{position}] ({entry.get('id')})")
        if definition is not None:
            result.definitions.append(definition)
    result.errors += [f"{issue.path}: {issue.message}" for issue in check.issues]
    # Messages echo the documents' values: cut each one and their number, so a huge input is never sent back.
    result.errors = [shorten(error) for error in result.errors[:MAX_ISSUES]]
    result.unsupported = [shorten(note) for note in result.unsupported[:MAX_ISSUES]]
    return result


def _name(document: dict[str, Any]) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


def _import_slo(
    result: OpenSloImport, path: str, document: dict[str, Any], indicators: dict[str, dict[str, Any]]
) -> None:
    name = _name(document)
    spec = document.get("spec")
    if name is None or not isinstance(spec, dict):
        result.errors.append(f"{path}: an SLO needs metadata.name and a spec mapping")
        return
    _report_extra(result, f"{path}.metadata", document.get("metadata", {}), ("name",), _IGNORED_METADATA)
    alpha = document.get("apiVersion") == "openslo/v1alpha"
    known = (
        "service",
        "description",
        "budgetingMethod",
        "objectives",
        *(("timeWindows", "indicator") if alpha else ("timeWindow", "indicator", "indicatorRef")),
    )
    _report_extra(result, f"{path}.spec", spec, known, ("description", "alertPolicies"))
    if "alertPolicies" in spec:
        result.unsupported.append(
            f"{path}.spec.alertPolicies: alerts are the fixed multi-window burn-rate set (docs/slo.md)"
        )
    window = _window(result, f"{path}.spec", spec, alpha)
    budgeting = _BUDGETING.get(str(spec.get("budgetingMethod")))
    if budgeting is None:
        result.errors.append(
            f"{path}.spec.budgetingMethod: {spec.get('budgetingMethod')!r} is not supported; "
            "use Occurrences, Timeslices or RatioTimeslices"
        )
        return
    indicator = (
        _alpha_threshold(result, f"{path}.spec", spec, name)
        if alpha
        else _indicator(result, f"{path}.spec", spec, indicators)
    )
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        result.errors.append(f"{path}.spec.objectives: at least one objective is required")
        return
    for index, objective in enumerate(objectives):
        objective_path = f"{path}.spec.objectives[{index}]"
        if not isinstance(objective, dict):
            result.errors.append(f"{objective_path}: must be a mapping")
            continue
        if "indicator" in objective or "indicatorRef" in objective:
            result.errors.append(
                f"{objective_path}: objectives with an indicator of their own (composite SLOs) are not supported"
            )
            continue
        objective_indicator = indicator
        if alpha and "ratioMetrics" in objective:
            objective_indicator = _alpha_indicator(result, objective_path, objective, name)
        elif alpha and indicator is None:
            result.errors.append(
                f"{objective_path}: only ratioMetrics objectives or a thresholdMetric indicator are supported"
            )
        sli = _objective_sli(result, objective_path, objective, objective_indicator)
        target = _target(result, objective_path, objective)
        threshold = sli is not None and sli["type"] == "threshold"
        _report_extra(
            result,
            objective_path,
            objective,
            (
                "target",
                "targetPercent",
                "timeSliceTarget",
                "timeSliceWindow",
                "ratioMetrics",
                *(("op", "value") if threshold else ()),
            ),
            ("displayName", *(() if threshold else ("value", "op"))),
        )
        if sli is None or target is None or window is None:
            continue
        label = objective.get("displayName") or str(index + 1)
        entry: dict[str, Any] = {
            "id": name if len(objectives) == 1 else f"{name}-{label}",
            "service": spec.get("service"),
            "sli": sli,
            "objective": target,
            "window": window,
            "budgeting": budgeting,
        }
        if budgeting != "occurrences":
            if "timeSliceWindow" not in objective:
                result.unsupported.append(f"{objective_path}.timeSliceWindow: missing; 1-minute slices are used")
            length = _slice_length(result, f"{objective_path}.timeSliceWindow", objective.get("timeSliceWindow", "1m"))
            if length is None:
                continue
            if length != "1m":
                entry["timeslice"] = length
        if budgeting == "timeslices":
            slice_target = _percent(result, f"{objective_path}.timeSliceTarget", objective.get("timeSliceTarget"))
            if slice_target is not None:
                entry["timeslice_target"] = slice_target
        elif "timeSliceTarget" in objective:
            result.unsupported.append(f"{objective_path}.timeSliceTarget: used by Timeslices only, not carried over")
        result.entries.append(entry)


def _indicator(
    result: OpenSloImport, path: str, spec: dict[str, Any], indicators: dict[str, dict[str, Any]]
) -> tuple[str, str] | None:
    """The indicator's kind (`ratio` or `threshold`) and the `sli` name its measurements carry."""
    if "indicatorRef" in spec:
        document = indicators.get(str(spec["indicatorRef"]))
        if document is None:
            result.errors.append(f"{path}.indicatorRef: no SLI named {spec['indicatorRef']!r} in the documents")
            return None
    else:
        document = spec.get("indicator")
        if not isinstance(document, dict):
            result.errors.append(f"{path}: needs indicator or indicatorRef")
            return None
    name = _name(document)
    indicator = document.get("spec")
    if name is None or not isinstance(indicator, dict):
        result.errors.append(f"{path}.indicator: needs metadata.name and spec")
        return None
    if "ratioMetric" in indicator:
        result.unsupported.append(
            f"{path}.indicator.spec.ratioMetric: metric sources are not queried; good/total "
            f"come from itsm.measurement.v1 events with sli {name!r}"
        )
        return "ratio", name
    if "thresholdMetric" in indicator:
        result.unsupported.append(
            f"{path}.indicator.spec.thresholdMetric: metric sources are not queried; samples "
            f"come from itsm.measurement.v1 events with sli {name!r}"
        )
        return "threshold", name
    result.errors.append(
        f"{path}.indicator.spec: only ratioMetric and thresholdMetric indicators are supported "
        f"(found {', '.join(map(str, indicator)) or 'nothing'})"
    )
    return None


def _alpha_threshold(result: OpenSloImport, path: str, spec: dict[str, Any], slo_name: str) -> tuple[str, str] | None:
    """A v1alpha `spec.indicator.thresholdMetric` (ratio objectives carry their own `ratioMetrics`)."""
    indicator = spec.get("indicator")
    if isinstance(indicator, dict) and "thresholdMetric" in indicator:
        result.unsupported.append(
            f"{path}.indicator.thresholdMetric: queries are not run; samples come from "
            f"itsm.measurement.v1 events with sli {slo_name!r}"
        )
        return "threshold", slo_name
    if indicator is not None:
        result.errors.append(f"{path}.indicator: only thresholdMetric indicators are supported here")
    return None


def _alpha_indicator(result: OpenSloImport, path: str, objective: dict[str, Any], slo_name: str) -> tuple[str, str]:
    result.unsupported.append(
        f"{path}.ratioMetrics: queries are not run; good/total come from "
        f"itsm.measurement.v1 events with sli {slo_name!r}"
    )
    return "ratio", slo_name


def _objective_sli(
    result: OpenSloImport, path: str, objective: dict[str, Any], indicator: tuple[str, str] | None
) -> dict[str, Any] | None:
    """The bundle SLI for one objective: a threshold takes the objective's `op` and `value`."""
    if indicator is None:
        return None
    kind, name = indicator
    if kind == "ratio":
        return {"type": "ratio", "sli": name}
    operator = _OPERATORS.get(str(objective.get("op")))
    if operator is None:
        result.errors.append(f"{path}.op: {objective.get('op')!r} is not one of: {', '.join(_OPERATORS)}")
    value = objective.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        result.errors.append(f"{path}.value: a threshold objective needs a number, not {value!r}")
        return None
    return None if operator is None else {"type": "threshold", "sli": name, "op": operator, "value": value}


def _target(result: OpenSloImport, path: str, objective: dict[str, Any]) -> str | None:
    if "target" not in objective and "targetPercent" in objective:
        ratio = _decimal(objective.get("targetPercent"))
        if ratio is None:
            result.errors.append(f"{path}.targetPercent: {objective.get('targetPercent')!r} is not a number")
            return None
        return _percent(result, f"{path}.targetPercent", ratio / 100)
    return _percent(result, f"{path}.target", objective.get("target"))


def _slice_length(result: OpenSloImport, path: str, raw: Any) -> str | None:
    """An OpenSLO duration shorthand (`5m`, `1h`, `300s`) as a bundle duration; the bundle checks the length."""
    match = _SHORTHAND.match(str(raw))
    if isinstance(raw, bool) or match is None:
        result.errors.append(f"{path}: {raw!r} is not a slice length such as 1m, 5m or 1h")
        return None
    seconds = int(match.group(1)) * _SHORTHAND_SECONDS[match.group(2)]
    if seconds <= 0:
        result.errors.append(f"{path}: {raw!r} is not a positive length")
        return None
    return format_duration(seconds)


def _window(result: OpenSloImport, path: str, spec: dict[str, Any], alpha: bool) -> dict[str, Any] | None:
    key = "timeWindows" if alpha else "timeWindow"
    windows = spec.get(key)
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        result.errors.append(f"{path}.{key}: exactly one time window is supported")
        return None
    window = windows[0]
    rolling = window.get("isRolling", not alpha)
    if alpha:
        unit, count = window.get("unit"), window.get("count")
        if rolling:
            suffix = _V1ALPHA_UNITS.get(str(unit))
            if suffix is None and unit == "Week" and isinstance(count, int):
                return {"rolling": f"{count * 7}d"}
            if suffix is None or not isinstance(count, int):
                result.errors.append(f"{path}.{key}[0]: rolling windows of {count!r} {unit!r} are not supported")
                return None
            return {"rolling": f"{count}{suffix}"}
        calendar = _CALENDAR.get((str(unit), count))
    else:
        duration = str(window.get("duration", ""))
        amount, unit_letter = duration[:-1], duration[-1:]
        if rolling:
            if unit_letter == "w" and amount.isdigit():
                return {"rolling": f"{int(amount) * 7}d"}
            if unit_letter not in _UNITS or not amount.isdigit():
                result.errors.append(
                    f"{path}.{key}[0].duration: rolling {duration!r} is not supported; use m, h, d or w"
                )
                return None
            return {"rolling": f"{amount}{unit_letter}"}
        calendar = _CALENDAR.get((amount, unit_letter))
    if calendar is None:
        result.errors.append(f"{path}.{key}[0]: calendar windows of one week, month or quarter are supported")
        return None
    raw_calendar = window.get("calendar")
    details: dict[str, Any] = raw_calendar if isinstance(raw_calendar, dict) else {}
    if "startTime" in details:
        result.unsupported.append(
            f"{path}.{key}[0].calendar.startTime: calendar windows start at the week, month or quarter boundary"
        )
    return {"calendar": calendar, "timezone": details.get("timeZone", "UTC")}


def _decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        number = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _percent(result: OpenSloImport, path: str, raw: Any) -> str | None:
    ratio = _decimal(raw)
    if ratio is None or not Decimal(0) < ratio < Decimal(1):
        result.errors.append(f"{path}: {raw!r} is not a ratio strictly between 0 and 1")
        return None
    return format((ratio * 100).normalize(), "f")


def _report_extra(
    result: OpenSloImport, path: str, value: Any, used: tuple[str, ...], ignored: tuple[str, ...]
) -> None:
    if not isinstance(value, dict):
        return
    for key in value:
        if key in ignored:
            result.unsupported.append(f"{path}.{key}: not carried over")
        elif key not in used:
            result.unsupported.append(f"{path}.{key}: unknown to the importer, not carried over")
