"""Inputs nobody tried on the level-2 features: damaged sweep files, checks over a sweep's
references, a regression label too large for the metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app

runner = CliRunner()


def _cell(alias: str) -> dict[str, Any]:
    return {
        "id": f"{alias}-retrain_every_1d",
        "alias": alias,
        "params": {"retrain_every": "1d"},
        "status": "ok",
        "error": None,
        "run_dir": f"cells/{alias}-retrain_every_1d",
    }


def _row(strategy: str, kind: str, auc: float, cost: float | None) -> dict[str, Any]:
    diff = None if strategy == "batch" else auc - 0.7
    return {
        "cell": "c000",
        "cell_id": "c000-retrain_every_1d",
        "retrain_every": "1d",
        "strategy": strategy,
        "kind": kind,
        "baseline": "batch",
        "refresh_s": 86400.0 if kind == "batch" else None,
        "n": 100.0,
        "auc": auc,
        "auc_diff": diff,
        "auc_diff_low": None if diff is None else diff - 0.01,
        "auc_diff_high": None if diff is None else diff + 0.01,
        "compute_cpu_s": cost,
        "cost_cpu_s_per_day": cost,
    }


def write_sweep(path: Path, rows: list[dict[str, Any]], doc: dict[str, Any] | None = None) -> Path:
    """A sweep directory as rtml writes it (sweep.json and curve.parquet), without its cells."""
    path.mkdir()
    doc = doc or {
        "tool": "rtml",
        "kind": "sweep",
        "format": 1,
        "table": "t.parquet",
        "grid": {"retrain_every": ["1d"]},
        "strategies": ["batch"],
        "baseline": "batch",
        "cells": [_cell("c000")],
    }
    (path / "sweep.json").write_text(json.dumps(doc))
    pl.DataFrame(rows).write_parquet(path / "curve.parquet")
    return path


ROWS = [
    _row("batch", "batch", 0.7, 0.5),
    _row("persistence", "reference", 0.4, None),
    _row("prior", "reference", 0.5, None),
]


def test_a_sweep_aggregate_check_covers_strategies_not_the_naive_references(
    tmp_path: Path,
) -> None:
    # a run's checks know no 'persistence' or 'prior'; in a sweep, min(auc) was the prior's
    # AUC (failing every gate) and max(cost_...) an error (references have no cost)
    sw = write_sweep(tmp_path / "sw", ROWS)
    res = runner.invoke(app, ["report", str(sw), "--check", "min(auc) > 0.6"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(sw), "--check", "max(cost_cpu_s_per_day) < 1"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: d["cells"][0].pop("alias"), "cells[0].alias"),
        (lambda d: d["cells"].__setitem__(0, 1), "cells[0]"),
        (lambda d: d.__setitem__("strategies", 5), "strategies"),
        (lambda d: d.__setitem__("grid", [1]), "grid"),
        (lambda d: d["cells"][0].__setitem__("params", "x"), "cells[0].params"),
    ],
)
def test_a_damaged_sweep_json_is_a_run_dir_error_naming_the_field(
    tmp_path: Path, damage: Any, fragment: str
) -> None:
    sw = write_sweep(tmp_path / "sw", ROWS)
    doc = json.loads((sw / "sweep.json").read_text())
    damage(doc)
    (sw / "sweep.json").write_text(json.dumps(doc))
    res = runner.invoke(app, ["report", str(sw)])
    assert res.exit_code == 2, res.output
    assert f"'{fragment}'" in res.output and "Rerun `rtml sweep`" in res.output


def test_a_curve_without_its_strategy_column_is_a_run_dir_error(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "strategy"} for r in ROWS]
    sw = write_sweep(tmp_path / "sw", rows)
    res = runner.invoke(app, ["report", str(sw)])
    assert res.exit_code == 2, res.output
    assert "column 'strategy' is missing" in res.output


def test_huge_or_infinite_numbers_in_the_curve_never_crash_the_chart(tmp_path: Path) -> None:
    huge = [_row("batch", "batch", 0.7, 1e308), _row("online", "online", 0.8, 0.1)]
    sw = write_sweep(tmp_path / "huge", huge)
    res = runner.invoke(app, ["report", str(sw), "--format", "html"])
    assert res.exit_code == 2, res.output
    assert "'compute_cpu_s' holds 1e+308" in res.output
    inf = [_row("batch", "batch", 0.7, float("inf")), _row("online", "online", float("inf"), 0.1)]
    sw = write_sweep(tmp_path / "inf", inf)
    res = runner.invoke(app, ["report", str(sw), "--format", "html"])
    assert res.exit_code == 0, res.output
    assert "<svg" in res.output


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(1e300, "beyond ±1e+50"), (float("inf"), "infinite value")],
)
def test_a_regression_label_too_large_for_the_metrics_is_refused_up_front(
    tmp_path: Path, value: float, fragment: str
) -> None:
    # compare wrote a run whose MAE (8e299) its own report refused as a damaged metrics.json;
    # an infinite label failed inside the first fit
    n = 200
    table = tmp_path / "reg.parquet"
    pl.DataFrame(
        {
            "ts": pl.datetime_range(
                pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 3), "10m", eager=True
            )[:n],
            "x": [float(i % 7) for i in range(n)],
            "y": [value if i % 5 == 0 else float(i % 3) + 0.5 for i in range(n)],
        }
    ).write_parquet(table)
    res = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--time-col",
            "ts",
            "--label-col",
            "y",
            "--inputs",
            "x",
            "-s",
            "batch:1d",
            "--out",
            str(tmp_path / "run"),
        ],  # fmt: skip
    )
    assert res.exit_code == 2, res.output
    assert "label column 'y'" in res.output and fragment in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("answer", [b"", b"\xff" * 64], ids=["silent", "garbage"])
def test_a_dask_address_where_another_service_listens_is_exit_2_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bytes
) -> None:
    # Client() waited forever on a silent peer and called a garbage one 'out of memory'; a
    # half-built Client then printed a traceback from its __del__
    import socket
    import threading

    from rtml_cli import sweep_run

    monkeypatch.setattr(sweep_run, "DASK_CONNECT_TIMEOUT_S", 1.0)
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        conns.append(conn)
        conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        res = runner.invoke(
            app,
            [
                "sweep",
                "t.parquet",
                "--grid",
                "retrain_every=1d",
                "--dask",
                address,
                "--out",
                str(tmp_path / "sw"),
            ],  # fmt: skip
        )
    finally:
        server.close()
        for c in conns:
            c.close()
    assert res.exit_code == 2, res.output
    assert f"Dask scheduler at '{address}'" in res.output and "memory" not in res.output
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("address", ["garbage!!", "inproc://x", "tcp://host"])
def test_a_malformed_dask_address_is_a_usage_error_naming_it(tmp_path: Path, address: str) -> None:
    res = runner.invoke(
        app,
        [
            "sweep",
            "t.parquet",
            "--grid",
            "retrain_every=1d",
            "--dask",
            address,
            "--out",
            str(tmp_path / "sw"),
        ],  # fmt: skip
    )
    assert res.exit_code == 2, res.output
    assert f"--dask {address!r} is not a scheduler address" in res.output


def test_a_river_learner_for_the_other_task_is_refused_in_its_own_words(tmp_path: Path) -> None:
    # the estimator's ModelError was wrapped: "... raised while building the model: ModelError:
    # model ... is not a River regressor ... river-linear.."
    n = 200
    table = tmp_path / "reg.parquet"
    pl.DataFrame(
        {
            "ts": pl.datetime_range(
                pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 3), "10m", eager=True
            )[:n],
            "x": [float(i % 7) for i in range(n)],
            "y": [float(i % 3) + 0.5 for i in range(n)],
        }
    ).write_parquet(table)
    res = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--time-col",
            "ts",
            "--label-col",
            "y",
            "--inputs",
            "x",
            "-s",
            "online",
            "-m",
            "river.linear_model:LogisticRegression",
            "--out",
            str(tmp_path / "run"),
        ],  # fmt: skip
    )
    assert res.exit_code == 2, res.output
    assert "is not a River regressor" in res.output and "river-linear." in res.output
    assert "raised while building" not in res.output and ".." not in res.output


def test_a_sweep_check_naming_a_strategy_without_its_cell_says_how_to_name_it(
    tmp_path: Path,
) -> None:
    # it read "unknown strategy 'batch' ... Strategies in this run: c000"
    sw = write_sweep(tmp_path / "sw", ROWS)
    res = runner.invoke(app, ["report", str(sw), "--check", "batch.auc > 0.5"])
    assert res.exit_code == 2, res.output
    assert "'c000.batch.auc'" in res.output and "min(batch.auc)" in res.output


def test_the_river_presets_are_grid_models_as_they_are_compare_models() -> None:
    # --grid model=river-logreg was 'unknown preset. Did you mean logreg?'
    from rtml_cli.sweep_grid import parse_grid

    (axis,) = parse_grid(["model=sgd,river-logreg,river-arf,river-linear"])
    assert len(axis.values) == 4


def test_a_progress_line_keeps_a_strategy_name_with_a_newline_on_one_line() -> None:
    # 'x\ny=online' printed "progress: strategy 'x" and "y' done: ..." as two lines
    from rtml_cli.progress import StrategyProgress

    lines: list[str] = []
    with StrategyProgress(True, ["x\ny"], 10, echo=lines.append, tty=False) as bars:
        bars.start("x\ny")
        bars.finished("x\ny", wall_s=1.0)
    assert lines and all("\n" not in line for line in lines)
    assert "x\\x0ay" in lines[-1]
