"""Drawing the report's format-neutral sections in a terminal, in Markdown and in HTML.

:func:`rtml_cli.report_layout.layout` gives sections of blocks holding *raw* text: strategy names,
paths, check expressions and manifest values exactly as the user wrote them. Each renderer here
escapes every piece of text for its medium when it draws it, through :mod:`rtml_cli.escape`
(one function per medium), so no caller has to remember to.

Blocks: ``str`` (a paragraph), ``list[str]`` (bullets), :class:`Table`, :class:`Series`
(quality over time: sparklines, and a chart in HTML), :class:`Curve` (an x/y chart, HTML
only; the other formats show its numbers in a table) and :class:`Heatmap` (a matrix, HTML only;
the other formats show a compact table of it).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtml_cli import report_svg
from rtml_cli.escape import for_html, for_markdown, for_terminal
from rtml_cli.report_svg import finite, finite_values
from rtml_cli.report_values import format_metric

_SPARK = "▁▂▃▄▅▆▇█"
STATUS = ("PASS", "FAIL", "ERROR")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Series:
    """Quality over time: one line per strategy over shared bucket starts."""

    title: str
    x: list[str]
    lines: dict[str, list[float | None]]
    ylabel: str = ""


@dataclass
class Curve:
    """An x/y chart, drawn in HTML only (terminal and Markdown show the numbers as a table)."""

    title: str
    xlabel: str
    ylabel: str
    lines: dict[str, list[tuple[float, float]]]
    hline: float | None = None
    logy: bool = False


@dataclass
class Heatmap:
    """A matrix (``values[row][column]``), drawn in HTML only (terminal and Markdown show a
    compact table of it, a Table block the section gives beside it)."""

    title: str
    row_labels: list[str]
    col_labels: list[str]
    values: list[list[float | None]]
    xlabel: str = ""
    ylabel: str = ""
    higher_is_better: bool = True


#: A paragraph (str), bullets (list[str]), a Table, a Series, a Curve or a Heatmap.
Block = str | list[str] | Table | Series | Curve | Heatmap
Sections = list[tuple[str, list[Block]]]


def sparkline(
    values: Sequence[float | None], lo: float | None = None, hi: float | None = None
) -> str:
    """Unicode sparkline; missing values are spaces. ``lo``/``hi`` share a scale across lines.

    Examples
    --------
    >>> sparkline([0, 0.5, 1, None])
    '▁▅█ '
    """
    fin = finite_values(values)
    if not fin:
        return " " * len(values)
    lo = min(fin) if lo is None else lo
    hi = max(fin) if hi is None else hi
    span = hi - lo
    out = []
    for v in values:
        if not finite(v):
            out.append(" ")
        else:
            i = 0 if span <= 0 else int(round((v - lo) / span * (len(_SPARK) - 1)))
            out.append(_SPARK[max(0, min(len(_SPARK) - 1, i))])
    return "".join(out)


def _shrink(values: Sequence[float | None], n: int) -> list[float | None]:
    """At most ``n`` points: consecutive buckets averaged, so a sparkline fits a narrow line."""
    if len(values) <= n or n < 1:
        return list(values)
    out: list[float | None] = []
    for k in range(n):
        chunk = finite_values(values[k * len(values) // n : (k + 1) * len(values) // n])
        out.append(sum(chunk) / len(chunk) if chunk else None)
    return out


def series_lines(s: Series, max_len: int | None = None) -> list[tuple[str, str, str]]:
    """(name, sparkline, "min–max") per line, on one scale shared by every line."""
    fin = finite_values(v for vals in s.lines.values() for v in vals)
    lo, hi = (min(fin), max(fin)) if fin else (None, None)
    out = []
    for name, vals in s.lines.items():
        f = finite_values(vals)
        rng = f"{format_metric(min(f))}–{format_metric(max(f))}" if f else "n/a"
        shown = _shrink(vals, max_len) if max_len else vals
        out.append((name, sparkline(shown, lo, hi), rng))
    return out


# --------------------------------------------------------------------------- terminal


def _terminal_text(text: Any) -> str:
    """User text for one line of the terminal (control characters made visible)."""
    return for_terminal(text, inline=True)


def _min_width(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(w) for w in text.split()), default=0)


def render_terminal(
    head: str, sections: Sections, *, color: bool = False, width: int | None = None
) -> str:
    """Rich tables and sparklines; ANSI colour only when ``color`` (the CLI passes isatty).

    A table that cannot fit the width without breaking a word is drawn stacked instead (one
    block per row, ``header: value`` lines), so an 80-column terminal never gets split numbers.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table as RTable
    from rich.text import Text

    buf = io.StringIO()
    con = Console(
        file=buf, force_terminal=color, no_color=not color, color_system="auto" if color else None,
        width=width or (None if color else 120), highlight=False, soft_wrap=False, markup=False,
        emoji=False,
    )  # fmt: skip
    w = con.width
    status_style = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold yellow"}

    def bullets(lines: Sequence[str]) -> None:
        g = RTable.grid(padding=(0, 1))
        g.add_column(no_wrap=True)
        g.add_column(overflow="fold")
        for line in lines:
            g.add_row("•", Text(_terminal_text(line)))
        con.print(g)

    def table(b: Table) -> None:
        headers = [_terminal_text(h) for h in b.headers]
        rows = [[_terminal_text(c) for c in r] for r in b.rows]
        mins = [
            max([_min_width(h)] + [_min_width(r[i]) for r in rows if i < len(r)])
            for i, h in enumerate(headers)
        ]
        if sum(mins) + 3 * (len(mins) - 1) + 2 <= w:
            t = RTable(box=box.SIMPLE_HEAD, caption=Text(_terminal_text(b.caption)) if b.caption else None,
                       caption_justify="left", show_edge=False, pad_edge=False)  # fmt: skip
            for h, m in zip(headers, mins, strict=True):
                t.add_column(Text(h), overflow="fold", min_width=m)
            for r in rows:
                t.add_row(*[Text(c, style=status_style.get(c, "")) for c in r])
            if _table_width(t, con) <= w:
                con.print(t)
                return
        # stacked: the first cell heads each row, then "header: value" pieces packed into
        # lines of the width, a piece never split between two lines
        for r in rows:
            con.print(Text(r[0] if r else "", style=status_style.get(r[0], "bold") if r else ""))
            line, used = Text("  "), 2
            for h, c in zip(headers[1:], r[1:], strict=False):
                piece = cell_len(h) + 2 + cell_len(c)
                if used > 2 and used + 2 + piece > w:
                    con.print(line)
                    line, used = Text("  "), 2
                if used > 2:
                    line.append("  ")
                    used += 2
                line.append(h + ": ", style="dim")
                line.append(c, style=status_style.get(c, ""))
                used += piece
            if used > 2:
                con.print(line)
        if b.caption:
            con.print(Text(_terminal_text(b.caption), style="dim"))

    con.print(Text(_terminal_text(head), style="bold"))
    for title, blocks in sections:
        con.print()
        con.print(Text(_terminal_text(title), style="bold underline"))
        for b in blocks:
            if isinstance(b, str):
                con.print(Text(_terminal_text(b)))
            elif isinstance(b, list):
                bullets(b)
            elif isinstance(b, Table):
                table(b)
            elif isinstance(b, Series):
                con.print(Text(_terminal_text(b.title)))
                names = [_terminal_text(n) for n in b.lines]
                name_w = min(max((len(n) for n in names), default=0), w // 3)
                room = max(8, w - name_w - len("0.000–0.000") - 4)
                t = RTable(box=None, show_header=False, pad_edge=False)
                t.add_column("strategy", overflow="fold", max_width=name_w or None)
                t.add_column("sparkline", no_wrap=True)
                t.add_column("range", no_wrap=True)
                for name, spark, rng in series_lines(b, room):
                    t.add_row(Text(_terminal_text(name)), Text(spark, style="cyan"), Text(rng))
                con.print(t)
    # Rich pads table lines to the full width: trailing blanks only make copies messy
    return "\n".join(line.rstrip(" ") for line in buf.getvalue().split("\n"))


def _table_width(t: Any, con: Any) -> int:
    """The width Rich will draw ``t`` with: its column sharing can exceed the console by a few
    cells when minimum widths are tight, and the console would then crop the last column."""
    try:
        widths = t._calculate_column_widths(
            con, con.options.update_width(con.width - len(t.columns) + 1)
        )
    except Exception:  # a Rich without this method: trust the estimate made before
        return 0
    return int(sum(widths)) + len(t.columns) - 1


# --------------------------------------------------------------------------- Markdown


_MD_STATUS = {"PASS": "✅ pass", "FAIL": "❌ fail", "ERROR": "⚠️ error"}


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(head: str, sections: Sections, *, folded: Sequence[str] = ()) -> str:
    """Markdown for a pull-request comment or a GitHub job summary.

    Every text goes through :func:`for_markdown` (HTML escaped, ``|`` and emphasis characters
    backslash-escaped), in tables, bullets, paragraphs, captions and titles alike. Sections named
    in ``folded`` are collapsed in ``<details>``.
    """
    out = [f"## {for_markdown(head)}", ""]
    for title, blocks in sections:
        fold = title in folded
        out += [f"<details><summary><b>{for_markdown(title)}</b></summary>", ""] if fold else [
            f"### {for_markdown(title)}", ""]  # fmt: skip
        for b in blocks:
            if isinstance(b, str):
                out += [for_markdown(b), ""]
            elif isinstance(b, list):
                out += [f"- {for_markdown(line)}" for line in b] + [""]
            elif isinstance(b, Table):
                out.append(_md_row([for_markdown(h) for h in b.headers]))
                out.append("|" + "---|" * len(b.headers))
                for r in b.rows:
                    out.append(_md_row([_MD_STATUS.get(c, for_markdown(c)) for c in r]))
                out.append("")
                if b.caption:
                    out += [f"_{for_markdown(b.caption)}_", ""]
            elif isinstance(b, Series):
                # a table, not a code block: names stay escaped and sparklines line up in code
                out += [
                    f"{for_markdown(b.title)}:",
                    "",
                    _md_row(["strategy", "over time", "range"]),
                ]
                out.append("|---|---|---|")
                out += [
                    _md_row([for_markdown(n), f"`{s}`", for_markdown(r)])
                    for n, s, r in series_lines(b)
                ]
                out.append("")
        if fold:
            out += ["</details>", ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:72em;
color:#222;padding:0 1em}
h1{font-size:1.4em;overflow-wrap:anywhere}
h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child,th.t,td.t{text-align:left}
caption{caption-side:bottom;text-align:left;font-size:.85em;color:#555;padding-top:.3em}
.PASS{color:#176f2c;font-weight:bold}.FAIL{color:#b00020;font-weight:bold}.ERROR{color:#a66a00;font-weight:bold}
.verdict li{margin:.3em 0}
table.sparks td{vertical-align:middle;line-height:0;padding:.2em .6em}
table.sparks td:first-child,table.sparks td:last-child{line-height:normal}
svg.spark{display:block;width:120px;height:20px}
svg.chart{display:block;max-width:100%;height:auto}
"""


def render_html(head: str, sections: Sections) -> str:
    """One self-contained, well-formed HTML file: inline CSS and SVG drawn by rtml, no URL."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8" />',
        f"<title>{for_html(head)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{for_html(head)}</h1>",
    ]
    for title, blocks in sections:
        parts.append(f"<h2>{for_html(title)}</h2>")
        for b in blocks:
            if isinstance(b, str):
                parts.append(f"<p>{for_html(b)}</p>")
            elif isinstance(b, list):
                cls = ' class="verdict"' if title == "Verdict" else ""
                parts.append(f"<ul{cls}>" + "".join(f"<li>{for_html(x)}</li>" for x in b) + "</ul>")
            elif isinstance(b, Table):
                text_col = [not _numeric_column([r[i] for r in b.rows if i < len(r)])
                            for i in range(len(b.headers))]  # fmt: skip
                rows = []
                for r in b.rows:
                    cells = "".join(
                        f'<td class="{c}">{c}</td>'
                        if c in STATUS
                        else f"<td{_TEXT if i < len(text_col) and text_col[i] else ''}>{for_html(c)}</td>"
                        for i, c in enumerate(r)
                    )
                    rows.append(f"<tr>{cells}</tr>")
                cap = f"<caption>{for_html(b.caption)}</caption>" if b.caption else ""
                hdr = "".join(
                    f"<th{_TEXT if t else ''}>{for_html(h)}</th>"
                    for h, t in zip(b.headers, text_col, strict=True)
                )
                parts.append(
                    f"<table>{cap}<thead><tr>{hdr}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                )
            elif isinstance(b, Series):
                parts.append(f"<p>{for_html(b.title)}</p>")
                parts.append(report_svg.line_chart(b.title, b.x, b.lines, b.ylabel))
                parts.append(_html_sparks(b))
            elif isinstance(b, Curve):
                parts.append(f"<p>{for_html(b.title)}</p>")
                parts.append(
                    report_svg.xy_chart(
                        b.title, b.lines, b.xlabel, b.ylabel, hline=b.hline, logy=b.logy
                    )
                )
            elif isinstance(b, Heatmap):
                parts.append(f"<p>{for_html(b.title)}</p>")
                parts.append(
                    report_svg.heatmap(
                        b.title, b.row_labels, b.col_labels, b.values, xlabel=b.xlabel,
                        ylabel=b.ylabel, higher_is_better=b.higher_is_better,
                    )
                )  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_TEXT = ' class="t"'  # a text column: left-aligned


def _numeric_column(cells: Sequence[str]) -> bool:
    """Most cells read as numbers (``0.73``, ``+0.1 [..]``, ``13h6m``, ``<1%``, ``n/a``)."""
    filled = [c for c in cells if c]
    nums = sum(bool(re.match(r"[-+<≤]?\d|n/a$", c)) for c in filled)
    return bool(filled) and nums * 2 >= len(filled)


def _html_sparks(s: Series) -> str:
    """One row per line: name, sparkline (same box and y-scale for all rows), min–max."""
    fin = finite_values(v for vals in s.lines.values() for v in vals)
    lo, hi = (min(fin), max(fin)) if fin else (None, None)
    rows = []
    for k, (name, vals) in enumerate(s.lines.items()):
        colour = report_svg.PALETTE[k % len(report_svg.PALETTE)]
        f = finite_values(vals)
        rng = f"{format_metric(min(f))}–{format_metric(max(f))}" if f else "n/a"
        spark = report_svg.sparkline_svg(vals, lo=lo, hi=hi, colour=colour)
        rows.append(f"<tr><td>{for_html(name)}</td><td>{spark}</td><td>{rng}</td></tr>")
    return '<table class="sparks"><tbody>' + "".join(rows) + "</tbody></table>"
