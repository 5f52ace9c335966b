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

NO_LABEL = np.iinfo(np.int64).max  # the same sentinel as strategies.NO_LABEL

#: the names the references carry in predictions.parquet and metrics.json (reserved)
REFERENCE_NAMES = ("persistence", "prior")

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
) -> dict[str, np.ndarray]:
    """The two references' scores for the scored events ``s0 ..``.

    Parameters
    ----------
    t : event times (µs), sorted ascending.
    l : label arrival times (µs), ``NO_LABEL`` where the label is null.
    y : labels as float (binary 0/1).
    s0 : index of the first scored event.
    task : ``binary`` or ``regression``.
    keys : optional integer entity code per row; a negative code means "no entity" (null key).
    """
    t = np.asarray(t, dtype=np.int64)
    l = np.asarray(l, dtype=np.int64)  # noqa: E741
    y = np.asarray(y, dtype=float)
    ts = t[s0:]
    labelled = np.flatnonzero(l != NO_LABEL)
    # arrival order; ties keep table order, so the later row is the "latest"
    order = labelled[np.argsort(l[labelled], kind="stable")]
    arrived = np.searchsorted(l[order], ts, "left")  # labels with l < t, per scored event
    ys = y[order]
    csum = np.concatenate([[0.0], np.cumsum(ys)])
    fallback = _UNINFORMED_BINARY if task == "binary" else 0.0
    if len(order) == 0:
        ys = csum = np.array([fallback, fallback])  # nothing ever arrives: every event falls back
    none = arrived == 0
    safe = np.maximum(arrived, 1)
    prior = np.where(none, fallback, csum[safe] / safe)
    persistence = np.where(none, fallback, ys[safe - 1])
    if keys is not None:
        own = _latest_of_entity(ts, l, y, np.asarray(keys, dtype=np.int64), s0)
        persistence = np.where(np.isnan(own), persistence, own)
    return {"persistence": persistence.astype(float), "prior": prior.astype(float)}


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
