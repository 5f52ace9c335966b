"""Edges of the contract for ``rtml compare`` (docs/semantics.md), on tiny hand-checked tables.

Each test pins one edge of the contract (ties at a cutoff, labels arriving exactly at an event,
fraction warm-up, windows, nulls, ...). The reading chosen for anything docs/semantics.md leaves open is
written in docs/ARCHITECTURE.md, "Semantics notes".
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from rtml_cli.compare import predictions_frame, prepare, resolve_config, run_compare
from rtml_cli.io import Roles
from rtml_cli.strategies import simulate

H = 3_600_000_000
DAY0 = dt.datetime(2024, 1, 1)
_N = itertools.count()


def at(hours: float) -> dt.datetime:
    """DAY0 + ``hours``."""
    return DAY0 + dt.timedelta(hours=hours)


def us(hours: float) -> int:
    """µs since the epoch of DAY0 + ``hours``."""
    return int((at(hours) - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1))


class Rec(ClassifierMixin, BaseEstimator):
    """Logs fit / partial_fit / predict calls with the rows it saw; predicts a constant."""

    CALLS: list[tuple] = []

    def fit(self, X, y):
        Rec.CALLS.append(("fit", np.array(X, dtype=float), np.array(y, dtype=float)))
        self.fit_no_ = sum(1 for c in Rec.CALLS if c[0] == "fit") - 1
        self.classes_ = np.array([0.0, 1.0])
        self.n_updates_ = 0
        return self

    def partial_fit(self, X, y, classes=None):
        Rec.CALLS.append(("partial_fit", np.array(X, dtype=float), np.array(y, dtype=float)))
        self.n_updates_ += 1
        return self

    def predict_proba(self, X):
        X = np.array(X, dtype=float)
        Rec.CALLS.append(("predict", self.fit_no_, self.n_updates_, X))
        p = np.full(len(X), 0.25)
        return np.column_stack([1 - p, p])


class RecReg(RegressorMixin, BaseEstimator):
    """Regression twin of :class:`Rec`: predicts the mean of the labels it was fitted on."""

    def fit(self, X, y):
        Rec.CALLS.append(("fit", np.array(X, dtype=float), np.array(y, dtype=float)))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def _write(tmp_path: Path, df: pl.DataFrame) -> Path:
    path = tmp_path / f"t{next(_N)}.parquet"
    df.write_parquet(path)
    return path


def sim(
    tmp_path: Path,
    df: pl.DataFrame,
    strategy: str,
    *,
    roles: dict[str, Any] | None = None,
    instance: Any = None,
    vectorize: bool = True,
    **kw: Any,
):
    """Run one strategy on ``df``: (prepared, result, model calls, predictions frame)."""
    path = _write(tmp_path, df)
    Rec.CALLS.clear()
    r = {"time": "ts", "label": "y", **(roles or {})}
    cfg = resolve_config(path, roles=Roles(**r), strategies=strategy, **kw)
    prep = prepare(path, cfg, instance=Rec() if instance is None else instance)
    spec = cfg.strategies[0]
    res = simulate(spec, prep.data, prep.view_for(spec), prep.builder, vectorize=vectorize)
    return prep, res, list(Rec.CALLS), predictions_frame(prep, [res])


def fits(calls) -> list[tuple[str, list, list]]:
    """(kind, first feature column with NaN as 'nan', labels) per fit/partial_fit."""
    return [
        (c[0], ["nan" if np.isnan(v) else float(v) for v in c[1][:, 0]], [float(v) for v in c[2]])
        for c in calls
        if c[0] != "predict"
    ]


def predicted(calls) -> list[tuple[int, int, list]]:
    """(fit number, updates applied, feature row with NaN as 'nan') per predicted row."""
    out = []
    for c in calls:
        if c[0] == "predict":
            for row in c[3]:
                out.append((c[1], c[2], ["nan" if np.isnan(v) else float(v) for v in row]))
    return out


# ------------------------------------------------------------------ ties at a cutoff and at W
def _on_grid() -> pl.DataFrame:
    """One entity; W = day1 00:00 lies on the 1d grid; e2 is exactly at W (and its label too)."""
    return pl.DataFrame(
        {
            "ts": [at(0), at(12), at(24), at(36), at(48)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [False, True, False, True, False],
        }
    )


@pytest.mark.parametrize("vectorize", [True, False])
def test_batch_event_exactly_at_the_cutoff(tmp_path, vectorize):
    """The snapshot at c excludes the event at c; that event is served by the model of c."""
    prep, res, calls, pred = sim(tmp_path, _on_grid(), "batch:1d", warmup="1d", vectorize=vectorize)
    assert prep.data.W == us(24)
    # one fit at W (= a grid point, not twice), then day2; e0's own cutoff is day0 00:00 = its
    # own time, so its snapshot is empty (strictly before)
    assert fits(calls) == [
        ("fit", ["nan", "nan"], [0.0, 1.0]),
        ("fit", ["nan", "nan", 2.0, 2.0], [0.0, 1.0, 0.0, 1.0]),
    ]
    assert predicted(calls) == [(0, 0, [2.0]), (0, 0, [2.0]), (1, 0, [4.0])]
    assert pred["event_id"].to_list() == [2, 3, 4]
    assert pred["model_version"].to_list() == [0, 0, 1]
    assert pred["staleness_us"].to_list() == [0, 12 * H, 0]
    assert pred["feature_age_us"].to_list() == [12 * H, 24 * H, 12 * H]
    assert pred["model_age_us"].to_list() == [0, 12 * H, 0]
    assert pred["cold_start"].to_list() == [False, False, False]


def test_stream_retrain_at_an_event_time_excludes_that_events_label(tmp_path):
    prep, res, calls, pred = sim(tmp_path, _on_grid(), "stream:1d", warmup="1d")
    # e2's label arrives at W exactly: not in the warm-up fit; e4's label at day2: not in fit 2
    assert fits(calls) == [
        ("fit", [1.0, 2.0], [0.0, 1.0]),
        ("fit", [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]),
    ]
    assert predicted(calls) == [(0, 0, [3.0]), (0, 0, [4.0]), (1, 0, [5.0])]
    assert pred["model_age_us"].to_list() == [0, 12 * H, 0]
    assert pred["staleness_us"].to_list() == [0, 0, 0]
    assert pred["feature_age_us"].to_list() == [0, 0, 0]


@pytest.mark.parametrize("vectorize", [True, False])
def test_online_label_arriving_exactly_at_an_event_is_not_used_for_it(tmp_path, vectorize):
    prep, res, calls, pred = sim(tmp_path, _on_grid(), "online:1", warmup="1d", vectorize=vectorize)
    assert fits(calls) == [
        ("fit", [1.0, 2.0], [0.0, 1.0]),
        ("partial_fit", [3.0], [0.0]),  # at day1 00:00, after e2 was predicted
        ("partial_fit", [4.0], [1.0]),
        ("partial_fit", [5.0], [0.0]),
    ]
    assert predicted(calls) == [(0, 0, [3.0]), (0, 1, [4.0]), (0, 2, [5.0])]
    assert pred["model_version"].to_list() == [0, 1, 2]
    assert pred["model_time"].to_list() == [at(24), at(24), at(36)]
    assert pred["model_age_us"].to_list() == [0, 12 * H, 12 * H]


@pytest.mark.parametrize("vectorize", [True, False])
def test_online_events_and_labels_at_one_instant(tmp_path, vectorize):
    """Three events at one time, labels at that same time: all three see none of those labels."""
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(30), at(30), at(30), at(31)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, True, False, True, False],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "online:1", warmup="1d", vectorize=vectorize)
    assert predicted(calls) == [(0, 0, [3.0]), (0, 0, [4.0]), (0, 0, [5.0]), (0, 3, [6.0])]
    assert pred["model_version"].to_list() == [0, 0, 0, 3]
    assert pred["model_time"].to_list() == [at(24), at(24), at(24), at(30)]
    # arrival order of the tied labels is table order
    assert [f[1] for f in fits(calls)[1:]] == [[3.0], [4.0], [5.0], [6.0]]


def test_stream_retrain_sees_no_label_arriving_at_the_cutoff_itself(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(23), at(30), at(47), at(50)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, True, False, True, False],
            "lt": [at(0), at(1), at(48), at(30), at(47.5), at(50)],  # e2's label exactly at day2
        }
    )
    prep, res, calls, pred = sim(
        tmp_path, df, "stream:1d", warmup="0.5", roles={"label_time": "lt"}
    )
    assert prep.data.W == us(30)
    assert fits(calls) == [
        ("fit", [1.0, 2.0], [0.0, 1.0]),  # at W: e2's label has not arrived
        ("fit", [1.0, 2.0, 4.0, 5.0], [0.0, 1.0, 0.0, 1.0]),  # at day2: e2's label at day2 excluded
    ]


# ------------------------------------------------------------------ warm-up as a fraction
def test_fraction_warmup_is_exactly_that_share_of_events(tmp_path):
    """0.14 of 50 events is 7 warm-up events (not 8 from 0.14 * 50 = 7.000000000000001)."""
    n = 50
    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(n)],
            "x": [float(i) for i in range(n)],
            "y": [False, True] * (n // 2),
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "static", warmup="0.14")
    assert prep.data.W == us(7)
    assert pred["event_id"].to_list() == list(range(7, n))
    assert fits(calls) == [("fit", [float(i) for i in range(7)], [0.0, 1.0] * 3 + [0.0])]
    prep, *_, pred = sim(tmp_path, df, "static", warmup="0.3")
    assert pred["event_id"].to_list() == list(range(15, n))


def test_fraction_warmup_tie_at_the_boundary_is_scored(tmp_path):
    """W is the time of the first event after the fraction; events tied with it are scored
    (warm-up is t < W): the rule of docs/semantics.md, pinned (docs/ARCHITECTURE.md, Semantics notes)."""
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(2), at(2), at(3), at(4), at(5), at(6), at(7), at(8)],
            "x": [float(i) for i in range(10)],
            "y": [False, True] * 5,
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "static", warmup="0.3")
    assert prep.data.W == us(2)
    assert pred["event_id"].to_list() == list(range(2, 10))
    assert fits(calls) == [("fit", [0.0, 1.0], [0.0, 1.0])]


# ------------------------------------------------------------------ batch view
def test_batch_snapshot_by_key_with_request_features(tmp_path):
    """Latest values of the event's own entity strictly before the cutoff; request features and
    the key from the event itself; a training row's features as of its own cutoff."""
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(3), at(25), at(26), at(27), at(49), at(50)],
            "k": ["a", "b", "a", "b", "a", "c", "a", "b"],
            "x": [10.0, 20.0, 11.0, 21.0, 12.0, 30.0, 13.0, 22.0],
            "hour": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "y": [False, True, True, False, False, True, True, False],
        }
    )
    prep, res, calls, pred = sim(
        tmp_path,
        df,
        "batch:1d",
        warmup="1d",
        roles={"key": "k", "features": ["x", "hour"], "request_features": ["hour"]},
    )
    assert prep.data.W == us(25)
    # warm-up fit at W = day1 01:00: rows e0-e2 (cutoff day0: all cold); e3 (t=25) has t >= W
    assert fits(calls)[0] == ("fit", ["nan", "nan", "nan"], [0.0, 1.0, 1.0])
    rows = predicted(calls)
    # e3 (b, day1): b's latest before day1 = 20; e4 (a): 11; e5 (c): cold; e6 (a, day2): 12; e7: 21
    assert rows == [
        (0, 0, [20.0, 4.0]),
        (0, 0, [11.0, 5.0]),
        (0, 0, ["nan", 6.0]),
        (1, 0, [12.0, 7.0]),
        (1, 0, [21.0, 8.0]),
    ]
    # B1 at day2 trains e0-e5 as served: e3 -> 20, e4 -> 11, e5 -> cold
    assert fits(calls)[1] == (
        "fit",
        ["nan", "nan", "nan", 20.0, 11.0, "nan"],
        [0.0, 1.0, 1.0, 0.0, 0.0, 1.0],
    )
    assert pred["cold_start"].to_list() == [False, False, True, False, False]
    ages = pred["feature_age_us"].to_list()
    assert ages == [23 * H, 23 * H, None, 23 * H, 25 * H]


