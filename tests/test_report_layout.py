"""rtml report layout: 80-column terminals, HTML charts without matplotlib, aligned sparklines,
capacity sentences that name traffic, workers and p99, busiest windows on the data's clock."""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from rich.cells import cell_len

from rtml_cli.report import build_report, layout, render, render_html
from rtml_cli.report_render import Series, Table
from rtml_cli.report_svg import SPARK_H, SPARK_W
from rtml_cli.report_values import format_ms

RUN = Path(__file__).parent / "data" / "run_small"
METRICS = json.loads((RUN / "metrics.json").read_text())


@pytest.fixture(scope="module")
def rep():
    return build_report(
        RUN, checks=["stream.auc - batch_daily.auc >= 0.01", "online.auc > 0.99"], traffic="10x"
    )


# --------------------------------------------------------------------------- terminal width


def _verdict_block(text: str) -> list[str]:
    lines = text.split("\n")
    start = lines.index("Verdict") + 1
    end = lines.index("", start)
    return lines[start:end]


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [80, 60])
def test_terminal_fits_the_width_and_never_splits_a_verdict_word(rep, width, color):
    text = render(rep, "terminal", width=width, color=color)
    if color:
        assert "\x1b[" in text
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    too_long = [line for line in text.split("\n") if cell_len(line) > width]
    assert not too_long
    # the bullets, continuation lines joined back with one space, are the sentences exactly:
    # a word cut in two would come back with a space inside it
    bullets: list[str] = []
    for line in _verdict_block(text):
        if line.startswith("• "):
            bullets.append(line[2:].strip())
        else:
            assert line.startswith("  "), line  # hanging indent under the bullet
            bullets[-1] += " " + line.strip()
    assert bullets == rep["verdict"]


def test_terminal_at_80_columns_keeps_every_table_value_whole(rep):
    text = render(rep, "terminal", width=80)
    lines = text.split("\n")
    for _, blocks in layout(rep):
        for b in blocks:
            if isinstance(b, Table):
                for row in b.rows:
                    for cell in row:
                        for token in cell.split():
                            assert any(token in line for line in lines), (token, cell)


def test_terminal_narrow_tables_stack_and_wide_tables_stay_tables(rep):
    narrow = render(rep, "terminal", width=80)
    wide = render(rep, "terminal", width=200)
    header = re.compile(r"^strategy\s+kind\s+events\s+accuracy\s+log loss\s+AUC", re.M)
    assert header.search(wide)  # a wide terminal gets the real table
    assert not header.search(narrow)
    # stacked: the strategy heads its row, then "header: value" pieces
    q = METRICS["quality"]["stream"]
    assert re.search(rf"^stream\n  kind: stream  events: {q['n']}  accuracy:", narrow, re.M)
    assert all(cell_len(line) <= 200 for line in wide.split("\n"))


def test_terminal_long_user_names_still_fit(tmp_path):
    run = tmp_path / ("very-long-directory-name-" * 6)
    shutil.copytree(RUN, run)
    text = render(build_report(run), "terminal", width=80)
    assert max(cell_len(line) for line in text.split("\n")) <= 80


def test_terminal_sparklines_shrink_to_fit_a_narrow_terminal(rep):
    text = render(rep, "terminal", width=40)
    row = next(line for line in text.split("\n") if line.startswith("stream  "))
    assert cell_len(row) <= 40 and re.search(r"[▁▂▃▄▅▆▇█]{8,}", row)


# --------------------------------------------------------------------------- HTML


def test_html_charts_need_no_matplotlib(rep, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    for mod in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401
    doc = render_html(build_report(RUN, workers=3, slo="2ms"))
    root = ET.fromstring(doc.replace("<!DOCTYPE html>", "", 1))
    charts = root.findall(".//svg[@class='chart']")
    assert len(charts) == 2  # quality over time, p99 by workers
    assert all(c.findall(".//path") for c in charts)  # lines drawn, not an empty frame
    assert "matplotlib" not in doc and "install" not in doc


def _spark_points(svg: ET.Element) -> list[tuple[float, float]]:
    d = svg.find("path").get("d")  # type: ignore[union-attr]
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.]+) ([\d.]+)", d)]


