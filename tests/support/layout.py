"""Layout checks of rendered pages: HTML in headless Chromium, PDF pages as pictures from pdftoppm.

- `overlapping_labels` asks Chromium for the boxes of every text of every inline SVG chart and returns the pairs
  of one chart that intersect (labels printed over each other).
- `overflow` returns how far the page's content reaches past the viewport's right edge (0 when nothing does).
- `pdf_pages` turns each PDF page into a PNG; `ink_in_right_margin` counts the non-white pixels in a page's right
  margin above its footer: content that runs past the text block (a table too wide for the page) lands there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.chromium import Browser

A4_MM = (210.0, 297.0)
# The report's @page margins (render/templates/_style.css.j2): 14 mm top/bottom, 12 mm left/right.
MARGIN_SIDE_MM, MARGIN_BOTTOM_MM = 12.0, 14.0

_LABEL_BOXES = """
(() => {
  const found = [];
  document.querySelectorAll('svg.chart').forEach((svg, chart) => {
    const boxes = [...svg.querySelectorAll('text')].map(t => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
    }).filter(b => b.x1 > b.x0 && b.text.trim());
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.x0 < b.x1 - 0.5 && b.x0 < a.x1 - 0.5 && a.y0 < b.y1 - 0.5 && b.y0 < a.y1 - 0.5)
        found.push({chart: svg.getAttribute('aria-label'), a: a.text, b: b.text});
    }
  });
  return found;
})()
"""


async def load_html(browser: Browser, html: str, directory: Path, *, width: int, print_media: bool) -> None:
    page = directory / "page.html"
    page.write_text(html, encoding="utf-8")
    await browser.send(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": 1200, "deviceScaleFactor": 1, "mobile": False}
    )
    await browser.send("Emulation.setEmulatedMedia", {"media": "print" if print_media else "screen"})
    await browser.navigate(page.as_uri())


async def overlapping_labels(browser: Browser) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await browser.evaluate(_LABEL_BOXES)
    return found


async def overflow(browser: Browser) -> float:
    return float(
        await browser.evaluate(
            "Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth)"
        )
    )


def pdf_pages(pdf: bytes, directory: Path, dpi: int = 72) -> list[Path]:
    binary = shutil.which("pdftoppm")
    if binary is None:
        pytest.fail(
            "poppler's pdftoppm is missing: run services/reporting/scripts/install-system-deps.sh", pytrace=False
        )
    source = directory / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run([binary, "-r", str(dpi), "-png", str(source), str(directory / "page")], check=True, timeout=120)
    return sorted(directory.glob("page-*.png"))


def ink_in_right_margin(page: Path, *, threshold: int = 235) -> int:
    """Non-white pixels in the right margin (all but its 1 mm next to the text block), above the footer."""
    image = Image.open(page).convert("L")
    width, height = image.size
    px_per_mm = width / A4_MM[0]
    first_column = int(width - (MARGIN_SIDE_MM - 1.0) * px_per_mm)
    last_row = int(height - MARGIN_BOTTOM_MM * px_per_mm)
    margin = image.crop((first_column, 0, width, last_row))
    return sum(margin.histogram()[:threshold])  # grey levels 0..threshold-1
