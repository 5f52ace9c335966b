"""End to end: a real `rtml compare` run on a tiny sample table, rendered by `rtml report`."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rtml_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from typer.testing import CliRunner

    runner = CliRunner()
    d = tmp_path_factory.mktemp("e2e")
    table = d / "clicks.parquet"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "1500", "--out", str(table)])
    assert r.exit_code == 0, r.output
    run = d / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--config",
            str(ROOT / "sample_data" / "rtml.toml"),
            "--out",
            str(run),
            "--timing-sample",
            "100",
        ],  # fmt: skip
    )
    assert r.exit_code == 0, r.output
    return run


def test_real_run_verdict_matches_its_metrics(runner, real_run):
    r = runner.invoke(app, ["report", str(real_run), "-f", "json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    m = json.loads((real_run / "metrics.json").read_text())
    assert rep["metrics"] == m
    assert {s["name"]: s["kind"] for s in rep["strategies"]} == {
        "batch_daily": "batch", "stream": "stream", "online": "online", "static": "static",
    }  # fmt: skip
    fresh = next(
        s for s in rep["verdict"] if s.startswith("Fresh features (stream vs batch_daily)")
    )
    d = m["diff_to_baseline"]["stream"][rep["primary_metric"]]
    nums = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", fresh)]
    assert nums[:3] == [round(d["estimate"], 3), round(d["low"], 3), round(d["high"], 3)]
    # worded by its practical call, with the smallest difference that matters
    words = {"gain": "a gain (beyond ±", "loss": "a loss (beyond ±", "inconclusive": "inconclusive",
             "no practical difference": "no practical difference (within ±"}  # fmt: skip
    assert words[d["call"]] in fresh
    assert rep["capacity"]["strategies"]["stream"]["1x"]["service_samples"] > 0


def test_real_run_gates_ci(runner, real_run, tmp_path):
    ok = runner.invoke(
        app, ["report", str(real_run), "-c", "stream.predict_p99_ms > 0", "-f", "junit"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["report", str(real_run), "-c", "online.auc > 1.5", "-f", "junit"])
    assert bad.exit_code == 1
    assert ET.fromstring(bad.output).find("testsuite/testcase/failure") is not None
    html = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(real_run), "-f", "html", "-o", str(html)])
    assert r.exit_code == 0, r.output
    assert "http" not in html.read_text().lower()
