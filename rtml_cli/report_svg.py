"""Inline SVG for the HTML report, drawn by rtml itself (no plotting library needed).

Every chart is a plain ``<svg>`` element with a ``viewBox``, no external reference and every
piece of user text (strategy names, axis labels, tick labels) escaped with
:func:`rtml_cli.escape.for_html`, so an HTML report is complete with only the base install.

Sparklines of one series share one box (same ``width``, ``height`` and ``viewBox``) and one
y-scale, so rows line up and compare by eye.

Examples
--------
>>> s = sparkline_svg([0.0, 1.0], lo=0.0, hi=1.0)
>>> s.startswith('<svg class="spark"') and 'viewBox="0 0 120 20"' in s
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeGuard

from rtml_cli.escape import for_html

# Matplotlib's "tab10": distinguishable and colour-blind tolerant.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
SPARK_W, SPARK_H = 120, 20
_CHART_W, _CHART_H = 800, 280
# plot margins; the right one holds the legend
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 190, 14, 48
_PAD = 0.06  # of the value range, above and below, so lines never run on the frame


def finite(v: object) -> TypeGuard[float]:
    """A real number (not None, NaN, infinite, a bool or a string)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def finite_values(values: Iterable[object]) -> list[float]:
    """The finite numbers among ``values``, as floats."""
    return [float(v) for v in values if finite(v)]


def _coord(v: float) -> str:
    """An SVG coordinate, to a tenth of a pixel."""
    return f"{v:.1f}"


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points; ``None`` breaks the line (a missing value)."""
    out, pen = [], "M"
    for p in points:
        if p is None:
            pen = "M"
            continue
        out.append(f"{pen}{_coord(p[0])} {_coord(p[1])}")
        pen = "L"
    return " ".join(out)


def sparkline_svg(
    values: Sequence[float | None], *, lo: float | None, hi: float | None, colour: str = PALETTE[0]
) -> str:
    """One row's sparkline in the shared box; ``lo``/``hi`` are the series-wide scale."""
    n = len(values)
    pts: list[tuple[float, float] | None] = []
    span = (hi - lo) if finite(lo) and finite(hi) else 0.0
    for i, v in enumerate(values):
        if not finite(v):
            pts.append(None)
            continue
        x = 1 + (SPARK_W - 2) * (i / (n - 1) if n > 1 else 0.5)
        frac = (v - lo) / span if span > 0 and finite(lo) else 0.5
        pts.append((x, SPARK_H - 2 - (SPARK_H - 4) * frac))
    dots = "".join(
        f'<circle cx="{_coord(p[0])}" cy="{_coord(p[1])}" r="1.2" fill="{colour}" />'
        for i, p in enumerate(pts)
        if p is not None
        and (i == 0 or pts[i - 1] is None)
        and (i == len(pts) - 1 or pts[i + 1] is None)
    )  # isolated points would be invisible as a path
    return (
        f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" '
        f'viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" aria-hidden="true">'
        f'<path d="{_path(pts)}" fill="none" stroke="{colour}" stroke-width="1.5" />{dots}</svg>'
    )


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _fmt_tick(v: float) -> str:
    return f"{v:.4g}"