def test_batch_null_key_is_a_cold_start(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(3), at(26), at(27)],
            "k": ["a", None, "a", None, "a"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [False, True, False, True, True],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "batch:1d", warmup="1d", roles={"key": "k"})
    assert predicted(calls) == [(0, 0, ["nan"]), (0, 0, [3.0])]
    assert pred["cold_start"].to_list() == [True, False]


def test_batch_several_events_of_one_entity_at_one_instant_take_the_last(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(1), at(5), at(5), at(26)],
            "x": [1.0, 2.0, 3.0, 4.0],
            "y": [False, True, False, True],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "batch:1d", warmup="1d")
    assert predicted(calls) == [(0, 0, [3.0])]


# ------------------------------------------------------------------ retrain windows
def test_train_window_limits_rows_by_event_time(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(20), at(30), at(40), at(50)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, False, True, False, True],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "stream:1d:1d", warmup="1d")
    # W = day1 01:00: window [day0 01:00, W) -> e0..e2; day2: [day1 00:00, day2) -> e3, e4
    assert fits(calls) == [
        ("fit", [1.0, 2.0, 3.0], [0.0, 1.0, 0.0]),
        ("fit", [4.0, 5.0], [1.0, 0.0]),
    ]
    assert pred["model_version"].to_list() == [0, 0, 1]


