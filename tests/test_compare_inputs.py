"""`rtml compare` inputs: NaN labels are missing labels, reserved column names, progress in logs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from rtml_cli import progress as progress_mod
from rtml_cli.cli import app
from rtml_cli.progress import StrategyProgress
from rtml_cli.runs import read_run_dir
from tests.test_compare_engine import small_table

FAST = ["--timing-sample", "5", "--warmup", "1d"]


def test_a_nan_float_label_is_unscored_and_trains_nothing(runner, tmp_path):
    n = 400
    rng = np.random.default_rng(2)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(float)
    missing = rng.random(n) < 0.25
    y[missing] = np.nan
    df = pl.DataFrame(
        {
            "ts": [dt.datetime(2024, 3, 1) + dt.timedelta(minutes=25 * i) for i in range(n)],
            "x": x,
            "label": y,
        }
    )
    path = tmp_path / "nan_label.parquet"
    df.write_parquet(path)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        ["compare", str(path), "--out", str(out), "-s", "batch:1d,online:1", *FAST],
    )
    assert r.exit_code == 0, r.output
    assert "task: binary (positive class: 1.0)" in r.output
    run = read_run_dir(out)
    p = run.predictions.filter(pl.col("strategy") == "online")
    scored_missing = missing[n - p.height :]
    assert p["y"].is_null().to_list() == scored_missing.tolist()
    assert p.filter(pl.col("y").is_null())["label_time"].is_null().all()
    assert run.metrics["quality"]["online"]["n"] == int((~scored_missing).sum())
    # online updates once per known label that arrives after warm-up, never for a NaN one
    online = next(s for s in run.manifest["strategies"] if s["name"] == "online")
    assert online["updates"] == int((~scored_missing).sum())


@pytest.mark.parametrize("name", ["rtml_row", "rtml_event_id", "rtml_kind", "rtml_time"])
def test_a_reserved_column_is_exit_2_or_dropped_with_ignore(runner, tmp_path, name):
    table = small_table(tmp_path)
    df = pl.read_parquet(table)
    df.with_columns(pl.lit(1).alias(name)).write_parquet(table)
    r = runner.invoke(
        app, ["compare", str(table), "--out", str(tmp_path / "a"), "-s", "static", *FAST]
    )
    assert r.exit_code == 2, r.output
    assert f"'{name}', a name rtml reserves" in r.output and f"--ignore {name}" in r.output
    assert "Traceback" not in r.output
    out = tmp_path / "b"
    r = runner.invoke(
        app,
        ["compare", str(table), "--out", str(out), "-s", "static", "--ignore", name, *FAST],
    )
    assert r.exit_code == 0, r.output
    assert name not in read_run_dir(out).manifest["features"]


def test_progress_lines_outside_a_terminal(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_mod, "PROGRESS_INTERVAL_S", 0.0)
    table = small_table(tmp_path)
    r = runner.invoke(
        app,
        ["compare", str(table), "--out", str(tmp_path / "r"), "-s", "batch:1d,online:1", *FAST],
    )
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("progress: ")]
    running = [ln for ln in lines if "events/s, ETA" in ln]
    assert any("strategy 'batch' " in ln for ln in running), lines
    assert any("strategy 'online' " in ln for ln in running), lines
    for name in ("batch", "online"):
        done = [ln for ln in lines if ln.startswith(f"progress: strategy '{name}' done: ")]
        assert len(done) == 1 and "events/s" in done[0], lines
    # the summary table is printed after every strategy has ended
    assert r.output.index("done: ") < r.output.index("full report: rtml report")


def test_progress_with_the_default_interval_prints_only_the_ends(runner, tmp_path):
    table = small_table(tmp_path)
    r = runner.invoke(
        app,
        ["compare", str(table), "--out", str(tmp_path / "r"), "-s", "batch:1d,static", *FAST],
    )
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("progress: ")]
    assert [ln.split(" done:")[0] for ln in lines] == [
        "progress: strategy 'batch'",
        "progress: strategy 'static'",
    ]


def test_parallel_strategies_say_when_each_ends(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "r"
    r = runner.invoke(
        app,
        ["compare", str(table), "--out", str(out), "-s", "batch:1d,static", "--jobs", "2", *FAST],
    )
    assert r.exit_code == 0, r.output
    for name in ("batch", "static"):
        assert f"progress: strategy '{name}' done: " in r.output
    assert [s["name"] for s in read_run_dir(out).manifest["strategies"]] == ["batch", "static"]


def test_strategy_progress_rate_eta_and_interval(monkeypatch):
    lines: list[str] = []
    clock = iter([0.0, 5.0, 20.0, 25.0, 40.0])
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(clock))
    with StrategyProgress(True, ["s"], 1000, echo=lines.append, tty=False) as bars:
        cb = bars.callback("s")  # starts at 0 s
        assert cb is not None
        cb(100)  # at 5 s: under the interval, nothing
        cb(400)  # at 20 s: 400 events in 20 s
        cb(500)  # at 25 s: 5 s after the last line, nothing
        bars.finished("s")  # at 40 s
    assert lines == [
        "progress: strategy 's' 400/1,000 events (40%), 20 events/s, ETA 30 s",
        "progress: strategy 's' done: 1,000 events in 40 s, 25 events/s",
    ]
    quiet: list[str] = []
    with StrategyProgress(False, ["s"], 10, echo=quiet.append, tty=False) as bars:
        assert bars.callback("s") is None
        bars.finished("s")
    assert quiet == []
