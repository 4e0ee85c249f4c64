"""Inline SVG charts, drawn on the server: no script, no CDN, identical on screen, in print and in PDF."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

STATUS_COLORS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828", "no_data": "#9e9e9e"}
SERIES_COLORS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#37474f")
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    color: str
    caption: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float | None]


# Average advance of a DejaVu Sans glyph is about 0.62 em (digits 0.636 em): enough to keep labels apart.
GLYPH_EM = 0.64


def text_width(text: str, font_size: float) -> float:
    """Estimated width of `text` in px: the charts are drawn on the server, with no layout engine to ask.
    Wide (CJK) characters take a full em."""
    ems = sum(1.0 if unicodedata.east_asian_width(c) in ("W", "F") else GLYPH_EM for c in text)
    return ems * font_size


def label_stride(labels: Sequence[str], step: float, font_size: float) -> int:
    """Show every n-th axis label so that neighbours never overlap (with 4 px between them)."""
    widest = max((text_width(label, font_size) for label in labels), default=0.0)
    return max(1, math.ceil((widest + 4) / step)) if step > 0 else 1


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    max_value: float | None = None,
    target: float | None = None,
    unit: str = "",
    width: int = 640,
    height: int = 240,
    missing: str = "n/a",
    target_label: str = "target",
) -> Markup:
    """Vertical bars with value labels; an optional dashed target line."""
    left, bottom, top = 44, 42, 26
    plot_height = height - bottom - top
    values = [b.value for b in bars if b.value is not None]
    ceiling = max_value if max_value is not None else max([*values, target or 0, 1.0]) * 1.1
    if max_value is None and all(float(v).is_integer() for v in values):
        ceiling = float(math.ceil(ceiling / 2) * 2)  # counts: whole numbers on the axis
    # The target's label sits right of the plot, where no bar's value label can run into it.
    right = 10 if target is None else 14 + int(text_width(f"{target_label} {_number(target)}{unit}", 11))
    slot = (width - left - right) / max(len(bars), 1)
    bar_width = min(56.0, slot * 0.7)
    stride = label_stride([b.label for b in bars], slot, 11)
    caption_stride = label_stride([b.caption for b in bars], slot, 9)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' aria-label='{escape(title)}' {FONT} font-size='11'>",
        f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{escape(title)}</text>",
        f"<line x1='{left}' y1='{top + plot_height}' x2='{width - right}' y2='{top + plot_height}' stroke='#555'/>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_height * (1 - fraction)
        parts.append(
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#555'>"
            f"{_number(ceiling * fraction)}{escape(unit)}</text>"
        )
        parts.append(f"<line x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' stroke='#eee'/>")
    for index, bar in enumerate(bars):
        x = left + index * slot + (slot - bar_width) / 2
        label_x = x + bar_width / 2
        if bar.value is not None:
            bar_height = plot_height * min(bar.value, ceiling) / ceiling
            y = top + plot_height - bar_height
            parts.append(
                f"<rect class='bar' x='{x:.1f}' y='{y:.1f}' width='{bar_width:.1f}' "
                f"height='{max(bar_height, 0.5):.1f}' fill='{bar.color}'><title>{escape(bar.label)}: "
                f"{_number(bar.value)}{escape(unit)}</title></rect>"
            )
            parts.append(
                f"<text x='{label_x:.1f}' y='{y - 4:.1f}' text-anchor='middle'>"
                f"{_number(bar.value)}{escape(unit)}</text>"
            )
        else:
            parts.append(
                f"<text x='{label_x:.1f}' y='{top + plot_height - 6}' text-anchor='middle' "
                f"fill='#999'>{escape(missing)}</text>"
            )
        shown = index % stride == 0
        if shown:
            parts.append(
                f"<text class='axis-label' x='{label_x:.1f}' y='{top + plot_height + 14}' "
                f"text-anchor='middle'>{escape(bar.label)}</text>"
            )
        if bar.caption and index % caption_stride == 0:
            parts.append(
                f"<text x='{label_x:.1f}' y='{top + plot_height + 27}' text-anchor='middle' "
                f"fill='#777' font-size='9'>{escape(bar.caption)}</text>"
            )
    if target is not None:
        y = top + plot_height * (1 - min(target, ceiling) / ceiling)
        parts.append(
            f"<line class='target' x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' "
            f"stroke='#212121' stroke-dasharray='5,3'/>"
        )
        parts.append(
            f"<text x='{width - right + 4}' y='{y + 4:.1f}' fill='#212121'>{escape(target_label)} "
            f"{_number(target)}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704


def line_chart(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    title: str,
    y_min: float = 0.0,
    y_max: float = 100.0,
    target: float | None = None,
    unit: str = "%",
    width: int = 640,
    height: int = 240,
) -> Markup:
    """One line per series across the periods; gaps where a period has no value."""
    left, bottom, top, right = 44, 40, 26, 120
    plot_width, plot_height = width - left - right, height - bottom - top
    step = plot_width / max(len(labels) - 1, 1)

    def y_of(value: float) -> float:
        clipped = min(max(value, y_min), y_max)
        return top + plot_height * (1 - (clipped - y_min) / ((y_max - y_min) or 1))

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' aria-label='{escape(title)}' {FONT} font-size='11'>",
        f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{escape(title)}</text>",
    ]
    for value in (y_min, (y_min + y_max) / 2, y_max):
        parts.append(
            f"<line x1='{left}' y1='{y_of(value):.1f}' x2='{left + plot_width}' y2='{y_of(value):.1f}' "
            f"stroke='#eee'/><text x='{left - 6}' y='{y_of(value) + 4:.1f}' text-anchor='end' "
            f"fill='#555'>{_number(value)}{escape(unit)}</text>"
        )
    # The last label (the period reported) is always shown; thinning counts back from it.
    stride = label_stride(labels, step, 10)
    last = len(labels) - 1
    for index, label in enumerate(labels):
        if (last - index) % stride:
            continue
        parts.append(
            f"<text class='axis-label' x='{left + index * step:.1f}' y='{top + plot_height + 16}' "
            f"text-anchor='middle' font-size='10'>{escape(label)}</text>"
        )
    if target is not None:
        parts.append(
            f"<line class='target' x1='{left}' y1='{y_of(target):.1f}' x2='{left + plot_width}' "
            f"y2='{y_of(target):.1f}' stroke='#212121' stroke-dasharray='5,3'/>"
        )
    for number, line in enumerate(series):
        points = [(left + i * step, y_of(v)) for i, v in enumerate(line.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f"<polyline class='series' points='{path}' fill='none' stroke='{line.color}' stroke-width='2'/>"
            )
        for x, y in points:
            parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{line.color}'/>")
        legend_y = top + 14 * number
        parts.append(
            f"<rect x='{left + plot_width + 12}' y='{legend_y}' width='10' height='10' "
            f"fill='{line.color}'/><text x='{left + plot_width + 26}' y='{legend_y + 9}'>"
            f"{escape(line.name)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704


def budget_bars(
    rows: Sequence[tuple[str, float | None, str]], *, title: str, width: int = 640, missing: str = "n/a"
) -> Markup:
    """Horizontal bars of the error budget left (percent), one per SLO."""
    row_height, left, top = 26, 170, 26
    height = top + row_height * max(len(rows), 1) + 10
    plot_width = width - left - 60
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' role='img' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' aria-label='{escape(title)}' {FONT} font-size='11'>",
        f"<text x='4' y='16' font-size='13' font-weight='bold'>{escape(title)}</text>",
    ]
    for index, (label, percent, status) in enumerate(rows):
        y = top + index * row_height
        parts.append(
            f"<text x='{left - 8}' y='{y + 15}' text-anchor='end'>{escape(label)}</text>"
            f"<rect x='{left}' y='{y + 3}' width='{plot_width}' height='16' fill='#f0f0f0'/>"
        )
        if percent is not None:
            filled = plot_width * min(max(percent, 0.0), 100.0) / 100
            parts.append(
                f"<rect class='bar' x='{left}' y='{y + 3}' width='{max(filled, 0.5):.1f}' height='16' "
                f"fill='{STATUS_COLORS.get(status, '#9e9e9e')}'/><text x='{left + plot_width + 6}' "
                f"y='{y + 15}'>{_number(percent)}%</text>"
            )
        else:
            parts.append(f"<text x='{left + plot_width + 6}' y='{y + 15}' fill='#999'>{escape(missing)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704
