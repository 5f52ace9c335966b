"""Per-block sufficient statistics and the metrics computed from them (binary, multiclass,
regression).

Every metric of a run is a function of sums kept per time block (counts, confusion counts, sums
of losses and, for ROC AUC, a block × block matrix of concordant positive/negative pairs). A
bootstrap resample is then a weight vector over the blocks, and each metric of every resample is
a matrix product (see :mod:`rtml_cli.metrics`, which builds ``metrics.json`` from these).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rtml_cli.errors import MetricError

_EPS = 1e-15


def binary_block_stats(
    y: np.ndarray, p: np.ndarray, pred: np.ndarray, block: np.ndarray, n_blocks: int
) -> dict[str, np.ndarray]:
    """Per-block sufficient statistics of every binary metric (arrays of length n_blocks)."""
    pc = np.clip(p, _EPS, 1 - _EPS)
    ll = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))

    def s(v: np.ndarray) -> np.ndarray:
        return np.bincount(block, weights=v, minlength=n_blocks)

    yb, pb = y > 0.5, pred > 0.5
    stats = {
        "n": s(np.ones_like(p)),
        "correct": s((yb == pb).astype(float)),
        "ll": s(ll),
        "sq": s((p - y) ** 2),
        "tp": s((yb & pb).astype(float)),
        "fp": s((~yb & pb).astype(float)),
        "fn": s((yb & ~pb).astype(float)),
        "pos": s(yb.astype(float)),
        "neg": s((~yb).astype(float)),
    }
    # AUC: M[a, b] = number of (positive in block a, negative in block b) pairs ranked right,
    # ties counting one half. Weighted AUC of a resample w is w·M·w / ((w·pos)(w·neg)).
    m = np.zeros((n_blocks, n_blocks))
    neg_sorted = [np.sort(p[(block == b) & ~yb]) for b in range(n_blocks)]
    pos_idx = np.flatnonzero(yb)
    # sorted needles: searchsorted walks the haystack once instead of jumping at random
    order = np.argsort(p[pos_idx], kind="stable")
    pos_p, pos_blk = p[pos_idx][order], block[pos_idx][order]
    for b, negs in enumerate(neg_sorted):
        if negs.size == 0 or pos_p.size == 0:
            continue
        lo = np.searchsorted(negs, pos_p, side="left")
        hi = np.searchsorted(negs, pos_p, side="right")
        m[:, b] = np.bincount(pos_blk, weights=lo + 0.5 * (hi - lo), minlength=n_blocks)
    stats["auc_m"] = m
    return stats


def multiclass_block_stats(
    y: np.ndarray, proba: np.ndarray, block: np.ndarray, n_blocks: int
) -> dict[str, np.ndarray]:
    """Per-block statistics of the multiclass metrics: sums as for binary, and per-class
    confusion counts as n_blocks × K matrices (a resample's totals are ``w @ m``)."""
    k = proba.shape[1]
    yi = y.astype(np.int64)
    pred = np.argmax(proba, axis=1)
    p_true = np.clip(proba[np.arange(len(yi)), yi], _EPS, 1.0)

    def s(v: np.ndarray) -> np.ndarray:
        return np.bincount(block, weights=v, minlength=n_blocks)

    def per_class(cls: np.ndarray, keep: np.ndarray) -> np.ndarray:
        flat = np.bincount(block[keep] * k + cls[keep], minlength=n_blocks * k)
        return flat.reshape(n_blocks, k).astype(np.float64)

    hit = pred == yi
    return {
        "n": s(np.ones(len(yi))),
        "correct": s(hit.astype(np.float64)),
        "ll": s(-np.log(p_true)),
        "mc_tp": per_class(yi, hit),
        "mc_fp": per_class(pred, ~hit),
        "mc_fn": per_class(yi, ~hit),
    }


def multiclass_from_totals(tot: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """accuracy, macro-F1, log loss from a resample's totals (``mc_*``: R × K).

    Macro-F1 averages the F1 of the classes that occur among the labels or the predictions of
    the events selected (scikit-learn's ``f1_score(average="macro")``).
    """
    n = tot["n"]
    tp, fp, fn = tot["mc_tp"], tot["mc_fp"], tot["mc_fn"]
    den = 2 * tp + fp + fn
    present = den > 0
    f1 = np.where(present, 2 * tp / np.where(present, den, 1.0), 0.0)
    return {
        "accuracy": tot["correct"] / n,
        "macro_f1": f1.sum(axis=1) / present.sum(axis=1),
        "log_loss": tot["ll"] / n,
    }


def class_proba(d: pl.DataFrame) -> np.ndarray:
    """The ``proba`` list column of multiclass predictions as an events × K matrix."""
    if "proba" not in d.columns:
        raise MetricError(
            "multiclass predictions lack the 'proba' column (class probabilities); the run "
            "directory was written by an incompatible rtml: rerun `rtml compare`."
        )
    col = d["proba"]
    if d.height == 0:
        return np.zeros((0, 1))
    k = max(int(np.max(col.list.len().fill_null(0).to_numpy())), 1)
    return col.list.to_array(k).to_numpy().astype(np.float64)


def regression_block_stats(
    y: np.ndarray, p: np.ndarray, block: np.ndarray, n_blocks: int
) -> dict[str, np.ndarray]:
    e = p - y

    def s(v: np.ndarray) -> np.ndarray:
        return np.bincount(block, weights=v, minlength=n_blocks)

    return {
        "n": s(np.ones_like(y)),
        "abs": s(np.abs(e)),
        "sq": s(e * e),
        "y": s(y),
        "y2": s(y * y),
    }


def metrics_from_stats(
    stats: dict[str, np.ndarray], w: np.ndarray, task: str
) -> dict[str, np.ndarray]:
    """Every metric for each weight vector (rows of ``w``: shape (R, B) → arrays of shape (R,)).

    Undefined values (no positives, one class, zero variance) are NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        tot = {k: w @ v for k, v in stats.items() if k != "auc_m"}
        n = tot["n"]
        if task == "multiclass":
            return multiclass_from_totals(tot)
        if task == "binary":
            mm = stats["auc_m"]
            auc_num = np.einsum("ra,ab,rb->r", w, mm, w)
            f1_den = 2 * tot["tp"] + tot["fp"] + tot["fn"]
            return {
                "accuracy": tot["correct"] / n,
                "log_loss": tot["ll"] / n,
                "auc": np.where(
                    (tot["pos"] > 0) & (tot["neg"] > 0), auc_num / (tot["pos"] * tot["neg"]), np.nan
                ),
                "f1": np.where(f1_den > 0, 2 * tot["tp"] / f1_den, np.nan),
                "brier": tot["sq"] / n,
            }
        sst = tot["y2"] - tot["y"] ** 2 / n
        return {
            "mae": tot["abs"] / n,
            "rmse": np.sqrt(tot["sq"] / n),
            "r2": np.where(sst > 1e-12 * np.maximum(tot["y2"], 1.0), 1 - tot["sq"] / sst, np.nan),
        }


def undefined_reason(metric: str, stats: dict[str, np.ndarray], w: np.ndarray, task: str) -> str:
    """Why a metric is undefined for the events selected by weights ``w`` (one row)."""
    n = float(w @ stats["n"])
    if n == 0:
        return "no scored events with a label"
    if task == "binary":
        pos, neg = float(w @ stats["pos"]), float(w @ stats["neg"])
        if metric == "auc":
            which = "positive" if pos == 0 else "negative"
            return f"ROC AUC needs both classes; the scored events hold no {which} label"
        if metric == "f1":
            return "F1 is undefined: no positive labels and no positive predictions"
        return f"{metric} is undefined ({int(pos)} positive, {int(neg)} negative labels)"
    return "R² is undefined: the labels have zero variance" if metric == "r2" else "undefined"


def block_stats_by_group(
    d: pl.DataFrame, group: np.ndarray, n_groups: int, task: str
) -> dict[str, np.ndarray]:
    """Sufficient statistics of ``d`` (a strategy's labelled predictions) by an integer group."""
    y = d["y"].cast(pl.Float64).to_numpy()
    p = d["score"].cast(pl.Float64).to_numpy()
    g = group.astype(np.int64)
    if task == "multiclass":
        return multiclass_block_stats(y, class_proba(d), g, n_groups)
    if task == "binary":
        pred = d["pred"].cast(pl.Float64).fill_null(0.0).to_numpy()
        return binary_block_stats(y, p, pred, g, n_groups)
    return regression_block_stats(y, p, g, n_groups)