def test_html_sparklines_share_one_box_and_one_scale(rep):
    root = ET.fromstring(render_html(rep).replace("<!DOCTYPE html>", "", 1))
    sparks = root.findall(".//svg[@class='spark']")
    assert len(sparks) == len(METRICS["strategies"])
    boxes = {(s.get("width"), s.get("height"), s.get("viewBox")) for s in sparks}
    assert boxes == {(str(SPARK_W), str(SPARK_H), f"0 0 {SPARK_W} {SPARK_H}")}
    # one y-scale: the same AUC maps to the same height in every row
    series = next(b for _, bl in layout(rep) for b in bl if isinstance(b, Series))
    vals = [v for line in series.lines.values() for v in line if v is not None]
    lo, hi = min(vals), max(vals)
    for svg, (name, line) in zip(sparks, series.lines.items(), strict=True):
        ys = [y for _, y in _spark_points(svg)]
        want = [SPARK_H - 2 - (SPARK_H - 4) * (v - lo) / (hi - lo) for v in line if v is not None]
        assert ys == pytest.approx(want, abs=0.06), name
    # and the cells hold them on one baseline
    css = root.find(".//style").text  # type: ignore[union-attr]
    assert "table.sparks td{vertical-align:middle" in css and "svg.spark{display:block" in css


# --------------------------------------------------------------------------- capacity wording


def test_capacity_says_which_traffic_workers_and_p99_in_every_format():
    rep = build_report(RUN, traffic="10x", workers=1, slo="50ms")
    w = rep["capacity"]["strategies"]["stream"]["10x"]["chosen"]
    assert w["workers"] == 1 and w["meets_slo"]
    meets = (
        f"at 10x traffic, 1 worker: p99 {format_ms(w['latency_ms']['p99'])} ms — meets p99 ≤ 50 ms"
    )
    for fmt in ("terminal", "markdown", "html"):
        text = render(rep, fmt, width=400)
        assert meets in text, fmt
    assert any(s.startswith(f"Serving stream per event {meets}") for s in rep["verdict"])

    rep = build_report(RUN, traffic="10x", workers=1, slo="0.1ms")
    w = rep["capacity"]["strategies"]["stream"]["10x"]["chosen"]
    misses = f"at 10x traffic, 1 worker: p99 {format_ms(w['latency_ms']['p99'])} ms — misses p99 ≤ 0.1 ms"
    for fmt in ("terminal", "markdown", "html"):
        assert misses in render(rep, fmt, width=400), fmt


def _busiest_hour(run: Path, strategy: str) -> str:
    t = pl.read_parquet(run / "predictions.parquet").filter(pl.col("strategy") == strategy)["t"]
    hours = t.dt.truncate("1h").value_counts(sort=True)
    return hours[hours.columns[0]][0].strftime("%Y-%m-%dT%H:%M")


def test_busiest_hour_is_the_tables_own_clock_at_any_traffic():
    rep = build_report(RUN, traffic="10x")
    per = rep["capacity"]["strategies"]["stream"]
    assert per["10x"]["peak_hour"]["start_us"] == per["1x"]["peak_hour"]["start_us"]
    assert per["10x"]["peak_hour"]["rate_per_s"] == pytest.approx(
        10 * per["1x"]["peak_hour"]["rate_per_s"]
    )
    hour = _busiest_hour(RUN, "stream")
    md = render(rep, "markdown")
    for lvl in ("1x", "10x"):
        line = next(x for x in md.splitlines() if x.startswith(f"- stream at {lvl} traffic"))
        assert f"busiest hour {hour} at" in line
    assert f"The busiest hour of the data ({hour})" in " ".join(rep["verdict"])
