"""rtml report on level-2 runs: practical calls, naive references, forgetting, cost and the
recommendation per level, in every format; and older runs without those fields.

The runs are the golden run_small with hand-written level-2 fields in its metrics.json (so each
number the report shows is known), plus one real `rtml compare` run end to end.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rtml_cli.report import build_report, layout, render
from rtml_cli.report_calls import call_phrase, practical_call
from rtml_cli.report_render import Heatmap, Table

RUN = Path(__file__).parent / "data" / "run_small"
OLD = json.loads((RUN / "metrics.json").read_text())
FORMATS = ("terminal", "markdown", "html", "json")


def diff(est: float, low: float, high: float, delta: float | None = 0.005, **kw: Any) -> dict:
    """A difference as metrics.json writes it (significance and call consistent)."""
    from rtml_cli.relevance import classify

    sig = low > 0 or high < 0
    d = {"estimate": est, "low": low, "high": high, "significant": sig, "better": sig and est > 0,
         "reason": None, "min_effect": delta,
         "call": classify(est, low, high, delta, higher_is_better=True)}  # fmt: skip
    d.update(kw)
    return d


def set_pair(m: dict, a: str, b: str, d: dict) -> None:
    """a − b = d on AUC, wherever metrics.json holds that pair (stored either way round)."""
    for p in m["pairs"]:
        if (p["strategy"], p["reference"]) == (a, b):
            p["metrics"]["auc"] = d
        elif (p["strategy"], p["reference"]) == (b, a):
            p["metrics"]["auc"] = {**d, "estimate": -d["estimate"], "low": -d["high"],
                                   "high": -d["low"], "better": not d["better"] and d["significant"],
                                   "call": {"gain": "loss", "loss": "gain"}.get(d["call"], d["call"])}  # fmt: skip
    if b == m["baseline"]:
        m["diff_to_baseline"][a]["auc"] = d


def f_cost(
    *,
    cpu_day: float,
    retrain_day: float | None = None,
    job: float | None = None,
    request_us: float | None = None,
    update_us: float | None = None,
    made: int | None = None,
    used: int | None = None,
) -> dict:
    """A strategy's cost section as rtml_cli/cost.py writes it."""
    return {
        "days": 4.0,
        "retrain": {"count": 6, "cpu_s": 1.0, "cpu_s_per_day": retrain_day, "cpu_s_per_fit": 0.2},
        "score_job": {"count": 6, "cpu_s": 1.0, "cpu_s_per_cutoff": job},
        "predict": {"timed_calls": 100, "cpu_us_per_request": request_us, "requests": 880},
        "update": {"count": 300, "cpu_s": 0.1, "cpu_s_per_day": 0.02,
                   "cpu_us_per_update": update_us},
        "cpu_s_per_day": cpu_day,
        "batch_job": None if made is None else {
            "lookback": "30d", "lookback_s": 2592000.0, "cutoffs": 6, "predictions_made": made,
            "events_served": 880, "entity_cutoffs_served": 3500,
            "entity_cutoffs_served_from_job": used, "used_share": used / made,
            "cpu_s_estimate": 0.55,
        },
    }  # fmt: skip


