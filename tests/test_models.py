"""Models: task inference, presets on strings and nulls, import paths, the online adapter."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from rtml_cli.config import ModelSpec
from rtml_cli.errors import InputError, ModelError
from rtml_cli.models import encode, infer_task, make_encoding, resolve_model, split_online


def _frame():
    return pl.DataFrame(
        {
            "a": [1.0, None, 3.0, 4.0, 0.5, 2.0],
            "s": ["x", "y", None, "x", "z", "y"],
            "b": [True, False, True, True, False, False],
        }
    )


def test_task_inference():
    info = infer_task(pl.Series([True, None, False]), name="y", source="t")
    assert info.task == "binary" and info.positive_class is True
    assert np.isnan(info.y[1]) and info.y[0] == 1.0
    info = infer_task(pl.Series(["no", "yes", "no"]), name="y", source="t")
    assert info.positive_class == "yes" and info.y.tolist() == [0.0, 1.0, 0.0]
    assert infer_task(pl.Series([0.1, 2.5, 3.0]), name="y", source="t").task == "regression"
    assert infer_task(pl.Series([1, 2, 3]), name="y", source="t").task == "multiclass"
    with pytest.raises(InputError, match="one value only"):
        infer_task(pl.Series([True, True]), name="y", source="t")
    # one class of an integer label is one class, not "multiclass"; a datetime is no outcome
    with pytest.raises(InputError, match=r"one value only \(0\)"):
        infer_task(pl.Series([0, 0, None]), name="y", source="t")
    with pytest.raises(InputError, match="Datetime.* not an outcome to predict"):
        infer_task(pl.Series([dt.datetime(2024, 1, d) for d in (1, 2, 3)]), name="y", source="t")


@pytest.mark.parametrize("preset", ["logreg", "sgd", "hgb", "rf", "nb"])
def test_presets_handle_strings_and_nulls(preset):
    df = _frame()
    enc = make_encoding(df, ["a", "s", "b"], raw=False)
    X = encode(df, enc)
    assert X.dtype == np.float64 and np.isnan(X[1, 0]) and np.isnan(X[2, 1])
    model = resolve_model(ModelSpec(preset=preset), task="binary", encoding=enc).make()
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    model.fit(X, y)
    p = model.predict_proba(X[:2])
    assert p.shape == (2, 2)


@pytest.mark.parametrize("preset", ["ridge", "linear", "sgd", "hgb", "rf"])
def test_regression_presets(preset):
    df = _frame()
    enc = make_encoding(df, ["a", "s"], raw=False)
    model = resolve_model(ModelSpec(preset=preset), task="regression", encoding=enc).make()
    model.fit(encode(df, enc), np.arange(6.0))
    assert model.predict(encode(df, enc)).shape == (6,)


def test_import_path_is_used_as_given():
    df = _frame().select("a", "b")
    enc = make_encoding(df, ["a", "b"], raw=True)
    b = resolve_model(
        ModelSpec(
            estimator="sklearn.linear_model:SGDClassifier",
            params={"loss": "log_loss", "alpha": 0.01},
        ),
        task="binary",
        encoding=enc,
    )
    m = b.make()
    assert type(m).__name__ == "SGDClassifier" and m.alpha == 0.01  # no pipeline around it
    with pytest.raises(ModelError, match="rejects params"):
        resolve_model(
            ModelSpec(estimator="sklearn.linear_model:SGDClassifier", params={"nope": 1}),
            task="binary",
            encoding=enc,
        )
    with pytest.raises(ModelError, match="cannot import module"):
        resolve_model(ModelSpec(estimator="no_such_pkg:Thing"), task="binary", encoding=enc)


def test_import_path_with_string_features_is_refused():
    df = _frame()
    enc = make_encoding(df, ["a", "s"], raw=True)
    with pytest.raises(ModelError, match="not numeric"):
        resolve_model(
            ModelSpec(estimator="sklearn.linear_model:SGDClassifier"), task="binary", encoding=enc
        )


def test_online_adapter_freezes_preprocessing():
    df = _frame()
    enc = make_encoding(df, ["a", "s"], raw=False)
    model = resolve_model(ModelSpec(preset="sgd"), task="binary", encoding=enc).make()
    X = encode(df, enc)
    model.fit(X, np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    prefix, final = split_online(model, what="online")
    Z = prefix.transform(X)
    final.partial_fit(Z[:1], np.array([1.0]))
    # the pipeline predicts with the updated final step through the frozen prefix
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], final.predict_proba(Z)[:, 1])
    with pytest.raises(ModelError, match="has no partial_fit"):
        split_online(
            resolve_model(ModelSpec(preset="rf"), task="binary", encoding=enc).make(), what="o"
        )


def test_temporal_feature_columns_become_seconds():
    import datetime as dt

    df = pl.DataFrame(
        {
            "d": [dt.timedelta(seconds=90), None],
            "t": [dt.time(1, 0), dt.time(0, 0, 30)],
            "w": [dt.datetime(1970, 1, 1, 0, 1), dt.datetime(1970, 1, 2)],
        }
    )
    X = encode(df, make_encoding(df, df.columns, raw=False))
    np.testing.assert_allclose(X, [[90.0, 3600.0, 60.0], [np.nan, 30.0, 86400.0]], rtol=1e-12)


def test_a_nan_in_a_float_label_is_a_missing_label():
    """NaN is not a third value: a 0/1 float label with NaN is binary, and NaN stays missing."""
    info = infer_task(pl.Series([0.0, 1.0, float("nan"), 1.0, None]), name="y", source="t")
    assert info.task == "binary" and info.positive_class == 1.0 and info.negative_class == 0.0
    assert info.y[:2].tolist() == [0.0, 1.0] and np.isnan(info.y[2]) and np.isnan(info.y[4])
    info = infer_task(pl.Series([0.5, float("nan"), 2.5, 3.0]), name="y", source="t")
    assert info.task == "regression" and np.isnan(info.y[1])
    with pytest.raises(InputError, match="no non-null value"):
        infer_task(pl.Series([float("nan"), None]), name="y", source="t")


def test_what_a_factory_model_receives():
    """Raw (import path, factory) models get floats for numbers, bools and datetimes, and, when a
    feature is a string, an object array of Python floats (NaN for null) and str (None)."""
    import datetime as dt

    df = pl.DataFrame(
        {
            "n": [1, None],
            "b": [True, False],
            "when": [dt.datetime(1970, 1, 1, 0, 0, 2), None],
            "s": ["x", None],
        }
    )
    X = encode(df, make_encoding(df, ["n", "b", "when"], raw=True))
    assert X.dtype == np.float64 and X[0].tolist() == [1.0, 1.0, 2.0] and np.isnan(X[1, 0])
    X = encode(df, make_encoding(df, ["n", "s", "b"], raw=True))
    assert X.dtype == object
    assert X[0].tolist() == [1.0, "x", 1.0] and type(X[0, 1]) is str
    assert np.isnan(X[1, 0]) and X[1, 1] is None and X[1, 2] == 0.0
