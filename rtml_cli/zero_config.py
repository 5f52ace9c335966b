"""What ``rtml compare`` takes as features when none are listed, and single-feature leak checks.

With no ``--inputs`` / ``[data] inputs`` every column without another role is a candidate.
Two kinds of candidate are left out, each said in the notes (list them with ``--inputs`` to
use them anyway):

* **datetime columns** (datetime, date, time, duration): a timestamp other than the event time
  is usually an outcome's time (when the label arrived, when an order shipped); as a number it
  also grows with time, which a model learns as a trend. (The label-time column itself is found
  by :func:`rtml_cli.io.find_label_time`.)
* **identifier columns**: an integer column (not bool) whose name says it is one — ``id``, or a
  name ending in ``_id``, ``-id``, ``.id``, `` id`` (any case), or ``Id``/``ID`` after a
  lower-case letter (``userId``) — or whose values are nearly unique per row: at least
  :data:`ID_MIN_ROWS` non-null values of which at least :data:`ID_DISTINCT_SHARE` are distinct
  (a row, order or transaction number). An identifier's number carries no order a model can use;
  ``--key-col`` is how an entity is named.

:func:`leak_warnings` then flags any single feature that predicts the label almost perfectly on
the labelled warm-up rows (:data:`LEAK_THRESHOLD`): a column only known once the label is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from rtml_cli.errors import RtmlWarning

#: An identifier by name: ``id``, ``user_id``, ``user-id``, ``user.id``, ``user id`` (any case) ...
_ID_SUFFIX = re.compile(r"(^|[_\-.\s])id$", re.IGNORECASE)
#: ... or ``userId``, ``userID`` (not ``paid``, ``valid``, ``grid``).
_CAMEL_ID = re.compile(r"[a-z](Id|ID)$")
#: An integer column is an identifier by its values from this many non-null values on ...
ID_MIN_ROWS = 100
#: ... when at least this share of them are distinct.
ID_DISTINCT_SHARE = 0.9
#: AUC (binary, either direction) or R² (regression) of one feature alone on the labelled warm-up
#: rows from which it is reported as a probable leak.
LEAK_THRESHOLD = 0.99
#: Fewest labelled warm-up rows on which a leak is judged.
LEAK_MIN_ROWS = 30
#: A string column is judged for leaks only up to this many distinct values in the warm-up rows
#: (each value encoded by its mean label there; with more, that fits any column perfectly).
LEAK_MAX_LEVELS = 30


class LeakWarning(RtmlWarning):
    """One feature alone predicts the label almost perfectly: probably known only after it."""


def is_id_name(name: str) -> bool:
    """Whether a column name says it holds identifiers (see the module docstring)."""
    return _ID_SUFFIX.search(name) is not None or _CAMEL_ID.search(name) is not None


def is_identifier(series: pl.Series) -> bool:
    """An integer column that holds identifiers, by name or by nearly unique values."""
    if not series.dtype.is_integer():
        return False
    if is_id_name(series.name):
        return True
    values = series.drop_nulls()
    return len(values) >= ID_MIN_ROWS and values.n_unique() >= ID_DISTINCT_SHARE * len(values)


def default_features(frame: pl.DataFrame, candidates: Sequence[str]) -> tuple[list[str], list[str]]:
    """The zero-config features among ``candidates`` and notes on the columns left out."""
    keep: list[str] = []
    times: list[str] = []
    ids: list[str] = []
    for c in candidates:
        dtype = frame.schema[c]
        if dtype.is_temporal():
            times.append(c)
        elif is_identifier(frame[c]):
            ids.append(c)
        else:
            keep.append(c)
    notes = []
    if times:
        notes.append(
            f"not features: datetime column(s) {', '.join(times)} (a time other than the event's "
            "is usually known only later, e.g. the label's arrival; list it with --inputs to use "
            "it)"
        )
    if ids:
        notes.append(
            f"not features: identifier column(s) {', '.join(ids)} (an integer named *_id/id, or "
            "nearly one value per row: its number means nothing to a model; name an entity with "
            "--key-col, or list it with --inputs to use it)"
        )
    return keep, notes


def _auc_either_way(x: np.ndarray, y: np.ndarray) -> float:
    """max(AUC, 1 - AUC) of ``x`` as a score for the 0/1 labels ``y`` (ties averaged)."""
    from scipy.stats import rankdata

    pos = y == 1.0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(x)
    auc = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(max(auc, 1.0 - auc))


def _numeric(values: pl.Series, y: np.ndarray) -> np.ndarray | None:
    """The column as floats (NaN for null); strings by their mean label; ``None`` if unjudgeable."""
    dtype = values.dtype
    if dtype.is_numeric() or dtype == pl.Boolean:
        return values.cast(pl.Float64).fill_nan(None).fill_null(np.nan).to_numpy()
    if dtype.is_temporal():
        if isinstance(dtype, pl.Duration):
            return values.dt.total_microseconds().cast(pl.Float64).fill_null(np.nan).to_numpy()
        if dtype == pl.Time:
            return values.cast(pl.Int64).cast(pl.Float64).fill_null(np.nan).to_numpy()
        return (
            values.cast(pl.Datetime("us"))
            .dt.epoch("us")
            .cast(pl.Float64)
            .fill_null(np.nan)
            .to_numpy()
        )
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        text = values.cast(pl.String)
        if text.n_unique() > LEAK_MAX_LEVELS:
            return None
        df = pl.DataFrame({"v": text, "y": y})
        means = df.group_by("v").agg(pl.col("y").mean().alias("m"))
        return df.join(means, on="v", how="left", nulls_equal=True)["m"].to_numpy()
    return None


def leak_strength(x: np.ndarray, y: np.ndarray, task: str) -> float | None:
    """AUC either way (binary) or R² of a straight line (regression) of ``x`` alone for ``y``.

    Binary: nulls (NaN) rank lowest and, in a second try, highest; the larger AUC counts (a
    column null exactly for one class predicts it). Regression: rows with ``x`` null are left out.
    """
    if task == "binary":
        if np.isnan(x).all():
            return None
        lo, hi = np.nanmin(x), np.nanmax(x)
        return max(
            _auc_either_way(np.where(np.isnan(x), lo - 1.0, x), y),
            _auc_either_way(np.where(np.isnan(x), hi + 1.0, x), y),
        )
    ok = ~np.isnan(x)
    if ok.sum() < LEAK_MIN_ROWS or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    r = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return r * r


def leak_warnings(
    frame: pl.DataFrame,
    features: Sequence[str],
    y: np.ndarray,
    rows: np.ndarray,
    *,
    task: str,
    label: str,
) -> list[str]:
    """A warning for each feature column of ``frame`` that alone predicts ``y`` almost perfectly.

    Parameters
    ----------
    frame : the event table (its rows aligned with ``y``).
    features : the table's feature columns (windowed ones are not judged).
    y : the label as floats (NaN = missing).
    rows : bool mask of the rows judged (the warm-up rows).
    task : ``binary`` or ``regression``.
    label : the label's name, for the message.
    """
    mask = rows & ~np.isnan(y)
    if mask.sum() < LEAK_MIN_ROWS:
        return []
    yw = y[mask]
    if task == "binary" and np.unique(yw).size < 2:
        return []
    idx = np.flatnonzero(mask)
    out = []
    for c in features:
        if c not in frame.columns:
            continue
        x = _numeric(frame[c].gather(idx), yw)
        if x is None:
            continue
        strength = leak_strength(x, yw, task)
        if strength is None or strength < LEAK_THRESHOLD:
            continue
        measure = f"AUC {strength:.3f}" if task == "binary" else f"R² {strength:.3f}"
        out.append(
            f"feature '{c}' alone predicts the label '{label}' almost perfectly on the warm-up "
            f"rows ({measure}): it is probably known only once the label is (a leak). If so, "
            f"drop it with --ignore {c} (or [data] ignore), or list the model's inputs with --inputs."
        )
    return out
