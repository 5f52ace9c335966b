"""The freshness chart of a sweep report: quality gain against refresh interval, with bands.

One line per strategy (and setting of the keys that are not a cadence): x is how often the
deployment refreshes (log scale, slowest left), y the gain of the primary metric over the
baseline with its 95 % interval as a shaded band; the compute cost of each point is drawn dashed
on its own axis at the right. Plain inline SVG like :mod:`rtml_cli.report_svg`: every piece of
text goes through :func:`rtml_cli.escape.for_html`.

Examples
--------
>>> svg = freshness_chart({"batch": [(86400.0, 0.01, 0.0, 0.02, 1.0)]}, ylabel="AUC gain")
>>> svg.startswith('<svg class="chart"') and "batch" in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rtml_cli.durations import format_duration
from rtml_cli.escape import for_html
from rtml_cli.report_svg import PALETTE, finite

#: (refresh seconds, gain, interval low, interval high, cost) of one point; None = missing
Point = tuple[float, float | None, float | None, float | None, float | None]

_W, _H = 820, 320
_L, _R, _T, _B = 70, 250, 16, 52


def _nice(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


def _dur(seconds: float) -> str:
    return format_duration(max(1, int(round(seconds * 1e6))))


def freshness_chart(
    lines: Mapping[str, Sequence[Point]],
    *,
    ylabel: str = "gain over the baseline",
    costlabel: str = "compute, CPU s",
    hline: float | None = 0.0,
) -> str:
    """Inline SVG; points without a refresh interval or a gain are left out."""
    pts = {n: sorted((p for p in ps if finite(p[0]) and p[0] > 0 and finite(p[1])),
                     key=lambda p: -p[0]) for n, ps in lines.items()}  # fmt: skip
    xs = [p[0] for ps in pts.values() for p in ps]
    ys = [v for ps in pts.values() for p in ps for v in p[1:4] if finite(v)]
    cs = [p[4] for ps in pts.values() for p in ps if finite(p[4]) and p[4] > 0]
    if hline is not None:
        ys.append(hline)
    if not xs or not ys:
        return '<svg class="chart" viewBox="0 0 10 10" xmlns="http://www.w3.org/2000/svg"></svg>'
    x_lo, x_hi = math.log10(min(xs)), math.log10(max(xs))
    if x_hi - x_lo < 1e-9:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.08 or abs(y_hi) * 0.1 or 0.01
    y_lo, y_hi = y_lo - pad, y_hi + pad
    pw, ph = _W - _L - _R, _H - _T - _B

    def px(x: float) -> float:  # slowest refresh (largest interval) on the left
        return _L + (x_hi - math.log10(x)) / (x_hi - x_lo) * pw

    def py(v: float) -> float:
        return _T + (y_hi - v) / (y_hi - y_lo) * ph

    # whole decades, so the cost axis has its ticks at 0.1, 1, 10 ... and no line on the frame
    c_lo = math.floor(math.log10(min(cs))) if cs else 0
    c_hi = math.ceil(math.log10(max(cs))) if cs else 1
    if c_hi - c_lo < 1:
        c_hi = c_lo + 1

    def pc(c: float) -> float:
        return _T + (c_hi - math.log10(c)) / (c_hi - c_lo) * ph

    e = for_html
    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{e(ylabel)}">',
        f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for t in _nice(y_lo, y_hi):
        y = py(t)
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                   f"{e(_fmt(t))}</text>")  # fmt: skip
    last = -1e9
    for x in sorted(
        set(xs), reverse=True
    ):  # left to right; a label too close to the last is left out
        if px(x) - last < 44:
            continue
        last = px(x)
        out.append(f'<text x="{px(x):.1f}" y="{_T + ph + 16}" font-size="11" '
                   f'text-anchor="middle">{e(_dur(x))}</text>')  # fmt: skip
    if hline is not None and y_lo <= hline <= y_hi:
        y = py(hline)
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555" '
                   'stroke-dasharray="2 3"/>')  # fmt: skip
    out.append(f'<text x="{_L + pw / 2:.1f}" y="{_H - 10}" font-size="12" text-anchor="middle">'
               f"{e('refresh interval (log scale; fresher to the right)')}</text>")  # fmt: skip
    out.append(f'<text transform="translate(14 {_T + ph / 2:.1f}) rotate(-90)" font-size="12" '
               f'text-anchor="middle">{e(ylabel)}</text>')  # fmt: skip
    if cs:
        for k in range(math.ceil(c_lo), math.floor(c_hi) + 1):
            y = pc(10.0**k)
            out.append(f'<text x="{_L + pw + 6}" y="{y + 4:.1f}" font-size="10" fill="#666">'
                       f"{e(_fmt(10.0**k))}</text>")  # fmt: skip
        out.append(f'<text transform="translate({_L + pw + 52} {_T + ph / 2:.1f}) rotate(90)" '
                   f'font-size="12" text-anchor="middle" fill="#666">{e(costlabel)} '
                   "(dashed, log)</text>")  # fmt: skip
    for i, (name, ps) in enumerate(pts.items()):
        colour = PALETTE[i % len(PALETTE)]
        band = [(px(p[0]), py(p[3])) for p in ps if finite(p[2]) and finite(p[3])]
        band += [(px(p[0]), py(p[2])) for p in reversed(ps) if finite(p[2]) and finite(p[3])]
        if len(band) >= 2:
            poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in band)
            out.append(
                f'<polygon points="{poly}" fill="{colour}" fill-opacity="0.15" stroke="none"/>'
            )
        line = " ".join(f"{'M' if j == 0 else 'L'}{px(p[0]):.1f} {py(p[1] or 0):.1f}"
                        for j, p in enumerate(ps))  # fmt: skip
        out.append(f'<path d="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in ps:
            out.append(
                f'<circle cx="{px(p[0]):.1f}" cy="{py(p[1] or 0):.1f}" r="3" fill="{colour}"/>'
            )
        costed = [p for p in ps if finite(p[4]) and p[4] > 0]
        if costed:
            cl = " ".join(f"{'M' if j == 0 else 'L'}{px(p[0]):.1f} {pc(p[4] or 1):.1f}"
                          for j, p in enumerate(costed))  # fmt: skip
            out.append(f'<path d="{cl}" fill="none" stroke="{colour}" stroke-width="1.2" '
                       'stroke-dasharray="5 4"/>')  # fmt: skip
        ly = _T + 14 + 18 * i
        lx = _L + pw + 76
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                   'stroke-width="2"/>')  # fmt: skip
        out.append(f'<text x="{lx + 24}" y="{ly}" font-size="11">{e(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