def test_one_class_retrain_is_skipped_and_the_old_model_kept(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(30), at(40), at(50), at(60), at(75)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "y": [False, True, True, True, False, True, True],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "stream:1d:1d", warmup="1d")
    # day2's window [day1, day2) holds e2, e3: both positive -> skipped; day3's holds e4, e5
    assert len(res.warnings) == 1 and "one class" in res.warnings[0]
    assert "2024-01-03T00:00:00" in res.warnings[0]
    # the window bounds event time; the labels are those arrived before the cutoff
    assert (
        "labels arrived before 2024-01-03T00:00:00, events since 2024-01-02T00:00:00"
        in (res.warnings[0])
    )
    assert fits(calls) == [("fit", [1.0, 2.0], [0.0, 1.0]), ("fit", [5.0, 6.0], [0.0, 1.0])]
    assert pred["model_version"].to_list() == [0, 0, 0, 0, 1]
    assert pred["model_time"].to_list() == [at(25)] * 4 + [at(72)]
    assert pred["model_age_us"].to_list() == [5 * H, 15 * H, 25 * H, 35 * H, 3 * H]


# ------------------------------------------------------------------ online
@pytest.mark.parametrize("vectorize", [True, False])
def test_online_update_every_with_late_warmup_labels_and_a_partial_tail(tmp_path, vectorize):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(2), at(30), at(31), at(32), at(33)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "y": [False, True, True, False, True, False, True],
            # e2 is warm-up but its label arrives after W (day1 00:00)
            "lt": [at(0), at(1), at(31.5), at(30.5), at(31), at(34), at(35)],
        }
    )
    prep, res, calls, pred = sim(
        tmp_path, df, "online:2", warmup="1d", roles={"label_time": "lt"}, vectorize=vectorize
    )
    assert prep.data.W == us(24)
    # labels arriving >= W in arrival order: e3 (30.5), e4 (31), e2 (31.5), e5 (34), e6 (35)
    assert fits(calls) == [
        ("fit", [1.0, 2.0], [0.0, 1.0]),
        ("partial_fit", [4.0, 5.0], [0.0, 1.0]),  # at 31:00 (e4's label: event e4 is first)
        ("partial_fit", [3.0, 6.0], [1.0, 0.0]),  # at 34:00
    ]  # e6's label alone is a partial batch: never applied
    assert predicted(calls) == [(0, 0, [4.0]), (0, 0, [5.0]), (0, 1, [6.0]), (0, 1, [7.0])]
    assert pred["model_version"].to_list() == [0, 0, 1, 1]
    assert pred["model_time"].to_list() == [at(24), at(24), at(31), at(31)]
    assert res.fits[1:] == [("update", us(31), 2), ("update", us(34), 2)]


