"""The report as people see it, on a 10-day custom period (seven trend periods of two full timestamps each):
the HTML in headless Chromium and every PDF page through pdftoppm. It fails on chart labels printed over each
other and on content past the page's edge. The pictures are kept in the test's tmp_path for a person to look at.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reporting.domain.assemble import assemble
from reporting.domain.config import ReportingConfig
from reporting.domain.inputs import CsatCell, OutcomeCell, PeriodOutcomes, ReportInputs, VolumeCell
from reporting.domain.model import BreachedCycle
from reporting.domain.periods import classify, previous_periods
from reporting.i18n import Language
from reporting.render.html import render_report_html
from reporting.render.pdf import render_pdf
from reporting.reports import report_document
from tests.support.chromium import headless_chromium
from tests.support.layout import ink_in_right_margin, load_html, overflow, overlapping_labels, pdf_pages

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC) - timedelta(hours=8)  # 2026-10-01 00:00 Asia/Shanghai
END = START + timedelta(days=10)
A4_CSS_WIDTH = 794  # 210 mm at 96 px per inch


def cells(scale: int) -> list[OutcomeCell]:
    return [
        OutcomeCell(service, "*", agreement, policy, 1, calendar, metric, priority, 20 + scale, scale % 4)
        for service in ("email", "erp-finance-and-controlling")
        for agreement, policy, calendar in (("SLA", "gold-incidents", "cn-business"), ("OLA", "l2-ola", "24x7"))
        for metric in ("response", "resolution")
        for priority in ("P1", "P2", "P3")
    ]


def ten_day_document() -> dict[str, Any]:
    config = ReportingConfig(timezone="Asia/Shanghai")
    period = classify(START, END, config.timezone, config.period)
    assert period.kind == "custom"
    trend = [
        PeriodOutcomes(p.label, p.start, p.end, cells(n), [CsatCell("email", 10, 7 + n % 3, 8.0)])
        for n, p in enumerate(previous_periods(period, 6))
    ]
    running = BreachedCycle(
        "INC-7",
        "gold-incidents",
        1,
        "SLA",
        "resolution",
        1,
        "P1",
        "email",
        "acme",
        "running",
        14400,
        14400,
        0,
        0.0,
        END - timedelta(hours=5),
        None,
        "24x7",
        END - timedelta(hours=5),
    )
    inputs = ReportInputs(
        tenant="acme-holdings",
        service=None,
        customer=None,
        generated_at=END + timedelta(days=1),
        config_version=3,
        cells=cells(7),
        trend=trend,
        breached=[],
        open_breaches=[running],
        times=[],
        volumes=[VolumeCell(p, 40, 35, 2, 1) for p in ("P1", "P2", "P3", "P4")],
        backlog_at_start=12,
        backlog_at_end=17,
        csat=[CsatCell("email", 12, 9, 9.6)],
        answered_tickets=12,
        slo_statuses=[],
        alerts=[],
        sla_breached_tickets=0,
        underpinning_links=[],
        event_ranges=[],
        recalculations=0,
        recalculated_cycles=0,
        clocks=[],
        clocks_truncated=False,
    )
    return report_document(assemble(inputs, period, config))


def test_a_running_clock_of_the_ten_day_report_shows_its_elapsed_time_at_the_period_end() -> None:
    [breach] = ten_day_document()["breaches"]["open_breaches"]
    # Breached 5 h before the end at its 4 h target, on 24x7: 4 h + 5 h at the end, 5 h over target.
    assert (breach["elapsed_seconds"], breach["over_target_seconds"], breach["live"]) == (32400, 18000, True)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_html_report_has_no_overlapping_chart_labels_and_nothing_past_the_page_edge(
    tmp_path: Path, language: Language
) -> None:
    html = render_report_html(ten_day_document(), language=language)

    async def check() -> tuple[list[dict[str, Any]], float, list[dict[str, Any]], float]:
        async with headless_chromium() as browser:
            await load_html(browser, html, tmp_path, width=A4_CSS_WIDTH, print_media=False)
            screen = await overlapping_labels(browser), await overflow(browser)
            (tmp_path / "screen.png").write_bytes(await browser.screenshot(A4_CSS_WIDTH, 2400))
            await load_html(browser, html, tmp_path, width=A4_CSS_WIDTH - 90, print_media=True)  # A4 less margins
            return (*screen, await overlapping_labels(browser), await overflow(browser))

    screen_overlaps, screen_overflow, print_overlaps, print_overflow = asyncio.run(check())
    assert screen_overlaps == []
    assert print_overlaps == []
    assert screen_overflow == 0
    assert print_overflow == 0


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_pdf_page_keeps_its_right_margin_blank(tmp_path: Path, language: Language) -> None:
    pages = pdf_pages(render_pdf(ten_day_document(), language), tmp_path)
    assert len(pages) >= 2
    inked = {page.name: ink_in_right_margin(page) for page in pages}
    assert inked == dict.fromkeys(inked, 0)


def test_the_margin_check_sees_a_table_that_runs_off_the_page(tmp_path: Path) -> None:
    from weasyprint import HTML  # type: ignore[import-untyped]

    wide = "<table style='width:260mm;border:1px solid #000'><tr>" + "<td>cell</td>" * 30 + "</tr></table>"
    [page] = pdf_pages(HTML(string=f"<style>@page {{size: A4; margin: 14mm 12mm}}</style>{wide}").write_pdf(), tmp_path)
    assert ink_in_right_margin(page) > 0
