"""An example model factory for ``rtml compare --model examples/model.py:make_model``.

rtml imports this file and calls ``make_model()`` with no arguments (it is Python that runs with
your permissions, like any script you run). The estimator it returns is used exactly as given:
rtml feeds it the feature columns in the configured order, without preprocessing. When a feature
is a string column (``category`` and ``device`` of ``rtml sample clickstream``) the matrix is a
numpy ``object`` array: numeric cells are Python floats (NaN for null), string cells are ``str``
(``None`` for null). So the pipeline below encodes the string columns itself.

The last step has ``partial_fit``, so the ``online`` strategy can update it (rtml freezes the
steps before it after the warm-up fit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


class StringsToOneHot(TransformerMixin, BaseEstimator):
    """One-hot encode the columns that hold strings; pass the others on as floats."""

    def fit(self, X: Any, y: Any = None) -> StringsToOneHot:
        X = np.asarray(X, dtype=object)
        self.text_ = [j for j in range(X.shape[1]) if any(isinstance(v, str) for v in X[:, j])]
        self.numbers_ = [j for j in range(X.shape[1]) if j not in self.text_]
        self.onehot_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        self.onehot_.fit(self._text(X))
        return self

    def _text(self, X: np.ndarray) -> np.ndarray:
        # None (a null string) becomes its own category
        return np.where(X[:, self.text_] == None, "<null>", X[:, self.text_]).astype(str)  # noqa: E711

    def transform(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=object)
        numbers = X[:, self.numbers_].astype(float)
        if not self.text_:
            return numbers
        return np.hstack([numbers, self.onehot_.transform(self._text(X))])


def make_model() -> Pipeline:
    """Logistic regression by SGD on one-hot strings and scaled numbers."""
    return Pipeline(
        [
            ("strings", StringsToOneHot()),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0)),
        ]
    )
