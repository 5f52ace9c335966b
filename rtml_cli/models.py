"""Models: presets, import path + params, factory files; label task inference; the online adapter.

Three ways to name a model (docs/semantics.md, The model):

* a **preset** (``logreg``, ``sgd``, ``hgb``, ``rf``, ``nb``; regression: ``ridge``/``linear``,
  ``sgd``, ``hgb``, ``rf``) — rtml's own complete scikit-learn Pipelines built from the table
  schema: nulls are imputed, categorical (string/bool-less non-numeric) columns are one-hot
  (linear models, capped at 30 levels per column) or ordinal (trees) encoded; or a River preset
  (``river-logreg``, ``river-ht``, ``river-hat``, ``river-arf``; regression ``river-linear``,
  ``river-ht``, ``river-hat``, ``river-arf``; see :mod:`rtml_cli.river_models`);
* an **import path** with params (``sklearn.linear_model:SGDClassifier`` + ``{loss="log_loss"}``),
  used exactly as given — rtml adds no preprocessing. Only an estimator *class* is accepted: the
  named attribute must be a class deriving from ``sklearn.base.BaseEstimator`` (or River's
  ``river.base.Estimator``, see :func:`estimator_bases`), checked before anything is called, so a
  config file cannot make rtml call ``os:system`` or ``builtins:eval``;
* a **factory file** (``model.py:make_model``) called with no arguments, also used as given. A
  factory file is Python that rtml imports and runs: it runs with the user's permissions.

What the model is fed: the feature columns in the configured order, as a numpy array. For presets,
string columns arrive as integer codes (a fixed code per distinct value of the whole table; codes
carry no label information and the encoders inside the pipeline learn categories from the fit
rows only, unknown ones are ignored). For import-path and factory models (no preprocessing) a
table of numeric, bool and datetime features arrives as ``float64`` (bool as 0/1, datetimes as
seconds since the epoch, nulls as NaN); when a feature is a string (or categorical) column the
whole matrix is an ``object`` array whose numeric cells are Python floats (NaN for null) and
whose string cells are Python ``str`` (``None`` for null): the model must encode them itself
(``examples/model.py`` is a factory whose pipeline does).

A River estimator (import path, factory or preset) is put behind
:class:`rtml_cli.river_models.RiverModel`: every fit is a fresh learner that learns the training
rows one by one in label-arrival order, an online update is ``learn_one`` per arrived label.

Online learning (``online`` strategies) needs ``partial_fit``. For a Pipeline (every preset) the
preprocessing steps are fitted at warm-up and then **frozen**; only the final estimator is
updated with ``partial_fit`` on transformed rows.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli import river_models
from rtml_cli.config import ModelSpec
from rtml_cli.errors import InputError, ModelError, suggest
from rtml_cli.model_imports import load_estimator_class
from rtml_cli.model_imports import raised as raised  # what user code did, for messages

CLASSIFIER_PRESETS = ("logreg", "sgd", "hgb", "rf", "nb")
REGRESSOR_PRESETS = ("ridge", "linear", "sgd", "hgb", "rf")
DEFAULT_PRESET = "sgd"
PARTIAL_FIT_EXAMPLES = (
    "sklearn.linear_model:SGDClassifier, sklearn.linear_model:Perceptron, "
    "sklearn.linear_model:PassiveAggressiveClassifier, sklearn.naive_bayes:MultinomialNB, "
    "sklearn.naive_bayes:GaussianNB, sklearn.linear_model:SGDRegressor, or the presets 'sgd' and 'nb'"
)
_MAX_ONEHOT = 30
#: Most distinct values a multiclass label may have.
MAX_CLASSES = 100


@dataclasses.dataclass
class LabelInfo:
    """The task and the label encoded as floats.

    Attributes
    ----------
    task : ``"binary"``, ``"multiclass"`` or ``"regression"``.
    positive_class : the raw label value mapped to 1.0 (binary), else ``None``.
    negative_class : the raw value mapped to 0.0 (binary), else ``None``.
    y : float64 array, NaN where the label is null; multiclass: the class code (0..K-1).
    classes : multiclass only: the raw label values in code order (sorted), else ``None``.
    """

    task: str
    positive_class: Any
    negative_class: Any
    y: np.ndarray
    classes: list[Any] | None = None


#: Largest label magnitude of a regression: its errors, squared and summed over the events, stay
#: far below float overflow and its metrics within what a run directory holds (run_schema.MAX_ABS).
MAX_REGRESSION_LABEL = 1e50


def _check_regression_label(y: np.ndarray, *, name: str, source: str) -> None:
    """InputError for an infinite or huge regression label (its metrics cannot be written)."""
    inf = np.isinf(y)
    if inf.any():
        raise InputError(
            f"label column '{name}' of {source} has {int(inf.sum())} infinite value(s) (first in "
            f"row {int(np.argmax(inf))}); a regression label must be finite. Drop those rows or "
            "make them null (a missing label)."
        )
    big = np.abs(np.nan_to_num(y)) > MAX_REGRESSION_LABEL
    if big.any():
        i = int(np.argmax(big))
        raise InputError(
            f"label column '{name}' of {source} holds {y[i]:g} (row {i}), beyond "
            f"±{MAX_REGRESSION_LABEL:g}: its errors would overflow the metrics. Rescale the label "
            "(e.g. its logarithm, or another unit) before comparing."
        )


def infer_task(label: pl.Series, *, name: str, source: str) -> LabelInfo:
    """Infer the task from the label column and encode it.

    Bool or exactly two distinct values → binary (positive = ``True``, else the larger value);
    floats with more values → regression; integers/strings with 3 to :data:`MAX_CLASSES` values →
    multiclass, coded 0..K-1 in sorted order of the values (more is an :class:`InputError`: such
    a column is an identifier or a count, not classes). A NaN in a float label is a missing
    label, like a null: it is not a value (a 0/1 float label with NaN is binary).
    """
    if label.dtype.is_float():
        label = label.fill_nan(None)
    values = label.drop_nulls().unique().sort()
    n = len(values)
    if n == 0:
        raise InputError(
            f"label column '{name}' of {source} has no non-null value; nothing to learn."
        )
    if label.dtype.is_temporal():
        raise InputError(
            f"label column '{name}' of {source} is a {label.dtype} column with {n} distinct "
            "values, not an outcome to predict. Pass the label with --label-col (a bool, two "
            "values, or a float for regression)."
        )
    if n == 1 and not label.dtype.is_float():
        raise InputError(
            f"label column '{name}' of {source} has one value only ({values[0]!r}) in its "
            f"non-null rows; a classifier needs two classes. Check the label column (--label-col)."
        )
    if label.dtype == pl.Boolean or n == 2:
        neg, pos = (False, True) if label.dtype == pl.Boolean else (values[0], values[1])
        y = label.cast(pl.Float64) if label.dtype == pl.Boolean else (label == pos).cast(pl.Float64)
        return LabelInfo("binary", pos, neg, y.fill_null(np.nan).to_numpy().astype(np.float64))
    if label.dtype.is_float():
        y = label.cast(pl.Float64).fill_null(np.nan).to_numpy()
        _check_regression_label(y, name=name, source=source)
        return LabelInfo("regression", None, None, y)
    if n > MAX_CLASSES:
        raise InputError(
            f"label column '{name}' of {source} has {n} distinct values ({label.dtype}), more "
            f"than the {MAX_CLASSES} classes rtml accepts: it looks like an identifier or a "
            "count. Pass another column with --label-col, or cast it to float for a regression."
        )
    classes = values.to_list()
    codes = label.replace_strict(classes, list(range(n)), default=None, return_dtype=pl.Float64)
    return LabelInfo("multiclass", None, None, codes.fill_null(np.nan).to_numpy(), classes)


@dataclasses.dataclass
class Encoding:
    """How the feature columns become a numpy matrix (fixed once per run).

    Attributes
    ----------
    columns : feature columns in order.
    numeric : indexes of numeric (and bool) columns.
    categorical : indexes of non-numeric columns (coded for presets).
    categories : per categorical column name, its sorted distinct values (code = position).
    raw : True for import-path/factory models (no coding).
    """

    columns: list[str]
    numeric: list[int]
    categorical: list[int]
    categories: dict[str, list[Any]]
    raw: bool


def make_encoding(frame: pl.DataFrame, columns: list[str], *, raw: bool) -> Encoding:
    """Decide numeric vs categorical per column from the schema."""
    numeric, categorical, cats = [], [], {}
    for i, c in enumerate(columns):
        dt = frame.schema[c]
        if dt.is_numeric() or dt == pl.Boolean:
            numeric.append(i)
        elif dt.is_temporal():
            numeric.append(i)
        elif dt.is_nested() or dt in (pl.Binary, pl.Object):
            # a list/struct/binary value is not one feature: say so instead of a polars cast error
            raise InputError(
                f"column '{c}' has type {dt}, which cannot be a model feature (one number or "
                f"category per event). Pass --ignore {c}, or list the model's inputs with --inputs."
            )
        else:
            categorical.append(i)
            if not raw:
                cats[c] = frame[c].cast(pl.String).drop_nulls().unique().sort().to_list()
    return Encoding(list(columns), numeric, categorical, cats, raw)


def encode(frame: pl.DataFrame, enc: Encoding) -> np.ndarray:
    """The feature matrix of ``frame`` (float64; ``object`` for raw models with strings)."""
    exprs = []
    for i, c in enumerate(enc.columns):
        col = pl.col(c)
        dt = frame.schema[c]
        if i in enc.numeric:
            # temporal columns become seconds (since the epoch, midnight, or as a span)
            if dt == pl.Duration or isinstance(dt, pl.Duration):
                col = col.dt.total_microseconds().cast(pl.Float64) / 1e6
            elif dt == pl.Time:
                col = col.cast(pl.Int64).cast(pl.Float64) / 1e9
            elif dt.is_temporal():
                col = col.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64) / 1e6
            exprs.append(col.cast(pl.Float64).alias(c))
        elif enc.raw:
            exprs.append(col.alias(c))
        else:
            codes = enc.categories[c]
            exprs.append(
                col.cast(pl.String)
                .replace_strict(
                    codes, list(range(len(codes))), default=None, return_dtype=pl.Float64
                )
                .alias(c)
            )
    out = frame.select(exprs)
    if enc.raw and enc.categorical:
        return out.to_numpy().astype(object)
    return np.ascontiguousarray(out.fill_null(np.nan).to_numpy().astype(np.float64))


def _preset(name: str, task: str, enc: Encoding, seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    num, cat = enc.numeric, enc.categorical
    linear = name in ("logreg", "sgd", "nb", "ridge", "linear")
    parts = []
    if num:
        steps = [SimpleImputer(strategy="median", keep_empty_features=True)]
        if linear:
            steps.append(StandardScaler())
        parts.append(("num", make_pipeline(*steps), num))
    if cat:
        imp = SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True)
        if linear:
            coder: Any = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=_MAX_ONEHOT,
                sparse_output=False,
            )
        else:
            coder = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, max_categories=_MAX_ONEHOT
            )
        parts.append(("cat", make_pipeline(imp, coder), cat))
    pre = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    if task != "regression":
        from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.naive_bayes import GaussianNB

        est: Any = {
            "logreg": lambda: LogisticRegression(max_iter=1000),
            "sgd": lambda: SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed),
            "hgb": lambda: HistGradientBoostingClassifier(random_state=seed),
            "rf": lambda: RandomForestClassifier(
                n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed
            ),
            "nb": lambda: GaussianNB(),
        }[name]()
    else:
        from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import LinearRegression, Ridge, SGDRegressor

        est = {
            "ridge": lambda: Ridge(alpha=1.0),
            "linear": lambda: LinearRegression(),
            "sgd": lambda: SGDRegressor(random_state=seed),
            "hgb": lambda: HistGradientBoostingRegressor(random_state=seed),
            "rf": lambda: RandomForestRegressor(
                n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed
            ),
        }[name]()
    return Pipeline([("pre", pre), ("model", est)])


_FACTORY_CACHE: dict[str, Any] = {}


def _load_factory(text: str) -> Any:
    """``path/model.py:name`` → the callable (cached per process)."""
    if text in _FACTORY_CACHE:
        return _FACTORY_CACHE[text]
    path, _, attr = text.rpartition(":")
    if not path or not attr.isidentifier():
        raise ModelError(
            f"model factory {text!r} must look like 'path/to/model.py:make_model' (a file and "
            "the name of a function in it)."
        )
    p = Path(path)
    if not p.is_file():
        raise ModelError(
            f"model file '{path}' (from factory {text!r}) not found (cwd is {Path.cwd()}). "
            "Check the path."
        )
    modname = f"rtml_user_model_{abs(hash(str(p.resolve())))}"
    spec = importlib.util.spec_from_file_location(modname, p)
    if spec is None or spec.loader is None:
        raise ModelError(f"model file '{path}' cannot be imported as Python. Is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's file: any error (even sys.exit) is theirs to fix
        sys.modules.pop(modname, None)
        verb, detail = raised(exc)
        raise ModelError(
            f"model file '{path}' (factory {text!r}) {verb} while importing{detail}. Fix the file."
        ) from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        names = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ModelError(
            f"model file '{path}' has no callable '{attr}'.{suggest(attr, names)} "
            f"Callables defined there: {', '.join(names) or 'none'}."
        )
    _FACTORY_CACHE[text] = fn
    return fn


@dataclasses.dataclass
class ModelBuilder:
    """Builds fresh, unfitted copies of the configured model (picklable, for worker processes).

    Attributes
    ----------
    spec : what the user gave.
    task : ``binary`` | ``regression``.
    encoding : how features are fed.
    seed : random seed given to presets.
    kind : ``preset`` | ``estimator`` | ``factory`` | ``instance``.
    name : the preset name (presets only).
    instance : a ready estimator to clone (used by tests and the library API).
    """

    spec: ModelSpec
    task: str
    encoding: Encoding
    seed: int = 0
    kind: str = "preset"
    name: str | None = None
    instance: Any = None

    def make(self) -> Any:
        """A fresh unfitted estimator."""
        from sklearn.base import clone

        if self.kind == "preset":
            name = self.name or DEFAULT_PRESET
            if name.startswith("river-"):
                enc = self.encoding
                learner = river_models.preset(
                    name,
                    self.task,
                    enc.columns,
                    [enc.columns[i] for i in enc.categorical],
                    self.seed,
                )
                return self._river(learner)
            return _preset(name, self.task, self.encoding, self.seed)
        if self.kind == "instance":
            inst = self.instance
            if isinstance(inst, river_models.RiverModel):
                inst = inst.learner
            if river_models.is_river(inst):
                return self._river(inst.clone())
            return clone(inst)
        if self.kind == "estimator":
            cls = load_estimator_class(self.spec.estimator or "")
            try:
                est = cls(**self.spec.params)
            except TypeError as exc:
                raise ModelError(
                    f"model estimator {self.spec.estimator!r} rejects params "
                    f"{self.spec.params!r}: {exc}. Check the parameter names."
                ) from None
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                verb, detail = raised(exc)
                raise ModelError(
                    f"model estimator {self.spec.estimator!r} {verb} while building the "
                    f"model{detail}."
                ) from None
            return self._river(est)  # its own ModelError (a learner for the other task) as is
        fn = _load_factory(self.spec.factory or "")
        try:
            est = fn()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # even sys.exit: user code must not end rtml as a success
            verb, detail = raised(exc)
            raise ModelError(
                f"model factory {self.spec.factory!r} {verb} while building the model{detail}."
            ) from None
        return self._river(est)

    def _river(self, est: Any) -> Any:
        """A River learner behind the adapter the engine calls (anything else unchanged)."""
        if not river_models.is_river(est):
            return est
        return river_models.wrap(
            est, task=self.task, columns=self.encoding.columns, what=self.describe()
        )

    def describe(self) -> str:
        """Human text for the manifest and the CLI."""
        if self.kind == "preset":
            return f"preset '{self.name}'"
        return self.spec.describe() if self.kind != "instance" else repr(self.instance)


def presets(task: str) -> tuple[str, ...]:
    """Preset names for ``task``: rtml's scikit-learn pipelines, then the ``river-*`` ones."""
    if task == "regression":
        return REGRESSOR_PRESETS + tuple(river_models.REGRESSOR_PRESETS)
    return CLASSIFIER_PRESETS + tuple(river_models.CLASSIFIER_PRESETS)


