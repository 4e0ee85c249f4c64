"""Languages of the rendered review pack (and whatever else renders through it): English, the source
language, and Simplified Chinese from a gettext catalog (`locale/zh_Hans/LC_MESSAGES/messages.po`, compiled
in memory with Babel when first used, so the repository holds only the text a translator edits).

The language is `?lang=` if given, else the best of the request's `Accept-Language`, else the tenant's
configured `language`. Numbers and dates are formatted for the chosen locale by Babel's CLDR data.
"""

from __future__ import annotations

import functools
import gettext
import io
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

Language = Literal["en", "zh"]
LANGUAGES: dict[str, Language] = {
    "en": "en",
    "zh": "zh",
    "zh-cn": "zh",
    "zh-hans": "zh",
    "zh-sg": "zh",
    "zh-hans-cn": "zh",
}
LOCALES: dict[Language, str] = {"en": "en_GB", "zh": "zh_Hans_CN"}
CATALOGS = Path(__file__).parent / "locale"


def _parse_accept_language(header: str) -> list[tuple[float, str]]:
    found = []
    for part in header.split(",")[:20]:  # a bounded header: at most 20 ranges are looked at
        pieces = part.strip().split(";")
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if pieces[0]:
            found.append((quality, pieces[0].strip().lower()))
    return sorted(found, key=lambda item: -item[0])


def choose_language(requested: str | None, accept_language: str | None, default: Language = "en") -> Language:
    if requested and requested.strip().lower() in LANGUAGES:
        return LANGUAGES[requested.strip().lower()]
    for quality, tag in _parse_accept_language(accept_language or ""):
        if quality <= 0:
            continue
        if tag in LANGUAGES:
            return LANGUAGES[tag]
        if tag.split("-")[0] in LANGUAGES and tag not in ("zh-tw", "zh-hk", "zh-hant", "zh-mo"):
            return LANGUAGES[tag.split("-")[0]]
    return default


@functools.cache
def translations(language: Language) -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()
    with (CATALOGS / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="zh_Hans_CN")
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def number(value: float | int | None, language: Language, decimals: int = 2) -> str:
    if value is None:
        return "–"
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=LOCALES[language])


def instant(value: str | datetime | None, timezone: str, language: Language) -> str:
    if not value:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    pattern = "yyyy-MM-dd HH:mm" if language == "en" else "yyyy年M月d日 HH:mm"
    return format_datetime(moment, pattern, tzinfo=ZoneInfo(timezone), locale=LOCALES[language])
