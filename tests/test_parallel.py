"""``--jobs N`` runs every retrain of a scheduled strategy as its own task in worker processes, and
gives the serial run's results bit for bit (everything but timings)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.strategies import seeded

#: metrics.json sections measured from timings (they differ between any two runs)
TIMED = ("compute", "cost")


def delayed_table(tmp_path: Path, n: int = 900, seed: int = 3) -> Path:
    """Events every ~40 min over ~25 days, 6 users, labels arriving 1-7 h later, and a day
    whose labels are all negative (so a windowed retrain is skipped and the old model kept)."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2024, 5, 1)
    ts = [t0 + dt.timedelta(minutes=40 * i + int(rng.integers(0, 30))) for i in range(n)]
    x1 = rng.normal(size=n)
    dev = rng.choice(["ios", "android", "web"], size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(1.5 * x1 + (dev == "ios") - 0.3)))
    day = np.array([(t - t0).days for t in ts])
    y[(day >= 9) & (day < 11)] = False
    lt = [
        t + dt.timedelta(hours=int(h)) for t, h in zip(ts, rng.integers(1, 8, size=n), strict=True)
    ]
    path = tmp_path / "delayed.parquet"
    pl.DataFrame(
        {
            "ts": ts,
            "user": rng.integers(0, 6, size=n),
            "x1": x1,
            "device": dev,
            "label": y,
            "label_ts": lt,
        }
    ).write_parquet(path)
    return path


def run(runner: Any, table: Path, out: Path, *args: str) -> dict[str, Any]:
    res = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--time-col",
            "ts",
            "--label-col",
            "label",
            "--key-col",
            "user",
            "--label-time-col",
            "label_ts",
            "--warmup",
            "3d",
            "--timing-sample",
            "60",
            "-o",
            str(out),
            *args,
        ],
    )
    assert res.exit_code == 0, res.output
    return {
        "pred": pl.read_parquet(out / "predictions.parquet"),
        "tim": pl.read_parquet(out / "timings.parquet"),
        "metrics": json.loads((out / "metrics.json").read_text()),
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


def untimed(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in TIMED}


STRATEGIES = "batch:1d,stream:6h,stream:12h:2d,online:4,static"


def test_jobs_2_equals_serial_bit_for_bit(tmp_path: Path, runner: Any) -> None:
    table = delayed_table(tmp_path)
    one = run(runner, table, tmp_path / "one", "-s", STRATEGIES, "--jobs", "1")
    two = run(runner, table, tmp_path / "two", "-s", STRATEGIES, "--jobs", "2")
    # the one-class days skip windowed retrains: those spans keep the previous model
    assert any("skipped" in w for w in one["manifest"]["warnings"])
    assert one["pred"].equals(two["pred"])  # scores, versions, times: every bit
    assert untimed(one["metrics"]) == untimed(two["metrics"])
    assert one["manifest"]["warnings"] == two["manifest"]["warnings"]
    for a, b in zip(one["manifest"]["strategies"], two["manifest"]["strategies"], strict=True):
        assert (a["name"], a["fits"], a["updates"]) == (b["name"], b["fits"], b["updates"])
    # the same calls in the same order, with the same rows and times (only durations differ)
    cols = ["strategy", "kind", "rows", "t"]
    calls = [d["tim"].filter(pl.col("kind") != "predict").select(cols) for d in (one, two)]
    assert calls[0].equals(calls[1])
    assert two["manifest"]["options"]["jobs"] == 2


def test_parallel_error_is_the_serial_runs_first_error(tmp_path: Path, runner: Any) -> None:
    """A model that fails from some retrain on: both runs name the same (first) failing fit."""
    table = delayed_table(tmp_path, n=500)
    factory = tmp_path / "failing.py"
    factory.write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "class Failing(LogisticRegression):\n"
        "    def fit(self, X, y, sample_weight=None):\n"
        "        if len(X) > 250:\n"
        "            raise ValueError('too many rows')\n"
        "        return super().fit(X, y, sample_weight)\n"
        "def make():\n"
        "    from sklearn.pipeline import make_pipeline\n"
        "    from sklearn.impute import SimpleImputer\n"
        "    return make_pipeline(SimpleImputer(), Failing())\n"
    )
    outs = []
    for jobs in ("1", "2"):
        res = runner.invoke(
            app,
            [
                "compare",
                str(table),
                "--time-col",
                "ts",
                "--label-col",
                "label",
                "--label-time-col",
                "label_ts",
                "--warmup",
                "3d",
                "--inputs",
                "x1",
                "--model",
                f"{factory}:make",
                "-s",
                "batch:1d,stream:12h",
                "--jobs",
                jobs,
                "-o",
                str(tmp_path / f"out{jobs}"),
            ],
        )
        assert res.exit_code == 2, res.output
        outs.append(" ".join(res.output.split()))
    assert "too many rows" in outs[0]
    assert "while fitting strategy 'batch'" in outs[0]
    assert outs[0] == outs[1]
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("salt", [0, 86_400_000_000, -5])
def test_seeded_fits_draw_the_same_numbers_anywhere_and_restore_the_caller(salt: int) -> None:
    """A model without its own random_state draws from numpy's global generator: each fit is
    seeded by its time, whatever was drawn before, and the caller's stream goes on unchanged."""
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    with seeded(7, salt):
        first = np.random.random(3)
    assert np.random.random() == expected_next
    np.random.random(50)  # another order of work before the same fit
    with seeded(7, salt):
        assert np.array_equal(np.random.random(3), first)
    with seeded(8, salt):
        assert not np.array_equal(np.random.random(3), first)