def resolve_model(
    spec: ModelSpec, *, task: str, encoding: Encoding, seed: int = 0, instance: Any = None
) -> ModelBuilder:
    """Validate a :class:`ModelSpec` and return its builder (the model is built once to check)."""
    if instance is not None:
        b = ModelBuilder(spec, task, encoding, seed, kind="instance", instance=instance)
    elif spec.estimator:
        b = ModelBuilder(spec, task, encoding, seed, kind="estimator")
    elif spec.factory:
        b = ModelBuilder(spec, task, encoding, seed, kind="factory")
    else:
        name = spec.preset or DEFAULT_PRESET
        allowed = presets(task)
        if name not in allowed:
            other = presets("regression" if task != "regression" else "binary")
            hint = (
                f" ('{name}' is a preset for the other task.)"
                if name in other
                else suggest(name, allowed)
            )
            raise ModelError(
                f"unknown model preset '{name}' for a {task} task.{hint} Presets: {', '.join(allowed)}; "
                "or pass an import path such as sklearn.linear_model:SGDClassifier."
            )
        b = ModelBuilder(spec, task, encoding, seed, kind="preset", name=name)
    est = b.make()
    if not hasattr(est, "fit"):
        raise ModelError(
            f"model {b.describe()} is not an estimator (no fit method): got {type(est).__name__}."
        )
    if b.kind != "preset" and encoding.categorical and b.kind == "estimator":
        cols = [encoding.columns[i] for i in encoding.categorical]
        raise ModelError(
            f"feature columns {', '.join(cols)} are not numeric, and a model given by import path "
            "is used exactly as given (no encoding). Use a preset (e.g. --model sgd), a factory "
            "file returning a Pipeline that encodes them, or list numeric features only."
        )
    return b


def split_online(model: Any, *, what: str) -> tuple[Any | None, Any]:
    """Split a fitted model into (frozen preprocessing or ``None``, final estimator with partial_fit)."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        prefix, final = (model[:-1] if len(model.steps) > 1 else None), model.steps[-1][1]
    else:
        prefix, final = None, model
    if not hasattr(final, "partial_fit"):
        raise ModelError(
            f"strategy '{what}' is online but {type(final).__name__} has no partial_fit. Use an "
            f"estimator that has it: {PARTIAL_FIT_EXAMPLES}."
        )
    return prefix, final


def check_online(builder: ModelBuilder, *, what: str) -> None:
    """Fail early (before any fitting) when an online strategy's model cannot ``partial_fit``."""
    split_online(builder.make(), what=what)
