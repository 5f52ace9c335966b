"""`rtml sample recurring`: a concept A → B → A where a fast online learner forgets A."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rtml_cli.cli import app
from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config
from rtml_cli.sample import RECURRING_SWITCHES, recurring


def test_deterministic_sorted_and_documented_columns() -> None:
    df = recurring(2_000, seed=1)
    assert df.equals(recurring(2_000, seed=1)) and not df.equals(recurring(2_000, seed=2))
    assert df.columns == ["ts", "x1", "x2", "x3", "x4", "y"]
    assert df["ts"].is_sorted() and df["ts"].n_unique() == df.height
    assert df.schema["y"] == pl.Boolean


def test_the_concept_switches_a_b_a() -> None:
    """x1 raises the label rate under A and lowers it under B; x2 matters under A only."""
    df = recurring(30_000, seed=0)
    a_end, b_end = (int(f * df.height) for f in RECURRING_SWITCHES)
    phases = {"A1": df[:a_end], "B": df[a_end:b_end], "A2": df[b_end:]}

    def corr(part: pl.DataFrame, col: str) -> float:
        return float(np.corrcoef(part[col].to_numpy(), part["y"].to_numpy())[0, 1])

    for name, part in phases.items():
        sign = -1 if name == "B" else 1
        assert sign * corr(part, "x1") > 0.4, name
        assert abs(corr(part, "x4")) < 0.05, name
    assert corr(phases["A1"], "x2") > 0.2 and abs(corr(phases["B"], "x2")) < 0.05
    assert corr(phases["B"], "x3") > 0.2 and abs(corr(phases["A2"], "x3")) < 0.05


def test_a_fast_online_learner_forgets_a_and_retraining_on_all_history_does_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "recurring.parquet"
    recurring(3_000, seed=0, period_s=400).write_parquet(path)  # about 14 days
    fast_sgd = {
        "estimator": "sklearn.linear_model:SGDClassifier",
        "params": {
            "loss": "log_loss",
            "learning_rate": "constant",
            "eta0": 0.05,
            "max_iter": 5,
            "tol": None,
        },
    }
    cfg = build_config(
        {"model": fast_sgd, "data": {"time": "ts", "label": "y"}},
        warmup="0.2",
        label_delay="1m",
        strategies="stream:1d,online:1",  # stream: daily retrains on all history, fresh features
    )
    prep = prepare(path, cfg)
    stream, online = run_strategies(prep, timing_sample=0)
    s0, n = prep.data.s0, len(prep.data.t)
    y = prep.data.y[s0:]
    a_end, b_end = (int(round(f * n)) - s0 for f in RECURRING_SWITCHES)

    def acc(r, a: int, b: int | None) -> float:
        return float((r.pred[a:b] == y[a:b]).mean())

    # When A returns, the online learner still answers B; the all-history model knows A.
    first = slice(b_end, b_end + 150)
    assert acc(online, first.start, first.stop) < 0.6
    assert acc(stream, first.start, first.stop) > 0.72
    assert acc(stream, first.start, first.stop) - acc(online, first.start, first.stop) > 0.15
    # The price of remembering: during B the all-history model is wrong, the online one right.
    assert acc(online, a_end, b_end) > 0.65 > 0.35 > acc(stream, a_end, b_end)
    # and the fast learner re-learns A within a few hundred labels
    assert acc(online, b_end + 300, None) > 0.8


def test_cli_writes_recurring(runner, tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    r = runner.invoke(app, ["sample", "recurring", "--rows", "500", "--seed", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out).equals(recurring(500, seed=2))
