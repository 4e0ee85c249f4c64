"""HTML of the report (printable, charts inline) and of the dashboard, from Jinja2 templates."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from reporting.domain.quality import KPI_NAMES
from reporting.i18n import Language, translations
from reporting.render.charts import SERIES_COLORS, STATUS_COLORS, Bar, Series, bar_chart, budget_bars, line_chart

if TYPE_CHECKING:
    from collections.abc import Callable


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("reporting.render", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )


ENVIRONMENT = _environment()
ENVIRONMENT.install_null_translations(newstyle=True)  # type: ignore[attr-defined]  # English: the source texts


def duration(seconds: int | float | None) -> str:
    """Business time as `1d 02h 05m` (d = 24 h), `2h 05m`, `4m 10s`."""
    if seconds is None:
        return "–"
    sign = "-" if seconds < 0 else ""
    remaining = int(abs(seconds))
    days, remaining = divmod(remaining, 86400)
    hours, remaining = divmod(remaining, 3600)
    minutes, secs = divmod(remaining, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m {secs:02d}s"


def local_time(value: str | None, timezone: str) -> str:
    if not value:
        return "–"
    return datetime.fromisoformat(value).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def since(value: str | None, now: str) -> str:
    """Wall-clock time from `value` to `now` (both RFC 3339), e.g. how long a clock has been breached."""
    if not value:
        return "–"
    return duration((datetime.fromisoformat(now) - datetime.fromisoformat(value)).total_seconds())


def period_caption(point: dict[str, Any], timezone: str) -> str:
    """A short name for a trend period: calendar periods keep their label (`2026-10`, `2026-W41`); a custom
    window, whose label is two full timestamps, becomes its local dates (`10-01–10-10`, end inclusive)."""
    label = str(point["label"])
    if "/" not in label or not point.get("start") or not point.get("end"):
        return label
    zone = ZoneInfo(timezone)
    start = datetime.fromisoformat(point["start"]).astimezone(zone)
    end = datetime.fromisoformat(point["end"]).astimezone(zone)
    if start.time() == end.time() == time(0) and end > start:
        last = (end - timedelta(days=1)).date()
        fmt = "%m-%d" if start.year == last.year else "%Y-%m-%d"
        if last == start.date():
            return start.strftime(fmt)
        return f"{start.strftime(fmt)}–{last.strftime(fmt)}"
    return f"{start:%m-%d %H:%M}–{end:%m-%d %H:%M}"


def percent(ratio: dict[str, Any] | float | None, missing: str = "n/a") -> str:
    value = ratio.get("percent") if isinstance(ratio, dict) else ratio
    return missing if value is None else f"{value:.2f} %"


def fraction(ratio: dict[str, Any]) -> str:
    return f"{ratio['numerator']} / {ratio['denominator']}"


def status_badge(status: str, gettext: Callable[[str], str] = str) -> Markup:
    label = escape(gettext({"no_data": "no data"}.get(status, status)))
    return Markup(  # noqa: S704
        f"<span class='rag rag-{status}' style='background:{STATUS_COLORS.get(status, '#9e9e9e')}'>{label}</span>"
    )


TARGET_COLORS = {
    "met": STATUS_COLORS["green"],
    "missed": STATUS_COLORS["red"],
    "insufficient_data": STATUS_COLORS["amber"],
    "no_data": STATUS_COLORS["no_data"],
}


def target_badge(status: str, gettext: Callable[[str], str] = str) -> Markup:
    label = escape(gettext(status.replace("_", " ")))
    return Markup(  # noqa: S704
        f"<span class='rag target-{status}' style='background:{TARGET_COLORS.get(status, '#9e9e9e')}'>{label}</span>"
    )


def quality_value(value: float | None, unit: str, missing: str = "n/a") -> str:
    if value is None:
        return missing
    return duration(value) if unit == "s" else f"{value:.2f} %"


NUMBER = re.compile(r"\d+")
# A quality target's standard in words (reporting.domain.quality.standard): what, comparison, threshold and unit,
# then the optional scope and minimum sample.
STANDARD = re.compile(
    r"^(?P<what>.+?) (?P<comparison>>=|<=) (?P<threshold>\S+?) ?(?P<unit>%|s)"
    r"(?: for (?P<scope>.+?))?(?:, at least (?P<sample>\d+) in the sample)?$"
)


def translated_text(text: str, gettext: Callable[[str], str] = str) -> str:
    """A sentence the domain writes in English (counting rules, data notes) in the catalog's language: its
    numbers stand as `{}` in the catalog's text, so "3 events arrived ..." is one entry whatever the count."""
    key = NUMBER.sub("{}", text)
    found = gettext(key)
    if found == key:
        return text
    return found.format(*NUMBER.findall(text))


