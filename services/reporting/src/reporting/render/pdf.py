"""PDF of the report: the printable HTML laid out by WeasyPrint (needs Pango: scripts/install-system-deps.sh)."""

from __future__ import annotations

from typing import Any

from reporting.render.html import render_report_html


def render_pdf(document: dict[str, Any]) -> bytes:
    # Imported on use: its native libraries load only for PDF requests.
    from weasyprint import HTML  # type: ignore[import-untyped]

    html = render_report_html(document)
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
