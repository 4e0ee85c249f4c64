"""The renderers: HTML escapes what upstream systems send, CSV is reproducible, charts need no network."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest

from reporting.domain.assemble import assemble
from reporting.domain.config import QualityTarget, ReportingConfig
from reporting.domain.inputs import OutcomeCell, ReportInputs
from reporting.domain.model import BreachedCycle
from reporting.domain.periods import period_containing
from reporting.domain.quality import standard
from reporting.i18n import translations
from reporting.render.html import render_report_html, standard_text
from reporting.render.review import improvement_title, kpi_unit
from reporting.render.tabular import render_csv, render_csv_zip
from reporting.reports import report_document

NOW = datetime(2026, 11, 2, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"


def document() -> dict[str, object]:
    period = period_containing(datetime(2026, 10, 15, tzinfo=UTC), "UTC", "monthly")
    breached = BreachedCycle(
        HOSTILE,
        "gold",
        1,
        "SLA",
        "response",
        1,
        "P1",
        "email",
        "acme",
        "breached",
        900,
        1200,
        300,
        33.33,
        datetime(2026, 10, 3, tzinfo=UTC),
        datetime(2026, 10, 3, 1, tzinfo=UTC),
    )
    inputs = ReportInputs(
        tenant="t",
        service=None,
        customer=None,
        generated_at=NOW,
        config_version=0,
        cells=[OutcomeCell("email", "*", "SLA", "gold", 1, "24x7", "response", "P1", 3, 1)],
        trend=[],
        breached=[breached],
        open_breaches=[],
        times=[],
        volumes=[],
        backlog_at_start=0,
        backlog_at_end=0,
        csat=[],
        answered_tickets=0,
        slo_statuses=[],
        alerts=[],
        sla_breached_tickets=1,
        underpinning_links=[],
        event_ranges=[],
        recalculations=0,
        recalculated_cycles=0,
        clocks=[],
        clocks_truncated=False,
    )
    return report_document(assemble(inputs, period, ReportingConfig()))


def test_html_escapes_text_from_upstream_systems() -> None:
    html = render_report_html(document())
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_loads_nothing_from_the_network() -> None:
    html = render_report_html(document())
    assert "<script" not in html
    assert "https://" not in html
    assert "<link" not in html
    assert html.count("<svg") >= 5


def test_csv_is_the_same_bytes_every_time() -> None:
    # Comparing two renderings made within the same second would pass even with wall-clock entry times, so the
    # reproducibility is checked at its cause: every entry carries the fixed date, in a fixed order, and holds
    # the table's text as written here.
    archive = zipfile.ZipFile(io.BytesIO(render_csv_zip(document())))
    assert archive.namelist() == [
        "summary_services.csv",
        "summary_targets.csv",
        "attainment.csv",
        "attainment_trend.csv",
        "breaches_by_priority.csv",
        "breached_tickets.csv",
        "open_breaches.csv",
        "times.csv",
        "volumes.csv",
        "backlog.csv",
        "slos.csv",
        "slo_alerts.csv",
        "csat.csv",
        "csat_trend.csv",
        "ola_uc.csv",
        "data_notes_events.csv",
        "clocks.csv",
        "quality_targets.csv",
    ]
    assert {info.date_time for info in archive.infolist()} == {(2000, 1, 1, 0, 0, 0)}
    assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    summary_targets = archive.read("summary_targets.csv").decode().splitlines()
    assert summary_targets[1] == "SLA,response,P1,3,4,75.0,95.0,red"
    assert render_csv(document(), "summary_targets").splitlines()[1] == "SLA,response,P1,3,4,75.0,95.0,red"
    breached = archive.read("breached_tickets.csv").decode().splitlines()
    assert len(breached) == 2  # the header and the one breached cycle
    assert breached[1].startswith(f"{HOSTILE},gold,1,SLA,response,1,P1,email,acme,breached,900,1200,300,33.33,")


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_escaped() -> None:
    from reporting.render.tabular import escape_cell

    assert [escape_cell(v) for v in ['=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"]] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-cmd",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
    ]
    assert [escape_cell(v) for v in ["INC-1", "a=b", -5, 2.5, None]] == ["INC-1", "a=b", -5, 2.5, ""]


def test_the_pdf_fetcher_refuses_everything_but_inline_data() -> None:
    from reporting.render.pdf import inline_data_only_fetcher

    fetcher = inline_data_only_fetcher()
    for url in (
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "https://example.org/a.png",
        "ftp://example.org/x",
    ):
        with pytest.raises(ValueError, match="data"):
            fetcher.fetch(url)
    response = fetcher.fetch("data:text/plain;base64,aGVsbG8=")
    assert response.read() == b"hello"
    response.close()


def test_weasyprint_renders_with_the_fetcher_and_asks_it_for_an_injected_url() -> None:
    from weasyprint import HTML  # type: ignore[import-untyped]

    from reporting.render.pdf import FETCHES_REFUSED, inline_data_only_fetcher

    before = FETCHES_REFUSED._value.get()
    pdf = HTML(string='<p>x</p><img src="file:///etc/hostname">', url_fetcher=inline_data_only_fetcher()).write_pdf()
    assert pdf.startswith(b"%PDF")
    assert FETCHES_REFUSED._value.get() == before + 1


def test_a_snapshot_frozen_before_live_clocks_and_quality_targets_still_renders() -> None:
    from reporting.domain.assemble import assemble as build
    from reporting.domain.model import BreachedCycle as Cycle

    period = period_containing(datetime(2026, 10, 15, tzinfo=UTC), "UTC", "monthly")
    running = Cycle(
        "INC-9",
        "gold",
        1,
        "SLA",
        "resolution",
        1,
        "P1",
        "email",
        "acme",
        "running",
        900,
        1200,
        300,
        33.33,
        datetime(2026, 10, 3, tzinfo=UTC),
        None,
        "24x7",
        datetime(2026, 10, 3, tzinfo=UTC),
    )
    inputs = ReportInputs(
        tenant="t",
        service=None,
        customer=None,
        generated_at=NOW,
        config_version=0,
        cells=[],
        trend=[],
        breached=[],
        open_breaches=[running],
        times=[],
        volumes=[],
        backlog_at_start=0,
        backlog_at_end=0,
        csat=[],
        answered_tickets=0,
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
    old = report_document(build(inputs, period, ReportingConfig()))
    del old["quality"]
    for cycle in old["breaches"]["open_breaches"]:
        for name in ("live", "as_of", "calendar"):
            del cycle[name]
    html = render_report_html(old)
    assert "INC-9" in html
    assert '<span class="note">as of' not in html  # nothing to say about a value frozen without its instant


def test_a_standard_in_seconds_reads_as_a_duration_in_both_languages_and_a_percentage_as_before() -> None:
    backlog = QualityTarget.model_validate(
        {"id": "age", "kpi": "backlog_age_p90", "threshold": 8 * 86400 + 2 * 3600, "service": "email"}
    )
    row = {"kpi": "backlog_age_p90", "standard": standard(backlog), "service": "email"}
    assert standard_text(row) == "backlog age p90 <= 8d 02h 00m for service email"
    chinese = translations("zh").gettext
    assert standard_text(row, chinese) == "积压工单时长 p90 <= 8d 02h 00m；服务 email"
    breaches = QualityTarget.model_validate({"id": "br", "kpi": "breach_rate", "threshold": 5})
    assert standard_text({"kpi": "breach_rate", "standard": standard(breaches)}) == "breach rate (SLA) <= 5 %"


def test_a_backlog_age_target_is_measured_on_its_open_tickets_not_on_seconds_over_a_count() -> None:
    report = document()
    report["quality"] = [
        {
            "target_id": "age",
            "kpi": "backlog_age_p90",
            "service": None,
            "customer": None,
            "standard": "backlog age p90 <= 691200 s",
            "comparison": "<=",
            "threshold": 691200,
            "unit": "s",
            "value": 777600.0,
            "numerator": 777600,
            "denominator": 10,
            "sample": 10,
            "min_sample": 1,
            "status": "missed",
            "trend": [],
        }
    ]
    english = render_report_html(report)
    assert (
        '<td>backlog age p90 &lt;= 8d 00h 00m</td><td class="n">9d 00h 00m</td><td class="n">10 open tickets</td>'
        in english
    )
    assert "777600" not in english
    assert "10 张未结工单" in render_report_html(report, language="zh")


def test_a_proposed_register_title_reads_as_its_standard_and_a_written_one_stays_as_written() -> None:
    backlog = QualityTarget.model_validate({"id": "age", "kpi": "backlog_age_p90", "threshold": 3 * 86400})
    proposed = {
        "title": f"Missed in 2026-10: {standard(backlog)}",
        "trigger_kind": "missed_target",
        "kpi": {"kpi": "backlog_age_p90", "service": None, "customer": None},
    }
    assert improvement_title(proposed) == "Missed in 2026-10: backlog age p90 <= 3d 00h 00m"
    chinese = translations("zh").gettext
    assert improvement_title(proposed, chinese) == "2026-10 未达成：积压工单时长 p90 <= 3d 00h 00m"
    written = {"title": "Missed in 2026-10: our own words", "trigger_kind": "complaint", "kpi": {}}
    assert improvement_title(written, chinese) == "Missed in 2026-10: our own words"
    assert (kpi_unit(proposed), kpi_unit(written)) == ("s", "%")
