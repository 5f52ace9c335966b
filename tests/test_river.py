"""River learners: parity with River's own progressive validation, every kind, the import check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import compose, evaluate, linear_model, metrics, preprocessing, tree
from typer.testing import CliRunner

from rtml_cli.cli import app
from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import ModelSpec, build_config
from rtml_cli.errors import ModelError
from rtml_cli.models import make_encoding, resolve_model
from rtml_cli.river_models import RiverModel
from rtml_cli.strategies import simulate

ELEC2 = Path("/work/shared/data/elec2.parquet")
FEATURES = ["date", "day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
# elec2's prices are near-leaks on ten days (compare says so); irrelevant to what is tested here
pytestmark = pytest.mark.filterwarnings("ignore:feature 'nswprice' alone predicts")
ROWS = 1500  # a few seconds in all: enough events for the two loops to diverge if they could


@pytest.fixture(scope="module")
def elec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first rows of elec2 (30-minute periods; the table itself stays in /work/shared)."""
    path = tmp_path_factory.mktemp("elec2") / "elec2_head.parquet"
    pl.read_parquet(ELEC2).head(ROWS).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def elec2_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of elec2 (480 events): enough for daily retrains, cheap for a per-event run."""
    path = tmp_path_factory.mktemp("elec2") / "elec2_days.parquet"
    pl.read_parquet(ELEC2).head(480).write_parquet(path)
    return path


def _rtml_online(path: Path, model: dict, delay: str, strategies: str = "online:1"):
    cfg = build_config(
        {"model": model, "data": {"time": "timestamp", "label": "price_up", "features": FEATURES}},
        warmup="0.2",
        label_delay=delay,
        strategies=strategies,
    )
    prep = prepare(path, cfg)
    return prep, run_strategies(prep, timing_sample=0)


def _river_pvs(path: Path, final, delay: dt.timedelta) -> np.ndarray:
    """P(price up) that River's progressive validation gives each event, in event order.

    The timestamp rides in the dict as River's ``moment`` and is discarded before the model.
    With a constant delay labels are answered in event order, so the yielded predictions are
    the events' own, in order.
    """
    df = pl.read_parquet(path)
    rows = df.select(FEATURES + ["timestamp"]).to_dicts()
    ys = df["price_up"].to_list()
    steps = evaluate.iter_progressive_val_score(
        zip(rows, ys, strict=True),
        compose.Discard("timestamp") | final,
        metrics.LogLoss(),  # a probability metric: River predicts with predict_proba_one
        moment="timestamp",
        delay=delay,
        yield_predictions=True,
    )
    return np.array([s["Prediction"][True] for s in steps])


def test_online_equals_river_progressive_validation_on_elec2(elec2):
    """45 min delay: each label arrives between two events (elec2 is every 30 min), so rtml's
    rule (labels strictly before t) and River's (expired at or before t) agree; rtml's warm-up
    fit learns the warm-up labels one by one, which is what River's loop did with them."""
    prep, (r,) = _rtml_online(elec2, {"estimator": "river.linear_model:LogisticRegression"}, "45m")
    river_p = _river_pvs(elec2, linear_model.LogisticRegression(), dt.timedelta(minutes=45))
    s0 = prep.data.s0
    assert len(river_p) == ROWS and s0 == int(0.2 * ROWS)
    np.testing.assert_array_equal(r.score, river_p[s0:])
    assert r.model_version[-1] > 1000  # updated per label, not a static model


def test_a_label_arriving_exactly_at_an_event_is_not_used_for_it_unlike_rivers_delay(elec2):
    """1 h delay: the label of the event two periods back arrives exactly at the event. rtml does
    not use it for that event (docs/semantics.md, the one rule); River's ``delay`` reveals a label
    whose time has come before predicting, so rtml equals River with the delay plus 1 µs."""
    prep, (r,) = _rtml_online(elec2, {"estimator": "river.linear_model:LogisticRegression"}, "1h")
    s0 = prep.data.s0
    strict = _river_pvs(
        elec2, linear_model.LogisticRegression(), dt.timedelta(hours=1, microseconds=1)
    )
    np.testing.assert_array_equal(r.score, strict[s0:])
    inclusive = _river_pvs(elec2, linear_model.LogisticRegression(), dt.timedelta(hours=1))
    assert not np.array_equal(r.score, inclusive[s0:])


def test_preset_river_logreg_equals_river_scaler_pipeline(elec2):
    prep, (r,) = _rtml_online(elec2, {"preset": "river-logreg"}, "45m")
    river_p = _river_pvs(
        elec2,
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        dt.timedelta(minutes=45),
    )
    np.testing.assert_array_equal(r.score, river_p[prep.data.s0 :])


