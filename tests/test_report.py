"""rtml report: golden tests on tests/data/run_small, every format, CLI exit codes 0/1/2/3."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.errors import RunDirError
from rtml_cli.escape import for_markdown
from rtml_cli.metrics import compute_metrics
from rtml_cli.report import build_report, render, render_html, sparkline

RUN = Path(__file__).parent / "data" / "run_small"
METRICS = json.loads((RUN / "metrics.json").read_text())
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def rep():
    return build_report(RUN, checks=["stream.auc - batch_daily.auc >= 0.01", "online.auc > 0.99"])


def _numbers(sentence: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", sentence)]


def test_verdict_numbers_match_metrics_json(rep):
    v = rep["verdict"]
    fresh = next(s for s in v if s.startswith("Fresh features (stream vs batch_daily)"))
    d = METRICS["diff_to_baseline"]["stream"]["auc"]
    assert _numbers(fresh) == [round(d["estimate"], 3), round(d["low"], 3), round(d["high"], 3)]
    assert "a significant gain" in fresh
    online = next(s for s in v if s.startswith("Online learning (online vs stream)"))
    pair = next(
        p for p in METRICS["pairs"] if p["strategy"] == "online" and p["reference"] == "stream"
    )
    d = pair["metrics"]["auc"]
    assert _numbers(online) == [round(d["estimate"], 3), round(d["low"], 3), round(d["high"], 3)]
    assert online.endswith("not significant.")
    static = next(s for s in v if s.startswith("Never retraining (static vs stream)"))
    # stored as static − stream? no: pairs hold later − earlier, i.e. static − online/stream.
    p = next(p for p in METRICS["pairs"] if {p["strategy"], p["reference"]} == {"static", "stream"})
    sign = 1 if p["strategy"] == "static" else -1
    est = sign * p["metrics"]["auc"]["estimate"]
    assert _numbers(static)[0] == round(est, 3) and "a significant loss" in static
    best = next(s for s in v if s.startswith("Best AUC"))
    assert f"online ({METRICS['quality']['online']['auc']:.3f})" in best
    assert "Checks: 1 passed, 1 failed." in v
    # the verdict ends with one recommendation per level the run can answer
    assert [s.split(",")[0] for s in v[-2:]] == ["Level 1", "Level 2"]


def test_report_json_is_stable_and_documented_fields_exist(rep):
    text = render(rep, "json")
    data = json.loads(text)
    assert data == json.loads(
        render(
            build_report(RUN, checks=["stream.auc - batch_daily.auc >= 0.01", "online.auc > 0.99"]),
            "json",
        )
    )
    for key in (
        "schema_version",
        "verdict",
        "findings",
        "checks",
        "exit_code",
        "capacity",
        "metrics",
        "manifest",
    ):
        assert key in data
    assert data["metrics"] == METRICS
    assert data["exit_code"] == 1
    # the run's own check (manifest) equals the first --check: listed once
    assert [c["status"] for c in data["checks"]] == ["pass", "fail"]


def test_markdown_has_verdict_tables_and_checks(rep):
    md = render(rep, "markdown")
    assert md.startswith("## rtml report")
    assert f"- {for_markdown(rep['verdict'][0])}\n" in md
    assert "| strategy | kind | events |" in md
    assert "❌ fail | online.auc &gt; 0.99" in md  # a check is user text: HTML-escaped
    assert "<details>" in md  # long sections fold in a PR comment


def test_terminal_has_sparklines_and_no_colour_when_not_a_tty(rep):
    text = render(rep, "terminal", color=False)
    assert not ANSI.search(text)
    assert "Quality over time" in text and re.search(r"stream\s+[▁▂▃▄▅▆▇█ ]{10,}", text)
    assert "predict (1 row)" in text  # single-row latency labelled as such
    assert ANSI.search(render(rep, "terminal", color=True))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs


def test_html_is_well_formed_self_contained_with_inline_svg(rep):
    doc = render_html(rep)
    assert "http" not in doc.lower()  # no external URL at all (svg namespaces stripped too)
    # well-formed: the whole document parses as XML once the doctype is removed
    root = ET.fromstring(doc.replace("<!DOCTYPE html>", "", 1))
    assert root.tag == "html"
    assert root.find(".//svg") is not None
    p = _Collector()
    p.feed(doc)
    assert "script" not in p.tags and "link" not in p.tags and "img" not in p.tags
    assert not [v for k, v in p.attrs if k in ("src", "href") and v and not v.startswith("#")]
    assert rep["verdict"][0].replace("'", "&#x27;") in doc or rep["verdict"][0] in doc


def test_junit_parses_and_marks_failures(rep):
    root = ET.fromstring(render(rep, "junit"))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["online.auc > 0.99"].find("failure") is not None
    assert cases["stream.auc - batch_daily.auc >= 0.01"].find("failure") is None


def test_sparkline_shares_a_scale():
    assert sparkline([0.0, 1.0], 0.0, 2.0) == "▁▅"
    assert sparkline([None, 2.0], 0.0, 2.0) == " █"


# --------------------------------------------------------------------------- CLI


def test_cli_exit_0_when_checks_pass(runner):
    r = runner.invoke(app, ["report", str(RUN), "--check", "stream.auc > 0.5", "-f", "markdown"])
    assert r.exit_code == 0, r.output
    assert "✅ pass | stream.auc &gt; 0.5" in r.output


def test_cli_exit_1_when_a_check_fails_and_lists_each_check(runner):
    r = runner.invoke(app, ["report", str(RUN), "--check", "stream.predict_p99_ms <= 0.01"])
    assert r.exit_code == 1, r.output
    assert re.search(r"FAIL\s+stream\.predict_p99_ms <= 0\.01\s+[\d.]+ <= 0\.01", r.output)
    assert re.search(
        r"PASS\s+stream\.auc - batch_daily\.auc >= 0\.01", r.output
    )  # from the manifest


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "does/not/exist"], "run directory 'does/not/exist' not found"),
        (
            ["report", str(RUN), "--check", "stream.aucc > 1"],
            "unknown metric 'stream.aucc'. Did you mean 'auc'?",
        ),
        (["report", str(RUN), "--check", "stream.auc >"], "expected a number"),
        (["report", str(RUN), "--format", "pdf"], "Invalid value for '--format'"),
        (["report", str(RUN), "--traffic", "lots"], "traffic multiplier"),
        (["report", str(RUN), "--slo", "fast"], "--slo"),
    ],
)
def test_cli_exit_2_on_bad_usage_without_traceback(runner, args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("drop", ["metrics.json", "predictions.parquet", "manifest.json"])
def test_incomplete_run_dir_is_exit_2(runner, tmp_path, drop):
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    (run / drop).unlink()
    r = runner.invoke(app, ["report", str(run)])
    assert r.exit_code == 2
    assert f"is not a complete run directory: missing {drop}" in r.output
    assert "Traceback" not in r.output


def test_run_without_metrics_support_is_exit_2(runner, tmp_path):
    run = tmp_path / "old"
    shutil.copytree(RUN, run)
    (run / "metrics.json").write_text('{"schema_version": 0}')
    with pytest.raises(RunDirError, match="lacks 'strategies'"):
        build_report(run)


@pytest.fixture
def one_class_run(tmp_path):
    """A copy of run_small whose labels are all negative: AUC cannot be computed."""
    run = tmp_path / "oneclass"
    shutil.copytree(RUN, run)
    preds = pl.read_parquet(run / "predictions.parquet").with_columns(pl.col("y") * 0)
    preds.write_parquet(run / "predictions.parquet")
    names = METRICS["strategies"]
    m = compute_metrics(preds, pl.read_parquet(run / "timings.parquet"), task="binary",
                        strategies=names, baseline="batch_daily")  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(m))
    return run


def test_cli_exit_3_when_a_metric_cannot_be_computed(runner, one_class_run):
    r = runner.invoke(app, ["report", str(one_class_run), "--check", "stream.accuracy > 0.1"])
    assert r.exit_code == 3, r.output
    assert (
        "ERROR" in r.output and "ROC AUC needs both classes" in r.output
    )  # the manifest's AUC check
    assert "could not be computed" in r.output


def test_output_file_and_github_summary(runner, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(RUN), "-f", "html", "-o", str(out), "--github-summary"])
    assert r.exit_code == 0, r.output
    assert f"wrote html report to {out}" in r.output
    assert "PASS  stream.auc - batch_daily.auc >= 0.01" in r.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    text = summary.read_text()
    assert text.startswith("previous step\n## rtml report")  # appended, not overwritten


def test_github_summary_outside_github_actions_goes_to_stdout_with_a_note(runner, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    r = runner.invoke(app, ["report", str(RUN), "--github-summary", "-f", "markdown"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("## rtml report") and r.stdout.count("## rtml report") == 1
    assert "$GITHUB_STEP_SUMMARY is not set" in r.stderr and "stdout" in r.stderr
    # the terminal report on stdout, then the Markdown summary after it
    r = runner.invoke(app, ["report", str(RUN), "--github-summary"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("rtml report") and "\n## rtml report" in r.stdout
    assert "the Markdown summary went to stdout" in r.stderr


def test_github_summary_outside_github_actions_with_output_file(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(RUN), "-f", "html", "-o", str(out), "--github-summary"])
    assert r.exit_code == 0, r.output
    assert f"wrote html report to {out}" in r.stdout and "\n## rtml report" in r.stdout
    assert "$GITHUB_STEP_SUMMARY is not set" in r.stderr
    # stdout carrying JSON stays valid JSON: the summary is left out, and the note says so
    r = runner.invoke(app, ["report", str(RUN), "-f", "json", "--github-summary"])
    assert r.exit_code == 0 and json.loads(r.stdout)["schema_version"] == 1
    assert "was not written" in r.stderr


def test_capacity_options_reach_the_report(runner):
    r = runner.invoke(
        app,
        ["report", str(RUN), "-f", "json", "--traffic", "10x", "--slo", "2ms", "--workers", "3"],
    )
    assert r.exit_code == 0, r.output
    cap = json.loads(r.output)["capacity"]
    assert cap["traffic"] == [1.0, 10.0] and cap["slo_ms"] == 2.0
    stream = cap["strategies"]["stream"]
    assert set(stream) == {"1x", "10x"}
    assert 3 in [w["workers"] for w in stream["10x"]["by_workers"]]
    assert stream["10x"]["chosen"]["workers"] == 3
    assert "batch_daily" not in cap["strategies"]  # batch serves precomputed scores


def test_capacity_checks(runner):
    r = runner.invoke(
        app, ["report", str(RUN), "-f", "junit", "--slo", "5ms", "-c", "stream.workers_needed <= 1"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["report", str(RUN), "-f", "junit", "--slo", "0.1ms", "-c", "stream.workers_needed <= 1"],
    )
    assert r.exit_code == 3, r.output  # no worker count meets an SLO below the service time
    assert "exceeds the SLO" in r.output


def test_two_runs_side_by_side(runner, one_class_run):
    r = runner.invoke(app, ["report", str(RUN), str(one_class_run), "-f", "json"])
    assert r.exit_code == 0, r.output
    rb = json.loads(r.output)["run_b"]
    row = next(x for x in rb["rows"] if x["strategy"] == "stream" and x["metric"] == "accuracy")
    assert row["a"] == METRICS["quality"]["stream"]["accuracy"]
    assert row["diff"] == pytest.approx(row["b"] - row["a"])
    assert any("stream" in s for s in rb["verdict"])


def test_installed_console_script_runs(tmp_path):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "rtml_cli",
        "report",
        str(RUN),
        "-f",
        "json",
        "-c",
        "stream.auc < 0.5",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["exit_code"] == 1


def test_online_capacity_charges_the_update_work_to_the_same_workers(rep):
    online = rep["capacity"]["strategies"]["online"]["1x"]
    predict_mean = METRICS["compute"]["online"]["predict_single_row"]["wall_ms"]["mean"]
    update = METRICS["compute"]["online"]["kinds"]["update"]
    share = update["count"] / METRICS["freshness"]["online"]["events"]
    expected = predict_mean + min(1.0, share) * update["wall_ms"]["mean"]
    assert online["service_ms"]["mean"] == pytest.approx(expected, rel=0.03)  # 10k seeded samples
    stream = rep["capacity"]["strategies"]["stream"]["1x"]
    assert stream["service_ms"]["mean"] == pytest.approx(
        METRICS["compute"]["stream"]["predict_single_row"]["wall_ms"]["mean"]
    )


def test_regression_run_reads_lower_error_as_a_gain(tmp_path):
    import datetime as dt

    import numpy as np

    from rtml_cli.runs import write_run_dir

    rng = np.random.default_rng(5)
    n = 1500
    t = [dt.datetime(2024, 1, 1) + dt.timedelta(minutes=5 * i) for i in range(n)]
    y = rng.normal(size=n)
    frames = []
    for name, noise in (("batch", 1.0), ("stream", 0.5)):
        score = y + rng.normal(scale=noise, size=n)
        frames.append(
            pl.DataFrame(
                {
                    "event_id": np.arange(n),
                    "strategy": name,
                    "t": t,
                    "y": y,
                    "score": score,
                    "pred": score,
                    "staleness_us": np.zeros(n, dtype=np.int64),
                }  # fmt: skip
            )
        )
    preds = pl.concat(frames)
    timings = pl.DataFrame(
        {
            "strategy": ["stream"] * 50,
            "kind": ["predict"] * 50,
            "wall_ns": [1_000_000] * 50,
            "cpu_ns": [900_000] * 50,
            "rows": [1] * 50,
        }  # fmt: skip
    )
    m = compute_metrics(
        preds, timings, task="regression", strategies=["batch", "stream"], baseline="batch"
    )
    manifest = {
        "task": "regression",
        "strategies": [{"name": "batch", "kind": "batch"}, {"name": "stream", "kind": "stream"}],
        "baseline": "batch",
        "config": {"checks": ["stream.mae < batch.mae"]},
    }
    run = write_run_dir(
        tmp_path / "reg", manifest=manifest, predictions=preds, timings=timings, metrics=m
    )
    rep = build_report(run)
    assert rep["primary_metric"] == "mae"
    fresh = rep["verdict"][0]
    d = m["diff_to_baseline"]["stream"]["mae"]
    assert d["estimate"] < 0
    assert fresh.startswith(f"Fresh features (stream vs batch): MAE {d['estimate']:+.3f}")
    # lower error is better; δ for MAE is 1% of the reference's MAE
    assert d["call"] == "gain" and d["min_effect"] > 0
    assert fresh.endswith(f"a gain (beyond ±{d['min_effect']:.3g} MAE).")
    assert rep["checks"][0]["status"] == "pass" and rep["exit_code"] == 0
    assert "R²" in render(rep, "markdown")


def test_installed_rtml_script_renders_markdown():
    import shutil as sh
    import subprocess

    exe = sh.which("rtml")
    if exe is None:
        pytest.fail("the rtml console script is not installed (pip install -e .)")
    r = subprocess.run([exe, "report", str(RUN), "-f", "markdown"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("## rtml report")


def test_verdict_states_batch_staleness_and_per_event_latency_from_metrics_json(rep):
    from rtml_cli.report_values import format_ms, format_seconds

    st = METRICS["freshness"]["batch_daily"]["staleness_s"]
    stale = next(s for s in rep["verdict"] if s.startswith("batch_daily serves features"))
    assert (
        f"{format_seconds(st['mean'])} stale on average (p90 {format_seconds(st['p90'])}" in stale
    )
    assert f"{METRICS['freshness']['batch_daily']['cold_start']} events were cold starts" in stale
    lat = next(s for s in rep["verdict"] if s.startswith("One-row predict p99"))
    p99 = METRICS["compute"]["stream"]["predict_single_row"]["wall_ms"]["p99"]
    assert f"stream {format_ms(p99)} ms" in lat
    assert "batch_daily" not in lat  # batch serves precomputed scores


def test_run_b_rows_include_per_event_latency(runner):
    r = runner.invoke(app, ["report", str(RUN), str(RUN), "-f", "json"])
    rows = json.loads(r.output)["run_b"]["rows"]
    lat = next(x for x in rows if x["strategy"] == "stream" and x["metric"] == "predict_p99_ms")
    assert (
        lat["a"] == lat["b"] == METRICS["compute"]["stream"]["predict_single_row"]["wall_ms"]["p99"]
    )
    assert lat["diff"] == 0


def test_html_draws_the_capacity_curve_with_the_slo_line():
    doc = render_html(build_report(RUN, workers=3, slo="2ms"))
    root = ET.fromstring(doc.replace("<!DOCTYPE html>", "", 1))
    charts = root.findall(".//svg[@class='chart']")
    assert len(charts) == 2  # quality over time + p99 by workers
    assert [c.findtext("title") for c in charts] == [
        next(t for t in root.itertext() if t.startswith("AUC per")),
        "End-to-end p99 latency by number of workers",
    ]
    assert len(root.findall(".//svg[@class='spark']")) == len(METRICS["strategies"])
    assert "SLO 2 ms" in doc and "http" not in doc.lower()


def test_output_that_cannot_be_written_is_exit_2_and_leaves_no_temporary_file(runner, tmp_path):
    target = tmp_path / "is_a_dir"
    target.mkdir()
    r = runner.invoke(app, ["report", str(RUN), "-f", "html", "-o", str(target)])
    assert r.exit_code == 2 and "is a folder" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is_a_dir"]
    assert list(target.iterdir()) == []
    unwritable = tmp_path / "no" / "such" / "folder" / "r.html"
    r = runner.invoke(app, ["report", str(RUN), "-f", "html", "-o", str(unwritable)])
    assert r.exit_code == 2 and "Cannot write the report" in r.output, r.output


def test_an_existing_report_file_is_replaced_only_with_force(runner, tmp_path):
    target = tmp_path / "report.md"
    target.write_text("my notes")
    r = runner.invoke(app, ["report", str(RUN), "-f", "markdown", "--out", str(target)])
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    assert target.read_text() == "my notes"
    r = runner.invoke(app, ["report", str(RUN), "-f", "markdown", "-o", str(target), "--force"])
    assert r.exit_code == 0, r.output
    assert target.read_text().startswith("#") and "my notes" not in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_report_is_never_written_into_the_run_it_reads(runner, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    before = sorted(p.name for p in run.iterdir())
    r = runner.invoke(app, ["report", str(run), "-o", str(run / "metrics.json"), "--force"])
    assert r.exit_code == 2 and "input" in r.output
    assert sorted(p.name for p in run.iterdir()) == before


def test_the_format_follows_the_out_suffix_unless_given(runner, tmp_path):
    import json as _json
    import xml.etree.ElementTree as ET

    r = runner.invoke(app, ["report", str(RUN), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    r = runner.invoke(app, ["report", str(RUN), "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0 and isinstance(_json.loads((tmp_path / "r.json").read_text()), dict)
    r = runner.invoke(app, ["report", str(RUN), "-o", str(tmp_path / "r.xml")])
    assert r.exit_code == 0 and ET.fromstring((tmp_path / "r.xml").read_text()) is not None
    r = runner.invoke(app, ["report", str(RUN), "-o", str(tmp_path / "x.html"), "-f", "markdown"])
    assert r.exit_code == 0 and not (tmp_path / "x.html").read_text().lstrip().startswith("<")
