"""Engine behaviour: vectorized == per-event parity, cold start, one-class windows, windows, jobs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rtml_cli.compare import predictions_frame, prepare, resolve_config, run_strategies
from rtml_cli.errors import ModelError
from rtml_cli.io import Roles
from rtml_cli.strategies import simulate, uniform_sample
from rtml_cli.zero_config import LeakWarning

H = 3_600_000_000


def small_table(
    tmp_path: Path, n: int = 400, seed: int = 1, *, one_class_day: int | None = None
) -> Path:
    """Events every ~25 min over ~7 days, 5 users, a string and a null-bearing column."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2024, 3, 1)
    ts = [t0 + dt.timedelta(minutes=25 * i + int(rng.integers(0, 5))) for i in range(n)]
    x1 = rng.normal(size=n)
    dev = rng.choice(["ios", "android", "web"], size=n)
    x2 = np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))
    logit = 1.5 * x1 + (dev == "ios") - 0.3
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    if one_class_day is not None:
        day = np.array([(t - t0).days for t in ts])
        y[day == one_class_day] = False
    df = pl.DataFrame(
        {
            "ts": ts,
            "user": rng.integers(0, 5, size=n),
            "x1": x1,
            "device": dev,
            "x2": pl.Series(x2).fill_nan(None),
            "label": y,
        }
    )
    path = tmp_path / "small.parquet"
    df.write_parquet(path)
    return path


def _sim(path, strategies, *, model="sgd", vectorize=True, sample=None, **kw):
    cfg = resolve_config(
        path,
        roles=Roles(key="user"),
        label_delay="30m",
        warmup="1d",
        strategies=strategies,
        model=model,
        **kw,
    )
    prep = prepare(path, cfg)
    out = []
    for spec in cfg.strategies:
        out.append(
            simulate(
                spec,
                prep.data,
                prep.view_for(spec),
                prep.builder,
                vectorize=vectorize,
                sample=sample,
            )
        )
    return prep, out


@pytest.mark.parametrize(
    "strategy,model",
    [
        ("batch:1d", "sgd"),
        ("stream:12h", "logreg"),
        ("online:1", "sgd"),
        ("online:7", "nb"),
        pytest.param("static", "hgb", marks=pytest.mark.slow),
        pytest.param("batch:6h", "rf", marks=pytest.mark.slow),
    ],
)
def test_vectorized_equals_per_event(tmp_path, strategy, model):
    # tree ensembles cost ~40 ms per single-row call: fewer events prove the same
    path = small_table(tmp_path, n=160 if model in ("hgb", "rf") else 400)
    _, (vec,) = _sim(path, strategy, model=model)
    _, (one,) = _sim(path, strategy, model=model, vectorize=False)
    assert np.isfinite(vec.score).all()
    # one call per span vs one call per event: the same numbers (BLAS may reorder a sum: 1e-12)
    np.testing.assert_allclose(vec.score, one.score, rtol=1e-12, atol=1e-15)
    assert np.array_equal(vec.pred, one.pred)
    assert np.array_equal(vec.model_version, one.model_version)


def test_batch_view_is_point_in_time_by_key(tmp_path):
    path = small_table(tmp_path)
    prep, (res,) = _sim(path, "batch:1d")
    frame = prep.table.frame
    t = prep.data.t
    users = frame["user"].to_numpy()
    x1 = frame["x1"].to_numpy()
    X = prep.view_for(prep.config.strategies[0]).X
    col = prep.features.index("x1")
    day = 86_400_000_000
    for i in range(0, len(t), 17):
        cut = t[i] // day * day
        earlier = np.flatnonzero((users == users[i]) & (t < cut))
        if len(earlier) == 0:
            assert np.isnan(X[i, col])
        else:
            assert X[i, col] == x1[earlier[-1]]
    # request features are not declared here, so the string column is snapshotted too
    pred = predictions_frame(prep, [res])
    assert (pred["staleness_us"] >= 0).all() and (pred["staleness_us"] < day).all()
    assert (
        pred.filter(pl.col("cold_start"))["feature_age_us"].null_count() == pred["cold_start"].sum()
    )


def test_one_class_retrain_window_is_skipped_with_a_warning(tmp_path):
    path = small_table(tmp_path, one_class_day=3)
    _, (res,) = _sim(path, "batch:1d:1d")
    assert any(
        "retrain at 2024-03-05T00:00:00 skipped" in w and "one class only" in w
        for w in res.warnings
    ), res.warnings
    # the previous model kept serving: the version does not move across the skipped cutoff
    fits = [f for f in res.fits if f[0] == "retrain"]
    assert res.model_version.max() == len(fits) - 1
    assert not any(at == 1_709_596_800_000_000 for _k, at, _n in fits)  # 2024-03-05 00:00