def standard_text(result: dict[str, Any], gettext: Callable[[str], str] | None = None) -> str:
    """A quality target's standard in the page's language (English: as the domain wrote it), a threshold in
    seconds as a duration (`8d 00h 00m`, as the values beside it), a percentage as `80 %`."""
    text: str = result["standard"]
    match = STANDARD.match(text)
    kpi_name = KPI_NAMES.get(result["kpi"], "")
    if match is None or not match["what"].startswith(kpi_name):
        return text
    threshold = duration(float(match["threshold"])) if match["unit"] == "s" else f"{match['threshold']} %"
    if gettext is None:
        return text[: match.start("threshold")] + threshold + text[match.end("unit") :]
    what = gettext(kpi_name) + match["what"][len(kpi_name) :]  # the agreement, metric or SLO qualifier is data
    parts = [f"{what} {match['comparison']} {threshold}"]
    scope = [f"{gettext(name)} {value}" for name in ("service", "customer") if (value := result.get(name))]
    if scope:
        parts.append("，".join(scope))
    if match["sample"]:
        parts.append(gettext("at least {} in the sample").format(match["sample"]))
    return "；".join(parts)


ENVIRONMENT.filters.update(
    target_badge=target_badge, quality_value=quality_value, translated=translated_text, standard=standard_text
)
ENVIRONMENT.filters.update(
    duration=duration,
    local_time=local_time,
    percent=percent,
    fraction=fraction,
    badge=status_badge,
    since=since,
    period_caption=period_caption,
)


def _metric_trend(document: dict[str, Any]) -> tuple[list[str], list[Series]]:
    """SLA attainment per metric across the trend periods (every priority together), with short labels."""
    timezone = document["header"]["period"]["timezone"]
    labels: list[str] = []
    captions: dict[str, str] = {}
    sums: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in document["attainment"]:
        if row["agreement"] != "SLA":
            continue
        for point in row["trend"]:
            if point["label"] not in labels:
                labels.append(point["label"])
                captions[point["label"]] = period_caption(point, timezone)
            cell = sums[row["metric"]][point["label"]]
            cell[0] += point["attainment"]["numerator"]
            cell[1] += point["attainment"]["denominator"]
    series = []
    for number, (metric, by_label) in enumerate(sorted(sums.items())):
        values = [100 * by_label[label][0] / by_label[label][1] if by_label[label][1] else None for label in labels]
        series.append(Series(metric, SERIES_COLORS[number % len(SERIES_COLORS)], values))
    return [captions[label] for label in labels], series


@functools.cache
def localized(language: Language) -> Environment:
    """The report's environment with the language's catalog (English: the shared one, texts as written)."""
    if language == "en":
        return ENVIRONMENT
    env = _environment()
    env.filters.update(ENVIRONMENT.filters)
    gettext = translations(language).gettext
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["badge"] = lambda status: status_badge(status, gettext)
    env.filters["target_badge"] = lambda status: target_badge(status, gettext)
    env.filters["translated"] = lambda text: translated_text(text, gettext)
    env.filters["standard"] = lambda result: standard_text(result, gettext)
    env.filters["percent"] = lambda ratio: percent(ratio, gettext("n/a"))
    env.filters["quality_value"] = lambda value, unit: quality_value(value, unit, gettext("n/a"))
    return env