def level2_metrics(
    *,
    fresh: dict | None = None,
    online: dict | None = None,
    online_vs_persistence: dict | None = None,
    cost: bool = True,
) -> dict:
    """run_small's metrics with references, practical calls, forgetting and cost."""
    m = copy.deepcopy(OLD)
    m["references"] = ["persistence", "prior"]
    m["min_effect"] = {"auc": "0.005", "accuracy": "0.005"}
    m["quality"]["persistence"] = {**m["quality"]["online"], "auc": 0.805, "reasons": {}}
    m["quality"]["prior"] = {**m["quality"]["online"], "auc": 0.5, "reasons": {}}
    qot = m["quality_over_time"]["strategies"]
    qot["persistence"] = copy.deepcopy(qot["online"])
    qot["prior"] = copy.deepcopy(qot["online"])
    m["diff_to_baseline"]["persistence"] = {"auc": diff(0.1, 0.08, 0.12)}
    m["diff_to_baseline"]["prior"] = {"auc": diff(-0.2, -0.22, -0.18)}
    set_pair(m, "stream", "batch_daily", fresh or diff(0.104, 0.077, 0.136))
    set_pair(m, "online", "stream", online or diff(0.0004, -0.004, 0.0045))
    set_pair(m, "static", "stream", diff(-0.056, -0.072, -0.038))
    m["vs_references"] = {
        s: {
            "persistence": {"auc": diff(-0.1, -0.12, -0.08)},
            "prior": {"auc": diff(0.2, 0.18, 0.22)},
        }
        for s in m["strategies"]
    }
    m["vs_references"]["online"]["persistence"]["auc"] = online_vs_persistence or diff(
        0.004, -0.002, 0.010
    )
    m["vs_references"]["stream"]["persistence"]["auc"] = diff(0.003, -0.003, 0.009)
    n_blocks = 4
    ends = [f"2024-03-0{2 + i}T00:00:00" for i in range(n_blocks)]

    def matrix(drop: float) -> list[list[float | None]]:
        return [
            [0.8 - (drop * (s - b) if s > b else 0.0) if b <= s else None for b in range(n_blocks)]
            for s in range(n_blocks)
        ]

    m["forgetting"] = {
        name: {
            "metric": "auc",
            "higher_is_better": True,
            "block_ends": ends,
            "matrix": matrix(drop),
            "per_block": [drop * (3 - b) for b in range(n_blocks - 1)],
            "mean": drop * 2.0,
            "max": drop * 3.0,
            "max_block": 0,
            "sampled_per_block": 1000,
        }  # fmt: skip
        for name, drop in (("batch_daily", 0.001), ("stream", 0.002), ("online", 0.01))
    }
    if cost:
        m["cost"] = {
            "batch_daily": f_cost(cpu_day=3.0, retrain_day=2.5, job=0.4, made=12000, used=3000),
            "stream": f_cost(cpu_day=4.1, retrain_day=2.6, request_us=430.0),
            "online": f_cost(cpu_day=3.9, request_us=490.0, update_us=280.0),
            "static": f_cost(cpu_day=0.8, request_us=420.0),
        }
    return m


def write_run(tmp: Path, metrics: dict, rename: dict[str, str] | None = None) -> Path:
    """A copy of run_small with these metrics (strategy names renamed everywhere if asked)."""
    run = tmp / "run"
    shutil.copytree(RUN, run)
    man = json.loads((run / "manifest.json").read_text())
    man["config"].pop("checks", None)
    (man.get("config", {}).get("report") or {}).pop("checks", None)
    if rename:
        metrics, man = _rename(metrics, rename), _rename(man, rename)
        for name in ("predictions.parquet", "timings.parquet"):
            df = pl.read_parquet(run / name, glob=False)
            df.with_columns(pl.col("strategy").replace(rename)).write_parquet(run / name)
    (run / "manifest.json").write_text(json.dumps(man))
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def _rename(o: Any, names: dict[str, str]) -> Any:
    if isinstance(o, dict):
        # a kind ("stream") is not a strategy name, though it is spelt like one here
        return {names.get(k, k): v if k == "kind" else _rename(v, names) for k, v in o.items()}
    if isinstance(o, list):
        return [_rename(v, names) for v in o]
    return names.get(o, o) if isinstance(o, str) else o


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., dict]:
    made = iter(range(1000))

    def build(metrics: dict, rename: dict[str, str] | None = None) -> dict:
        d = tmp_path / str(next(made))
        d.mkdir()
        return build_report(write_run(d, metrics, rename))

    return build


def _sentence(rep: dict, start: str) -> str:
    return next(s for s in rep["verdict"] if s.startswith(start))


# --------------------------------------------------------------------------- practical calls