def test_warmup_with_one_class_is_a_model_error(tmp_path):
    path = small_table(tmp_path, one_class_day=0)
    with pytest.raises(ModelError, match="warm-up training window .* one class only"):
        _sim(path, "static")


def test_online_without_partial_fit_names_alternatives(tmp_path):
    path = small_table(tmp_path)
    with pytest.raises(ModelError, match="LogisticRegression has no partial_fit.*SGDClassifier"):
        _sim(path, "online:1", model="logreg")


def test_parallel_jobs_give_the_same_predictions(tmp_path):
    path = small_table(tmp_path)
    cfg = resolve_config(
        path, roles=Roles(key="user"), warmup="1d", strategies="batch:1d,online:4", model="sgd"
    )
    prep = prepare(path, cfg)
    one = run_strategies(prep, jobs=1, timing_sample=50)
    two = run_strategies(prep, jobs=2, timing_sample=50)
    for a, b in zip(one, two, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.score, b.score)
        # a batch deployment serves its scoring job's scores: no per-request call to time
        assert sum(k == "predict" for k in b.calls["kind"]) == (0 if b.kind == "batch" else 50)


def _single_row_times(r) -> np.ndarray:
    kinds = np.array(r.calls["kind"])
    return np.asarray(r.calls["t"])[(kinds == "predict") & (np.asarray(r.calls["rows"]) == 1)]


def test_a_timing_budget_thins_the_sample_uniformly_and_changes_no_score(tmp_path):
    from rtml_cli.strategies import MIN_TIMED_CALLS

    path = small_table(tmp_path, n=1300)
    cfg = resolve_config(
        path, roles=Roles(key="user"), warmup="1d", strategies="stream:1d,online:4", model="sgd"
    )
    prep = prepare(path, cfg)
    m = len(prep.data.t) - prep.data.s0
    assert m > 2 * MIN_TIMED_CALLS
    # a budget nobody reaches keeps the whole sample: the untouched run
    tight = run_strategies(prep, timing_sample=m, timing_budget_s=1e-9)
    loose = run_strategies(prep, timing_sample=m, timing_budget_s=1e6)
    for t, lo in zip(tight, loose, strict=True):
        np.testing.assert_array_equal(lo.score, t.score)
        assert len(_single_row_times(lo)) == m
        times = _single_row_times(t)
        assert len(times) == MIN_TIMED_CALLS
        # still spread over the whole scored span, not the first events only
        scored = prep.data.t[prep.data.s0 :]
        assert times.min() - scored.min() < 0.1 * (scored.max() - scored.min())
        assert scored.max() - times.max() < 0.1 * (scored.max() - scored.min())


def test_timing_sample_is_uniform_and_sized():
    m = uniform_sample(1000, 100, seed=3)
    assert m.sum() == 100
    assert uniform_sample(10, None, seed=3).all()
    assert not uniform_sample(10, 0, seed=3).any()


def test_regression_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    ts = [dt.datetime(2024, 3, 1) + dt.timedelta(minutes=30 * i) for i in range(n)]
    x = rng.normal(size=n)
    df = pl.DataFrame(
        {
            "ts": ts,
            "x": x,
            "cat": rng.choice(["a", "b"], size=n),
            "target": 3 * x + rng.normal(size=n) * 0.1,
        }
    )
    path = tmp_path / "reg.parquet"
    df.write_parquet(path)
    cfg = resolve_config(path, warmup="1d", strategies="stream:1d,online:1,static", model="sgd")
    # target = 3x + noise: x alone predicts it, which rtml flags as a probable leak
    with pytest.warns(LeakWarning, match="'x' alone predicts the label 'target'"):
        prep = prepare(path, cfg)
    assert prep.label.task == "regression"
    res = run_strategies(prep, timing_sample=10)
    for r in res:
        assert np.array_equal(r.pred, r.score)
        y = prep.data.y[prep.data.s0 :]
        assert np.sqrt(np.mean((r.score - y) ** 2)) < 1.0  # learns y ≈ 3x
    pred = predictions_frame(prep, res)
    assert pred["y"].null_count() == 0 and pred.height == 3 * (n - prep.data.s0)


def test_request_features_are_the_events_own_in_the_batch_view(tmp_path):
    path = small_table(tmp_path)
    cfg = resolve_config(
        path, roles=Roles(key="user", request_features=["x1"]), warmup="1d", strategies="batch:1d"
    )
    prep = prepare(path, cfg)
    X = prep.view_for(cfg.strategies[0]).X
    np.testing.assert_array_equal(
        X[:, prep.features.index("x1")], prep.table.frame["x1"].to_numpy()
    )
    # x2 is still snapshotted: it differs from the event's own value somewhere
    own = prep.table.frame["x2"].fill_null(np.nan).to_numpy()
    col = X[:, prep.features.index("x2")]
    assert not np.allclose(col, own, equal_nan=True)
