"""The report as CSV: one table per section, singly or all together in a zip.

Text cells that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
return: OWASP's CSV injection list) get a leading `'`, so a ticket title such as `=HYPERLINK(...)` is shown,
never evaluated. Numbers are written as numbers, so a negative remaining time stays a number.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

Row = dict[str, Any]


def _ratio(prefix: str, ratio: dict[str, Any]) -> Row:
    return {
        f"{prefix}_numerator": ratio["numerator"],
        f"{prefix}_denominator": ratio["denominator"],
        f"{prefix}_percent": ratio["percent"],
    }


def _summary_services(d: dict[str, Any]) -> Iterable[Row]:
    for s in d["summary"]["services"]:
        yield {"service": s["service"], **_ratio("attainment", s["attainment"]), "status": s["status"]}


def _summary_targets(d: dict[str, Any]) -> Iterable[Row]:
    for t in d["summary"]["targets"]:
        yield {
            "agreement": t["agreement"],
            "metric": t["metric"],
            "priority": t["priority"],
            **_ratio("attainment", t["attainment"]),
            "target_percent": t["target_percent"],
            "status": t["status"],
        }


def _attainment(d: dict[str, Any]) -> Iterable[Row]:
    for a in d["attainment"]:
        yield {
            "agreement": a["agreement"],
            "metric": a["metric"],
            "priority": a["priority"],
            "met": a["met"],
            "breached": a["breached"],
            **_ratio("attainment", a["attainment"]),
            "target_percent": a["target_percent"],
            "status": a["status"],
        }


def _attainment_trend(d: dict[str, Any]) -> Iterable[Row]:
    for a in d["attainment"]:
        for p in a["trend"]:
            yield {
                "agreement": a["agreement"],
                "metric": a["metric"],
                "priority": a["priority"],
                "period": p["label"],
                "period_start": p["start"],
                "period_end": p["end"],
                **_ratio("attainment", p["attainment"]),
            }


def _breaches_by_priority(d: dict[str, Any]) -> Iterable[Row]:
    for b in d["breaches"]["by_priority"]:
        yield {"agreement": b["agreement"], "priority": b["priority"], **_ratio("breach_share", b["breach_share"])}


def _cycles(key: str) -> Callable[[dict[str, Any]], Iterable[Row]]:
    def rows(d: dict[str, Any]) -> Iterable[Row]:
        yield from d["breaches"][key]

    return rows


def _times(d: dict[str, Any]) -> Iterable[Row]:
    yield from d["times"]["rows"]


def _volumes(d: dict[str, Any]) -> Iterable[Row]:
    v = d["volumes"]
    yield from v["by_priority"]
    yield {
        "priority": "all",
        "created": v["created"],
        "resolved": v["resolved"],
        "reopened": v["reopened"],
        "cancelled": v["cancelled"],
    }


def _backlog(d: dict[str, Any]) -> Iterable[Row]:
    v = d["volumes"]
    yield {
        "backlog_at_start": v["backlog_at_start"],
        "backlog_at_end": v["backlog_at_end"],
        **_ratio("reopen_rate", v["reopen_rate"]),
    }


def _slos(d: dict[str, Any]) -> Iterable[Row]:
    for s in d["slos"]:
        yield {k: v for k, v in s.items() if k != "alerts"}


def _slo_alerts(d: dict[str, Any]) -> Iterable[Row]:
    for s in d["slos"]:
        for a in s["alerts"]:
            yield {"slo_id": s["slo_id"], **a}


def _csat(d: dict[str, Any]) -> Iterable[Row]:
    c = d["csat"]
    yield {
        "service": "all",
        **_ratio("score", c["score"]),
        "mean_score_percent": c["mean_score_percent"],
        **_ratio("response_rate", c["response_rate"]),
    }
    for s in c["by_service"]:
        yield {"service": s["service"], **_ratio("score", s["score"])}


def _csat_trend(d: dict[str, Any]) -> Iterable[Row]:
    for p in d["csat"]["trend"]:
        yield {"period": p["label"], "period_start": p["start"], "period_end": p["end"], **_ratio("score", p["score"])}


def _ola_uc(d: dict[str, Any]) -> Iterable[Row]:
    for u in d["ola_uc"]:
        yield {
            "agreement": u["agreement"],
            "policy_id": u["policy_id"],
            "metric": u["metric"],
            "met": u["met"],
            "breached": u["breached"],
            **_ratio("attainment", u["attainment"]),
            "target_percent": u["target_percent"],
            "status": u["status"],
            **_ratio("sla_breaches_also_breached_here", u["sla_breaches_also_breached_here"]),
        }


def _events(d: dict[str, Any]) -> Iterable[Row]:
    yield from d["data_notes"]["events"]


def _clocks(d: dict[str, Any]) -> Iterable[Row]:
    yield from d["clocks"]


def _quality(d: dict[str, Any]) -> Iterable[Row]:
    for q in d.get("quality", []):  # snapshots frozen before quality targets existed have none
        yield {
            "target_id": q["target_id"],
            "kpi": q["kpi"],
            "service": q["service"],
            "customer": q["customer"],
            "standard": q["standard"],
            "comparison": q["comparison"],
            "threshold": q["threshold"],
            "unit": q["unit"],
            "value": q["value"],
            "numerator": q["numerator"],
            "denominator": q["denominator"],
            "sample": q["sample"],
            "min_sample": q["min_sample"],
            "status": q["status"],
        }


TABLES: dict[str, Callable[[dict[str, Any]], Iterable[Row]]] = {
    "summary_services": _summary_services,
    "summary_targets": _summary_targets,
    "attainment": _attainment,
    "attainment_trend": _attainment_trend,
    "breaches_by_priority": _breaches_by_priority,
    "breached_tickets": _cycles("tickets"),
    "open_breaches": _cycles("open_breaches"),
    "times": _times,
    "volumes": _volumes,
    "backlog": _backlog,
    "slos": _slos,
    "slo_alerts": _slo_alerts,
    "csat": _csat,
    "csat_trend": _csat_trend,
    "ola_uc": _ola_uc,
    "data_notes_events": _events,
    "clocks": _clocks,
    "quality_targets": _quality,
}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A cell as written: None empty, text that could start a formula prefixed with `'`, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def render_csv(document: dict[str, Any], table: str) -> str:
    rows = list(TABLES[table](document))
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: escape_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def render_csv_zip(document: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for table in TABLES:
            info = zipfile.ZipInfo(f"{table}.csv", date_time=(2000, 1, 1, 0, 0, 0))  # reproducible bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, render_csv(document, table))
    return buffer.getvalue()
