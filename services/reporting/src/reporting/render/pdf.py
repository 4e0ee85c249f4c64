"""PDF of the report: the printable HTML laid out by WeasyPrint (needs Pango: scripts/install-system-deps.sh).

The report carries its charts and styles inline, so WeasyPrint may fetch nothing but `data:` URLs: a value
that slipped a `<img src="http://…">` or `file:///etc/…` into the HTML (a ticket title, a service name) would
otherwise make the service request internal addresses or embed local files in the PDF (SSRF, file disclosure).
Every other URL is refused, logged and counted in `slm_pdf_fetches_refused_total`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from reporting.render.html import render_report_html

if TYPE_CHECKING:
    from reporting.i18n import Language

log = logging.getLogger(__name__)

INLINE_ONLY = ("data",)
FETCHES_REFUSED = Counter("slm_pdf_fetches_refused_total", "URLs the PDF renderer refused to fetch (not data:)")


def inline_data_only_fetcher() -> Any:
    """WeasyPrint's own fetcher limited to `data:` URLs, with no redirects; refusals are counted."""
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    class InlineDataOnly(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.split(":", 1)[0].strip().lower() not in INLINE_ONLY:
                FETCHES_REFUSED.inc()
                log.warning("PDF rendering refused to fetch %.200s", url)
                raise ValueError("only inline data: URLs are fetched")
            return super().fetch(url, headers)

    return InlineDataOnly(allowed_protocols=INLINE_ONLY, allow_redirects=False, timeout=1)


def html_to_pdf(html: str) -> bytes:
    # Imported on use: its native libraries load only for PDF requests.
    from weasyprint import HTML  # type: ignore[import-untyped]

    pdf: bytes = HTML(string=html, url_fetcher=inline_data_only_fetcher()).write_pdf()
    return pdf


def render_pdf(document: dict[str, Any], language: Language = "en") -> bytes:
    return html_to_pdf(render_report_html(document, language=language))