def test_null_labels_never_train_and_are_never_scored(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(2), at(30), at(31), at(49), at(50)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "y": [False, True, None, None, True, False, None],
        }
    )
    for strategy in ("online:1", "stream:1d"):
        prep, res, calls, pred = sim(tmp_path, df, strategy, warmup="1d")
        trained = [x for f in fits(calls) for x in f[1]]
        assert 3.0 not in trained and 4.0 not in trained and 7.0 not in trained
        assert pred["event_id"].to_list() == [3, 4, 5, 6]  # still predicted, same events
        assert pred["y"].to_list() == [None, 1.0, 0.0, None]
        assert pred["label_time"].null_count() == 2


# ------------------------------------------------------------------ windowed features
def test_batch_windowed_feature_is_as_of_the_cutoff_and_counts_in_feature_age(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(20), at(30), at(47), at(50)],
            "k": ["a", "b", "a", "a", "a", "b"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, False, True, False, True],
        }
    )
    path = _write(tmp_path, df)
    Rec.CALLS.clear()
    cfg = resolve_config(
        path,
        roles=Roles(time="ts", label="y", key="k", features=["x"]),
        strategies="batch:1d,stream:1d",
        warmup="1d",
        features=["k:x:sum:1d"],
    )
    prep = prepare(path, cfg, instance=Rec())
    b, s = cfg.strategies
    rb = simulate(b, prep.data, prep.view_for(b), prep.builder)
    rows = [r for r in predicted(Rec.CALLS)]
    # scored: e3 (a, day1 06:00), e4 (a, day1 23:00), e5 (b, day2 02:00)
    # batch: x as of the cutoff; sum of a's x in [cutoff - 1d, cutoff)
    assert rows == [(0, 0, [3.0, 4.0]), (0, 0, [3.0, 4.0]), (1, 0, [2.0, 0.0])]
    pred = predictions_frame(prep, [rb])
    # e3: snapshot row e2 (20:00) -> 10h; e5 (b): snapshot e1 (day0 02:00) -> 48h; the
    # aggregate over [day1, day2) of b is empty, so it adds nothing newer
    assert pred["feature_age_us"].to_list() == [10 * H, 27 * H, 48 * H]
    Rec.CALLS.clear()
    simulate(s, prep.data, prep.view_for(s), prep.builder)
    # stream: fresh x; the aggregate as of t_i excluding event i
    assert predicted(Rec.CALLS) == [(0, 0, [4.0, 3.0]), (0, 0, [5.0, 4.0]), (1, 0, [6.0, 0.0])]


# ------------------------------------------------------------------ regression, strings, order
def test_regression_task_trains_on_values(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(1), at(2), at(30), at(31), at(50)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [1.0, 2.0, 6.0, 10.0, 20.0, 0.0],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "stream:1d", warmup="1d", instance=RecReg())
    assert prep.label.task == "regression"
    assert pred["score"].to_list() == [3.0, 3.0, 39.0 / 5]
    assert pred["pred"].to_list() == pred["score"].to_list()
    assert pred["y"].to_list() == [10.0, 20.0, 0.0]


def test_unsorted_input_gives_the_same_predictions(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(12), at(24.5), at(30), at(47.5), at(57)],
            "k": ["a", "b", "a", "b", "a", "b"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, True, False, True, False],
        }
    )
    perm = [3, 0, 5, 1, 4, 2]
    for strategy in ("batch:1d", "online:1"):
        _, _, calls_a, pred_a = sim(tmp_path, df, strategy, warmup="1d", roles={"key": "k"})
        with pytest.warns(UserWarning, match="not sorted"):
            _, _, calls_b, pred_b = sim(
                tmp_path, df[perm], strategy, warmup="1d", roles={"key": "k"}
            )
        assert predicted(calls_a) == predicted(calls_b)
        assert pred_a.equals(pred_b)


def test_string_feature_and_cold_start_with_a_preset(tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    df = pl.DataFrame(
        {
            "ts": [at(i) for i in range(n)],
            "k": rng.choice(["a", "b", "c", "d"], n).tolist(),
            "colour": rng.choice(["red", "blue", None], n).tolist(),
            "x": rng.normal(size=n),
            "y": (rng.random(n) > 0.5).tolist(),
        }
    )
    path = _write(tmp_path, df)
    cfg = resolve_config(
        path,
        roles=Roles(time="ts", label="y", key="k"),
        strategies="batch:1d,stream:1d,online:1,static",
        warmup="1d",
        model="sgd",
    )
    prep = prepare(path, cfg)
    res = [simulate(s, prep.data, prep.view_for(s), prep.builder) for s in cfg.strategies]
    pred = predictions_frame(prep, res)
    assert pred["score"].is_null().sum() == 0 and pred["score"].is_nan().sum() == 0
    # every strategy scores exactly the same events
    ids = {s: pred.filter(pl.col("strategy") == s)["event_id"].to_list() for s in ["batch"]}
    for s in ("stream", "online", "static"):
        assert pred.filter(pl.col("strategy") == s)["event_id"].to_list() == ids["batch"]


def test_run_directory_has_the_same_scored_events_for_every_strategy(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(h * 3) for h in range(40)],
            "x": [float(i % 7) for i in range(40)],
            "y": [(i * 5) % 3 == 0 for i in range(40)],
        }
    )
    path = _write(tmp_path, df)
    res = run_compare(
        path,
        roles=Roles(time="ts", label="y"),
        warmup="1d",
        strategies="batch:1d,stream:12h,online:3,static",
        out=tmp_path / "run",
        timing_sample=5,
    )
    pred = pl.read_parquet(res.run_dir / "predictions.parquet")
    W = at(24)
    expected = [i for i in range(40) if at(i * 3) >= W]
    for s in ("batch", "stream", "online", "static"):
        assert pred.filter(pl.col("strategy") == s)["event_id"].to_list() == expected


