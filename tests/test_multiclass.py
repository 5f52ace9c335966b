"""Multiclass labels (three or more classes) through compare, metrics and report, every kind."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from rtml_cli.cli import app
from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config
from rtml_cli.errors import InputError, ModelError
from rtml_cli.metrics import compute_metrics
from rtml_cli.models import MAX_CLASSES, infer_task

CLASSES = ["bus", "car", "walk"]


def three_class_table(n: int = 800, seed: int = 0) -> pl.DataFrame:
    """Hourly events of a few users; the class follows x1 and x2, the rule drifts halfway."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    drift = np.arange(n) >= n // 2
    logits = np.stack(
        [2.5 * x[:, 0], 2.5 * x[:, 1], np.where(drift, 1.5, -0.5) + 0.0 * x[:, 0]], axis=1
    )
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cls = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return pl.DataFrame(
        {
            "t": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
            "user": rng.integers(0, 5, n),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "mode": [CLASSES[c] for c in cls],
        }
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mc") / "modes.parquet"
    three_class_table().write_parquet(path)
    return path


def test_label_with_three_values_is_multiclass_coded_in_sorted_order() -> None:
    info = infer_task(pl.Series(["walk", "bus", None, "car", "bus"]), name="y", source="t")
    assert info.task == "multiclass" and info.classes == ["bus", "car", "walk"]
    assert info.y[[0, 1, 3, 4]].tolist() == [2.0, 0.0, 1.0, 0.0] and np.isnan(info.y[2])
    assert infer_task(pl.Series([5, 1, 3]), name="y", source="t").classes == [1, 3, 5]
    with pytest.raises(InputError, match="identifier or a count"):
        infer_task(pl.Series(range(MAX_CLASSES + 1)), name="y", source="t")


ALL_KINDS = "batch:1d,stream:1d,online:1,static"


@pytest.mark.parametrize(
    ("model", "strategies"),
    [
        ("sgd", ALL_KINDS),
        ("nb", ALL_KINDS),
        ("river-logreg", ALL_KINDS),
        ("river-hat", ALL_KINDS),
    ],
)
def test_every_kind_scores_class_probabilities(table: Path, model: str, strategies: str) -> None:
    cfg = build_config(
        {"model": {"preset": model}, "data": {"time": "t", "label": "mode", "key": "user"}},
        label_delay="2h",
        strategies=strategies,
    )
    prep = prepare(table, cfg)
    assert prep.label.task == "multiclass" and prep.data.n_classes == 3
    for r in run_strategies(prep, timing_sample=0):
        assert r.proba is not None and r.proba.shape == (len(r.score), 3)
        np.testing.assert_allclose(r.proba.sum(axis=1), 1.0, atol=1e-9)
        assert (r.pred == r.proba.argmax(axis=1)).all()
        np.testing.assert_array_equal(r.score, r.proba.max(axis=1))
        y = prep.data.y[prep.data.s0 :]
        if r.kind != "batch":  # batch serves the user's features as of the cutoff: stale
            assert accuracy_score(y, r.pred) > 0.45, (model, r.name)  # chance is about 1/3


def test_a_class_unseen_at_warm_up_gets_its_column_once_learned(tmp_path: Path) -> None:
    """River learns a new class online; the scorer puts each class in its own column."""
    df = three_class_table(600)
    df = df.with_columns(
        mode=pl.when(pl.int_range(pl.len()) < 300)
        .then(pl.when(pl.col("mode") == "walk").then(pl.lit("car")).otherwise(pl.col("mode")))
        .otherwise(pl.col("mode"))
    )
    path = tmp_path / "late.parquet"
    df.write_parquet(path)
    cfg = build_config(
        {"model": {"preset": "river-hat"}, "data": {"time": "t", "label": "mode"}},
        warmup="0.4",
        strategies="online:1",
    )
    prep = prepare(path, cfg)
    (r,) = run_strategies(prep, timing_sample=0)
    assert r.proba is not None
    walk = CLASSES.index("walk")
    assert r.proba[:5, walk].max() == 0.0 and r.proba[-100:, walk].max() > 0.0


def test_metrics_equal_sklearn_and_pair_intervals(table: Path) -> None:
    cfg = build_config(
        {"model": {"preset": "logreg"}, "data": {"time": "t", "label": "mode"}},
        strategies="static,stream:1d",
    )
    prep = prepare(table, cfg)
    from rtml_cli.compare import predictions_frame, timings_frame

    results = run_strategies(prep, timing_sample=0)
    pred = predictions_frame(prep, results)
    m = compute_metrics(
        pred, timings_frame(results), task="multiclass", strategies=["static", "stream"],
        baseline="static",
    )  # fmt: skip
    assert m["metric_names"] == ["accuracy", "macro_f1", "log_loss"]
    y = prep.data.y[prep.data.s0 :]
    for r in results:
        q = m["quality"][r.name]
        assert q["accuracy"] == pytest.approx(accuracy_score(y, r.pred), abs=1e-12)
        assert q["macro_f1"] == pytest.approx(f1_score(y, r.pred, average="macro"), abs=1e-12)
        assert q["log_loss"] == pytest.approx(log_loss(y, r.proba, labels=[0, 1, 2]), rel=1e-9)
    d = m["diff_to_baseline"]["stream"]
    for metric in ("accuracy", "macro_f1", "log_loss"):
        assert d[metric]["low"] <= d[metric]["estimate"] <= d[metric]["high"]
    # the drift halfway: daily retrains learn the new class balance, the static model cannot
    assert d["accuracy"]["estimate"] > 0 and d["log_loss"]["estimate"] < 0


def test_identical_strategies_have_zero_width_multiclass_intervals(table: Path) -> None:
    cfg = build_config(
        {"model": {"preset": "logreg"}, "data": {"time": "t", "label": "mode"}},
        strategies="static,stream:1d",
    )
    prep = prepare(table, cfg)
    from rtml_cli.compare import predictions_frame, timings_frame

    results = run_strategies(prep, timing_sample=0)
    pred = predictions_frame(prep, results)
    twin = pred.filter(pl.col("strategy") == "static").with_columns(strategy=pl.lit("twin"))
    m = compute_metrics(
        pl.concat([pred, twin]), timings_frame(results), task="multiclass",
        strategies=["static", "twin"], baseline="static",
    )  # fmt: skip
    for metric in ("accuracy", "macro_f1", "log_loss"):
        diff = m["diff_to_baseline"]["twin"][metric]
        assert diff["estimate"] == diff["low"] == diff["high"] == 0.0


def test_compare_and_report_cli(table: Path, tmp_path: Path, runner) -> None:
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare", str(table), "--label-col", "mode", "--time-col", "t",
            "--strategies", "static,stream:1d,online:1", "--timing-sample", "50", "-o", str(out),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "task: multiclass (3 classes)" in r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "multiclass" and manifest["classes"] == CLASSES
    preds = pl.read_parquet(out / "predictions.parquet")
    proba = np.array(preds["proba"].to_list())
    assert proba.shape == (preds.height, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "multiclass"
    assert set(metrics["quality"]["stream"]) >= {"accuracy", "macro_f1", "log_loss"}
    rep = runner.invoke(app, ["report", str(out)])
    assert rep.exit_code == 0, rep.output
    assert "accuracy" in rep.output.lower()
    assert "macro" in rep.output.lower()


def test_sklearn_online_refuses_a_class_its_warm_up_never_saw(tmp_path: Path) -> None:
    df = three_class_table(600).with_columns(
        mode=pl.when((pl.int_range(pl.len()) < 300) & (pl.col("mode") == "walk"))
        .then(pl.lit("car"))
        .otherwise(pl.col("mode"))
    )
    path = tmp_path / "late.parquet"
    df.write_parquet(path)
    cfg = build_config(
        {"model": {"preset": "sgd"}, "data": {"time": "t", "label": "mode"}},
        warmup="0.4",
        strategies="online:1",
    )
    with pytest.raises(ModelError, match=r"class code\(s\) \[2\] arrive after the warm-up"):
        run_strategies(prepare(path, cfg), timing_sample=0)


def test_recorded_endpoint_answers_of_a_multiclass_label_are_not_scored() -> None:
    """An endpoint answers one score per event: no class probabilities, so no quality metric
    (the recorder keeps the run and says why) rather than a metrics error."""
    from rtml_cli.run_record import _label_encoding

    y, task, _, why = _label_encoding(["bus", "car", "walk", "bus"], "mode")
    assert task is None and np.isnan(y).all()
    assert why is not None and "3 classes" in why


def test_a_damaged_proba_column_is_refused_when_the_run_is_read(
    table: Path, tmp_path: Path
) -> None:
    from rtml_cli.compare import run_compare
    from rtml_cli.errors import RunDirError
    from rtml_cli.io import Roles
    from rtml_cli.runs import read_run_dir

    out = tmp_path / "run"
    run_compare(
        table, roles=Roles(time="t", label="mode"), out=out, strategies="static", model="nb",
        timing_sample=0,
    )  # fmt: skip
    read_run_dir(out)  # as written: fine
    preds = pl.read_parquet(out / "predictions.parquet")
    preds.with_columns(proba=pl.lit("0.2,0.8")).write_parquet(out / "predictions.parquet")
    with pytest.raises(RunDirError, match="'proba' has type String; expected list of numbers"):
        read_run_dir(out)