def _frame(
    title: str,
    xlabel: str,
    ylabel: str,
    yticks: list[tuple[float, str]],
    xticks: list[tuple[float, str]],
) -> list[str]:
    """Axes, grid, tick labels and axis labels (coordinates already in pixels)."""
    x0, x1, y0, y1 = _MARGIN_LEFT, _CHART_W - _MARGIN_RIGHT, _CHART_H - _MARGIN_BOTTOM, _MARGIN_TOP
    out = [
        f'<svg class="chart" width="{_CHART_W}" height="{_CHART_H}" viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" '
        'font-family="system-ui,sans-serif" font-size="11">',
        f"<title>{for_html(title)}</title>",
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999" />',
    ]
    for py, label in yticks:
        out.append(
            f'<line x1="{x0}" x2="{x1}" y1="{_coord(py)}" y2="{_coord(py)}" stroke="#e5e5e5" />'
        )
        out.append(
            f'<text x="{x0 - 4}" y="{_coord(py + 4)}" text-anchor="end">{for_html(label)}</text>'
        )
    for px, label in xticks:
        out.append(
            f'<line x1="{_coord(px)}" x2="{_coord(px)}" y1="{y0}" y2="{y0 + 4}" stroke="#999" />'
        )
        out.append(
            f'<text x="{_coord(px)}" y="{y0 + 16}" text-anchor="middle">{for_html(label)}</text>'
        )
    out.append(
        f'<text x="{(x0 + x1) // 2}" y="{_CHART_H - 8}" text-anchor="middle">{for_html(xlabel)}</text>'
    )
    out.append(
        f'<text x="14" y="{(y0 + y1) // 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(y0 + y1) // 2})">{for_html(ylabel)}</text>'
    )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    """Beside the plot, never over the data; a long name is cut (its full text is a tooltip)."""
    out = []
    x = _CHART_W - _MARGIN_RIGHT + 12
    for i, name in enumerate(names):
        y = _MARGIN_TOP + 12 + 16 * i
        c = PALETTE[i % len(PALETTE)]
        shown = name if len(name) <= 26 else name[:25] + "…"
        out.append(
            f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" stroke="{c}" '
            f'stroke-width="2" /><text x="{x + 20}" y="{y}"><title>{for_html(name)}</title>'
            f"{for_html(shown)}</text>"
        )
    return out


def _log_ticks(tlo: float, thi: float) -> list[float]:
    """1-2-5 ticks between 10**tlo and 10**thi (only powers of ten over many decades)."""
    mults = (1, 2, 5) if thi - tlo <= 3 else (1,)
    out = [
        m * 10.0**e
        for e in range(math.floor(tlo) - 1, math.ceil(thi) + 1)
        for m in mults
        if tlo - 1e-9 <= math.log10(m * 10.0**e) <= thi + 1e-9
    ]
    if len(out) < 3:  # less than a decade: plain round values read better
        out = [t for t in _ticks(10.0**tlo, 10.0**thi) if t > 0]
    return out


