"""Naive references scored next to every strategy: ``persistence`` and ``prior``.

A model that cannot beat "the same as last time" is not worth streaming, so every run scores two
references that need no model, under the same label-arrival rule as the strategies: the
reference for an event at time ``t`` knows exactly the labels that arrived strictly before ``t``
(docs/semantics.md, "the one rule").

* ``persistence`` — the most recently arrived label of the event's entity (its key); if the entity
  has no arrived label yet (or the run has no key, or the key is null), the most recently arrived
  label of the whole table. "Most recently arrived" is the largest arrival time; labels arriving
  at the same instant are ordered as the table orders their rows. Binary: the label itself as the
  score (0 or 1); regression: the value.
* ``prior`` — the running rate of the positive class (binary) or the running mean (regression) of
  every label arrived before ``t``.

Both are vectorised (one sort, one cumulative pass) and cost nothing next to a model.

>>> import numpy as np
>>> t = np.array([0, 10, 20, 30, 40])
>>> l = np.array([5, 35, 25, NO_LABEL, 45])   # row 1's label arrives late, row 3 has none
>>> y = np.array([1.0, 0.0, 1.0, np.nan, 0.0])
>>> refs = naive_scores(t, l, y, s0=2, task="binary")
>>> refs["persistence"].tolist()  # at t=20 only row 0's label (arrived 5) is known
[1.0, 1.0, 0.0]
>>> refs["prior"].tolist()        # 1/1, then labels 1 and 1 (5, 25), then 1, 1, 0
[1.0, 1.0, 0.6666666666666666]
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rtml_cli.relevance import REFERENCE_NAMES
from rtml_cli.strategies import NO_LABEL, SimData, StrategyResult

#: what a binary reference says before any label has arrived: no information either way
_UNINFORMED_BINARY = 0.5


def naive_scores(
    t: np.ndarray,
    l: np.ndarray,  # noqa: E741 (l_i as in docs/semantics.md)
    y: np.ndarray,
    *,
    s0: int,
    task: str,
    keys: np.ndarray | None = None,
    n_classes: int = 0,
) -> dict[str, np.ndarray]:
    """The two references' scores for the scored events ``s0 ..``.

    Parameters
    ----------
    t : event times (µs), sorted ascending.
    l : label arrival times (µs), ``NO_LABEL`` where the label is null.
    y : labels as float (binary 0/1, multiclass the class code).
    s0 : index of the first scored event.
    task : ``binary``, ``multiclass`` or ``regression``.
    keys : optional integer entity code per row; a negative code means "no entity" (null key).
    n_classes : K of a multiclass label; the scores are then events × K class probabilities
        (persistence: all the probability on the latest class; prior: the running class shares).
    """
    t = np.asarray(t, dtype=np.int64)
    l = np.asarray(l, dtype=np.int64)  # noqa: E741
    y = np.asarray(y, dtype=float)
    ts = t[s0:]
    labelled = np.flatnonzero(l != NO_LABEL)
    # arrival order; ties keep table order, so the later row is the "latest"
    order = labelled[np.argsort(l[labelled], kind="stable")]
    arrived = np.searchsorted(l[order], ts, "left")  # labels with l < t, per scored event
    none = arrived == 0
    latest = np.full(len(ts), np.nan)
    latest[~none] = y[order][arrived[~none] - 1]
    if keys is not None:
        own = _latest_of_entity(ts, l, y, np.asarray(keys, dtype=np.int64), s0)
        latest = np.where(np.isnan(own), latest, own)
    if task == "multiclass":
        onehot = np.zeros((len(order), n_classes))
        onehot[np.arange(len(order)), y[order].astype(np.int64)] = 1.0
        csum = np.vstack([np.zeros((1, n_classes)), np.cumsum(onehot, axis=0)])
        prior = csum[arrived] / np.maximum(arrived, 1)[:, None]
        persistence = np.zeros((len(ts), n_classes))
        persistence[~none, latest[~none].astype(np.int64)] = 1.0
        prior[none] = persistence[none] = 1.0 / n_classes  # nothing known: every class alike
        return {"persistence": persistence, "prior": prior}
    fallback = _UNINFORMED_BINARY if task == "binary" else 0.0
    csum1 = np.concatenate([[0.0], np.cumsum(y[order])])
    prior1 = np.where(none, fallback, csum1[arrived] / np.maximum(arrived, 1))
    return {"persistence": np.where(none, fallback, latest), "prior": prior1}


def reference_results(data: SimData, keys: np.ndarray | None) -> list[StrategyResult]:
    """The references as results the run directory and the metrics take like a strategy's.

    They use no features and no model: feature and model ages are 0, no event is a cold start,
    and nothing is timed (a lookup costs nothing worth measuring).
    """
    s0 = data.s0
    ts = data.t[s0:]
    scores = naive_scores(
        data.t, data.l, data.y, s0=s0, task=data.task, keys=keys, n_classes=data.n_classes
    )
    out = []
    for name in REFERENCE_NAMES:
        score, proba = scores[name], None
        if data.task == "multiclass":
            proba = score
            pred = np.argmax(proba, axis=1).astype(np.float64)
            score = np.take_along_axis(proba, pred.astype(np.int64)[:, None], axis=1)[:, 0]
        elif data.task == "binary":
            pred = (score > 0.5).astype(np.float64)  # the strategies' rule
        else:
            pred = score.copy()
        out.append(
            StrategyResult(
                name=name,
                kind="reference",
                score=score,
                proba=proba,
                pred=pred,
                model_version=np.zeros(len(ts), dtype=np.int64),
                model_time=ts.copy(),
                features_time=ts.copy(),
                feature_age=np.zeros(len(ts), dtype=np.int64),
                cold_start=np.zeros(len(ts), dtype=bool),
                calls={},
                warnings=[],
                fits=[],
            )
        )
    return out


def entity_codes(frame: pl.DataFrame, key: str | None) -> np.ndarray | None:
    """An integer code per row for the entity column (−1 where it is null), or None."""
    if key is None or key not in frame.columns:
        return None
    col = frame[key]
    codes = col.rank("dense").cast(pl.Int64).fill_null(0).to_numpy() - 1
    return np.asarray(codes, dtype=np.int64)


def _latest_of_entity(
    ts: np.ndarray,
    l: np.ndarray,  # noqa: E741
    y: np.ndarray,
    keys: np.ndarray,
    s0: int,
) -> np.ndarray:
    """Per scored event, the latest label of its entity arrived strictly before it (NaN if none).

    Events and label arrivals are merged in one order: by entity, then time, then events before
    labels at the same instant (a label arriving at ``t`` is not known at ``t``), then table
    order. The latest label before a position is then a running maximum of label positions.
    """
    labelled = np.flatnonzero((l != NO_LABEL) & (keys >= 0))
    ev_keys = keys[s0:]
    n_ev, n_lab = len(ts), len(labelled)
    key = np.concatenate([ev_keys, keys[labelled]])
    when = np.concatenate([ts, l[labelled]])
    is_label = np.concatenate([np.zeros(n_ev, dtype=np.int8), np.ones(n_lab, dtype=np.int8)])
    row = np.concatenate([np.arange(s0, s0 + n_ev), labelled])
    perm = np.lexsort((row, is_label, when, key))  # the last key is the primary one
    pos = np.arange(len(perm))
    last = np.maximum.accumulate(np.where(is_label[perm] == 1, pos, -1))
    found = last >= 0
    same_entity = found & (key[perm][np.maximum(last, 0)] == key[perm])
    values = np.concatenate([np.full(n_ev, np.nan), y[labelled]])
    latest = np.where(same_entity, values[perm][np.maximum(last, 0)], np.nan)
    out = np.full(n_ev, np.nan)
    is_event = is_label[perm] == 0
    out[perm[is_event]] = latest[is_event]
    out[ev_keys < 0] = np.nan
    return out
