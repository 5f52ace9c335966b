"""The worked example of docs/semantics.md, event by event, and the "strictly before" rule as a property."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin

from rtml_cli.compare import predictions_frame, prepare, resolve_config
from rtml_cli.strategies import simulate

H = 3_600_000_000
DAY0 = dt.datetime(2024, 1, 1)


class Recorder(ClassifierMixin, BaseEstimator):
    """Logs every fit / partial_fit / predict_proba call with the rows it saw."""

    CALLS: list[tuple] = []

    def fit(self, X, y):
        Recorder.CALLS.append(("fit", np.array(X, dtype=float), np.array(y, dtype=float)))
        self.fit_no_ = len([c for c in Recorder.CALLS if c[0] == "fit"]) - 1
        self.classes_ = np.array([0.0, 1.0])
        self.updates_: list[tuple] = []
        return self

    def partial_fit(self, X, y, classes=None):
        Recorder.CALLS.append(("partial_fit", np.array(X, dtype=float), np.array(y, dtype=float)))
        self.updates_.append((np.array(X, dtype=float), np.array(y, dtype=float)))
        return self

    def predict_proba(self, X):
        X = np.array(X, dtype=float)
        Recorder.CALLS.append(("predict", self.fit_no_, len(self.updates_), X))
        p = np.full(len(X), 0.25)
        return np.column_stack([1 - p, p])


def _example(tmp_path: Path) -> Path:
    rows = [
        (DAY0 + dt.timedelta(hours=2), 1.0, False),
        (DAY0 + dt.timedelta(hours=14), 2.0, True),
        (DAY0 + dt.timedelta(days=1, minutes=30), 3.0, True),
        (DAY0 + dt.timedelta(days=1, hours=6), 4.0, False),
        (DAY0 + dt.timedelta(days=1, hours=23, minutes=30), 5.0, True),
        (DAY0 + dt.timedelta(days=2, hours=9), 6.0, False),
    ]
    df = pl.DataFrame(rows, schema=["ts", "x", "y"], orient="row")
    path = tmp_path / "example.parquet"
    df.write_parquet(path)
    return path


def _run(path: Path, strategy: str, *, vectorize: bool = True):
    Recorder.CALLS.clear()
    cfg = resolve_config(path, label_delay="1h", warmup="1d", strategies=strategy)
    prep = prepare(path, cfg, instance=Recorder())
    spec = cfg.strategies[0]
    res = simulate(spec, prep.data, prep.view_for(spec), prep.builder, vectorize=vectorize)
    return prep, res, list(Recorder.CALLS)


def _predicted(calls) -> list[tuple[int, int, list[float]]]:
    """(fit number, updates applied, x) per predicted row, in order."""
    out = []
    for c in calls:
        if c[0] == "predict":
            for row in c[3]:
                out.append((c[1], c[2], [float(v) for v in row]))
    return out


def _fits(calls):
    return [
        (c[0], [float(v) for v in c[1][:, 0]], [float(v) for v in c[2]])
        for c in calls
        if c[0] != "predict"
    ]


def _nan(v):
    return [("nan" if np.isnan(x) else x) for x in v]


@pytest.mark.parametrize("vectorize", [True, False])
def test_worked_example_batch(tmp_path, vectorize):
    prep, res, calls = _run(_example(tmp_path), "batch:1d", vectorize=vectorize)
    assert (
        prep.data.W
        == int((DAY0 + dt.timedelta(days=1, hours=2) - dt.datetime(1970, 1, 1)).total_seconds())
        * 1_000_000
    )
    fits = _fits(calls)
    # B0 at W on (∅,0),(∅,1),(2,1); B1 at day2 00:00 on (∅,0),(∅,1),(2,1),(2,0)
    assert [(k, _nan(x), y) for k, x, y in fits] == [
        ("fit", ["nan", "nan", 2.0], [0.0, 1.0, 1.0]),
        ("fit", ["nan", "nan", 2.0, 2.0], [0.0, 1.0, 1.0, 0.0]),
    ]
    assert _predicted(calls) == [(0, 0, [2.0]), (0, 0, [2.0]), (1, 0, [5.0])]
    pred = predictions_frame(prep, [res])
    e3 = pred.row(0, named=True)
    assert (e3["staleness_us"], e3["feature_age_us"], e3["model_age_us"]) == (6 * H, 16 * H, 4 * H)
    assert pred["model_version"].to_list() == [0, 0, 1]
    assert pred["cold_start"].to_list() == [False, False, False]
    assert pred["event_id"].to_list() == [3, 4, 5]
    # e5: snapshot day2 00:00 holds e4 (day1 23:30): staleness 9h, feature age 9.5h, model age 9h
    e5 = pred.row(2, named=True)
    assert (e5["staleness_us"], e5["feature_age_us"], e5["model_age_us"]) == (
        9 * H,
        9 * H + H // 2,
        9 * H,
    )


@pytest.mark.parametrize("vectorize", [True, False])
def test_worked_example_stream(tmp_path, vectorize):
    prep, res, calls = _run(_example(tmp_path), "stream:1d", vectorize=vectorize)
    assert _fits(calls) == [
        ("fit", [1.0, 2.0, 3.0], [0.0, 1.0, 1.0]),
        ("fit", [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.0, 0.0]),  # e4's label comes at 00:30
    ]
    assert _predicted(calls) == [(0, 0, [4.0]), (0, 0, [5.0]), (1, 0, [6.0])]
    pred = predictions_frame(prep, [res])
    assert pred["staleness_us"].to_list() == [0, 0, 0]
    assert pred["feature_age_us"].to_list() == [0, 0, 0]
    assert pred["model_age_us"].to_list() == [4 * H, 21 * H + H // 2, 9 * H]


@pytest.mark.parametrize("vectorize", [True, False])
def test_worked_example_online(tmp_path, vectorize):
    prep, res, calls = _run(_example(tmp_path), "online:1", vectorize=vectorize)
    assert _fits(calls) == [
        ("fit", [1.0, 2.0, 3.0], [0.0, 1.0, 1.0]),
        ("partial_fit", [4.0], [0.0]),  # at 07:00
        ("partial_fit", [5.0], [1.0]),  # at day2 00:30
        ("partial_fit", [6.0], [0.0]),  # at day2 10:00, after e5 was predicted
    ]
    assert _predicted(calls) == [(0, 0, [4.0]), (0, 1, [5.0]), (0, 2, [6.0])]
    pred = predictions_frame(prep, [res])
    assert pred["model_version"].to_list() == [0, 1, 2]
    # model ages: e3 4h since W; e4 16h30 since 07:00; e5 8h30 since 00:30
    assert pred["model_age_us"].to_list() == [4 * H, 16 * H + H // 2, 8 * H + H // 2]


def test_worked_example_static(tmp_path):
    prep, res, calls = _run(_example(tmp_path), "static")
    assert _fits(calls) == [("fit", [1.0, 2.0, 3.0], [0.0, 1.0, 1.0])]
    assert _predicted(calls) == [(0, 0, [4.0]), (0, 0, [5.0]), (0, 0, [6.0])]


# ---------------------------------------------------------------------------- property
@st.composite
def tables(draw):
    n = draw(st.integers(8, 40))
    gaps = draw(st.lists(st.integers(0, 7 * H), min_size=n, max_size=n))
    gaps[1:5] = [max(g, 1) for g in gaps[1:5]]  # the warm-up (30 %) always spans rows 0 and 1
    t = np.cumsum(gaps) + 1_700_000_000_000_000
    delays = draw(st.lists(st.integers(0, 30 * H), min_size=n, max_size=n))
    ys = draw(st.lists(st.sampled_from([0.0, 1.0, None]), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    # the first rows hold both classes so the warm-up can always fit
    ys[0], ys[1] = 0.0, 1.0
    delays[0] = delays[1] = 0
    return pl.DataFrame(
        {
            "ts": pl.Series(t).cast(pl.Datetime("us")),
            "k": keys,
            "rid": np.arange(n, dtype=float),
            "y": pl.Series(ys, dtype=pl.Float64).cast(pl.Boolean),
            "lt": pl.Series(t + np.array(delays)).cast(pl.Datetime("us")),
        }
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    df=tables(),
    strategy=st.sampled_from(
        ["batch:6h", "stream:6h", "online:1", "online:3", "static", "batch:1d:12h"]
    ),
)
def test_no_model_ever_sees_the_future(tmp_path_factory, df, strategy):
    """Every fit/update saw only rows with t < fit time and labels with l < fit time; every
    predicted event's model only saw labels that arrived strictly before the event."""
    path = tmp_path_factory.mktemp("prop") / "t.parquet"
    df.write_parquet(path)
    from rtml_cli.io import Roles

    Recorder.CALLS.clear()
    cfg = resolve_config(
        path,
        roles=Roles(
            time="ts",
            label="y",
            key="k",
            label_time="lt",
            features=["rid"],
            request_features=["rid"],
        ),
        warmup="0.3",
        strategies=strategy,
    )
    prep = prepare(path, cfg, instance=Recorder())
    spec = cfg.strategies[0]
    res = simulate(spec, prep.data, prep.view_for(spec), prep.builder)
    t, l = prep.data.t, prep.data.l  # noqa: E741 (l_i as in docs/semantics.md)
    calls = list(Recorder.CALLS)
    trained = [c for c in calls if c[0] != "predict"]
    assert len(trained) == len(res.fits)
    for (kind, X, _y), (_k, at, _rows) in zip(trained, res.fits, strict=True):
        rids = X[:, 0].astype(int)
        if kind == "fit":  # a job at c sees labels that arrived strictly before c
            assert (l[rids] < at).all(), (kind, rids, at)
            assert (t[rids] < at).all()
        else:  # an update happens when its last label arrives
            assert (l[rids] <= at).all(), (kind, rids, at)
            assert (l[rids] == at).any()
    # replay the call log to know, at each predict, which rows the model had seen
    fit_rows: list[set[int]] = []
    updates: list[int] = []
    for c in calls:
        if c[0] == "fit":
            fit_rows.append(set(c[1][:, 0].astype(int)))
        elif c[0] == "partial_fit":
            updates.extend(c[1][:, 0].astype(int))
        else:
            known = fit_rows[c[1]] | set(updates[: _count_rows(calls, c)])
            for rid in c[3][:, 0].astype(int):
                assert all(l[j] < t[rid] for j in known), (rid, known)


def _count_rows(calls, pcall) -> int:
    """Rows of the partial_fit calls that preceded ``pcall``'s model state (its update count)."""
    n_updates = pcall[2]
    rows = 0
    k = 0
    for c in calls:
        if c[0] == "partial_fit":
            if k == n_updates:
                break
            rows += len(c[1])
            k += 1
    return rows
