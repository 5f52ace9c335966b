"""The forgetting section of ``metrics.json``: snapshots of each changing model, scored on the past.

Every changing strategy keeps its snapshots while it runs: ``online`` copies its model at each
block end (``strategies.snapshot_probe``), ``batch``/``stream`` keep the fit serving each block
end. When the spans of a scheduled strategy ran in other processes (``--jobs``, ``--dask``), its
snapshots are refitted here instead, once per distinct cutoff: fits are seeded by their cutoff,
so they are the same models. ``static`` never changes and has no entry. The matrix and its
reading are in :mod:`rtml_cli.forgetting`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from rtml_cli.config import StrategySpec
from rtml_cli.forgetting import DEFAULT_PER_BLOCK, forgetting_matrix, sample_blocks
from rtml_cli.models import ModelBuilder
from rtml_cli.spans import make_sim
from rtml_cli.strategies import (
    NO_LABEL,
    SimData,
    StrategyResult,
    View,
    _Scorer,
    sim_context,
    snapshot_probe,
)

_HEADLINE = {
    "binary": ("auc", True),
    "multiclass": ("accuracy", True),
    "regression": ("mae", False),
}


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) identity, ties averaged; NaN with one class.

    Cheaper than scikit-learn's per call, which matters for a matrix of hundreds of cells.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s))
    # average rank of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _quality(task: str) -> Any:
    def accuracy(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(y.astype(np.int64) == np.argmax(p, axis=1)))

    def mae(y: np.ndarray, s: np.ndarray) -> float:
        return float(np.mean(np.abs(y - s)))

    return {"binary": roc_auc, "multiclass": accuracy, "regression": mae}[task]


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat()


def _scheduled_snapshots(
    spec: StrategySpec,
    data: SimData,
    view: View,
    builder: ModelBuilder,
    result: StrategyResult,
    edges: np.ndarray,
    fast: bool,
) -> list[Any]:
    """The model serving each block end: the latest fit made at or before it, refitted."""
    cutoffs = np.array(sorted({c for what, c, _ in result.fits if what == "retrain"}), np.int64)
    if len(cutoffs) == 0:
        return []
    which = np.searchsorted(cutoffs, edges, "right") - 1  # a fit at c serves t >= c
    sim = make_sim(spec, data, view, builder, np.zeros(len(data.t) - data.s0, bool))
    models: dict[int, Any] = {}
    out = []
    with sim_context(spec, view, builder, fast=fast):
        for i in which:
            c = int(cutoffs[max(int(i), 0)])
            if c not in models:
                models[c] = sim.fit(c, first=c == data.W, warn=False, record=False)
            out.append(models[c])
    return out


def forgetting_section(
    specs: list[StrategySpec],
    views: list[View],
    data: SimData,
    builder: ModelBuilder,
    results: list[StrategyResult],
    *,
    fast: bool = True,
    per_block: int = DEFAULT_PER_BLOCK,
    seed: int | None = None,
) -> dict[str, Any]:
    """``{strategy: {...}}`` for every strategy whose model changes (schema in docs/semantics.md)."""
    probe = snapshot_probe(data)
    if probe is None:
        return {}
    edges = probe.edges
    s0 = data.s0
    labelled = s0 + np.flatnonzero(data.l[s0:] != NO_LABEL)
    seed = builder.seed if seed is None else seed  # the run's seed, in any process
    blocks = sample_blocks(data.t, labelled, edges, data.block_us, per_block=per_block, seed=seed)
    metric, higher = _HEADLINE[data.task]
    quality = _quality(data.task)
    sampled = any(int(((data.t[labelled] < e) & (data.t[labelled] >= e - data.block_us)).sum())
                  > per_block for e in edges)  # fmt: skip
    out: dict[str, Any] = {}
    for spec, view, res in zip(specs, views, results, strict=True):
        if spec.kind == "static":
            continue  # one model for the whole run
        if res.forgetting is not None:  # computed in the worker process that ran it
            out[spec.name] = res.forgetting
            continue
        if res.snapshots is not None:
            models = res.snapshots  # kept while the strategy ran
        elif spec.kind in ("batch", "stream"):  # spans run in other processes: refit them here
            models = _scheduled_snapshots(spec, data, view, builder, res, edges, fast)
        else:
            continue
        if len(models) != len(edges) or any(m is None for m in models):
            continue

        def score(model: Any, X: Any, name: str = spec.name) -> np.ndarray:
            scorer = _Scorer(model, data.task, what=name, n_classes=data.n_classes)
            return scorer(X, int(edges[-1]))

        with sim_context(spec, view, builder, fast=fast):
            found = forgetting_matrix(
                models, view.X, data.y, blocks, quality, score, higher_is_better=higher
            )
        out[spec.name] = {
            "metric": metric,
            "higher_is_better": higher,
            "block_ends": [_iso(int(e)) for e in edges],
            "sampled_per_block": int(per_block) if sampled else None,
            **found,
        }
    return out
