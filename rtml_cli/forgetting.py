"""Catastrophic forgetting, measured: how well does the final model still do on the past?

A model that keeps changing (``online`` after every label, ``batch``/``stream`` at every retrain)
can adapt to drift and, on the way, lose what it knew about older patterns. To see that, the
engine keeps a **snapshot** of each strategy's model at the end of every time block (the report's
buckets, aligned on the epoch grid) and scores each snapshot on the events of every block up to
its own, with the features those events were served with. That gives a lower-triangular matrix
``Q[s, b]`` (snapshot ``s``, block ``b ≤ s``) of the run's headline metric.

The **forgetting** of block ``b`` is the best quality any snapshot ever had on ``b`` minus the
final snapshot's quality on ``b`` (signed so that a positive number is always a loss, also for
metrics where lower is better). The report gives its mean and maximum over the blocks before the
last, and the matrix itself.

Cost is bounded: each block contributes at most ``per_block`` labelled events (a uniform, seeded
sample when it has more; the report says so), so a run with ``B`` blocks makes ``B (B + 1) / 2``
batched predictions of at most ``per_block`` rows each.

Which model is "the model at the end of block k": the one that would predict an event at the
block's end time ``e_k``. A scheduled strategy's model fitted at cutoff ``c`` serves events with
``t >= c``; an online update applied at ``u`` serves events with ``t > u`` (an event at the same
instant as an update is predicted before it, docs/semantics.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from copy import deepcopy
from typing import Any, Literal

import numpy as np

#: labelled events per block that the snapshots are scored on (a seeded sample beyond that)
DEFAULT_PER_BLOCK = 1000


@dataclasses.dataclass
class SnapshotProbe:
    """Collects one model per block end while a strategy runs.

    The engine calls :meth:`capture` right before its model changes, with the instant the change
    takes effect; every block end the current model still serves gets that model (a copy, since
    an online model is then changed in place).
    """

    edges: np.ndarray  # block end times, µs, ascending
    models: list[Any] = dataclasses.field(default_factory=list)

    def capture(self, model: Any, *, change_at: float, inclusive: bool, copy: bool = True) -> None:
        """Record ``model`` for every pending block end it serves.

        ``change_at`` is when the next model takes over; ``inclusive`` says whether an event at
        exactly ``change_at`` is still served by ``model`` (online updates: yes; retrains: no).
        ``copy=False`` keeps the object itself, for a model nobody changes afterwards (a fit).
        """
        k = len(self.models)
        side: Literal["left", "right"] = "right" if inclusive else "left"
        if math.isfinite(change_at):
            upto = int(np.searchsorted(self.edges, change_at, side))
        else:
            upto = len(self.edges)
        if upto <= k:
            return
        kept = deepcopy(model) if copy else model
        self.models.extend([kept] * (upto - k))

    def finish(self, model: Any, *, copy: bool = True) -> None:
        """The model in use at the end of the run serves every block end left."""
        self.capture(model, change_at=math.inf, inclusive=True, copy=copy)


def block_edges(t_first: int, t_last: int, width_us: int) -> np.ndarray:
    """Ends of the epoch-aligned blocks covering ``[t_first, t_last]``.

    >>> block_edges(5, 25, 10).tolist()
    [10, 20, 30]
    """
    first = (t_first // width_us + 1) * width_us
    last = (t_last // width_us + 1) * width_us
    return np.arange(first, last + 1, width_us, dtype=np.int64)


def sample_blocks(
    t: np.ndarray,
    labelled: np.ndarray,
    edges: np.ndarray,
    width_us: int,
    *,
    per_block: int = DEFAULT_PER_BLOCK,
    seed: int = 0,
) -> list[np.ndarray]:
    """Row indexes of each block's labelled events, at most ``per_block`` (seeded, sorted).

    >>> [b.tolist() for b in sample_blocks(np.array([1, 5, 12, 19]), np.arange(4), np.array([10, 20]), 10)]
    [[0, 1], [2, 3]]
    """
    rng = np.random.default_rng(seed)
    out = []
    for hi in edges:
        lo = hi - width_us
        rows = labelled[(t[labelled] >= lo) & (t[labelled] < hi)]
        if len(rows) > per_block:
            rows = np.sort(rng.choice(rows, per_block, replace=False))
        out.append(rows)
    return out


def forgetting_matrix(
    models: list[Any],
    X: Any,
    y: np.ndarray,
    blocks: list[np.ndarray],
    quality: Callable[[np.ndarray, np.ndarray], float],
    score: Callable[[Any, Any], np.ndarray],
    *,
    higher_is_better: bool,
) -> dict[str, Any]:
    """``Q[s][b]`` for ``b <= s`` (None above the diagonal or where undefined), and the summary.

    ``score(model, X_rows)`` gives the scores the strategy would have served; ``quality(y, s)``
    the metric on them.
    """
    n = len(models)
    Q: list[list[float | None]] = [[None] * n for _ in range(n)]
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    every = np.concatenate(blocks) if blocks else np.array([], dtype=np.int64)
    for s, model in enumerate(models):
        if bounds[s + 1] == 0:
            continue
        # one call per snapshot over every block it may have forgotten (rows are independent)
        scores = score(model, X[every[: bounds[s + 1]]])
        for b in range(s + 1):
            lo, hi = bounds[b], bounds[b + 1]
            if hi == lo:
                continue
            value = quality(y[blocks[b]], scores[lo:hi])
            Q[s][b] = float(value) if math.isfinite(value) else None
    per_block: list[float | None] = []
    for b in range(n - 1):  # the last block cannot be forgotten yet
        seen = [q for s in range(b, n) if (q := Q[s][b]) is not None]
        final = Q[n - 1][b]
        if not seen or final is None:
            per_block.append(None)
            continue
        best = max(seen) if higher_is_better else min(seen)
        per_block.append(float(best - final) if higher_is_better else float(final - best))
    known = [f for f in per_block if f is not None]
    worst = int(np.argmax([-math.inf if f is None else f for f in per_block])) if known else None
    return {
        "matrix": Q,
        "per_block": per_block,
        "mean": float(np.mean(known)) if known else None,
        "max": float(max(known)) if known else None,
        "max_block": worst,
    }
