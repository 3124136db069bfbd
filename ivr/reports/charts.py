"""Charts drawn on the server as SVG text (no script, nothing fetched): grouped bars or
lines over the periods, a y axis with round ticks, a legend. Pure: a ``Chart`` and the
words in, markup out. Time runs left to right in both languages (as on a Hebrew
calendar's graphs); the labels are in the page's language."""

from __future__ import annotations

import math
from html import escape

from ivr.reports.model import Chart, Kind

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 64
#: Colour-blind-safe (Okabe-Ito) series colours.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def nice_top(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above ``value`` (a round axis end)."""
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value:
            return float(m * exp)
    return 10.0 * exp


def tick(value: float, unit: Kind) -> str:
    if unit == "pct":
        return f"{value * 100:g}%"
    return f"{value:g}"


def svg(chart: Chart, title: str, series_labels: list[str]) -> str:
    """The chart as an inline ``<svg>`` element; ``title`` and ``series_labels`` are
    already in the page's language."""
    values = [v for s in chart.series for v in s.values if v is not None]
    top = 1.0 if chart.unit == "pct" else nice_top(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(chart.categories))
    slot = plot_w / n

    def y(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'aria-label="{escape(title)}" direction="ltr" data-chart="{escape(chart.name)}">',
           f"<title>{escape(title)}</title>"]
    for i in range(5):  # the grid and the y axis
        grid = top * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(grid):.1f}" '
                   f'y2="{y(grid):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(grid) + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{escape(tick(grid, chart.unit))}</text>')
    every = max(1, math.ceil(n / 12))  # at most a dozen labels on the x axis
    for i, cat in enumerate(chart.categories):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                       f'font-size="11">{escape(cat)}</text>')
    k = max(1, len(chart.series))
    for s_i, series in enumerate(chart.series):
        colour = COLOURS[s_i % len(COLOURS)]
        if chart.kind == "bar":
            bar = slot * 0.8 / k
            for i, v in enumerate(series.values):
                if v is None:
                    continue
                x = LEFT + slot * i + slot * 0.1 + bar * s_i
                out.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar:.1f}" '
                           f'height="{max(0.0, TOP + plot_h - y(v)):.1f}" fill="{colour}">'
                           f"<title>{escape(series_labels[s_i])}: {escape(tick(v, chart.unit))}"
                           f"</title></rect>")
        else:
            points = [(LEFT + slot * (i + 0.5), y(v)) for i, v in enumerate(series.values)
                      if v is not None]
            if points:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                           f'stroke-width="2"/>')
                out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>'
                        for px, py in points]
    for s_i, name in enumerate(series_labels):  # the legend, under the axis
        x = LEFT + s_i * (plot_w / max(1, len(series_labels)))
        yl = HEIGHT - 18
        out.append(f'<rect x="{x:.1f}" y="{yl - 9}" width="10" height="10" '
                   f'fill="{COLOURS[s_i % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{yl}" font-size="12">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
