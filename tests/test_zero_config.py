"""Zero config must not leak: no label-time column, datetime or identifier as a default feature,
the label-time column found and used, and a warning for any feature that alone predicts the label."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.compare import prepare
from rtml_cli.config import build_config
from rtml_cli.runs import read_run_dir
from rtml_cli.zero_config import (
    LeakWarning,
    default_features,
    is_id_name,
    is_identifier,
    leak_strength,
)
from tests.conftest import shared_table


@pytest.fixture(scope="module")
def clicks(tmp_path_factory) -> Path:
    """A `rtml sample clickstream` table with no rtml.toml beside it."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("clicks")
    path = folder / "clicks.parquet"
    r = CliRunner().invoke(
        app, ["sample", "clickstream", "--rows", "4000", "--seed", "0", "-o", str(path)]
    )
    assert r.exit_code == 0, r.output
    assert not (folder / "rtml.toml").exists()
    return path


def test_zero_config_on_the_clickstream_table_leaks_nothing(runner, clicks, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(clicks),
            "--out",
            str(out),
            "-s",
            "static,online:16",
            "--timing-sample",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    run = read_run_dir(out)
    features = run.manifest["features"]
    assert features == ["category", "price", "position", "device", "hour", "item_popularity"]
    assert run.manifest["roles"]["label_time"] == "click_time"
    assert "note: label-time column: 'click_time' (inferred" in r.output
    assert "identifier column(s) user_id, item_id" in r.output
    assert "--inputs" in r.output
    assert "alone predicts" not in r.output
    # the label arrives at click_time: a non-click is known 10 minutes after its impression
    p = run.predictions.filter(pl.col("strategy") == "static")
    assert (p["label_time"] >= p["t"]).all()
    assert (p["label_time"] > p["t"]).any()


def test_listing_a_datetime_or_an_id_as_a_feature_uses_it(runner, clicks, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(clicks),
            "--out",
            str(out),
            "-s",
            "static",
            "--timing-sample",
            "5",
            "--features",
            "user_id,price",
            "--label-delay",
            "10m",
        ],
    )
    assert r.exit_code == 0, r.output
    run = read_run_dir(out)
    assert run.manifest["features"] == ["user_id", "price"]
    assert run.manifest["roles"]["label_time"] is None  # a delay was given: no inference
    assert "not features" not in r.output


def _events(n: int = 600, seed: int = 3) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2024, 1, 1)
    ts = [t0 + dt.timedelta(minutes=10 * i) for i in range(n)]
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-x))
    return pl.DataFrame({"ts": ts, "x": x}), y