@given(
    est=st.floats(-0.05, 0.05),
    half=st.floats(0, 0.05),
    delta=st.floats(0, 0.05),
    stored=st.sampled_from(["gain", "loss", "no practical difference", "inconclusive"]),
    higher=st.booleans(),
)
@example(est=0.004, half=0.002, delta=0.005, stored="gain", higher=True)
@example(est=0.0004, half=0.0003, delta=0.005, stored="loss", higher=True)
def test_a_difference_within_delta_is_never_a_gain_or_a_loss(est, half, delta, stored, higher):
    # whatever the file claims, the report rereads the interval against δ
    d = {"estimate": est, "low": est - half, "high": est + half, "significant": True,
         "better": True, "reason": None, "min_effect": delta, "call": stored}  # fmt: skip
    phrase = call_phrase(d, "auc", higher)
    if abs(est) <= delta:
        assert not phrase.startswith(("a gain", "a loss")), (d, phrase)
    if -delta <= d["low"] and d["high"] <= delta:
        assert phrase == f"no practical difference (within ±{delta:.3g} AUC)"
    if phrase.startswith(("a gain", "a loss")):
        assert abs(est) > delta and (d["low"] > 0 or d["high"] < 0)
        assert phrase.startswith("a gain") == ((est > 0) == higher)


def test_a_run_before_the_practical_reading_is_worded_by_significance():
    d = {"estimate": 0.02, "low": 0.01, "high": 0.03, "significant": True, "better": True,
         "reason": None}  # fmt: skip
    assert practical_call(d, True) is None
    assert call_phrase(d, "auc", True) == "a significant gain"
    assert call_phrase({**d, "significant": False}, "auc", True) == "not significant"


def test_findings_are_worded_by_their_call(make):
    rep = make(level2_metrics(online=diff(0.0004, -0.004, 0.0045)))
    fresh = _sentence(rep, "Fresh features (stream vs batch_daily)")
    assert fresh == (
        "Fresh features (stream vs batch_daily): AUC +0.104 [+0.077, +0.136], "
        "a gain (beyond ±0.005 AUC)."
    )
    online = _sentence(rep, "Online learning (online vs stream)")
    assert online.endswith("no practical difference (within ±0.005 AUC).")
    # significant but smaller than δ: not a gain
    rep = make(level2_metrics(online=diff(0.003, 0.001, 0.0055)))
    online = _sentence(rep, "Online learning (online vs stream)")
    assert "gain" not in online and "inconclusive" in online


def test_a_negated_pair_keeps_the_right_direction(make):
    # static − stream is read from a pair stored either way round: a loss both ways
    m = level2_metrics()
    stored = next(p for p in m["pairs"] if {p["strategy"], p["reference"]} == {"static", "stream"})
    for order in (("static", "stream"), ("stream", "static")):
        stored["strategy"], stored["reference"] = order
        sign = 1 if order[0] == "static" else -1
        stored["metrics"]["auc"] = diff(-0.05 * sign, min(-0.07 * sign, -0.03 * sign),
                                        max(-0.07 * sign, -0.03 * sign))  # fmt: skip
        static = _sentence(make(m), "Never retraining (static vs stream)")
        assert static == (
            "Never retraining (static vs stream): AUC -0.050 [-0.070, -0.030], "
            "a loss (beyond ±0.005 AUC)."
        )


# --------------------------------------------------------------------------- references


def test_the_verdict_says_plainly_when_no_strategy_beats_persistence(make):
    rep = make(level2_metrics())
    assert "Naive references (AUC): persistence 0.805, prior 0.500." in rep["verdict"]
    assert (
        "No strategy beats persistence: the best, online, is AUC +0.004 [-0.002, +0.010] "
        "against it, inconclusive (the interval is too wide to tell at ±0.005 AUC)."
    ) in rep["verdict"]
    rep = make(level2_metrics(online_vs_persistence=diff(0.03, 0.02, 0.04)))
    assert (
        "The best strategy, online, beats persistence: AUC +0.030 [+0.020, +0.040] against it, "
        "a gain (beyond ±0.005 AUC)."
    ) in rep["verdict"]
    # significantly better, but by less than δ: still does not beat it
    rep = make(level2_metrics(online_vs_persistence=diff(0.003, 0.001, 0.004)))
    assert any(
        s.startswith("No strategy beats persistence") and "no practical difference" in s
        for s in rep["verdict"]
    )


def test_references_are_rows_of_the_quality_table_marked_as_references(make):
    rep = make(level2_metrics())
    assert rep["references"] == ["persistence", "prior"]
    assert [s["name"] for s in rep["strategies"]] == list(OLD["strategies"])  # not deployments
    _, blocks = next(s for s in layout(rep) if s[0] == "Quality")
    table = next(b for b in blocks if isinstance(b, Table))
    rows = {r[0]: r for r in table.rows}
    assert rows["persistence"][1] == rows["prior"][1] == "naive reference"
    assert table.headers[-1] == "ΔAUC vs persistence"
    assert rows["online"][-1] == "+0.004 [-0.002, +0.010] inconclusive"
    assert rows["persistence"][-1] == "reference"
    assert "naive references" in table.caption
    for fmt in ("terminal", "markdown", "html"):
        assert "naive reference" in render(rep, fmt, width=200)


