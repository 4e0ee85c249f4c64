"""The review pack's languages: every text of the template has its Chinese, the language is chosen from
`?lang=`, then Accept-Language, then the tenant's default, and numbers and dates follow the locale."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from reporting.i18n import CATALOGS, choose_language, instant, number, translations

TEMPLATES = Path(__file__).resolve().parents[3] / "services/reporting/src/reporting/render/templates"


@pytest.mark.parametrize("template", ["review.html.j2", "report.html.j2", "dashboard.html.j2"])
def test_every_text_of_the_templates_has_its_chinese(template: str) -> None:
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    texts = set(re.findall(r'_\("([^"]+)"\)', source)) | set(re.findall(r"_\('([^']+)'\)", source))
    with (CATALOGS / "zh_Hans/LC_MESSAGES/messages.po").open("rb") as catalog_file:
        catalog = read_po(catalog_file)
    translated = {message.id for message in catalog if message.id and message.string}
    assert len(texts) > 30
    assert texts - translated == set()
    assert translations("zh").gettext("Complaint log") == "投诉记录"


def test_the_language_comes_from_lang_then_accept_language_then_the_tenant_default() -> None:
    assert choose_language("zh", "en-GB") == "zh"
    assert choose_language(None, "en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert choose_language(None, "fr-FR, zh-Hans;q=0.5") == "zh"
    assert choose_language(None, "zh-TW") == "en"  # Traditional Chinese is not Simplified: the default
    assert choose_language(None, None, "zh") == "zh"
    assert choose_language("klingon", "de", "zh") == "zh"


def test_numbers_and_dates_follow_the_locale() -> None:
    assert number(12345.678, "en") == "12,345.68"
    assert number(12345.678, "zh", 0) == "12,346"
    moment = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert instant(moment, "Asia/Shanghai", "en") == "2026-11-01 00:00"
    assert instant(moment, "Asia/Shanghai", "zh") == "2026年11月1日 00:00"


def test_the_dashboard_renders_in_chinese_and_its_refresh_keeps_the_language() -> None:
    from pydantic import TypeAdapter

    from reporting.domain.config import ReportingConfig
    from reporting.domain.dashboard import DashboardView, dashboard
    from reporting.domain.periods import period_containing
    from reporting.render.html import render_dashboard

    now = datetime(2026, 10, 20, 4, tzinfo=UTC)
    view = dashboard("t", now, period_containing(now, "UTC", "monthly"), ReportingConfig(), [], [], [], [])
    page = render_dashboard(
        TypeAdapter(DashboardView).dump_python(view, mode="json"),
        fragment=False,
        refresh_seconds=30,
        nonce="n",
        language="zh",
    )
    for text in ("服务级别看板", "当前违约", "每 30 秒自动刷新。", 'lang="zh-Hans"', "?fragment=1&lang=zh"):
        assert text in page
