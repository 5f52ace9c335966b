"""`rtml compare` end to end: zero config, flags, run directory, bad input (exit 2, no run dir)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.errors import RunDirError
from rtml_cli.runs import read_run_dir
from tests.test_compare_engine import small_table

FAST = ["--strategies", "batch:1d,online:8,static", "--timing-sample", "20", "--warmup", "1d"]


def _no_run_left(tmp_path: Path) -> None:
    left = [p.name for p in tmp_path.rglob("*") if p.is_dir()]
    assert left == [], left


def test_compare_writes_a_complete_run(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(out),
            "--key-col",
            "user",
            "--label-delay",
            "30m",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "note: task: binary (positive class: True)" in r.output
    assert "batch" in r.output and "online" in r.output and "full report: rtml report" in r.output
    run = read_run_dir(out)
    assert run.manifest["task"] == "binary" and run.manifest["baseline"] == "batch"
    assert [s["name"] for s in run.manifest["strategies"]] == ["batch", "online", "static"]
    p = run.predictions
    # the three strategies and the two naive references (persistence, prior), every scored event
    assert p.height == 5 * run.manifest["scored_events"]
    assert p["strategy"].unique().sort().to_list() == [
        "batch", "online", "persistence", "prior", "static",
    ]  # fmt: skip
    assert set(p.columns) >= {
        "event_id",
        "strategy",
        "t",
        "label_time",
        "y",
        "score",
        "pred",
        "model_version",
        "model_time",
        "features_time",
        "staleness_us",
        "feature_age_us",
        "model_age_us",
        "cold_start",
    }
    assert p.schema["model_version"] == pl.Int32 and p.schema["t"] == pl.Datetime("us")
    tm = run.timings
    assert set(tm["kind"].unique()) >= {"predict", "update", "retrain", "score_job"}
    single = tm.filter((pl.col("kind") == "predict") & (pl.col("rows") == 1))
    # batch serves precomputed scores: only online and static answer a request with a call
    assert single.group_by("strategy").len().sort("strategy").rows() == [
        ("online", 20),
        ("static", 20),
    ]
    assert "quality" in run.metrics and set(run.metrics["quality"]) == {
        "batch", "online", "static", "persistence", "prior",
    }  # fmt: skip
    assert run.manifest["options"]["timing_sample"] == 20


def test_zero_config_infers_and_says_so(runner, tmp_path):
    table = small_table(tmp_path)
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(tmp_path / "z"),
            "--strategies",
            "static,online:16",
            "--timing-sample",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    for text in (
        "time column: 'ts' (inferred",
        "label column: 'label' (inferred",
        "model: preset 'sgd' (default",
        "warm-up: 0.2",
    ):
        assert text in r.output


def test_config_file_beside_table_is_used(runner, tmp_path):
    table = small_table(tmp_path)
    (tmp_path / "rtml.toml").write_text(
        '[data]\nkey = "user"\nwarmup = "2d"\n[[strategy]]\nname = "nightly"\nkind = "batch"\n'
        '[[strategy]]\nname = "live"\nkind = "online"\nupdate_every = 4\n[report]\nbaseline = "nightly"\n'
    )
    out = tmp_path / "runs" / "c"
    r = runner.invoke(app, ["compare", str(table), "--out", str(out), "--timing-sample", "5"])
    assert r.exit_code == 0, r.output
    assert "rtml.toml (found beside the table" in r.output
    assert read_run_dir(out).manifest["baseline"] == "nightly"


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--strategies", "batch:1d,streem"],
            "unknown kind 'streem' in 'streem'. Did you mean 'stream'?",
        ),
        (["--warmup", "30d"], "warm-up 30d is longer than the data"),
        (["--model", "missing.py:make"], "model file 'missing.py'"),
        (["--model", "sklearn.linear_model:SGDClasifier"], "Did you mean 'SGDClassifier'?"),
        (["--model", "logreg", "--strategies", "online:1"], "has no partial_fit"),
        (["--model", "nope"], "unknown model preset 'nope'"),
        (["--baseline", "zzz"], "baseline 'zzz' is not a strategy"),
        (["--label-col", "lable"], "label column 'lable' not found"),
        (["--timing-sample", "many"], "--timing-sample must be a number"),
    ],
)
def test_bad_input_exits_2_and_leaves_no_run(runner, tmp_path, args, message):
    table = small_table(tmp_path)
    runs = tmp_path / "runs"
    r = runner.invoke(
        app, ["compare", str(table), "--out", str(runs / "x"), "--timing-sample", "5", *args]
    )
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert not runs.exists() or not any(runs.iterdir())


def test_factory_without_the_function_and_raising_fit(runner, tmp_path):
    table = small_table(tmp_path)
    model = tmp_path / "model.py"
    model.write_text(
        "from sklearn.linear_model import SGDClassifier\n"
        "class Boom(SGDClassifier):\n"
        "    def fit(self, X, y, **kw):\n"
        "        raise RuntimeError('boom')\n"
        "def make_model():\n    return SGDClassifier(loss='log_loss')\n"
        "def make_boom():\n    return Boom()\n"
    )
    runs = tmp_path / "runs"
    r = runner.invoke(
        app, ["compare", str(table), "--out", str(runs / "a"), "--model", f"{model}:make_modle"]
    )
    assert (
        r.exit_code == 2 and "has no callable 'make_modle'. Did you mean 'make_model'?" in r.output
    ), r.output
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(runs / "b"),
            "--model",
            f"{model}:make_boom",
            "--features",
            "x1",
            "--strategies",
            "static",
        ],
    )
    assert r.exit_code == 2, r.output
    assert (
        "raised while fitting strategy 'static' at" in r.output and "RuntimeError: boom" in r.output
    )
    assert not runs.exists() or not any(runs.iterdir())


def test_existing_out_is_refused(runner, tmp_path):
    table = small_table(tmp_path)
    (tmp_path / "done").mkdir()
    r = runner.invoke(app, ["compare", str(table), "--out", str(tmp_path / "done")])
    assert r.exit_code == 2 and "already exists" in r.output


def test_read_run_rejects_incomplete_dirs(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "predictions.parquet").write_bytes(b"")
    with pytest.raises(RunDirError, match="missing manifest.json"):
        read_run_dir(tmp_path / "half")
    with pytest.raises(RunDirError, match="not found"):
        read_run_dir(tmp_path / "nothing")


@pytest.mark.slow
def test_installed_console_script(tmp_path):
    table = small_table(tmp_path, n=200)
    out = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtml_cli",
            "compare",
            str(table),
            "--out",
            str(out),
            "--strategies",
            "static",
            "--timing-sample",
            "3",
            "--warmup",
            "1d",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_windowed_features_reach_every_view(runner, tmp_path):
    table = small_table(tmp_path)
    cfg = tmp_path / "with_features.toml"
    cfg.write_text(
        '[data]\nkey = "user"\nwarmup = "1d"\nlabel_delay = "30m"\n'
        '[[feature]]\nname = "n_1d"\ncolumn = "*"\nagg = "count"\nwindow = "1d"\n'
        '[[feature]]\nname = "ctr_1d"\ncolumn = "label"\nagg = "mean"\nwindow = "1d"\n'
    )
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--strategies",
            "batch:1d,stream:1d",
            "--timing-sample",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    from rtml_cli.compare import prepare, resolve_config

    prep = prepare(table, resolve_config(table, config=cfg, strategies="batch:1d,stream:1d"))
    fresh, batch = prep.views["fresh"], prep.views[f"batch:{86_400_000_000}"]
    assert fresh.X.shape[1] == batch.X.shape[1] == len(prep.features) + 2
    # the count over the last day differs between the fresh and the as-of-cutoff view
    assert not (fresh.X[:, -2] == batch.X[:, -2]).all()


def test_a_crash_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import rtml_cli.runs as runs

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "rename", boom)
    with pytest.raises(RunDirError, match="disk full"):
        runs.write_run_dir(
            tmp_path / "r",
            manifest={},
            predictions=pl.DataFrame({"a": [1]}),
            timings=pl.DataFrame({"a": [1]}),
            metrics={},
        )
    assert list(tmp_path.iterdir()) == []


def test_timing_all_times_every_scored_event(runner, tmp_path):
    table = small_table(tmp_path, n=150)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(out),
            "--strategies",
            "static",
            "--warmup",
            "1d",
            "--timing",
            "all",
        ],
    )
    assert r.exit_code == 0, r.output
    run = read_run_dir(out)
    assert run.timings.filter(pl.col("kind") == "predict").height == run.manifest["scored_events"]
    assert run.manifest["options"]["timing_sample"] == "all"


def test_request_features_come_from_the_event_in_batch(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(out),
            "--key-col",
            "user",
            "--warmup",
            "1d",
            "--strategies",
            "batch:1d",
            "--request-features",
            "device",
            "--timing-sample",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_run_dir(out).manifest["roles"]["request_features"] == ["device"]
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(tmp_path / "r2"),
            "--features",
            "x1",
            "--request-features",
            "device",
        ],
    )
    assert r.exit_code == 2 and "request feature 'device' is not among the features" in r.output


def test_default_out_and_one_class_warning_on_stderr(runner, tmp_path, monkeypatch):
    table = small_table(tmp_path, one_class_day=3)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--strategies",
            "batch:1d:1d",
            "--warmup",
            "1d",
            "--key-col",
            "user",
            "--timing-sample",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "warning: strategy 'batch': retrain at 2024-03-05T00:00:00 skipped" in r.output
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("small-")
    assert any("one class only" in w for w in read_run_dir(runs[0]).manifest["warnings"])
