"""Charts as inline SVG, drawn by Python: no script, no font or file to fetch, so a report
opens anywhere, offline too. Rules only, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 24, 36
COLOUR = "#2f6fb3"


def _scale(values: Sequence[float]) -> float:
    """A round top for the y axis at or above the largest value."""
    top = max([*values, 0.0])
    if top <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if top <= step * 4:
            return float(step * 4)
    return float(top)


def _frame(title: str, labels: Sequence[str], top: float, kind: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for n in range(5):  # gridlines at quarters of the top
        y = TOP + plot_h - plot_h * n / 4
        value = top * n / 4
        shown = f"{value:g}" if value < 10 else f"{value:.0f}"
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{shown}</text>'
        )
    step = plot_w / max(len(labels), 1)
    for i, label in enumerate(labels):
        x = LEFT + step * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="10" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return parts


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """One bar per label; a zero draws no bar."""
    top = _scale(values)
    parts = _frame(title, labels, top, "bars")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels), 1)
    for i, value in enumerate(values):
        height = plot_h * value / top
        x = LEFT + step * i + step * 0.15
        y = TOP + plot_h - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
            f'height="{height:.1f}" fill="{COLOUR}"><title>{escape(labels[i])}: {value:g}'
            "</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> str:
    """A line through one point per label, each point marked."""
    top = _scale(values)
    parts = _frame(title, labels, top, "line")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels), 1)
    points = [
        (LEFT + step * (i + 0.5), TOP + plot_h - plot_h * value / top)
        for i, value in enumerate(values)
    ]
    if points:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points)
        )
        parts.append(
            f'<path class="series" d="{path}" fill="none" stroke="{COLOUR}" stroke-width="2"/>'
        )
    for (x, y), label, value in zip(points, labels, values, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOUR}">'
            f"<title>{escape(label)}: {value:g}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
