"""rtml sweep: grid → cells (ordinary run directories) → sweep.json and curve.parquet; resumable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from rtml_cli import runs
from rtml_cli.cli import app
from rtml_cli.errors import UsageError
from rtml_cli.sample import clickstream
from rtml_cli.sweep_grid import parse_grid

#: the run-directory reader of rtml report (renamed read_run_dir by the run recorder's split)
READ_RUN = getattr(runs, "read_run_dir", None) or runs.read_run
GRID = ["--grid", "retrain_every=1d,12h", "--grid", "update_every=8,32"]
BASE = ["--strategies", "batch,online,static", "--baseline", "static", "--timing-sample", "5"]
#: what does not depend on timing: identical however the cells were run
QUALITY = ["cell", "strategy", "refresh_s", "n", "retrains", "updates"] + [
    f"{m}{s}"
    for m in ("accuracy", "log_loss", "auc", "f1", "brier")
    for s in ("", "_diff", "_diff_low", "_diff_high")
]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("sweep_table") / "clicks.parquet"
    clickstream(rows=1200, seed=3, days=3, users=40).write_parquet(p)
    return p


def sweep_args(table: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", str(table), *GRID, *BASE, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def done(table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2×2 sweep, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("sweep_done") / "sw"
    res = CliRunner().invoke(app, sweep_args(table, out))
    assert res.exit_code == 0, res.output
    return out


def mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/manifest.json")}


def test_a_sweep_writes_one_run_directory_per_cell_and_the_curve(done: Path) -> None:
    doc = json.loads((done / "sweep.json").read_text())
    assert doc["tool"] == "rtml" and doc["kind"] == "sweep"
    assert [c["params"] for c in doc["cells"]] == [
        {"retrain_every": "1d", "update_every": "8"},
        {"retrain_every": "1d", "update_every": "32"},
        {"retrain_every": "12h", "update_every": "8"},
        {"retrain_every": "12h", "update_every": "32"},
    ]
    assert {c["status"] for c in doc["cells"]} == {"ok"}
    for c in doc["cells"]:
        run = READ_RUN(done / c["run_dir"])  # what rtml report reads
        specs = {s["name"]: s for s in run.manifest["strategies"]}
        # each key went to the kinds it fits, and nowhere else
        assert specs["batch"]["retrain_every"] == c["params"]["retrain_every"]
        assert specs["online"]["update_every"] == int(c["params"]["update_every"])
        assert "retrain_every" not in specs["online"] and run.metrics["baseline"] == "static"
    curve = pl.read_parquet(done / "curve.parquet")
    # four cells × (three strategies + the two naive references of every run)
    assert curve.height == 4 * 5 and curve.filter(pl.col("kind") == "reference").height == 4 * 2
    assert set(QUALITY) <= set(curve.columns)
    assert {"compute_cpu_s", "retrain_every", "update_every", "auc_diff_low"} <= set(curve.columns)
    batch = curve.filter(pl.col("strategy") == "batch")
    assert batch["refresh_s"].to_list() == [86400.0, 86400.0, 43200.0, 43200.0]
    # the baseline is static: its own row has no difference, the others an interval
    assert curve.filter(pl.col("strategy") == "static")["auc_diff"].null_count() == 4
    assert batch["auc_diff_low"].null_count() == 0
    online = curve.filter(pl.col("strategy") == "online")
    assert online["updates"][0] > online["updates"][1]  # every 8 labels vs every 32


def test_a_rerun_keeps_finished_cells_and_runs_only_the_missing_ones(
    table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sw"
    runner = CliRunner()
    args = sweep_args(table, out, "--grid", "train_window=all")
    assert runner.invoke(app, args).exit_code == 0
    before = mtimes(out)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "(0 run, 4 kept)" in again.stdout
    assert mtimes(out) == before
    # an interrupted sweep: one cell missing, one damaged (not made from its configuration)
    gone, edited = sorted(before)[1], sorted(before)[2]

    shutil.rmtree(out / "cells" / gone)
    m = json.loads((out / "cells" / edited / "manifest.json").read_text())
    m["config"]["seed_was_changed"] = True
    (out / "cells" / edited / "manifest.json").write_text(json.dumps(m))
    third = runner.invoke(app, args)
    assert third.exit_code == 0 and "(2 run, 2 kept)" in third.stdout, third.output
    after = mtimes(out)
    assert {k for k in before if after[k] != before[k]} == {edited, gone}
    moved = tmp_path / "moved"  # a sweep directory moved elsewhere keeps its cells
    shutil.move(out, moved)
    fourth = runner.invoke(app, sweep_args(table, moved, "--grid", "train_window=all"))
    assert fourth.exit_code == 0 and "(0 run, 4 kept)" in fourth.stdout, fourth.output


def test_other_arguments_are_refused_without_force_and_force_starts_over(
    table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sw"
    runner = CliRunner()
    args = ["sweep", str(table), "--grid", "retrain_every=1d", *BASE, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    other = ["sweep", str(table), "--grid", "retrain_every=12h", *BASE, "--out", str(out)]
    res = runner.invoke(app, other)
    assert res.exit_code == 2 and "other arguments (different grid)" in res.stderr
    assert "--force" in res.stderr
    forced = runner.invoke(app, [*other, "--force"])
    assert forced.exit_code == 0, forced.output
    assert [p.name for p in (out / "cells").iterdir() if p.is_dir()] == ["c000-retrain_every_12h"]


def test_force_never_replaces_a_folder_rtml_did_not_write(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = CliRunner().invoke(app, sweep_args(table, out, "--force"))
    assert res.exit_code == 2 and "not an rtml sweep directory" in res.stderr
    assert (out / "notes.txt").read_text() == "keep me" and not (out / "cells").exists()


def test_a_failing_cell_is_reported_and_does_not_stop_the_others(
    table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sw"
    args = ["sweep", str(table), "--grid", "model=nb,hgb", *BASE, "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output  # written, but not every cell ran
    assert "FAILED c001 (model=hgb)" in res.stdout and "1 of 2 cells failed" in res.stderr
    doc = json.loads((out / "sweep.json").read_text())
    ok, failed = doc["cells"]
    assert ok["status"] == "ok" and failed["status"] == "failed"
    assert "partial_fit" in failed["error"] and "online" in failed["error"]
    curve = pl.read_parquet(out / "curve.parquet")
    # three strategies and the two naive references of the one finished cell
    assert set(curve["cell"]) == {"c000"} and curve.height == 5
    assert curve.filter(pl.col("kind") == "reference")["strategy"].sort().to_list() == [
        "persistence", "prior",
    ]  # fmt: skip


def test_jobs_2_in_a_subprocess_gives_the_serial_curve(
    done: Path, table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "par"
    env = {**os.environ, "RTML_DASK_ADDRESS": ""}
    cmd = [sys.executable, "-m", "rtml_cli", *sweep_args(table, out, "--jobs", "2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 cells ok (4 run, 0 kept)" in proc.stdout
    serial = pl.read_parquet(done / "curve.parquet").select(QUALITY)
    parallel = pl.read_parquet(out / "curve.parquet").select(QUALITY)
    assert parallel.equals(serial)


@pytest.mark.parametrize(
    "grid, fragment",
    [
        ([], "needs a grid"),
        (["speed=1"], "unknown key 'speed'. Accepted keys: retrain_every, update_every"),
        (["retrain_evry=1d"], "Did you mean 'retrain_every'?"),
        (["retrain_every"], "is not KEY=V1,V2"),
        (["retrain_every="], "retrain_every= has no value"),
        (["retrain_every=1d", "retrain_every=1h"], "given twice"),
        (["retrain_every=1d,24h"], "'24h' repeats '1d'"),
        (["retrain_every=soon"], "--grid retrain_every=soon"),
        (["retrain_every=0s"], "must be > 0"),
        (["update_every=0"], "update_every must be an integer >= 1"),
        (["update_every=1.5"], "update_every must be an integer >= 1"),
        (["label_delay=-1h"], "label_delay"),
        (["train_window=forever"], "--grid train_window=forever"),
        (["model=sgdd"], "Did you mean 'sgd'?"),
        (["model=a\x1b[31m:b"], "holds a control character"),
        (["retrain_every=" + ",".join(f"{i}h" for i in range(1, 40)),
          "update_every=" + ",".join(str(i) for i in range(1, 40))], "cells (at most 1,000)"),
    ],
)  # fmt: skip
def test_bad_grids_are_usage_errors_naming_the_key(grid: list[str], fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        parse_grid(grid)
    assert fragment in str(info.value)


def test_cli_errors_exit_2_and_write_nothing(table: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", str(table), "--grid", "speed=1", "--out", str(out)])
    assert res.exit_code == 2 and "Accepted keys" in res.stderr and not out.exists()
    # a key that fits no strategy of the sweep changes nothing: refused
    res = runner.invoke(
        app,
        [
            "sweep",
            str(table),
            "--strategies",
            "batch",
            "--grid",
            "update_every=1,8",
            "--out",
            str(out),
        ],  # fmt: skip
    )
    assert res.exit_code == 2 and "update_every applies to online strategies" in res.stderr
    res = runner.invoke(app, ["sweep", str(table), "--grid", "retrain_every=1d", "--out", str(out),
                              "--timing-sample", "lots"])  # fmt: skip
    assert res.exit_code == 2 and "--timing-sample" in res.stderr
    res = runner.invoke(
        app, ["sweep", str(table), "--grid", "retrain_every=1d", "--out", str(table)]
    )
    assert res.exit_code == 2
    assert table.is_file()


# --------------------------------------------------------------------------- rtml report SWEEP_DIR


def test_report_of_a_sweep_has_the_curve_pareto_front_and_a_verdict_from_its_numbers(
    done: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(done)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    for title in ("Verdict", "Freshness curve: AUC against refresh", "Pareto front", "Cells"):
        assert title in out
    curve = pl.read_parquet(done / "curve.parquet").filter(pl.col("kind") != "reference")
    best = curve.sort("auc", descending=True).row(0, named=True)
    assert f"Best AUC: {best['strategy']}" in out and f"{best['auc']:.3f}" in out
    # the slowest and freshest batch retrains, with their AUC, in one sentence
    b = curve.filter(pl.col("strategy") == "batch").sort("refresh_s")
    assert f"batch: AUC {b['auc'][-1]:.3f} refreshing every 1d → {b['auc'][0]:.3f} every 12h" in out
    rep = json.loads(runner.invoke(app, ["report", str(done), "--format", "json"]).stdout)
    assert (
        rep["kind"] == "sweep" and rep["baseline"] == "static" and len(rep["curve"]) == 20
    )  # 12 + the references
    q = {(r["cell"], r["strategy"]): (r["auc"], r["compute_cpu_s"]) for r in rep["curve"]}
    front = [(p["quality"], p["cost"]) for p in rep["pareto"]]
    assert front and all(
        q[(p["cell"], p["strategy"])] == (p["quality"], p["cost"]) for p in rep["pareto"]
    )
    for a, c in front:  # nothing on the curve beats a front point on both quality and cost
        assert not any(a2 > a and c2 < c for a2, c2 in q.values())
    html = tmp_path / "sweep.html"
    assert runner.invoke(app, ["report", str(done), "-o", str(html)]).exit_code == 0
    text = html.read_text()
    assert text.count('<svg class="chart"') == 1 and "rtmlsweepchart" not in text
    assert "AUC gain over static" in text and "<polygon" in text  # interval bands
    md = runner.invoke(app, ["report", str(done), "--format", "markdown"]).stdout
    assert "### Pareto front: AUC against compute" in md and "| c000 |" in md


def test_checks_on_a_sweep_address_cells_and_aggregate_over_them(done: Path) -> None:
    curve = pl.read_parquet(done / "curve.parquet")
    worst = curve.filter(pl.col("strategy") == "online")["auc"].min()
    runner = CliRunner()

    def report(*checks: str) -> tuple[int, str]:
        args = ["report", str(done)]
        for c in checks:
            args += ["--check", c]
        res = runner.invoke(app, args)
        return res.exit_code, res.output

    assert report(f"min(online.auc) >= {worst - 1e-9}")[0] == 0
    code, text = report(f"min(online.auc) > {worst + 1e-9}")
    assert code == 1 and "FAIL" in text
    assert report("c003.online.auc >= c003.static.auc - 1", "max(compute_cpu_s) > 0")[0] == 0
    code, text = report("c009.online.auc > 0")
    assert code == 2 and "unknown strategy 'c009'" in text
    code, text = report("min(aucc) > 0")
    assert code == 2 and "Did you mean 'auc'?" in text
    # the baseline has no difference to itself: min(auc_diff) covers the other strategies only
    assert report("min(auc_diff) > -1")[0] == 0
    junit = runner.invoke(app, ["report", str(done), "--format", "junit", "--check", "min(n) > 0"])
    assert junit.exit_code == 0 and 'tests="1"' in junit.stdout


def test_a_failed_cell_makes_a_check_that_needs_it_an_error(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    args = ["sweep", str(table), "--grid", "model=nb,hgb", *BASE, "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 1
    res = CliRunner().invoke(app, ["report", str(out), "--check", "min(auc) > 0"])
    assert res.exit_code == 3 and "cell c001 failed" in res.output
    assert "1 of 2 cells failed and are left out: c001:" in res.output
    ok = CliRunner().invoke(app, ["report", str(out), "--check", "c000.online.auc > 0"])
    assert ok.exit_code == 0
    # no cell finished: a check is still an error naming the failed cell, not an unknown name
    none = tmp_path / "none"
    args = ["sweep", str(table), "--grid", "model=hgb", *BASE, "--out", str(none)]
    assert CliRunner().invoke(app, args).exit_code == 1
    res = CliRunner().invoke(app, ["report", str(none), "--check", "max(online.auc) > 0"])
    assert res.exit_code == 3 and "cell c000 failed" in res.output


def test_a_sweep_report_refuses_a_second_run_and_capacity_options(done: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(done), str(done)])
    assert res.exit_code == 2 and "is a sweep: it is reported alone" in res.stderr
    res = runner.invoke(app, ["report", str(done), "--slo", "20ms"])
    assert res.exit_code == 2 and "no capacity section" in res.stderr
    cell = next(p for p in (done / "cells").iterdir() if p.is_dir())
    assert runner.invoke(app, ["report", str(cell)]).exit_code == 0  # a cell is a normal run


def test_an_unreachable_dask_scheduler_is_exit_2_naming_it_and_writes_nothing(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from rtml_cli import sweep_run

    monkeypatch.setattr(sweep_run, "DASK_CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    out = tmp_path / "sw"
    monkeypatch.setenv("RTML_DASK_ADDRESS", address)  # the flag's environment variable
    res = CliRunner().invoke(
        app, ["sweep", str(table), "--grid", "retrain_every=1d", "--out", str(out)]
    )
    assert res.exit_code == 2
    assert f"cannot reach a Dask scheduler at '{address}' within 1 s" in res.stderr
    assert not out.exists()
    res = CliRunner().invoke(
        app, ["sweep", str(table), "--grid", "retrain_every=1d", "--out", str(out), "--jobs", "2"]
    )
    assert res.exit_code == 2 and "pass --jobs or --dask, not both" in res.stderr


def test_user_text_from_the_grid_is_escaped_in_every_report_format(
    table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sw"
    odd = "<b>pkg\u202emod:Cls"  # markup and a bidi override: an import path that fails
    args = ["sweep", str(table), "--grid", f"model={odd},sgd", *BASE, "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "\u202e" not in res.output
    runner = CliRunner()
    html = runner.invoke(app, ["report", str(out), "-f", "html"]).stdout
    assert "<b>pkg" not in html and "&lt;b&gt;pkg" in html
    md = runner.invoke(app, ["report", str(out), "-f", "markdown"]).stdout
    assert "<b>pkg" not in md
    term = runner.invoke(app, ["report", str(out)]).stdout
    assert "\u202e" not in term and "<b>pkg" in term


def test_the_verdict_weighs_gain_against_compute_from_the_numbers() -> None:
    from rtml_cli.sweep_report import pareto, verdict

    def row(cell: str, strategy: str, kind: str, auc: float, cost: float, **kw: float) -> dict:
        diff = None if strategy == "static" else auc - 0.70
        return {"cell": cell, "strategy": strategy, "kind": kind, "baseline": "static",
                "auc": auc, "auc_diff": diff, "auc_diff_low": None if diff is None else diff - 0.01,
                "auc_diff_high": None if diff is None else diff + 0.01, "compute_cpu_s": cost,
                "retrain_every": "1h", **kw}  # fmt: skip

    rows = [
        row("c000", "batch", "batch", 0.79, 1.0, retrain_every_s=3600.0, refresh_s=3600.0),
        row("c000", "online", "online", 0.80, 24.0, update_every_n=1.0, refresh_s=60.0),
        row("c000", "static", "static", 0.70, 0.5),
    ]
    rep = {"primary_metric": "auc", "higher_is_better": True, "baseline": "static",
           "grid": {"retrain_every": ["1h"]}, "cells": [{"alias": "c000", "status": "ok"}]}  # fmt: skip
    text = verdict(rep, rows)
    assert (
        "batch (retrain every 1h) (c000) gets 0.90 of the largest gain over static (online "
        "(update every 1 label) in c000, +0.100 AUC) for 1/24 of its compute (1 vs 24 CPU s)."
    ) in text
    # no min_effect in these rows (an older curve): significance alone decides
    assert "of 2 settings 2 gain and 0 lose" in " ".join(text)
    # with the smallest difference that matters, a 0.09 gain whose interval reaches 0.08 is a
    # gain beyond 0.005; beyond 0.095 (batch) it is inconclusive, and within ±0.2 no practical difference
    for delta, words in [(0.005, "2 gain and 0 lose beyond the smallest difference that matters "
                                 "(±0.005 AUC), 0 make no practical difference and 0 are "
                                 "inconclusive"),
                         (0.095, "1 gain and 0 lose beyond the smallest difference that matters "
                                 "(±0.095 AUC), 0 make no practical difference and 1 are "
                                 "inconclusive"),
                         (0.2, "0 gain and 0 lose beyond the smallest difference that matters "
                               "(±0.2 AUC), 2 make no practical difference")]:  # fmt: skip
        for r in rows:
            r["auc_diff_min_effect"] = delta
        assert words in " ".join(verdict(rep, rows)), (delta, verdict(rep, rows))
    front = [(r["strategy"]) for r in pareto(rows, "auc", True)]
    assert front == ["static", "batch", "online"]
    rows[0]["compute_cpu_s"] = 30.0  # now dominated by online: better and cheaper
    assert [r["strategy"] for r in pareto(rows, "auc", True)] == ["static", "online"]