@pytest.mark.parametrize("model", [{"preset": "river-hat"}, {"preset": "river-logreg"}])
def test_every_kind_runs_a_river_learner_and_vectorized_equals_per_event(elec2_days, model):
    strategies = "batch:1d,stream:1d,online:1,online:7,static"
    prep, results = _rtml_online(elec2_days, model, "45m", strategies)
    assert [r.kind for r in results] == ["batch", "stream", "online", "online", "static"]
    for spec, r in zip(prep.config.strategies, results, strict=True):
        assert np.isfinite(r.score).all() and ((r.score >= 0) & (r.score <= 1)).all()
        view = prep.view_for(spec)
        per_event = simulate(spec, prep.data, view, prep.builder, vectorize=False)
        np.testing.assert_array_equal(r.score, per_event.score)
    stream, static = results[1], results[4]
    assert stream.model_version.max() > 0 and static.model_version.max() == 0


def test_a_fit_is_a_fresh_learner_that_learned_the_rows_in_arrival_order(elec2):
    """static = one fit at W: the learner that learned the labels arrived before W, in order."""
    prep, (r,) = _rtml_online(elec2, {"preset": "river-hat"}, "45m", "static")
    d = prep.data
    df = pl.read_parquet(elec2)
    rows = df.select(FEATURES).to_dicts()
    ys = df["price_up"].to_list()
    learner = tree.HoeffdingAdaptiveTreeClassifier(seed=0)
    for i in np.flatnonzero(d.l < d.W):
        learner.learn_one(rows[i], ys[i])
    expected = [learner.predict_proba_one(x).get(True, 0.0) for x in rows[d.s0 :]]
    np.testing.assert_allclose(r.score, expected, rtol=0, atol=1e-12)


def test_river_fit_follows_label_arrival_not_table_order(tmp_path):
    """With a label-time column, arrival order differs from table order: a River fit learns the
    rows in arrival order (a River learner depends on the order it learns in)."""
    n = 400
    rng = np.random.default_rng(3)
    t0 = dt.datetime(2024, 1, 1)
    x = rng.normal(size=n)
    y = x + rng.normal(scale=0.5, size=n) > 0
    lag = rng.integers(1, 600, size=n)  # labels arrive out of event order
    df = pl.DataFrame(
        {
            "t": [t0 + dt.timedelta(minutes=int(i)) for i in range(n)],
            "lt": [t0 + dt.timedelta(minutes=int(i + g)) for i, g in enumerate(lag)],
            "x": x,
            "y": y,
        }
    )
    cfg = build_config(
        {
            "model": {"estimator": "river.linear_model:LogisticRegression"},
            "data": {"time": "t", "label": "y", "label_time": "lt", "features": ["x"]},
        },
        warmup="0.6",
        strategies="static",
    )
    df.write_parquet(tmp_path / "t.parquet")
    prep = prepare(tmp_path / "t.parquet", cfg)
    (r,) = run_strategies(prep, timing_sample=0)
    d = prep.data
    before = np.flatnonzero(d.l < d.W)
    order = before[np.argsort(d.l[before], kind="stable")]
    assert not np.array_equal(order, before)
    learner = linear_model.LogisticRegression()
    for i in order:
        learner.learn_one({"x": float(x[i])}, bool(y[i]))
    expected = [learner.predict_proba_one({"x": float(v)})[True] for v in x[d.s0 :]]
    np.testing.assert_array_equal(r.score, expected)


def test_import_path_must_be_a_river_or_sklearn_estimator_class():
    enc = make_encoding(pl.DataFrame({"a": [1.0, 2.0]}), ["a"], raw=True)
    with pytest.raises(ModelError, match="not an estimator class"):
        resolve_model(ModelSpec(estimator="river.stream:iter_pandas"), task="binary", encoding=enc)
    with pytest.raises(ModelError, match="not a River classifier"):
        resolve_model(
            ModelSpec(estimator="river.linear_model:LinearRegression"), task="binary", encoding=enc
        )
    with pytest.raises(ModelError, match="not a River regressor"):
        resolve_model(
            ModelSpec(estimator="river.linear_model:LogisticRegression"),
            task="regression",
            encoding=enc,
        )
    with pytest.raises(ModelError, match="rejects params"):
        resolve_model(
            ModelSpec(estimator="river.tree:HoeffdingTreeClassifier", params={"nope": 1}),
            task="binary",
            encoding=enc,
        )
    b = resolve_model(
        ModelSpec(estimator="river.tree:HoeffdingTreeClassifier", params={"grace_period": 50}),
        task="binary",
        encoding=enc,
    )
    model = b.make()
    assert isinstance(model, RiverModel) and model.learner.grace_period == 50


def test_factory_returning_a_river_pipeline(tmp_path):
    factory = tmp_path / "model.py"
    factory.write_text(
        "from river import preprocessing, linear_model\n"
        "def make():\n"
        "    return preprocessing.StandardScaler() | linear_model.LogisticRegression()\n"
    )
    enc = make_encoding(pl.DataFrame({"a": [1.0, 2.0]}), ["a"], raw=True)
    model = resolve_model(ModelSpec(factory=f"{factory}:make"), task="binary", encoding=enc).make()
    assert isinstance(model, RiverModel)
    X = np.array([[0.0], [1.0], [np.nan]])
    model.fit(X, np.array([0.0, 1.0, 1.0]))  # a NaN is an absent key, River's missing value
    assert model.predict_proba(X).shape == (3, 2)