def test_synthetic_leaks_are_named_with_ignore(runner, tmp_path):
    df, y = _events()
    n = df.height
    rng = np.random.default_rng(0)
    df = df.with_columns(
        pl.Series("label", y),
        # a score computed after the outcome: label plus a little noise
        pl.Series("outcome_score", y * 2.0 + rng.normal(0, 0.1, n)),
        # null exactly when the label is false, random otherwise (null-ness is the label)
        pl.Series("refund_amount", np.where(y, rng.uniform(1, 5, n), np.nan)).fill_nan(None),
        # a string copy of the label
        pl.Series("status", np.where(y, "won", "lost")),
        pl.Series("noise", rng.normal(size=n)),
    )
    path = tmp_path / "leaky.parquet"
    df.write_parquet(path)
    r = runner.invoke(
        app,
        [
            "compare",
            str(path),
            "--out",
            str(tmp_path / "r"),
            "-s",
            "static",
            "--timing-sample",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    for col in ("outcome_score", "refund_amount", "status"):
        assert f"warning: feature '{col}' alone predicts the label 'label' almost perfectly" in (
            r.output
        )
        assert f"--ignore {col}" in r.output
    assert "feature 'noise'" not in r.output and "feature 'x'" not in r.output
    run = read_run_dir(tmp_path / "r")
    assert any("outcome_score" in w for w in run.manifest["warnings"])
    # with the leaks ignored, no warning
    r = runner.invoke(
        app,
        [
            "compare",
            str(path),
            "--out",
            str(tmp_path / "r2"),
            "-s",
            "static",
            "--timing-sample",
            "5",
            "--ignore",
            "outcome_score,refund_amount,status",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "alone predicts" not in r.output


def test_regression_leak_by_r2_either_direction(tmp_path):
    df, _ = _events()
    rng = np.random.default_rng(1)
    target = rng.normal(10, 3, df.height)
    df = df.with_columns(
        pl.Series("target", target),
        pl.Series("minus_target", -0.5 * target + rng.normal(0, 0.01, df.height)),
    )
    path = tmp_path / "reg.parquet"
    df.write_parquet(path)
    cfg = build_config({}, strategies="static")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prep = prepare(path, cfg)
    assert prep.label.task == "regression"
    leaks = [str(w.message) for w in caught if w.category is LeakWarning]
    assert len(leaks) == 1 and "feature 'minus_target'" in leaks[0] and "R² 1.000" in leaks[0]
    assert prep.warnings == leaks


def test_datetime_columns_are_never_default_features_and_only_a_late_one_is_the_label_time(
    tmp_path,
):
    df, y = _events()
    ts = df["ts"]
    df = df.with_columns(
        pl.Series("label", y),
        (ts - pl.duration(days=3)).alias("signup_time"),  # before the event: not the label time
        pl.Series("paid", np.arange(df.height) % 7),  # ends in 'id' but is no identifier name
        pl.Series("order_no", np.arange(df.height) * 13 + 1000),  # one value per row
    )
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    prep = prepare(path, build_config({}, strategies="static"))
    assert prep.features == ["x", "paid"]
    assert prep.table.roles.label_time is None
    notes = " | ".join(prep.notes)
    assert "datetime column(s) signup_time" in notes and "identifier column(s) order_no" in notes

    # two columns that could each be the label's arrival: neither is taken, and the notes say so
    df2 = df.with_columns(
        (ts + pl.duration(minutes=5)).alias("answered_at"),
        (ts + pl.duration(minutes=9)).alias("closed_at"),
    )
    path2 = tmp_path / "t2.parquet"
    df2.write_parquet(path2)
    prep2 = prepare(path2, build_config({}, strategies="static"))
    assert prep2.table.roles.label_time is None
    assert "several datetime columns are never before the event time (answered_at, closed_at)" in (
        " ".join(prep2.notes)
    )
    assert "answered_at" not in prep2.features and "closed_at" not in prep2.features


def test_a_late_datetime_missing_where_the_label_is_set_is_not_the_label_time(tmp_path):
    df, y = _events()
    late = df["ts"] + dt.timedelta(minutes=3)
    df = df.with_columns(
        pl.Series("label", y),
        late.set(pl.Series(np.arange(df.height) == 5), None).alias("seen_at"),
    )
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    prep = prepare(path, build_config({}, strategies="static"))
    assert prep.table.roles.label_time is None and "seen_at" not in prep.features


def test_identifier_rules():
    for name in ("id", "ID", "user_id", "item-id", "Order ID", "userId", "userID", "a.id"):
        assert is_id_name(name), name
    for name in ("paid", "valid", "grid", "kid", "idx", "identity"):
        assert not is_id_name(name), name
    assert is_identifier(pl.Series("user_id", [1, 1, 2], dtype=pl.Int32))
    assert not is_identifier(pl.Series("user_id", ["a", "b", "c"]))  # strings: categorical
    assert is_identifier(pl.Series("n", np.arange(200)))  # one value per row
    assert not is_identifier(pl.Series("n", np.arange(99)))  # too few rows to tell
    assert not is_identifier(pl.Series("n", np.arange(200) % 150))  # 75 % distinct
    assert not is_identifier(pl.Series("f", np.arange(200) * 1.5))  # floats are measurements
    frame = pl.DataFrame({"a_id": [1, 2], "x": [0.1, 0.2], "when": [dt.date(2024, 1, 1)] * 2})
    keep, notes = default_features(frame, ["a_id", "x", "when"])
    assert keep == ["x"] and len(notes) == 2


def test_leak_strength_either_direction_and_nulls():
    y = np.array([0.0, 0.0, 1.0, 1.0] * 20)
    assert leak_strength(y * 5, y, "binary") == pytest.approx(1.0)
    assert leak_strength(-y, y, "binary") == pytest.approx(1.0)
    assert leak_strength(np.where(y == 1, np.nan, 1.0), y, "binary") == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert leak_strength(rng.normal(size=y.size), y, "binary") < 0.8
    assert leak_strength(np.full(y.size, np.nan), y, "binary") is None


def test_elec2_zero_config_notes_still_make_sense():
    prep = prepare(shared_table("elec2.parquet"), build_config({}, strategies="static"))
    assert prep.features == [
        "date",
        "day",
        "period",
        "nswprice",
        "nswdemand",
        "vicprice",
        "vicdemand",
        "transfer",
    ]
    notes = " | ".join(prep.notes)
    assert "time column: 'timestamp'" in notes and "label column: 'price_up'" in notes
    assert "not features" not in notes and "label-time" not in notes
    assert prep.warnings == []
