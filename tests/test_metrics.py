"""metrics.compute_metrics: quality against scikit-learn, block bootstrap, freshness, compute."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from rtml_cli.errors import MetricError, UsageError
from rtml_cli.metrics import choose_bucket, compute_metrics
from rtml_cli.metrics_blocks import binary_block_stats, metrics_from_stats

T0 = dt.datetime(2024, 1, 1)


def make_preds(
    scores: dict[str, np.ndarray], y: np.ndarray, *, hours: float = 48.0, regression: bool = False
) -> pl.DataFrame:
    n = y.size
    t = [T0 + dt.timedelta(hours=hours * i / n) for i in range(n)]
    frames = []
    for name, s in scores.items():
        frames.append(
            pl.DataFrame(
                {
                    "event_id": np.arange(n),
                    "strategy": [name] * n,
                    "t": t,
                    "y": y.astype(float),
                    "score": s.astype(float),
                    "pred": s if regression else (s >= 0.5).astype(float),
                    "staleness_us": np.zeros(n, dtype=np.int64),
                    "feature_age_us": np.full(n, 1_000_000, dtype=np.int64),
                    "model_age_us": np.full(n, 2_000_000, dtype=np.int64),
                    "cold_start": np.zeros(n, dtype=bool),
                },
                schema_overrides={"t": pl.Datetime("us")},
            )
        )
    return pl.concat(frames)


EMPTY_TIMINGS = pl.DataFrame(
    schema={
        "strategy": pl.String,
        "kind": pl.String,
        "wall_ns": pl.Int64,
        "cpu_ns": pl.Int64,
        "rows": pl.Int64,
    }
)


@pytest.fixture(scope="module")
def binary_run():
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.uniform(size=n) < 0.4).astype(float)
    good = np.clip(0.5 * y + rng.uniform(size=n) * 0.5, 0, 1)
    weak = np.clip(0.15 * y + rng.uniform(size=n) * 0.85, 0, 1)
    preds = make_preds({"batch": weak, "stream": good, "same": weak.copy()}, y)
    m = compute_metrics(
        preds,
        EMPTY_TIMINGS,
        task="binary",
        strategies=["batch", "stream", "same"],
        baseline="batch",
    )
    return y, {"batch": weak, "stream": good}, m


def test_binary_quality_matches_sklearn(binary_run):
    y, scores, m = binary_run
    for name, s in scores.items():
        q = m["quality"][name]
        pred = (s >= 0.5).astype(float)
        assert q["accuracy"] == pytest.approx(accuracy_score(y, pred))
        assert q["log_loss"] == pytest.approx(log_loss(y, s))
        assert q["auc"] == pytest.approx(roc_auc_score(y, s))
        assert q["f1"] == pytest.approx(f1_score(y, pred))
        assert q["brier"] == pytest.approx(brier_score_loss(y, s))
        assert q["n"] == y.size


def test_regression_quality_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.5, size=500)
    m = compute_metrics(make_preds({"a": p}, y, regression=True), EMPTY_TIMINGS, task="regression",
                        strategies=["a"], baseline="a")  # fmt: skip
    q = m["quality"]["a"]
    assert q["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert q["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert q["r2"] == pytest.approx(r2_score(y, p))
    assert m["metric_names"] == ["mae", "rmse", "r2"]


def test_identical_strategies_have_a_zero_interval_because_the_resample_is_shared(binary_run):
    _, _, m = binary_run
    d = m["diff_to_baseline"]["same"]["auc"]
    assert d["estimate"] == 0.0 and d["low"] == 0.0 and d["high"] == 0.0
    assert d["significant"] is False


def test_clearly_better_strategy_is_significant_and_interval_brackets_estimate(binary_run):
    _, _, m = binary_run
    for metric in ("auc", "accuracy", "log_loss", "brier"):
        d = m["diff_to_baseline"]["stream"][metric]
        assert d["low"] <= d["estimate"] <= d["high"]
        assert d["significant"] is True and d["better"] is True
    assert m["diff_to_baseline"]["stream"]["auc"]["estimate"] == pytest.approx(
        m["quality"]["stream"]["auc"] - m["quality"]["batch"]["auc"]
    )


def test_pairs_hold_every_unordered_pair_once(binary_run):
    _, _, m = binary_run
    got = {(p["strategy"], p["reference"]) for p in m["pairs"]}
    assert got == {("stream", "batch"), ("same", "batch"), ("same", "stream")}


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=600) < 0.5).astype(float)
    preds = make_preds(
        {"a": rng.uniform(size=600), "b": np.clip(y * 0.3 + rng.uniform(size=600) * 0.7, 0, 1)}, y
    )
    kw = dict(task="binary", strategies=["a", "b"], baseline="a")
    m1 = compute_metrics(preds, EMPTY_TIMINGS, seed=1, **kw)
    m2 = compute_metrics(preds, EMPTY_TIMINGS, seed=1, **kw)
    m3 = compute_metrics(preds, EMPTY_TIMINGS, seed=2, **kw)
    d = lambda m: m["diff_to_baseline"]["b"]["auc"]  # noqa: E731
    assert d(m1) == d(m2)
    assert (d(m1)["low"], d(m1)["high"]) != (d(m3)["low"], d(m3)["high"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60
    ),
    st.lists(st.integers(0, 3), min_size=5, max_size=5),
)
def test_weighted_auc_from_block_matrix_equals_sklearn_with_sample_weights(rows, wblocks):
    """The bootstrap AUC (w·M·w / (w·pos)(w·neg)) is the AUC of the resampled events."""
    block = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    p = np.array([r[2] for r in rows], dtype=float) / 6  # ties on purpose
    w = np.array(wblocks, dtype=float)
    ev_w = w[block]
    stats = binary_block_stats(y, p, (p >= 0.5).astype(float), block, 5)
    got = metrics_from_stats(stats, w[None, :], "binary")["auc"][0]
    keep = ev_w > 0
    if len(set(y[keep])) < 2:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(roc_auc_score(y[keep], p[keep], sample_weight=ev_w[keep]))


def test_auc_with_one_class_is_null_with_a_reason_not_a_crash():
    y = np.zeros(100)
    preds = make_preds({"a": np.linspace(0, 1, 100), "b": np.linspace(1, 0, 100)}, y)
    m = compute_metrics(preds, EMPTY_TIMINGS, task="binary", strategies=["a", "b"], baseline="a")
    assert m["quality"]["a"]["auc"] is None
    assert "positive" in m["quality"]["a"]["reasons"]["auc"]
    assert m["diff_to_baseline"]["b"]["auc"]["estimate"] is None
    assert m["diff_to_baseline"]["b"]["auc"]["reason"]
    json.dumps(m, allow_nan=False)  # JSON-able, no NaN


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=10_000_000, max_value=10 * 365 * 86_400_000_000))
def test_auto_bucket_gives_about_20_to_48_buckets(span_us):
    width = choose_bucket(span_us)
    count = span_us // width + 1
    assert count <= 48
    assert count >= 19 or width == choose_bucket(0)


def test_quality_over_time_uses_the_bucket_grid():
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=480) < 0.5).astype(float)
    preds = make_preds({"a": rng.uniform(size=480)}, y, hours=24)
    m = compute_metrics(
        preds, EMPTY_TIMINGS, task="binary", strategies=["a"], baseline="a", bucket="6h"
    )
    qot = m["quality_over_time"]
    assert qot["start"] == [f"2024-01-01T{h:02d}:00:00" for h in (0, 6, 12, 18)]
    assert qot["n"] == [120, 120, 120, 120]
    first = preds.head(120)
    assert qot["strategies"]["a"]["accuracy"][0] == pytest.approx(
        accuracy_score(first["y"], first["pred"])
    )
    last = preds.slice(360, 120)  # AUC per bucket comes from the diagonal of the block matrix
    assert qot["strategies"]["a"]["auc"][3] == pytest.approx(
        roc_auc_score(last["y"], last["score"])
    )
    assert m["bootstrap"]["blocks"] == 4


def test_freshness_and_staleness_buckets():
    n = 100
    y = np.tile([0.0, 1.0], n // 2)
    preds = make_preds({"a": np.full(n, 0.5)}, y).with_columns(
        staleness_us=pl.Series(np.where(np.arange(n) < 50, 0, 7_200_000_000), dtype=pl.Int64),
        feature_age_us=pl.Series([None] * 10 + list(range(90)), dtype=pl.Int64),
        cold_start=pl.Series([True] * 10 + [False] * 90),
    )
    m = compute_metrics(preds, EMPTY_TIMINGS, task="binary", strategies=["a"], baseline="a")
    f = m["freshness"]["a"]
    assert f["staleness_s"]["max"] == 7200.0 and f["staleness_s"]["mean"] == 3600.0
    assert f["feature_age_s"]["count"] == 90 and f["cold_start"] == 10
    assert [(b["label"], b["n"]) for b in m["quality_by_staleness"]["a"]] == [
        ("0", 50),
        ("1h–6h", 50),
    ]


def test_compute_summary_percentiles_and_single_row_calls():
    timings = pl.DataFrame(
        {
            "strategy": ["s"] * 102,
            "kind": ["predict"] * 100 + ["retrain", "predict"],
            "wall_ns": [i * 1_000_000 for i in range(1, 101)] + [5_000_000_000, 40_000_000],
            "cpu_ns": [500_000] * 102,
            "rows": [1] * 100 + [1000, 500],
        }
    )
    y = np.tile([0.0, 1.0], 50)
    m = compute_metrics(
        make_preds({"s": np.full(100, 0.3)}, y),
        timings,
        task="binary",
        strategies=["s"],
        baseline="s",
    )
    c = m["compute"]["s"]
    single = c["predict_single_row"]
    assert single["count"] == 100
    assert single["wall_ms"]["max"] == 100.0
    assert single["wall_ms"]["p50"] == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert c["kinds"]["predict"]["count"] == 101 and c["kinds"]["predict"]["rows"] == 600
    assert c["kinds"]["retrain"]["wall_total_s"] == 5.0
    assert c["busy_s"] == pytest.approx(5.0 + 5.05 + 0.04)
    assert c["events_per_s"] == pytest.approx(100 / c["busy_s"])


def test_bad_inputs_raise_rtml_errors():
    y = np.array([0.0, 1.0])
    preds = make_preds({"a": np.array([0.2, 0.8])}, y)
    with pytest.raises(UsageError, match="baseline strategy 'zz'"):
        compute_metrics(preds, EMPTY_TIMINGS, task="binary", strategies=["a"], baseline="zz")
    with pytest.raises(UsageError, match="task"):
        compute_metrics(preds, EMPTY_TIMINGS, task="ordinal", strategies=["a"], baseline="a")
    with pytest.raises(MetricError, match="'proba' column"):
        compute_metrics(preds, EMPTY_TIMINGS, task="multiclass", strategies=["a"], baseline="a")
    with pytest.raises(MetricError, match="label"):
        compute_metrics(preds.with_columns(y=pl.lit(None, pl.Float64)), EMPTY_TIMINGS,
                        task="binary", strategies=["a"], baseline="a")  # fmt: skip
    with pytest.raises(MetricError, match="lack column"):
        compute_metrics(
            preds.drop("score"), EMPTY_TIMINGS, task="binary", strategies=["a"], baseline="a"
        )


def test_a_bucket_too_narrow_for_the_span_is_bad_usage_with_a_suggestion():
    y = np.tile([0.0, 1.0], 50)
    preds = make_preds({"a": np.full(100, 0.4)}, y, hours=48)
    with pytest.raises(UsageError, match=r"into 2852 buckets.*e\.g\. '1h'"):
        compute_metrics(
            preds, EMPTY_TIMINGS, task="binary", strategies=["a"], baseline="a", bucket="1m"
        )


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=2, max_value=200),
    st.integers(min_value=0, max_value=2**16),
    st.sampled_from(["binary", "regression"]),
)
def test_any_run_gives_json_without_nan_and_paired_estimates_equal_quality_gaps(n, seed, task):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.5).astype(float) if task == "binary" else rng.normal(size=n)
    scores = {s: rng.uniform(size=n) for s in ("a", "b", "c")}
    preds = make_preds(
        scores, y, hours=float(rng.integers(1, 500)), regression=task == "regression"
    )
    m = compute_metrics(
        preds, EMPTY_TIMINGS, task=task, strategies=["a", "b", "c"], baseline="a", resamples=50
    )
    json.dumps(m, allow_nan=False)
    for s in ("b", "c"):
        for metric in m["metric_names"]:
            d = m["diff_to_baseline"][s][metric]
            qa, qs = m["quality"]["a"][metric], m["quality"][s][metric]
            if qa is None or qs is None:
                assert d["estimate"] is None and d["reason"]
            else:
                assert d["estimate"] == pytest.approx(qs - qa, abs=1e-9)
                if d["low"] is not None:
                    assert d["low"] <= d["high"]


def test_p99_interval_covers_the_true_p99_and_is_reported_per_call_kind():
    from rtml_cli.metrics import quantile_interval

    rng = np.random.default_rng(7)
    true_p99 = float(np.exp(2.326348 * 1.0))  # lognormal(0, 1)
    hits = 0
    for _ in range(400):
        lo, hi = quantile_interval(rng.lognormal(size=500))
        assert lo is not None and hi is not None and lo <= hi
        hits += lo <= true_p99 <= hi
    assert hits / 400 >= 0.92  # a 95 % interval (exact order statistics: at least 95 %)
    assert quantile_interval(np.arange(100.0))[1] is None  # too few calls for an upper bound
    assert quantile_interval(np.array([])) == (None, None)