def test_river_regression_and_strings_through_presets(tmp_path):
    n = 300
    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {
            "t": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
            "x": rng.normal(size=n),
            "s": rng.choice(["a", "b", None], size=n).tolist(),
        }
    ).with_columns(y=pl.col("x") * 2.0 + (pl.col("s") == "a").cast(pl.Float64).fill_null(0.0))
    path = tmp_path / "reg.parquet"
    df.write_parquet(path)
    for preset in ("river-linear", "river-hat"):
        cfg = build_config(
            {"model": {"preset": preset}, "data": {"time": "t", "label": "y"}},
            strategies="stream:1d,online:1",
        )
        prep = prepare(path, cfg)
        assert prep.label.task == "regression"
        for r in run_strategies(prep, timing_sample=0):
            assert np.isfinite(r.score).all()
    cfg = build_config(
        {"model": {"preset": "river-logreg"}, "data": {"time": "t", "label": "y"}},
        strategies="online:1",
    )
    with pytest.raises(ModelError, match="unknown model preset 'river-logreg' for a regression"):
        prepare(path, cfg)


def test_cli_compare_with_a_river_preset(elec2, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "compare",
            str(elec2),
            "--label-col",
            "price_up",
            "--model",
            "river-hat",
            "--strategies",
            "stream:7d,online:1",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    preds = pl.read_parquet(out / "predictions.parquet")
    # the two strategies, and the naive references every run scores
    assert preds["strategy"].unique().sort().to_list() == [
        "online", "persistence", "prior", "stream",
    ]  # fmt: skip


def test_parallel_jobs_give_the_serial_results_with_a_river_learner(elec2_days):
    prep, serial = _rtml_online(elec2_days, {"preset": "river-hat"}, "45m", "batch:1d,online:1")
    parallel = run_strategies(prep, timing_sample=0, jobs=2)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.model_version, b.model_version)


def test_a_river_instance_from_the_library_api_is_cloned_per_fit():
    enc = make_encoding(pl.DataFrame({"a": [1.0, 2.0]}), ["a"], raw=True)
    learner = linear_model.LogisticRegression()
    b = resolve_model(ModelSpec(), task="binary", encoding=enc, instance=learner)
    m1, m2 = b.make(), b.make()
    assert isinstance(m1, RiverModel) and m1.learner is not learner
    m1.fit(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]))
    assert learner.weights == {} and m2.model_ is None  # the given instance is never trained


@settings(max_examples=25, deadline=None)
@given(
    lags=st.lists(st.integers(0, 5), min_size=12, max_size=40),
    gaps=st.lists(st.integers(0, 2), min_size=40, max_size=40),
    seed=st.integers(0, 1000),
)
def test_online_river_sees_exactly_the_labels_arrived_before_each_event(lags, gaps, seed):
    """The one rule with a River learner, by hand: the event at t is predicted by a learner that
    learned exactly the labels with arrival < t, in arrival order (ties: table order)."""
    n = len(lags)
    rng = np.random.default_rng(seed)
    t_min = np.cumsum(gaps[:n])  # ties allowed
    x = rng.normal(size=n)
    y = rng.random(n) < 0.5
    y[:2] = [True, False]  # both classes among the first labels
    t0 = dt.datetime(2024, 1, 1)
    df = pl.DataFrame(
        {
            "t": [t0 + dt.timedelta(minutes=int(v)) for v in t_min],
            "lt": [t0 + dt.timedelta(minutes=int(v + g)) for v, g in zip(t_min, lags, strict=True)],
            "x": x,
            "y": y,
        }
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        df.write_parquet(path)
        cfg = build_config(
            {
                "model": {"estimator": "river.linear_model:LogisticRegression"},
                "data": {"time": "t", "label": "y", "label_time": "lt", "features": ["x"]},
            },
            warmup="0.3",
            strategies="online:1",
        )
        try:
            prep = prepare(path, cfg)
            (r,) = run_strategies(prep, timing_sample=0)
        except ModelError:
            return  # a warm-up with one class only: nothing to compare
    d = prep.data
    arrival = np.lexsort((np.arange(n), d.l))  # by arrival, ties by table order
    learner = linear_model.LogisticRegression()
    learned = 0
    for i in range(d.s0, n):
        while learned < n and d.l[arrival[learned]] < d.t[i]:
            j = arrival[learned]
            learner.learn_one({"x": float(x[j])}, bool(y[j]))
            learned += 1
        assert r.score[i - d.s0] == learner.predict_proba_one({"x": float(x[i])})[True]
