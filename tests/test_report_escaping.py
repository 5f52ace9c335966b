"""rtml report on hostile input: user text escaped for every medium, missing numbers as n/a.

A copy of the golden run whose strategy names, path, model and warnings carry terminal escapes,
Rich markup, HTML, Markdown table syntax and XML-invalid control characters is rendered in every
format; each output must keep the text inert for its medium (and still show it, escaped).
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rtml_cli import report_build
from rtml_cli.cli import app
from rtml_cli.report import build_report, render

RUN = Path(__file__).parent / "data" / "run_small"
FORMATS = ("terminal", "markdown", "html", "json", "junit")

# old name -> hostile name; each attacks a different medium (and all of them at once)
EVIL = {
    "stream": "[/bold]\x1b[2J<script>alert(1)</script>|s",
    "online": "[red]x\x01<b>&amp;\x07",
    "batch_daily": "b`*_#\x9b31m](http://x)",
    "static": "- st\u202eci\x1b]0;title\x07",
}
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _rename(o: Any, names: dict[str, str]) -> Any:
    if isinstance(o, dict):
        return {names.get(k, k): _rename(v, names) for k, v in o.items()}
    if isinstance(o, list):
        return [_rename(v, names) for v in o]
    if isinstance(o, str):
        return names.get(o, o)
    return o


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory) -> Path:
    """run_small with hostile strategy names, a hostile directory name, model and warnings."""
    run = tmp_path_factory.mktemp("evil") / "run\x1b[2J\x01<i>|[/bold]&"
    shutil.copytree(RUN, run)
    man = _rename(json.loads((run / "manifest.json").read_text()), EVIL)
    man["config"].pop("checks", None)  # check expressions name strategies by identifier
    (man.get("config", {}).get("report") or {}).pop("checks", None)
    man["model"] = {"repr": "Model<script>x</script>\x1b[31m|red"}
    man["warnings"] = ["warn <img src=x onerror=alert(1)> \x1b[2J | [bold]w[/bold]"]
    (run / "manifest.json").write_text(json.dumps(man))
    met = _rename(json.loads((run / "metrics.json").read_text()), EVIL)
    (run / "metrics.json").write_text(json.dumps(met))
    for name in ("predictions.parquet", "timings.parquet"):
        df = pl.read_parquet(run / name, glob=False)
        df.with_columns(pl.col("strategy").replace(EVIL)).write_parquet(run / name)
    return run


@pytest.fixture(scope="module")
def evil_rep(evil_run):
    return build_report(evil_run, traffic="10x", workers=2, checks=["x.auc > 0.5"][:0])


def test_the_hostile_run_is_read_as_a_valid_run(evil_rep):
    assert [s["name"] for s in evil_rep["strategies"]] == [
        EVIL[n] for n in ("batch_daily", "stream", "online", "static")
    ]


@pytest.mark.parametrize("color", [False, True])
def test_terminal_shows_no_raw_control_character_and_survives_rich_markup(evil_rep, color):
    text = render(evil_rep, "terminal", color=color, width=100)
    visible = re.sub(r"\x1b\[[0-9;]*m", "", text)  # rtml's own SGR colour codes only
    assert not RAW_CONTROL.search(visible)
    if not color:
        assert "\x1b" not in text
    # the names are shown, escaped, not interpreted: markup text stays literal
    assert "[/bold]\\x1b[2J<script>" in visible
    assert "[red]x\\x01<b>" in visible
    assert "\\u202e" in visible and "\\x9b" in visible


def test_markdown_escapes_html_and_pipes_in_tables_bullets_and_headings(evil_rep):
    md = render(evil_rep, "markdown")
    assert "<script>" not in md and "<img" not in md and "<i>" not in md
    assert "&lt;script&gt;" in md
    assert not RAW_CONTROL.search(md)
    # every table row keeps its column count: a | in a name is escaped
    for table in re.findall(r"(?:^\|.*\|\n)+", md, flags=re.M):
        lines = table.strip().split("\n")
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, lines
    # bullets too: the warning and the verdict are escaped
    bullets = [line for line in md.splitlines() if line.startswith("- ")]
    assert any("&lt;img" in b for b in bullets)
    assert any(b.startswith("- \\- st") for b in bullets)  # a name opening a bullet
    assert not any(b.startswith("- - ") for b in bullets)  # is no nested list
    # the only HTML tags are rtml's own folding
    tags = set(re.findall(r"<(/?\w+)", md))
    assert tags <= {"details", "/details", "summary", "/summary", "b", "/b"}
    assert "<b>&amp;" not in md


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def test_html_escapes_everywhere_including_svg_text(evil_rep):
    doc = render(evil_rep, "html")
    root = ET.fromstring(doc.replace("<!DOCTYPE html>", "", 1))  # well-formed XML
    p = _Tags()
    p.feed(doc)
    assert not {"script", "img", "b", "i"} & set(p.tags)
    assert not [k for k, _ in p.attrs if k.startswith("on")]
    assert not RAW_CONTROL.search(doc)
    # the names reach the reader as text: in tables, in SVG legends and tooltips
    texts = "".join(root.itertext())
    assert "[/bold]\\x1b[2J<script>alert(1)</script>|s" in texts
    legend = [t for svg in root.iter("svg") for t in svg.itertext()]
    assert any("<script>" in t for t in legend)  # SVG <text>/<title> escaped, shown as text


def test_junit_with_control_characters_in_path_and_names_is_well_formed(evil_run):
    rep = build_report(evil_run)
    rep["checks"] = [  # a check whose text and detail carry the hostile names
        {"check": f"{EVIL['online']}.auc > 0.5", "status": "fail", "values": {},
         "detail": f"{EVIL['stream']} \x00\x1b[2J"},
        {"check": "x\x01", "status": "error", "values": {}, "detail": "\ud800 lone surrogate"},
    ]  # fmt: skip
    xml = render(rep, "junit")
    root = ET.fromstring(xml)  # raises on any invalid character
    suite = root.find("testsuite")
    assert suite is not None and "\\x1b[2J\\x01<i>" in suite.get("name", "")
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "[red]x\\x01<b>&amp;\\x07.auc > 0.5"
    assert cases[0].find("failure") is not None and cases[1].find("error") is not None


def test_junit_cli_on_the_hostile_run_parses(runner, evil_run, tmp_path):
    out = tmp_path / "checks.xml"
    r = runner.invoke(app, ["report", str(evil_run), "-f", "junit", "-o", str(out)])
    assert r.exit_code == 0, r.output
    ET.fromstring(out.read_text())
    assert "\x1b" not in r.stdout and "\x01" not in r.stdout  # the "wrote ..." line is escaped


def test_json_keeps_names_exactly_and_is_terminal_safe(evil_rep):
    text = render(evil_rep, "json")
    data = json.loads(text)
    assert [s["name"] for s in data["strategies"]][1] == EVIL["stream"]  # lossless
    assert not RAW_CONTROL.search(text)  # C1 and bidi characters written as \\uXXXX


# --------------------------------------------------------------------------- missing numbers


def _numeric_paths(o: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(o, dict):
        return [p for k, v in o.items() for p in _numeric_paths(v, (*path, k))]
    if isinstance(o, list):
        return [p for i, v in enumerate(o) for p in _numeric_paths(v, (*path, i))]
    if isinstance(o, (int, float)) and not isinstance(o, bool):
        return [path]
    return []


def _set(o: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value


BASE = report_build.read_reportable_run(RUN)
PATHS = _numeric_paths(BASE.metrics)


def _render_all(metrics: dict, monkeypatch) -> dict[str, str]:
    run = copy.copy(BASE)
    run.metrics = metrics
    monkeypatch.setattr(report_build, "read_reportable_run", lambda path: run)
    rep = build_report(RUN, traffic="10x", checks=["stream.auc > 0.5"])
    out = {f: render(rep, f) for f in FORMATS}
    json.loads(out["json"])  # strict JSON: NaN would not parse as a value here
    ET.fromstring(out["junit"])
    ET.fromstring(out["html"].replace("<!DOCTYPE html>", "", 1))
    return out


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_every_metric_missing_at_once_renders_as_n_a(missing, monkeypatch):
    m = copy.deepcopy(BASE.metrics)
    for p in PATHS:
        _set(m, p, missing)
    out = _render_all(m, monkeypatch)
    assert "n/a" in out["terminal"] and "n/a" in out["markdown"] and "n/a" in out["html"]
    assert "NaN" not in out["json"] and "Infinity" not in out["json"]
    assert "nan" not in out["terminal"].lower().replace("nanos", "")


def test_a_nan_metric_is_null_in_json_and_n_a_in_the_tables(monkeypatch):
    m = copy.deepcopy(BASE.metrics)
    m["quality"]["stream"]["auc"] = math.nan
    out = _render_all(m, monkeypatch)
    assert json.loads(out["json"])["metrics"]["quality"]["stream"]["auc"] is None
    row = next(line for line in out["markdown"].splitlines() if line.startswith("| stream | "))
    assert "n/a" in row


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    indices=st.sets(st.sampled_from(range(len(PATHS))), max_size=40),
    missing=st.sampled_from([None, math.nan]),
)
@example(indices=set(range(0, len(PATHS), 7)), missing=None)
def test_any_set_of_missing_metrics_renders_every_format(monkeypatch, indices, missing):
    m = copy.deepcopy(BASE.metrics)
    for i in indices:
        _set(m, PATHS[i], missing)
    _render_all(m, monkeypatch)


def test_an_empty_strategy_list_renders(monkeypatch, tmp_path):
    m = {
        **copy.deepcopy(BASE.metrics),
        "strategies": [], "quality": {}, "pairs": [], "diff_to_baseline": {}, "freshness": {},
        "compute": {}, "quality_by_staleness": {}, "quality_over_time": {"start": [], "strategies": {}},
    }  # fmt: skip
    run = copy.copy(BASE)
    run.metrics = m
    run.predictions = BASE.predictions.clear()
    run.timings = BASE.timings.clear()
    run.manifest = {**BASE.manifest, "strategies": [], "config": {}}
    monkeypatch.setattr(report_build, "read_reportable_run", lambda path: run)
    rep = build_report(RUN)
    assert "no strategies" in rep["verdict"][0]
    for f in FORMATS:
        assert render(rep, f)
    assert json.loads(render(rep, "json"))["strategies"] == []
