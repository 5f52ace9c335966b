"""metrics.json: naive references beside the strategies, and the practical reading of each diff."""

from __future__ import annotations

import numpy as np
import polars as pl

from rtml_cli.metrics import compute_metrics
from rtml_cli.relevance import EQUIVALENT, GAIN
from tests.test_metrics import make_preds


def _empty_timings() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"strategy": pl.Utf8, "kind": pl.Utf8, "wall_ns": pl.Int64, "cpu_ns": pl.Int64,
                "rows": pl.Int64, "t": pl.Datetime("us")}
    )  # fmt: skip


def test_references_are_scored_but_are_not_deployments():
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.4).astype(float)
    good = np.clip(y * 0.6 + rng.random(4000) * 0.4, 0, 1)
    prior = np.full(4000, 0.4)
    preds = make_preds({"batch": good, "stream": good, "prior": prior}, y)
    m = compute_metrics(
        preds, _empty_timings(), task="binary", strategies=["batch", "stream"], baseline="batch",
        references=["prior"], resamples=200,
    )  # fmt: skip
    assert m["strategies"] == ["batch", "stream"] and m["references"] == ["prior"]
    assert set(m["quality"]) == {"batch", "stream", "prior"}
    assert "prior" not in m["freshness"] and "prior" not in m["compute"]
    assert all(p["strategy"] != "prior" and p["reference"] != "prior" for p in m["pairs"])
    # strategy − reference, with its interval and its practical reading
    d = m["vs_references"]["stream"]["prior"]["auc"]
    assert d["estimate"] > 0.3 and d["low"] > 0 and d["call"] == GAIN
    # identical scores: the whole interval is 0, well within the smallest effect that matters
    same = m["diff_to_baseline"]["stream"]["auc"]
    assert same["estimate"] == 0 and same["call"] == EQUIVALENT and same["min_effect"] == 0.005


def test_a_relative_min_effect_is_taken_from_the_reference_value():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 1, 3000)
    a = y + rng.normal(0, 1.0, 3000)
    b = y + rng.normal(0, 1.0, 3000)
    preds = make_preds({"a": a, "b": b}, y, regression=True)
    m = compute_metrics(
        preds, _empty_timings(), task="regression", strategies=["a", "b"], baseline="a",
        min_effect={"mae": "10%", "rmse": "0", "r2": "0.005"}, resamples=200,
    )  # fmt: skip
    d = m["diff_to_baseline"]["b"]["mae"]
    assert abs(d["min_effect"] - 0.1 * m["quality"]["a"]["mae"]) < 1e-12
    assert d["call"] == EQUIVALENT  # two equally noisy models: within 10 % of the error
    assert m["min_effect"]["mae"] == "10%"