@pytest.mark.parametrize("strategy", ["stream:1d:1d", "batch:1d:1d"])
def test_skipped_retrain_keeps_the_model_of_an_eventless_cutoff(tmp_path, strategy):
    """No event in day2, so its model served nothing; but day3's window is empty, so day3 keeps
    the previous model — which is day2's (fitted on e2, e3), not the warm-up one."""
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(30), at(40), at(80)],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [False, True, False, True, False],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, strategy, warmup="1d")
    assert len(res.warnings) == 1 and "2024-01-04T00:00:00" in res.warnings[0]
    assert pred["model_time"].to_list() == [at(25), at(25), at(48)]
    assert pred["model_version"].to_list() == [0, 0, 1]
    used = predicted(calls)
    assert [u[0] for u in used] == [0, 0, 1]
    if strategy.startswith("stream"):
        assert fits(calls)[-1] == ("fit", [3.0, 4.0], [0.0, 1.0])


def test_batch_cold_start_is_the_entitys_own_even_with_a_global_aggregate(tmp_path):
    """A global (empty-key) windowed feature has rows before the cutoff, but entity c had no
    event: c's event is a cold start; its feature age comes from the aggregate's newest row."""
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(20), at(30), at(31)],
            "k": ["a", "b", "a", "c", "a"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "y": [False, True, False, True, False],
        }
    )
    path = _write(tmp_path, df)
    Rec.CALLS.clear()
    cfg = resolve_config(
        path,
        roles=Roles(time="ts", label="y", key="k", features=["x"]),
        strategies="batch:1d",
        warmup="1d",
        features=[":*:count:1d:n_all"],
    )
    prep = prepare(path, cfg, instance=Rec())
    spec = cfg.strategies[0]
    res = simulate(spec, prep.data, prep.view_for(spec), prep.builder)
    assert predicted(Rec.CALLS) == [(0, 0, ["nan", 3.0]), (0, 0, [3.0, 3.0])]
    pred = predictions_frame(prep, [res])
    assert pred["cold_start"].to_list() == [True, False]
    assert pred["feature_age_us"].to_list() == [10 * H, 11 * H]


def test_batch_snapshot_takes_the_latest_row_even_where_it_is_null(tmp_path):
    """The snapshot is the entity's latest row before the cutoff (as a feature store serves a
    row), not the latest non-null value per column (docs/ARCHITECTURE.md, Semantics notes)."""
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(3), at(30)],
            "x": [1.0, 2.0, None, 4.0],
            "z": [5.0, 6.0, 7.0, 8.0],
            "y": [False, True, False, True],
        }
    )
    prep, res, calls, pred = sim(tmp_path, df, "batch:1d", warmup="1d")
    assert predicted(calls) == [(0, 0, ["nan", 7.0])]
    assert pred["feature_age_us"].to_list() == [27 * H]
    assert pred["cold_start"].to_list() == [False]


@pytest.mark.parametrize(
    ("features", "extra", "word"),
    [
        (["x", "y"], {}, "label"),
        (["x", "lt"], {"label_time": "lt"}, "label-time"),
        (["x", "z"], {"ignore": ["z"]}, "ignore"),
    ],
)
def test_explicit_features_cannot_include_the_label_or_ignored_columns(
    tmp_path, features, extra, word
):
    """A label is never used before it arrives: naming the label (or its arrival time, or an
    ignored leak column) as a feature is a usage error, not a silent leak."""
    from rtml_cli.errors import RtmlError

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(0, 60, 6)],
            "x": [float(i) for i in range(10)],
            "z": [float(i) for i in range(10)],
            "y": [False, True] * 5,
            "lt": [at(h + 1) for h in range(0, 60, 6)],
        }
    )
    with pytest.raises(RtmlError, match=word) as err:
        sim(tmp_path, df, "stream:1d", warmup="1d", roles={"features": features, **extra})
    assert err.value.exit_code == 2


def test_windowed_feature_over_a_leak_column_is_refused(tmp_path):
    from rtml_cli.errors import UsageError

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(0, 60, 6)],
            "x": [float(i) for i in range(10)],
            "z": [float(i) for i in range(10)],
            "y": [False, True] * 5,
        }
    )
    with pytest.raises(UsageError, match="'z'"):
        sim(
            tmp_path,
            df,
            "stream:1d",
            warmup="1d",
            roles={"ignore": ["z"]},
            features=[":z:mean:1d"],
        )