# --------------------------------------------------------------------------- forgetting, cost


def test_forgetting_section_in_every_format(make):
    rep = make(level2_metrics())
    by = {f["strategy"]: f for f in rep["forgetting"]}
    assert set(by) == {"batch_daily", "stream", "online"}
    online = by["online"]
    assert (online["mean"], online["max"], online["worst_block"]) == (0.02, 0.03, 0)
    assert online["worst_block_end"] == "2024-03-02T00:00:00"
    assert online["best_on_worst"] == 0.8 and online["final_on_worst"] == pytest.approx(0.77)
    _, blocks = next(s for s in layout(rep) if s[0] == "Forgetting")
    table = blocks[0]
    assert isinstance(table, Table)
    row = next(r for r in table.rows if r[0] == "online")
    assert row[4:8] == ["0.020", "0.030", "2024-03-02T00:00", "0.800 → 0.770"]
    heat = [b for b in blocks if isinstance(b, Heatmap)]
    assert len(heat) == 3 and heat[2].values == rep["metrics"]["forgetting"]["online"]["matrix"]
    assert any(isinstance(b, str) and "at most 1000 labelled events per block" in b for b in blocks)
    term = render(rep, "terminal", width=200)
    assert "Forgetting" in term and "0.800 → 0.770" in term
    md = render(rep, "markdown")
    assert "### Forgetting" in md and "| online |" in md
    html = render(rep, "html")
    body = html[html.index("<h2>Forgetting</h2>") : html.index("<h2>Freshness</h2>")]
    svgs = re.findall(r'<svg class="chart".*?</svg>', body, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
        assert len(re.findall(r"<rect [^>]*fill=\"#[0-9a-f]{6}\"><title>", svg)) == 10  # 4·5/2
    data = json.loads(render(rep, "json"))
    assert data["forgetting"][0]["strategy"] == "batch_daily"


def test_without_sampling_the_note_says_every_event_was_scored_and_how_many(make):
    m = level2_metrics()
    for f in m["forgetting"].values():
        f["sampled_per_block"] = None  # the run gives it only when it sampled
    m["quality_over_time"]["n"] = [3, 9, 7, 2]
    _, blocks = next(s for s in layout(make(m)) if s[0] == "Forgetting")
    assert (
        "Every labelled event of each block is scored (no sampling); blocks have 2 to 9 labelled "
        "events. A block with few events gives a noisy forgetting of its own; the mean over "
        "blocks is steadier."
    ) in blocks
    m["quality_over_time"]["n"] = [120] * 4
    _, blocks = next(s for s in layout(make(m)) if s[0] == "Forgetting")
    assert (
        "Every labelled event of each block is scored (no sampling); every block has 120 "
        "labelled events."
    ) in blocks


def test_the_sampling_note_says_how_many_blocks_were_sampled(make):
    m = level2_metrics()
    for f in m["forgetting"].values():
        f["sampled_per_block"] = 5
    m["quality_over_time"]["n"] = [3, 9, 7, 2]
    rep = make(m)
    _, blocks = next(s for s in layout(rep) if s[0] == "Forgetting")
    assert (
        "Each snapshot is scored on at most 5 labelled events per block: 2 of 4 blocks had more "
        "and were scored on a seeded sample of them."
    ) in blocks


def test_cost_section_in_every_format(make):
    rep = make(level2_metrics())
    by = {c["strategy"]: c for c in rep["cost"]}
    assert by["batch_daily"]["source"] == "cost"
    assert (by["batch_daily"]["predictions_made"], by["batch_daily"]["predictions_used"]) == (
        12000,
        3000,
    )
    _, blocks = next(s for s in layout(rep) if s[0] == "Cost")
    table = blocks[0]
    assert isinstance(table, Table)
    rows = {r[0]: r for r in table.rows}
    assert rows["batch_daily"][2:] == ["3", "2.5", "0.4", "lookup", "n/a", "12,000", "3,000",
                                       "25%"]  # fmt: skip
    assert rows["online"][5:7] == ["0.49", "0.28"]  # µs in metrics.json, ms in the report
    assert "look-back (30d)" in table.caption
    unkeyed = level2_metrics()
    unkeyed["cost"]["batch_daily"]["batch_job"] = None
    _, unkeyed_blocks = next(s for s in layout(make(unkeyed)) if s[0] == "Cost")
    assert "no entity key" in unkeyed_blocks[0].caption
    assert [
        "batch_daily: CPU s a real batch job would spend scoring every active entity over the "
        "run (estimate) = 0.55"
    ] in blocks
    for fmt in ("terminal", "markdown", "html"):
        out = render(rep, fmt, width=250)
        assert "Cost" in out and "12,000" in out and "retrain CPU s / day" in out


def test_an_unknown_cost_number_is_still_shown(make):
    m = level2_metrics()
    m["cost"]["stream"]["feature_cpu_s_per_day"] = 1.25  # a number this report does not know
    rep = make(m)
    _, blocks = next(s for s in layout(rep) if s[0] == "Cost")
    assert any("stream: feature_cpu_s_per_day = 1.25" in b for b in blocks if isinstance(b, list))


# --------------------------------------------------------------------------- recommendations


def test_the_verdict_ends_with_one_recommendation_per_level(make):
    rep = make(level2_metrics())
    level1, level2 = rep["verdict"][-2:]
    assert level1 == (
        "Level 1, fresh features: move to fresh features (stream over batch_daily): "
        "AUC +0.104 [+0.077, +0.136] (stream − batch_daily), a gain (beyond ±0.005 AUC); "
        "stream does not beat persistence (AUC +0.003 [-0.003, +0.009]); stream forgets 0.004 "
        "AUC of a past block on average (at most 0.006, the block ending 2024-03-02T00:00); "
        "stream takes 4.1 CPU s per day of events in all, 1.4× batch_daily's 3 (stream: 0.43 ms "
        "CPU per request, 2.6 CPU s of retraining per day; batch_daily: 2.5 CPU s of retraining "
        "per day, 0.4 CPU s per scoring job, 3,000 of 12,000 batch predictions used, 25%)."
    )
    assert level2.startswith(
        "Level 2, online learning: stay with stream, it is not worth it to add online learning: "
        "AUC +0.000 [-0.004, +0.004] (online − stream), no practical difference (within ±0.005 "
        "AUC); online does not beat persistence"
    )
    assert "online forgets 0.020 AUC" in level2 and "0.28 ms CPU per update" in level2
    assert [r["advice"] for r in rep["recommendations"]] == ["move", "stay"]


@pytest.mark.parametrize(
    ("online", "advice", "words"),
    [
        (diff(0.02, 0.01, 0.03), "move", "add online learning (online over stream)"),
        (diff(-0.02, -0.03, -0.01), "stay", "a loss (beyond ±0.005 AUC)"),
        (diff(0.004, -0.01, 0.02), "undecided", "this run cannot tell whether to add online"),
    ],
)
def test_level_2_follows_the_call(make, online, advice, words):
    rep = make(level2_metrics(online=online))
    rec = rep["recommendations"][1]
    assert rec["advice"] == advice and words in rec["sentence"]
    assert rec["sentence"] == rep["verdict"][-1]


def test_recommendations_follow_the_numbers(make):
    # change the numbers, the sentence changes with them: nothing is fixed text
    m = level2_metrics(fresh=diff(0.0123, 0.0101, 0.0145, delta=0.01))
    m["cost"]["stream"]["predict"]["cpu_us_per_request"] = 7770.0
    m["forgetting"]["stream"]["mean"] = 0.0321
    level1 = make(m)["recommendations"][0]["sentence"]
    assert "AUC +0.012 [+0.010, +0.015]" in level1 and "±0.01 AUC" in level1
    assert "7.77 ms CPU per request" in level1 and "forgets 0.032 AUC" in level1


# --------------------------------------------------------------------------- older runs


def test_an_older_run_renders_without_the_new_fields(make):
    rep = make(copy.deepcopy(OLD))
    assert rep["references"] == [] and rep["forgetting"] == []
    titles = [t for t, _ in layout(rep)]
    assert "Forgetting" not in titles
    assert all("persistence" not in s for s in rep["verdict"])
    # its cost comes from the timed calls, said so
    assert {c["source"] for c in rep["cost"]} == {"compute"}
    _, blocks = next(s for s in layout(rep) if s[0] == "Cost")
    assert "come from its timed calls" in blocks[0].caption
    for fmt in FORMATS:
        assert render(rep, fmt)


def test_a_run_with_every_new_field_missing_at_once_renders(make):
    m = level2_metrics()
    m.pop("cost")
    for c in m["compute"].values():
        c["kinds"], c["predict_single_row"] = {}, None
    m["vs_references"] = {}
    for f in m["forgetting"].values():
        for k in ("mean", "max", "max_block", "sampled_per_block"):
            f[k] = None
        f["matrix"] = [[None]]
    rep = make(m)
    assert rep["cost"] == []
    assert any("has no paired difference to persistence" in s for s in rep["verdict"])
    for fmt in FORMATS:
        assert "n/a" in render(rep, fmt) or fmt == "json"


# --------------------------------------------------------------------------- escaping

EVIL = {
    "online": "<script>alert(1)</script>|[bold]\x1b[2Jo",
    "stream": "s`*_#\x9b31m](http://x)&amp;",
}


def test_strategy_names_are_escaped_in_the_new_sections(make):
    rep = make(level2_metrics(), rename=EVIL)
    assert {f["strategy"] for f in rep["forgetting"]} >= set(EVIL.values())
    term = render(rep, "terminal", width=250)
    assert "\x1b" not in term and "\x9b" not in term
    md = render(rep, "markdown")
    assert "<script>" not in md and "\x1b" not in md
    html = render(rep, "html")
    assert "<script>" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # inside the heatmap's SVG and the cost table too
    body = html[html.index("<h2>Forgetting</h2>") :]
    assert body.count("&lt;script&gt;") >= 3
    ET.fromstring(re.sub(r"<!DOCTYPE html>", "", html))
    data = json.loads(render(rep, "json"))
    assert data["recommendations"][1]["candidate"] == EVIL["online"]  # lossless in JSON


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_new_sections_fit_the_terminal_and_keep_every_value_whole(make, width):
    # a table Rich would draw a few cells too wide (its last column cropped) is stacked instead
    rep = make(level2_metrics())
    text = render(rep, "terminal", width=width)
    assert max(len(line) for line in text.split("\n")) <= width
    sections = layout(rep)
    titles = [t for t, _ in sections]
    for i, (title, blocks) in enumerate(sections):
        if title not in ("Quality", "Forgetting", "Cost"):
            continue
        start = text.index(f"\n{title}\n")
        part = text[start : text.index(f"\n{titles[i + 1]}\n", start)]
        words = {w.rstrip(":") for line in part.split("\n") for w in line.split()}
        for b in blocks:
            if isinstance(b, Table):  # a stacked table heads each row with its first cell
                for cell in b.headers[1:] + [c for row in b.rows for c in row]:
                    for token in cell.split():
                        assert token in words, (title, token)


def test_a_table_rich_would_crop_is_stacked_instead():
    from rtml_cli.report_render import render_terminal

    headers = ["strategy", "kind", "retrain CPU s / day of events", "scoring job CPU s / cutoff",
               "predict CPU ms / request", "update CPU ms / update", "batch predictions made",
               "used", "lastcolumn"]  # fmt: skip
    row = ["batch_daily", "batch", "2.5", "0.4", "lookup", "n/a", "12,000", "3,000", "25%"]
    for width in range(90, 131):
        text = render_terminal("h", [("Cost", [Table(headers, [row])])], width=width)
        assert "lastcolumn" in text and "25%" in text, width


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_real_compare_run_reports_references_forgetting_cost_and_advice(tmp_path):
    from typer.testing import CliRunner

    from rtml_cli.cli import app

    runner = CliRunner()
    table = tmp_path / "clicks.parquet"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "1500", "--out", str(table)])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    config = Path(__file__).resolve().parent.parent / "sample_data" / "rtml.toml"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--config",
            str(config),
            "--out",
            str(run),
            "--timing-sample",
            "100",
        ],  # fmt: skip
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(run), "-f", "json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    m = json.loads((run / "metrics.json").read_text())
    metric = rep["primary_metric"]
    # references: scored, in the quality table and the verdict, not deployments
    assert rep["references"] == m["references"] == ["persistence", "prior"]
    assert not set(rep["references"]) & {s["name"] for s in rep["strategies"]}
    assert any(s.startswith("Naive references") for s in rep["verdict"])
    best_vs_persistence = [
        s for s in rep["verdict"]
        if s.startswith(("No strategy beats persistence", "The best strategy, "))
    ]  # fmt: skip
    assert len(best_vs_persistence) == 1
    # every difference of the verdict is worded by its call, as metrics.json has it
    fresh = next(f for f in rep["findings"] if f["label"] == "Fresh features")
    stored = m["diff_to_baseline"][fresh["strategy"]][metric]
    assert fresh["call"] == stored["call"]
    assert practical_call(stored, m["higher_is_better"][metric]) == stored["call"]
    # forgetting of every strategy whose model changes, cost of every strategy
    kinds = {s["name"]: s["kind"] for s in rep["strategies"]}
    assert {f["strategy"] for f in rep["forgetting"]} == {
        n for n, k in kinds.items() if k in ("batch", "stream", "online")
    }
    assert {c["strategy"] for c in rep["cost"]} == set(kinds)
    assert {c["source"] for c in rep["cost"]} == {"cost"}
    # the verdict ends with the two levels
    assert [r["level"] for r in rep["recommendations"]] == [1, 2]
    assert rep["verdict"][-2:] == [r["sentence"] for r in rep["recommendations"]]
    for fmt in ("terminal", "markdown", "html"):
        r = runner.invoke(app, ["report", str(run), "-f", fmt])
        assert r.exit_code == 0, r.output
        for title in ("Forgetting", "Cost", "Level 1", "Level 2", "naive reference"):
            assert title in r.output, (fmt, title)


