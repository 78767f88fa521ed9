"""Charts drawn as SVG on the server: no chart library reaches the browser, and charts show without JS.

Each chart is an `<svg role="img">` with a title and a description listing its numbers, so a screen
reader gets what the picture shows. Sizes are in SVG units inside a viewBox that scales to the page.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from markupsafe import Markup

PALETTE = ("#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490")
_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 30, 40
CURVE_POINTS = 400  # per loss curve: a long run's chart stays small while the live page redraws it


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value <= high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.2e}"


def _tick_format(ticks: list[float]):
    """Tick labels with as many decimals as the spacing needs (10.75 and 10.8 must not both read 10.8)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 0.0
    if not step or max(abs(t) for t in ticks) >= 1e5:
        return _fmt
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return lambda value: f"{value:.{decimals}f}"


class _Frame:
    """Maps data coordinates into the plot area and draws its axes."""

    def __init__(self, xs: list[float], ys: list[float], *, y_from_zero: bool = False, top: float = _TOP):
        self.top = top  # more legend rows push the plot down
        self.xt = nice_ticks(min(xs), max(xs))
        self.yt = nice_ticks(0.0 if y_from_zero else min(ys), max(ys))
        self.x0, self.x1, self.y0, self.y1 = self.xt[0], self.xt[-1], self.yt[0], self.yt[-1]

    def x(self, value: float) -> float:
        return _LEFT + (value - self.x0) / ((self.x1 - self.x0) or 1) * (_W - _LEFT - _RIGHT)

    def y(self, value: float) -> float:
        return _H - _BOTTOM - (value - self.y0) / ((self.y1 - self.y0) or 1) * (_H - self.top - _BOTTOM)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        out = []
        y_text, x_text = _tick_format(self.yt), _tick_format(self.xt)
        for tick in self.yt:
            y = self.y(tick)
            out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                       f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{y_text(tick)}</text>')
        for tick in self.xt:
            x = self.x(tick)
            out.append(f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">{x_text(tick)}</text>')
        out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}" class="axis"/>')
        out.append(f'<text x="{(_LEFT + _W - _RIGHT) / 2:.0f}" y="{_H - 6}" text-anchor="middle">{escape(x_label)}</text>')
        out.append(f'<text x="14" y="{(_TOP + _H - _BOTTOM) / 2:.0f}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {(_TOP + _H - _BOTTOM) / 2:.0f})">{escape(y_label)}</text>')
        return out


def _svg(chart_id: str, title: str, desc: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'preserveAspectRatio="xMidYMid meet"><title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>' + "".join(body) + "</svg>")


def _empty(chart_id: str, title: str, message: str) -> Markup:
    return _svg(chart_id, title, message, [f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" class="muted">'
                                           f'{escape(message)}</text>'])


def line_chart(series: list[dict[str, Any]], *, chart_id: str, title: str, x_label: str, y_label: str,
               empty: str = "No data yet") -> Markup:
    """`series`: [{"label", "points": [[x, y], ...], "dash": bool}] drawn as lines with a legend."""
    finite = [(float(x), float(y)) for s in series for x, y in s["points"]
              if y is not None and math.isfinite(float(y))]
    if not finite:
        return _empty(chart_id, title, empty)
    legend_rows = max(1, (len(series) + 3) // 4)
    frame = _Frame([p[0] for p in finite], [p[1] for p in finite], top=_TOP + 14 * (legend_rows - 1))
    body = frame.axes(x_label, y_label)
    described = []
    for i, item in enumerate(series):
        points = [(float(x), float(y)) for x, y in item["points"] if y is not None and math.isfinite(float(y))]
        if not points:
            continue
        color = item.get("color") or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if item.get("dash") else ""
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        if len(points) == 1:
            body.append(f'<circle cx="{frame.x(points[0][0]):.1f}" cy="{frame.y(points[0][1]):.1f}" r="3" '
                        f'fill="{color}"/>')
        legend_x = _LEFT + 8 + 150 * (i % 4)
        legend_y = 14 + 14 * (i // 4)
        body.append(f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
                    f'stroke="{color}" stroke-width="3"{dash}/><text x="{legend_x + 22}" y="{legend_y}">'
                    f'{escape(str(item["label"])[:22])}</text>')
        last_x, last_y = points[-1]
        described.append(f"{item['label']}: {len(points)} points, last {_fmt(last_y)} at {x_label} {_fmt(last_x)}")
    return _svg(chart_id, title, "; ".join(described), body)


def histogram(edges: list[float], counts: list[int], *, chart_id: str, title: str, x_label: str,
              marker: float | None = None, marker_label: str = "") -> Markup:
    """Bars for `counts` between consecutive `edges`; an optional vertical marker (e.g. the max length)."""
    if not counts:
        return _empty(chart_id, title, "No lengths measured")
    xs = list(edges) + ([marker] if marker is not None and marker <= edges[-1] * 1.5 else [])
    frame = _Frame(xs, [0.0, float(max(counts))], y_from_zero=True)
    body = frame.axes(x_label, "examples")
    for i, count in enumerate(counts):
        left, right = frame.x(edges[i]), frame.x(edges[i + 1])
        top = frame.y(count)
        body.append(f'<rect x="{left + 1:.1f}" y="{top:.1f}" width="{max(1.0, right - left - 2):.1f}" '
                    f'height="{_H - _BOTTOM - top:.1f}" class="bar"><title>{edges[i]:g}-{edges[i + 1]:g}: '
                    f'{count}</title></rect>')
    if marker is not None and frame.x0 <= marker <= frame.x1:
        x = frame.x(marker)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" class="marker"/>'
                    f'<text x="{x - 4:.1f}" y="{_TOP - 6}" text-anchor="end">{escape(marker_label)}</text>')
    desc = ", ".join(f"{edges[i]:g}-{edges[i + 1]:g}: {c}" for i, c in enumerate(counts))
    return _svg(chart_id, title, f"{x_label} per example, counts per bin: {desc}", body)


def thin(points: list, most: int = CURVE_POINTS) -> list:
    """At most `most` points, evenly spaced, the first and last kept (a 640-unit chart shows no more)."""
    if len(points) <= most:
        return points
    stride = (len(points) - 1) / (most - 1)
    return [points[round(i * stride)] for i in range(most)]


def loss_curves(runs: list[dict[str, Any]], *, chart_id: str, title: str = "Loss per step") -> Markup:
    """Train (solid) and validation (dashed) loss of one or more runs: `runs` = [{"label", "curves"}]."""
    series = []
    for i, run in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        prefix = f"{run['label']} " if len(runs) > 1 else ""
        series.append({"label": f"{prefix}train", "points": thin(run["curves"].get("train_loss", [])),
                       "color": color})
        series.append({"label": f"{prefix}validation", "points": thin(run["curves"].get("val_loss", [])),
                       "color": color, "dash": True})
    return line_chart(series, chart_id=chart_id, title=title, x_label="step", y_label="loss",
                      empty="No steps yet: the curves appear with the first step")
