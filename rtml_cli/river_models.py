"""River learners behind the interface rtml's engine calls on a scikit-learn model.

rtml's engine (``rtml_cli.strategies``) fits a fresh model with ``fit(X, y)``, updates an online
model with ``partial_fit(X, y)`` and scores with ``predict_proba(X)`` / ``classes_`` (classifiers)
or ``predict(X)`` (regressors), on numpy matrices. A River learner learns and predicts one row at a
time, on dicts. :class:`RiverModel` is the bridge:

* ``fit`` is a fresh clone of the learner that learns the training rows one by one, in the order
  given (the engine gives them in label-arrival order, see :attr:`RiverModel.learns_in_order`):
  exactly what River's own loop would have done with those labels;
* ``partial_fit`` is ``learn_one`` per row, in order;
* ``predict_proba`` / ``predict`` call ``predict_proba_one`` / ``predict_one`` per row. They do not
  change the learner (River pipelines learn unsupervised steps in ``learn_one`` only, unless the
  user enters ``compose.learn_during_predict()``), so rtml's extra single-row calls that time
  latency change no prediction.

Each row becomes a dict keyed by the feature column names, in the configured column order; a
missing value (null, NaN) is left out of the dict, River's convention for a missing feature.
Labels reach River as ``bool`` (binary: ``True`` is the positive class), ``int`` class codes
(multiclass) or ``float`` (regression).

Presets (``--model river-logreg`` ...) are River pipelines built from the table schema; see
:data:`CLASSIFIER_PRESETS` and :data:`REGRESSOR_PRESETS`. River is an optional dependency
(``pip install 'rtml[river]'``): this module imports it only when a River model is asked for.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from rtml_cli.errors import ModelError

#: ``river-*`` presets for classification (binary and multiclass) and what each one is.
CLASSIFIER_PRESETS: dict[str, str] = {
    "river-logreg": "StandardScaler | LogisticRegression (multiclass: SoftmaxRegression)",
    "river-ht": "HoeffdingTreeClassifier",
    "river-hat": "HoeffdingAdaptiveTreeClassifier",
    "river-arf": "ARFClassifier (adaptive random forest, 10 trees)",
}
#: ``river-*`` presets for regression.
REGRESSOR_PRESETS: dict[str, str] = {
    "river-linear": "StandardScaler | LinearRegression",
    "river-ht": "HoeffdingTreeRegressor",
    "river-hat": "HoeffdingAdaptiveTreeRegressor",
    "river-arf": "ARFRegressor (adaptive random forest, 10 trees)",
}

_INSTALL = "River is not installed: pip install 'rtml[river]' (or pip install river)."


def _river() -> Any:
    try:
        import river
    except ImportError:
        raise ModelError(f"a River model was asked for, but {_INSTALL}") from None
    return river


def is_river(obj: Any) -> bool:
    """Whether ``obj`` is a River estimator (instance). Never imports River itself."""
    base = sys.modules.get("river.base")
    est = getattr(base, "Estimator", None) if base is not None else None
    return isinstance(est, type) and isinstance(obj, est)


def _pick(x: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: x[k] for k in keys if k in x}


def preset(
    name: str, task: str, columns: Sequence[str], categorical: Sequence[str], seed: int
) -> Any:
    """The River learner of preset ``name`` (a ``river-*`` name) for ``task``.

    ``categorical`` names the columns fed as category codes: one-hot encoded for the linear
    presets, declared nominal for the trees.
    """
    _river()
    from river import compose, forest, linear_model, preprocessing, tree

    cat = [c for c in columns if c in set(categorical)]
    num = [c for c in columns if c not in set(cat)]
    classify = task != "regression"
    if name in ("river-logreg", "river-linear"):
        final: Any
        if classify:
            final = (
                linear_model.SoftmaxRegression()
                if task == "multiclass"
                else linear_model.LogisticRegression()
            )
        else:
            final = linear_model.LinearRegression()
        if not cat:
            return preprocessing.StandardScaler() | final
        # compose.Select fails on an absent (missing) key: pick what is there
        encoded: Any = compose.FuncTransformer(functools.partial(_pick, keys=tuple(cat)))
        encoded |= preprocessing.OneHotEncoder()
        if num:
            scaled = compose.FuncTransformer(functools.partial(_pick, keys=tuple(num)))
            encoded = (scaled | preprocessing.StandardScaler()) + encoded
        return encoded | final
    nominal = cat or None
    if name == "river-ht":
        if classify:
            return tree.HoeffdingTreeClassifier(nominal_attributes=nominal)
        return tree.HoeffdingTreeRegressor(nominal_attributes=nominal)
    if name == "river-hat":
        if classify:
            return tree.HoeffdingAdaptiveTreeClassifier(nominal_attributes=nominal, seed=seed)
        return tree.HoeffdingAdaptiveTreeRegressor(nominal_attributes=nominal, seed=seed)
    if name == "river-arf":
        if classify:
            return forest.ARFClassifier(nominal_attributes=nominal, seed=seed)
        return forest.ARFRegressor(nominal_attributes=nominal, seed=seed)
    raise AssertionError(f"unknown River preset {name!r}")  # resolve_model checked the name


def check_task(learner: Any, task: str, *, what: str) -> None:
    """A River classifier for a classification task, a regressor for regression (ModelError)."""
    from river import utils

    if task == "regression":
        if not utils.inspect.isregressor(learner):
            raise ModelError(
                f"model {what} is not a River regressor, but the label is a regression target "
                "(a float column). Use a River regressor such as river.linear_model:"
                "LinearRegression, or the preset river-linear."
            )
        return
    if not utils.inspect.isclassifier(learner):
        raise ModelError(
            f"model {what} is not a River classifier, but the label is a {task} target. Use a "
            "River classifier such as river.linear_model:LogisticRegression, or the preset "
            "river-logreg."
        )
    if task == "multiclass" and not getattr(
        utils.inspect.extract_relevant(learner), "_multiclass", False
    ):
        raise ModelError(
            f"model {what} is a binary-only River classifier, but the label has more than two "
            "classes. Use a multiclass one (river.linear_model:SoftmaxRegression, a Hoeffding "
            "tree, river.forest:ARFClassifier), or wrap it in river.multiclass:"
            "OneVsRestClassifier in a factory file."
        )


class RiverModel:
    """A River learner seen through the calls rtml's engine makes on a scikit-learn model.

    Parameters
    ----------
    learner : the River estimator (or pipeline) as configured; it is never trained itself, every
        :meth:`fit` starts from ``learner.clone()``.
    columns : the feature names, in the order of the matrix columns.
    task : ``binary`` | ``multiclass`` | ``regression``.
    """

    #: ``fit`` learns rows one by one: the engine gives a River model its training rows in
    #: label-arrival order (a scikit-learn fit keeps the table order).
    learns_in_order = True

    def __init__(self, learner: Any, *, columns: Sequence[str], task: str) -> None:
        self.learner = learner
        self.columns = list(columns)
        self.task = task
        self.model_: Any = None
        self._seen: set[int] = set()
        if task == "binary":
            self.classes_ = np.array([0.0, 1.0])
        elif task == "multiclass":
            self.classes_ = np.empty(0)

    def __repr__(self) -> str:
        return f"RiverModel({self.learner!r})"

    # ------------------------------------------------------------------ rows and labels
    def _names(self, width: int) -> list[str]:
        cols = self.columns
        if len(cols) == width:
            return cols
        # the engine feeds exactly the encoded columns; name any others by position
        return [*cols, *(f"x{i}" for i in range(len(cols), width))]

    def _dicts(self, X: np.ndarray) -> list[dict[str, Any]]:
        cols = self._names(X.shape[1])
        rows = X.tolist()
        if X.dtype == np.float64:
            out = []
            for r in rows:
                s = sum(r)
                if s == s:  # no NaN in the row (the sum of a row with one is NaN)
                    out.append(dict(zip(cols, r, strict=True)))
                else:
                    out.append({c: v for c, v in zip(cols, r, strict=True) if v == v})
            return out
        # an object matrix (string features): missing (None, NaN) is an absent key
        return [
            {
                c: v
                for c, v in zip(cols, r, strict=True)
                if v is not None and not (isinstance(v, float) and math.isnan(v))
            }
            for r in rows
        ]

    def _labels(self, y: np.ndarray) -> list[Any]:
        if self.task == "binary":
            return [v == 1.0 for v in y.tolist()]
        if self.task == "multiclass":
            codes = [int(v) for v in y.tolist()]
            self._seen.update(codes)
            self.classes_ = np.array(sorted(self._seen), dtype=np.float64)
            return codes
        return [float(v) for v in y.tolist()]

    # ------------------------------------------------------------------ learning
    def fit(self, X: np.ndarray, y: np.ndarray) -> RiverModel:
        """A fresh clone of the learner that learns the rows one by one, in order."""
        self.model_ = self.learner.clone()
        self._seen = set()
        if self.task == "multiclass":
            self.classes_ = np.empty(0)
        return self.partial_fit(X, y)

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> RiverModel:
        """``learn_one`` per row, in order."""
        if self.model_ is None:
            self.model_ = self.learner.clone()
        learn = self.model_.learn_one
        if len(X) == 1 and self.task == "binary":  # the online hot path: one arrived label
            learn(self._dicts(X)[0], float(y[0]) == 1.0)
            return self
        for x, v in zip(self._dicts(X), self._labels(np.asarray(y)), strict=True):
            learn(x, v)
        return self

    # ------------------------------------------------------------------ predicting
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        one = self._fitted().predict_proba_one
        xs = self._dicts(X)
        if self.task == "binary":
            if len(xs) == 1:  # the online hot path
                p = one(xs[0])
                return np.array([[p.get(False, 0.0), p.get(True, 0.0)] if p else [0.5, 0.5]])
            out = np.empty((len(xs), 2))
            for i, x in enumerate(xs):
                p = one(x)
                if p:
                    out[i, 0], out[i, 1] = p.get(False, 0.0), p.get(True, 0.0)
                else:  # nothing learned: no preference
                    out[i] = 0.5
            return out
        classes = [int(c) for c in self.classes_.tolist()]
        out = np.zeros((len(xs), len(classes)))
        for i, x in enumerate(xs):
            p = one(x)
            if p:
                out[i] = [p.get(c, 0.0) for c in classes]
            elif classes:
                out[i] = 1.0 / len(classes)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Regression: ``predict_one`` per row; classification: the most probable class."""
        if self.task != "regression":
            proba = self.predict_proba(X)
            return np.asarray(self.classes_)[np.argmax(proba, axis=1)]
        one = self._fitted().predict_one
        return np.array([float(one(x)) for x in self._dicts(X)], dtype=np.float64)

    def _fitted(self) -> Any:
        if self.model_ is None:
            raise ModelError("a River model was asked to predict before it learned any row.")
        return self.model_


def wrap(learner: Any, *, task: str, columns: Sequence[str], what: str) -> RiverModel:
    """Check a River learner against the task and put it behind :class:`RiverModel`."""
    check_task(learner, task, what=what)
    return RiverModel(learner, columns=columns, task=task)