def report_charts(document: dict[str, Any], language: Language = "en") -> dict[str, Markup]:
    _ = translations(language).gettext
    targets = document["summary"]["targets"]
    charts = {
        "attainment": bar_chart(
            [
                Bar(
                    f"{t['metric'][:4]} {t['priority']}",
                    t["attainment"]["percent"],
                    STATUS_COLORS[t["status"]],
                    fraction(t["attainment"]),
                )
                for t in targets
            ],
            title=_("SLA attainment by metric and priority (bars) against target"),
            max_value=100.0,
            unit="%",
            missing=_("n/a"),
            target_label=_("target"),
            target=document["header"]["targets"]["default_percent"],
            width=max(640, 70 * len(targets) + 60),
        ),
        "breaches": bar_chart(
            [
                Bar(
                    f"{b['agreement']} {b['priority']}",
                    b["breached"],
                    STATUS_COLORS["red"],
                    fraction(b["breach_share"]),
                )
                for b in document["breaches"]["by_priority"]
            ],
            title=_("Breached cycles by priority"),
        ),
        "volumes": bar_chart(
            [
                bar
                for v in document["volumes"]["by_priority"]
                for bar in (
                    Bar(f"{v['priority']} {_('new')}", v["created"], "#1565c0"),
                    Bar(f"{v['priority']} {_('done')}", v["resolved"], "#2e7d32"),
                )
            ],
            title=_("Tickets created and resolved by priority"),
            width=max(640, 60 * 2 * len(document["volumes"]["by_priority"]) + 60),
        ),
        "csat": bar_chart(
            [
                Bar(
                    period_caption(p, document["header"]["period"]["timezone"]),
                    p["score"]["percent"],
                    "#00838f",
                    fraction(p["score"]),
                )
                for p in document["csat"]["trend"]
            ],
            title=_("CSAT: satisfied answers per period"),
            max_value=100.0,
            unit="%",
            missing=_("n/a"),
        ),
        "budgets": budget_bars(
            [(s["slo_id"], s["error_budget_remaining_percent"], s["status"]) for s in document["slos"]],
            title=_("Error budget remaining"),
            missing=_("n/a"),
        ),
    }
    labels, series = _metric_trend(document)
    charts["trend"] = line_chart(
        series,
        labels,
        title=_("SLA attainment trend per metric"),
        target=document["header"]["targets"]["default_percent"],
    )
    return charts


def render_report_html(
    document: dict[str, Any], *, links: dict[str, str] | None = None, language: Language = "en"
) -> str:
    template = localized(language).get_template("report.html.j2")
    return template.render(
        report=document,
        charts=report_charts(document, language),
        tz=document["header"]["period"]["timezone"],
        links=links or {},
        lang=language,
    )


def render_dashboard(
    view: dict[str, Any], *, fragment: bool, refresh_seconds: int, nonce: str = "", language: Language = "en"
) -> str:
    """`nonce`: the Content-Security-Policy nonce of the response, put on the page's inline script and style."""
    _ = translations(language).gettext
    template = localized(language).get_template("dashboard.html.j2")
    targets = view["attainment"]
    charts = {
        "attainment": bar_chart(
            [
                Bar(
                    f"{t['metric'][:4]} {t['priority']}",
                    t["attainment"]["percent"],
                    STATUS_COLORS[t["status"]],
                    fraction(t["attainment"]),
                )
                for t in targets
            ],
            title=_("Attainment this period"),
            max_value=100.0,
            unit="%",
            target=view["default_target_percent"],
            missing=_("n/a"),
            target_label=_("target"),
            width=max(560, 70 * len(targets) + 60),
        ),
        "budgets": budget_bars(
            [(s["slo_id"], s["error_budget_remaining_percent"], s["status"]) for s in view["slos"]],
            title=_("SLO error budget remaining"),
            width=560,
            missing=_("n/a"),
        ),
    }
    return template.render(
        view=view,
        charts=charts,
        fragment=fragment,
        refresh_seconds=refresh_seconds,
        tz=view["timezone"],
        nonce=nonce,
        lang=language,
    )


def render_login(*, error: str | None, nonce: str = "") -> str:
    return ENVIRONMENT.get_template("login.html.j2").render(error=error, nonce=nonce)