def line_chart(
    title: str, x: Sequence[str], lines: Mapping[str, Sequence[float | None]], ylabel: str
) -> str:
    """Values over shared categorical x positions (bucket starts), one line per name."""
    fin = finite_values(v for vals in lines.values() for v in vals)
    lo, hi = (min(fin), max(fin)) if fin else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - _PAD * (hi - lo), hi + _PAD * (hi - lo)
    n = max([len(x)] + [len(v) for v in lines.values()])

    def px(i: int) -> float:
        return _MARGIN_LEFT + (_CHART_W - _MARGIN_LEFT - _MARGIN_RIGHT) * (
            i / (n - 1) if n > 1 else 0.5
        )

    def py(v: float) -> float:
        return (
            _CHART_H
            - _MARGIN_BOTTOM
            - (_CHART_H - _MARGIN_BOTTOM - _MARGIN_TOP) * (v - lo) / (hi - lo)
        )

    step = max(
        1, math.ceil(n / ((_CHART_W - _MARGIN_LEFT - _MARGIN_RIGHT) // 110))
    )  # a date label is ~100 px wide
    xt = [(px(i), str(x[i])[:16].replace("T", " ")) for i in range(0, min(n, len(x)), step)]
    yt = [(py(t), _fmt_tick(t)) for t in _ticks(lo, hi)]
    out = _frame(title, "", ylabel, yt, xt)
    for k, (name, vals) in enumerate(lines.items()):
        c = PALETTE[k % len(PALETTE)]
        pts = [(px(i), py(v)) if finite(v) else None for i, v in enumerate(vals)]
        out.append(
            f'<path d="{_path(pts)}" fill="none" stroke="{c}" stroke-width="1.8">'
            f"<title>{for_html(name)}</title></path>"
        )
        out += [
            f'<circle cx="{_coord(p[0])}" cy="{_coord(p[1])}" r="2" fill="{c}" />' for p in pts if p
        ]
    out += _legend(list(lines))
    out.append("</svg>")
    return "".join(out)


def xy_chart(
    title: str,
    lines: Mapping[str, Sequence[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    *,
    hline: float | None = None,
    logy: bool = False,
) -> str:
    """Numeric x/y lines with an optional dashed horizontal reference (the SLO)."""
    pts_all = [(a, b) for v in lines.values() for a, b in v if finite(a) and finite(b)]
    if logy:
        pts_all = [(a, b) for a, b in pts_all if b > 0]
    ref = float(hline) if finite(hline) and (not logy or hline > 0) else None
    ys = [b for _, b in pts_all] + ([ref] if ref is not None else [])
    xs = [a for a, _ in pts_all]
    xlo, xhi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if xhi <= xlo:
        xlo, xhi = xlo - 1, xhi + 1
    ylo, yhi = (min(ys), max(ys)) if ys else (1.0, 10.0)
    tr = (lambda v: math.log10(v)) if logy else (lambda v: v)
    tlo, thi = tr(ylo), tr(yhi)
    if thi <= tlo:
        tlo, thi = tlo - 0.5, thi + 0.5
    tlo, thi = tlo - _PAD * (thi - tlo), thi + _PAD * (thi - tlo)
    xlo, xhi = xlo - _PAD * (xhi - xlo), xhi + _PAD * (xhi - xlo)

    def px(v: float) -> float:
        return _MARGIN_LEFT + (_CHART_W - _MARGIN_LEFT - _MARGIN_RIGHT) * (v - xlo) / (xhi - xlo)

    def py(v: float) -> float:
        return (
            _CHART_H
            - _MARGIN_BOTTOM
            - (_CHART_H - _MARGIN_BOTTOM - _MARGIN_TOP) * (tr(v) - tlo) / (thi - tlo)
        )

    if logy:
        yt = [(py(t), _fmt_tick(t)) for t in _log_ticks(tlo, thi)]
    else:
        yt = [(py(t), _fmt_tick(t)) for t in _ticks(tlo, thi)]
    whole = all(float(a).is_integer() for a in xs)  # worker counts: no 1.5 tick
    xt = [
        (px(t), _fmt_tick(t))
        for t in _ticks(xlo, xhi)
        if xlo <= t <= xhi and (not whole or float(t).is_integer())
    ]
    out = _frame(title, xlabel, ylabel, yt, xt)
    names = list(lines)
    if ref is not None:
        y = py(ref)
        out.append(
            f'<line x1="{_MARGIN_LEFT}" x2="{_CHART_W - _MARGIN_RIGHT}" y1="{_coord(y)}" y2="{_coord(y)}" stroke="#777" '
            f'stroke-dasharray="5 4"><title>{for_html(f"SLO {ref:g} ms")}</title></line>'
            f'<text x="{_MARGIN_LEFT + 4}" y="{_coord(y - 4)}" fill="#555">{for_html(f"SLO {ref:g} ms")}'
            "</text>"
        )
    for k, name in enumerate(names):
        c = PALETTE[k % len(PALETTE)]
        pts = [
            (px(a), py(b))
            for a, b in lines[name]
            if finite(a) and finite(b) and (not logy or b > 0)
        ]
        out.append(
            f'<path d="{_path(pts)}" fill="none" stroke="{c}" stroke-width="1.8">'
            f"<title>{for_html(name)}</title></path>"
        )
        out += [f'<circle cx="{_coord(p[0])}" cy="{_coord(p[1])}" r="3" fill="{c}" />' for p in pts]
    out += _legend(names)
    out.append("</svg>")
    return "".join(out)


# sequential scale for heatmaps: light (worst) to dark (best), readable in print and for most
# colour vision deficiencies (matplotlib's "Blues" ends)
_HEAT_LO, _HEAT_HI = (247, 251, 255), (8, 48, 107)
_HEAT_MAX_CELL = 36


def _heat_colour(frac: float) -> str:
    rgb = (round(a + (b - a) * frac) for a, b in zip(_HEAT_LO, _HEAT_HI, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(
    title: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    xlabel: str,
    ylabel: str,
    higher_is_better: bool = True,
) -> str:
    """A matrix as coloured cells (darker = better), a missing value left blank; every cell has
    its row, column and value as a tooltip. At most ~10 tick labels per axis."""
    n_rows, n_cols = len(values), max((len(r) for r in values), default=0)
    fin = finite_values(v for r in values for v in r)
    lo, hi = (min(fin), max(fin)) if fin else (0.0, 1.0)
    cell = max(4.0, min(_HEAT_MAX_CELL, 520 / max(1, n_cols), 360 / max(1, n_rows)))
    x0, y0 = 150.0, 16.0
    width = int(x0 + cell * n_cols + 150)
    height = int(y0 + cell * n_rows + 70)
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" font-family="system-ui,sans-serif" font-size="11">',
        f"<title>{for_html(title)}</title>",
    ]
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if not finite(v):
                continue
            frac = (v - lo) / (hi - lo) if hi > lo else 1.0
            frac = frac if higher_is_better else 1.0 - frac
            label = row_labels[i] if i < len(row_labels) else str(i)
            col = col_labels[j] if j < len(col_labels) else str(j)
            out.append(
                f'<rect x="{_coord(x0 + j * cell)}" y="{_coord(y0 + i * cell)}" '
                f'width="{_coord(cell)}" height="{_coord(cell)}" fill="{_heat_colour(frac)}">'
                f"<title>{for_html(f'{ylabel} {label}, {xlabel} {col}: {v:.4g}')}</title></rect>"
            )
    out.append(
        f'<rect x="{x0}" y="{y0}" width="{_coord(cell * n_cols)}" height="{_coord(cell * n_rows)}" '
        'fill="none" stroke="#999" />'
    )
    row_step = max(1, math.ceil(n_rows / 10))
    for i in range(0, n_rows, row_step):
        label = str(row_labels[i]) if i < len(row_labels) else str(i)
        out.append(
            f'<text x="{x0 - 4}" y="{_coord(y0 + (i + 0.5) * cell + 4)}" text-anchor="end">'
            f"{for_html(label[:16].replace('T', ' '))}</text>"
        )
    col_step = max(1, math.ceil(n_cols / 6), math.ceil(72 / cell))  # a date label is ~65 px
    for j in range(0, n_cols, col_step):
        label = str(col_labels[j]) if j < len(col_labels) else str(j)
        out.append(
            f'<text x="{_coord(x0 + (j + 0.5) * cell)}" y="{_coord(y0 + n_rows * cell + 14)}" '
            f'text-anchor="middle">{for_html(label[:10])}</text>'
        )
    bottom = y0 + n_rows * cell
    out.append(
        f'<text x="{_coord(x0 + n_cols * cell / 2)}" y="{_coord(bottom + 34)}" '
        f'text-anchor="middle">{for_html(xlabel)}</text>'
    )
    out.append(
        f'<text x="12" y="{_coord(y0 + n_rows * cell / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_coord(y0 + n_rows * cell / 2)})">{for_html(ylabel)}</text>'
    )
    # the colour key: worst to best, with the values at its ends
    kx = x0 + n_cols * cell + 20
    worst, best = (lo, hi) if higher_is_better else (hi, lo)
    for k in range(10):
        out.append(
            f'<rect x="{_coord(kx)}" y="{_coord(y0 + 12 * k)}" width="14" height="12" '
            f'fill="{_heat_colour(1 - k / 9)}" />'
        )
    out.append(f'<text x="{_coord(kx + 18)}" y="{_coord(y0 + 10)}">best {best:.4g}</text>')
    out.append(f'<text x="{_coord(kx + 18)}" y="{_coord(y0 + 118)}">worst {worst:.4g}</text>')
    out.append("</svg>")
    return "".join(out)