def test_level_2_also_answers_against_the_batch_strategy_level_1_keeps(make):
    m = level2_metrics(fresh=diff(-0.03, -0.05, -0.01), online=diff(0.05, 0.03, 0.07))
    set_pair(m, "online", "batch_daily", diff(0.02, -0.01, 0.05))
    level1, level2 = (r["sentence"] for r in make(m)["recommendations"])
    assert level1.startswith("Level 1, fresh features: stay with batch_daily")
    assert (
        "; against batch_daily, which level 1 keeps: AUC +0.020 [-0.010, +0.050], inconclusive"
    ) in level2
    # when level 1 moves, level 2 is about the fresh-feature strategy alone
    level2 = make(level2_metrics(online=diff(0.05, 0.03, 0.07)))["recommendations"][1]
    assert "which level 1 keeps" not in level2["sentence"]


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # a named function: Hypothesis reads a lambda's source to check that it uses its argument,
    # and misreads one split over lines (a false "can't actually recurse" warning)
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=4),
    _json_containers,
    max_leaves=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(
        [
            "forgetting",
            "forgetting.online",
            "forgetting.online.matrix",
            "forgetting.online.max_block",
            "forgetting.online.block_ends",
            "cost",
            "cost.batch_daily",
            "cost.stream.predict",
            "cost.batch_daily.batch_job",
            "vs_references",
            "vs_references.online.persistence",
        ]
    ),  # fmt: skip
    junk=_JSON,
)
@example(where="forgetting.online.max_block", junk=True)
@example(where="forgetting.online.matrix", junk=[[None, "x"], 3])
@example(where="vs_references", junk=[1])
@example(where="cost.stream.predict", junk={"cpu_us_per_request": "fast"})
def test_damaged_new_fields_never_break_the_report(where, junk):
    # metrics.json's new sections are not checked by the run-dir schema: the report reads them
    # defensively, showing n/a for what it cannot use (never an internal error)
    m = level2_metrics()
    *path, last = where.split(".")
    node = m
    for key in path:
        node = node[key]
    node[last] = junk
    with tempfile.TemporaryDirectory() as tmp:
        rep = build_report(write_run(Path(tmp), m))
        for fmt in FORMATS:
            assert render(rep, fmt, width=100)