def test_metrics_skip_null_labels_and_count_cold_starts(tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    ys = (rng.random(n) > 0.5).tolist()
    ys[40] = ys[41] = ys[50] = None  # three scored events without a label
    df = pl.DataFrame(
        {
            "ts": [at(i) for i in range(n)],
            # entity e<i> appears once at i >= 30: every such batch event is a cold start
            "k": ["a" if i % 2 else "b" for i in range(30)] + [f"e{i}" for i in range(30, n)],
            "x": rng.normal(size=n),
            "y": ys,
        }
    )
    path = _write(tmp_path, df)
    res = run_compare(
        path,
        roles=Roles(time="ts", label="y", key="k"),
        warmup="1d",
        strategies="batch:1d,stream:1d",
        model="sgd",
        out=tmp_path / "run",
        timing_sample=0,
    )
    m = res.metrics
    scored = n - 24
    for s in ("batch", "stream"):
        assert m["quality"][s]["n"] == scored - 3
        assert m["freshness"][s]["events"] == scored
    assert m["freshness"]["batch"]["cold_start"] == n - 30
    assert m["freshness"]["stream"]["cold_start"] == 0


# ------------------------------------------------------------------ property: batch snapshots
def _expected_snapshot(t, keys, R, i):
    """rid of the entity's latest event strictly before event i's cutoff (None = cold)."""
    c = (t[i] // R) * R
    best = None
    for j in range(len(t)):
        if keys[j] == keys[i] and keys[j] is not None and t[j] < c:
            best = j  # time order, ties: the last in table order
    return best


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_batch_features_are_exactly_the_as_of_snapshot(tmp_path_factory, data):
    n = data.draw(st.integers(6, 30))
    gaps = data.draw(st.lists(st.integers(0, 9 * H), min_size=n, max_size=n))
    t = np.cumsum(gaps) + us(0)
    keys = data.draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    R = data.draw(st.sampled_from([6 * H, 24 * H, 5 * H]))
    ys = [bool(i % 2) for i in range(n)]
    df = pl.DataFrame(
        {
            "ts": pl.Series(t).cast(pl.Datetime("us")),
            "k": keys,
            "rid": np.arange(n, dtype=float),
            "y": ys,
        }
    )
    tmp = tmp_path_factory.mktemp("snap")
    strategy = f"batch:{R // H}h"
    try:
        prep, res, calls, pred = sim(
            tmp, df, strategy, warmup="0.3", roles={"key": "k", "features": ["rid"]}
        )
    except Exception as exc:  # a warm-up window with one class cannot fit: not this property
        from rtml_cli.errors import ModelError

        assume(not isinstance(exc, ModelError))
        raise
    ts = prep.data.t
    ks = prep.table.frame["k"].to_list()
    s0 = prep.data.s0
    want = []
    for i in range(s0, n):
        j = _expected_snapshot(ts, ks, R, i)
        want.append("nan" if j is None else float(j))
    assert [row[2][0] for row in predicted(calls)] == want
    ages = pred["feature_age_us"].to_list()
    for i, a in zip(range(s0, n), ages, strict=True):
        j = _expected_snapshot(ts, ks, R, i)
        assert a == (None if j is None else int(ts[i] - ts[j]))
    # every training row's feature is its own cutoff's snapshot
    fit_rows = [c for c in calls if c[0] == "fit"]
    for (_, X, _y), (_k, at_us, _r) in zip(fit_rows, res.fits, strict=True):
        rows = [i for i in range(n) if prep.data.l[i] < at_us]
        exp = [_expected_snapshot(ts, ks, R, i) for i in rows]
        assert ["nan" if np.isnan(v) else int(v) for v in X[:, 0]] == [
            "nan" if j is None else j for j in exp
        ]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_online_version_counts_whole_batches_of_labels_arrived_before_t(tmp_path_factory, data):
    """model_version_i = floor(#{labels with W <= l < t_i} / update_every)."""
    n = data.draw(st.integers(6, 30))
    gaps = data.draw(st.lists(st.integers(0, 5 * H), min_size=n, max_size=n))
    gaps[1:3] = [max(g, 1) for g in gaps[1:3]]  # rows 0, 1 (both classes) are always warm-up
    t = np.cumsum(gaps) + us(0)
    delays = data.draw(st.lists(st.integers(0, 12 * H), min_size=n, max_size=n))
    delays[0] = delays[1] = 0
    ys = data.draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n))
    ys[0], ys[1] = False, True
    k = data.draw(st.integers(1, 4))
    df = pl.DataFrame(
        {
            "ts": pl.Series(t).cast(pl.Datetime("us")),
            "x": np.arange(n, dtype=float),
            "y": ys,
            "lt": pl.Series(t + np.array(delays)).cast(pl.Datetime("us")),
        }
    )
    tmp = tmp_path_factory.mktemp("onl")
    prep, res, calls, pred = sim(tmp, df, f"online:{k}", warmup="0.2", roles={"label_time": "lt"})
    d = prep.data
    arrived = d.l[d.l != np.iinfo(np.int64).max]
    arrived = np.sort(arrived[arrived >= d.W])
    want = [int(np.searchsorted(arrived, ti, "left")) // k for ti in d.t[d.s0 :]]
    assert pred["model_version"].to_list() == want
    assert [len(c[1]) for c in calls if c[0] == "partial_fit"] == [k] * (len(arrived) // k)
    assert [p[1] for p in predicted(calls)] == want


def test_static_freshness_columns(tmp_path):
    prep, res, calls, pred = sim(tmp_path, _on_grid(), "static", warmup="1d")
    assert pred["model_version"].to_list() == [0, 0, 0]
    assert pred["model_age_us"].to_list() == [0, 12 * H, 24 * H]
    assert pred["staleness_us"].to_list() == [0, 0, 0]
    assert pred["feature_age_us"].to_list() == [0, 0, 0]


def test_regression_every_kind_end_to_end(runner, tmp_path):
    from rtml_cli.cli import app
    from rtml_cli.runs import read_run_dir

    rng = np.random.default_rng(2)
    n = 120
    x = rng.normal(size=n)
    df = pl.DataFrame(
        {
            "ts": [at(i) for i in range(n)],
            "k": rng.choice(["a", "b", "c"], n).tolist(),
            "x": x,
            "target": 3 * x + rng.normal(scale=0.1, size=n),
        }
    )
    path = _write(tmp_path, df)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare", str(path), "--out", str(out), "--time-col", "ts", "--label-col", "target",
            "--key-col", "k", "--warmup", "1d", "--model", "sgd",
            "--strategies", "batch:1d,stream:1d,online:1,static", "--timing-sample", "0",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    run = read_run_dir(out)
    assert run.manifest["task"] == "regression"
    q = run.metrics["quality"]
    # fresh x predicts the target well; batch only has a stale x of the same entity
    for s in ("stream", "online", "static"):
        assert q[s]["r2"] > 0.9, (s, q[s])
    assert q["batch"]["r2"] < 0.5
    p = run.predictions
    assert (p["pred"] == p["score"]).all()


def test_windowed_label_aggregate_waits_for_label_arrival(tmp_path):
    df = pl.DataFrame(
        {
            "ts": [at(0), at(10), at(20), at(30), at(40), at(50)],
            "k": ["a"] * 6,
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "y": [False, True, True, False, True, False],
        }
    )
    path = _write(tmp_path, df)
    cfg = resolve_config(
        path,
        roles=Roles(time="ts", label="y", key="k", features=["x"]),
        strategies="stream:1d,batch:1d",
        warmup="1d",
        label_delay="5h",
        features=["k:y:mean:2d:rate"],
    )
    prep = prepare(path, cfg, instance=Rec())
    out = {}
    for spec in cfg.strategies:
        Rec.CALLS.clear()
        simulate(spec, prep.data, prep.view_for(spec), prep.builder)
        out[spec.kind] = [p[2][1] for p in predicted(Rec.CALLS)]
    # stream at t: labels arrived before t of events in [t - 2d, t)
    assert out["stream"] == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    # batch at the cutoff: day1 00:00 knows e0, e1 (e2's label comes at 01:00); day2 knows e0-e4
    assert out["batch"] == pytest.approx([1 / 2, 1 / 2, 3 / 5])


def test_batch_feature_age_ignores_request_features(tmp_path):
    """Only stored features have an age: with request features and a windowed count, the age
    is that of the count's newest row (null when the window is empty), not of the entity's
    last event; cold start is still the entity having no event before the cutoff."""
    df = pl.DataFrame(
        {
            "ts": [at(1), at(2), at(20), at(30), at(47), at(50), at(53)],
            "k": ["a", "b", "a", "a", "b", "a", "c"],
            "hour": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "y": [False, True, False, True, False, True, False],
        }
    )
    path = _write(tmp_path, df)
    Rec.CALLS.clear()
    cfg = resolve_config(
        path,
        roles=Roles(time="ts", label="y", key="k", features=["hour"], request_features=["hour"]),
        strategies="batch:1d",
        warmup="1d",
        features=["k:*:count:6h:recent"],
    )
    prep = prepare(path, cfg, instance=Rec())
    spec = cfg.strategies[0]
    res = simulate(spec, prep.data, prep.view_for(spec), prep.builder)
    # scored: e3 (a, 30), e4 (b, 47), e5 (a, 50), e6 (c, 53); windows [c - 6h, c)
    assert predicted(Rec.CALLS) == [
        (0, 0, [4.0, 1.0]),  # [18, 24): e2
        (0, 0, [5.0, 0.0]),  # b: nothing in [18, 24)
        (1, 0, [6.0, 0.0]),  # [42, 48): e4 is b's
        (1, 0, [7.0, 0.0]),
    ]
    pred = predictions_frame(prep, [res])
    assert pred["feature_age_us"].to_list() == [10 * H, None, None, None]
    assert pred["cold_start"].to_list() == [False, False, False, True]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_scheduled_model_time_is_the_latest_fit_at_or_before_t(tmp_path_factory, data):
    """stream/batch: event i is served by the fit at max(W, floor(t_i / R) * R), which saw
    exactly the labels with l < that time."""
    n = data.draw(st.integers(6, 30))
    gaps = data.draw(st.lists(st.integers(0, 9 * H), min_size=n, max_size=n))
    gaps[1:3] = [max(g, 1) for g in gaps[1:3]]
    t = np.cumsum(gaps) + us(0) + data.draw(st.integers(0, 24 * H))
    delays = data.draw(st.lists(st.integers(0, 20 * H), min_size=n, max_size=n))
    delays[0] = delays[1] = 0
    R = data.draw(st.sampled_from([4 * H, 24 * H, 7 * H]))
    kind = data.draw(st.sampled_from(["stream", "batch"]))
    df = pl.DataFrame(
        {
            "ts": pl.Series(t).cast(pl.Datetime("us")),
            "x": np.arange(n, dtype=float),
            "y": [bool(i % 2) for i in range(n)],
            "lt": pl.Series(t + np.array(delays)).cast(pl.Datetime("us")),
        }
    )
    tmp = tmp_path_factory.mktemp("sched")
    prep, res, calls, pred = sim(
        tmp, df, f"{kind}:{R // H}h", warmup="0.2", roles={"label_time": "lt"}
    )
    d = prep.data
    want = [max(d.W, (ti // R) * R) for ti in d.t[d.s0 :]]
    got = [int(v) for v in pred["model_time"].cast(pl.Int64).to_list()]
    assert got == want
    fit_sizes = {at_us: rows for _k, at_us, rows in res.fits}
    for c in set(want):
        assert fit_sizes[c] == int((d.l < c).sum())


def test_cli_label_as_feature_is_exit_2_without_traceback(runner, tmp_path):
    from rtml_cli.cli import app

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(0, 60, 6)],
            "x": [float(i) for i in range(10)],
            "y": [False, True] * 5,
        }
    )
    path = _write(tmp_path, df)
    out = tmp_path / "run"
    r = runner.invoke(
        app, ["compare", str(path), "--out", str(out), "--features", "x,y", "--warmup", "1d"]
    )
    assert r.exit_code == 2, r.output
    assert "feature 'y'" in r.output and "label" in r.output
    assert "Traceback" not in r.output
    assert not out.exists()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_windowed_retrains_serve_the_latest_fit_that_could_be_made(tmp_path_factory, data):
    """With train_window, skipped retrains (no label / one class) keep the model of the latest
    cutoff <= t whose window could fit one — eventless cutoffs included."""
    n = data.draw(st.integers(6, 25))
    gaps = data.draw(st.lists(st.integers(0, 30 * H), min_size=n, max_size=n))
    gaps[1:3] = [max(g, 1) for g in gaps[1:3]]
    t = np.cumsum(gaps) + us(0)
    ys = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    R = data.draw(st.sampled_from([6 * H, 24 * H]))
    Wd = data.draw(st.sampled_from([12 * H, 36 * H]))
    kind = data.draw(st.sampled_from(["stream", "batch"]))
    df = pl.DataFrame(
        {"ts": pl.Series(t).cast(pl.Datetime("us")), "x": np.arange(n, dtype=float), "y": ys}
    )
    tmp = tmp_path_factory.mktemp("win")
    from rtml_cli.errors import InputError, ModelError

    try:
        prep, res, calls, pred = sim(tmp, df, f"{kind}:{R // H}h:{Wd // H}h", warmup="0.2")
    except (ModelError, InputError):  # warm-up (or the whole table) of one class
        assume(False)
        return
    d = prep.data
    y = np.array(ys, dtype=float)

    def valid(c: int) -> bool:
        rows = (d.l < c) & (d.t >= c - Wd)
        return np.unique(y[rows]).size == 2

    want = []
    for ti in d.t[d.s0 :]:
        cands = [d.W] + list(range((d.W // R + 1) * R, int(ti) + 1, R))
        want.append(max(c for c in cands if c == d.W or valid(c)))
    got = [int(v) for v in pred["model_time"].cast(pl.Int64).to_list()]
    assert got == want


def test_raw_model_choking_on_cold_start_nulls_is_told_why(runner, tmp_path):
    from rtml_cli.cli import app

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(0, 96, 3)],
            "k": ["a", "b", "c", "d"] * 8,
            "x": [float(i % 5) for i in range(32)],
            "y": [i % 3 == 0 for i in range(32)],
        }
    )
    path = _write(tmp_path, df)
    r = runner.invoke(
        app,
        [
            "compare", str(path), "--out", str(tmp_path / "run"), "--key-col", "k",
            "--warmup", "1d", "--strategies", "batch:1d",
            "--model", "sklearn.linear_model:LogisticRegression",
        ],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "cold-start" in r.output and "imputer" in r.output


def test_warmup_percent_and_flag_named_errors(tmp_path):
    from rtml_cli.errors import ConfigError

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(10)],
            "x": [float(i) for i in range(10)],
            "y": [False, True] * 5,
        }
    )
    prep, *_ = sim(tmp_path, df, "static", warmup="30%")
    assert prep.data.W == us(3)
    with pytest.raises(ConfigError, match="--warmup .*fraction"):
        sim(tmp_path, df, "static", warmup="3x")


def test_nested_feature_column_is_a_clear_input_error(runner, tmp_path):
    from rtml_cli.cli import app

    df = pl.DataFrame(
        {
            "ts": [at(h) for h in range(0, 96, 3)],
            "tags": [[1, 2]] * 32,
            "x": [float(i % 5) for i in range(32)],
            "y": [i % 3 == 0 for i in range(32)],
        }
    )
    path = _write(tmp_path, df)
    args = ["compare", str(path), "--warmup", "1d", "--strategies", "stream:1d"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 2, r.output
    assert "column 'tags'" in r.output and "--ignore tags" in r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--ignore", "tags"])
    assert r.exit_code == 0, r.output
