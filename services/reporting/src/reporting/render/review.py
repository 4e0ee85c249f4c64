"""HTML of the service review pack in English or Simplified Chinese: one Jinja2 environment per language with
the gettext catalog installed (reporting.i18n), the report's filters and charts, numbers and dates per locale."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reporting.domain.improvements import PROPOSED_TITLE
from reporting.domain.quality import unit_of
from reporting.i18n import Language, instant, number, translations
from reporting.render.charts import SERIES_COLORS, STATUS_COLORS, Series, budget_bars, line_chart
from reporting.render.html import ENVIRONMENT, duration, standard_text, translated_text

if TYPE_CHECKING:
    from collections.abc import Callable

BADGE_COLORS = {
    **STATUS_COLORS,
    "met": STATUS_COLORS["green"],
    "missed": STATUS_COLORS["red"],
    "insufficient_data": STATUS_COLORS["amber"],
}


def improvement_title(item: dict[str, Any], gettext: Callable[[str], str] | None = None) -> str:
    """A register entry's title in the pack's language: one the period close proposed is its standard (read as
    `standard_text` reads it); a title a person wrote stays as written."""
    title: str = item["title"]
    prefix, suffix = PROPOSED_TITLE.split("{}")
    if item["trigger_kind"] != "missed_target" or not title.startswith(prefix) or suffix not in title:
        return title
    label, standard = title[len(prefix) :].split(suffix, 1)
    words = standard_text({**item["kpi"], "standard": standard}, gettext)
    return (gettext or str)(PROPOSED_TITLE).format(label) + words


def kpi_unit(item: dict[str, Any]) -> str:
    """The unit of a register entry's values: seconds for a backlog age, else percent."""
    return unit_of(str(item["kpi"].get("kpi")))


@functools.cache
def environment(language: Language) -> Environment:
    env = Environment(
        loader=PackageLoader("reporting.render", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.filters.update(ENVIRONMENT.filters)
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    gettext = translations(language).gettext

    def badge(status: str) -> Markup:
        label = gettext(status.replace("_", " "))
        color = BADGE_COLORS.get(status, "#9e9e9e")
        return Markup(  # noqa: S704
            f"<span class='rag rag-{status}' style='background:{color}'>{Markup.escape(label)}</span>"
        )

    def ratio(value: dict[str, Any] | None) -> str:
        if not value or value.get("percent") is None:
            return gettext("n/a")
        return f"{number(value['percent'], language)} %"

    def kpi_value(value: float | None, unit: str) -> str:
        if value is None:
            return gettext("n/a")
        return duration(value) if unit == "s" else f"{number(value, language)} %"

    env.filters.update(
        badge=badge,
        ratio=ratio,
        kpi_value=kpi_value,
        translated=lambda text: translated_text(text, gettext),
        improvement_title=lambda item: improvement_title(item, None if language == "en" else gettext),
        register_value=lambda value, item: "–" if value is None else kpi_value(value, kpi_unit(item)),
        standard=lambda result: standard_text(result, None if language == "en" else gettext),
        num=lambda value, decimals=2: number(value, language, decimals),
        when=lambda value, timezone: instant(value, timezone, language),
    )
    return env


def review_charts(document: dict[str, Any], language: Language) -> dict[str, Markup]:
    gettext = translations(language).gettext
    sla = document["sla"]
    labels = [p["label"] for p in sla[0]["trend"]] if sla else []
    series = [
        Series(
            row["service"], SERIES_COLORS[n % len(SERIES_COLORS)], [p["attainment"]["percent"] for p in row["trend"]]
        )
        for n, row in enumerate(sla)
    ]
    return {
        "sla": line_chart(
            series,
            labels,
            title=gettext("SLA attainment per service, three periods"),
            target=document["banner"]["targets"]["default_percent"],
        ),
        "budgets": budget_bars(
            [(s["slo_id"], s["error_budget_remaining_percent"], s["status"]) for s in document["slos"]],
            title=gettext("Error budget remaining"),
            missing=gettext("n/a"),
        ),
    }


def render_review_html(document: dict[str, Any], language: Language) -> str:
    template = environment(language).get_template("review.html.j2")
    return template.render(
        review=document,
        charts=review_charts(document, language),
        tz=document["banner"]["period"]["timezone"],
        lang=language,
    )
