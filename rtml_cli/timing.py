"""Timing of real calls (``perf_counter_ns`` wall, ``thread_time_ns`` CPU) and summaries.

Timing is measured, not modelled (docs/semantics.md, Performance principles): every retrain, ``partial_fit``, batch scoring job
and sampled single-row predict is a real call timed here. :class:`CallLog` keeps one row per
call in growable numpy arrays so recording costs a few stores, not a dict per call.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

KINDS = ("predict", "update", "retrain", "score_job", "feature")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
NO_TIME = np.iinfo(np.int64).min

perf_ns = time.perf_counter_ns
cpu_ns = time.thread_time_ns


class CallLog:
    """Append-only log of timed calls: kind, wall ns, cpu ns, rows, event time (µs).

    Examples
    --------
    >>> log = CallLog()
    >>> log.add("retrain", 1500, 1200, 10, 0)
    >>> log.columns()["kind"]
    ['retrain']
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._a = np.zeros((capacity, 5), dtype=np.int64)
        self.n = 0

    def add(self, kind: str, wall: int, cpu: int, rows: int, t: int | None) -> None:
        """Record one call (``t`` = event time in µs, or ``None``)."""
        if self.n == len(self._a):
            self._a = np.concatenate([self._a, np.zeros_like(self._a)])
        self._a[self.n] = (_KIND_CODE[kind], wall, cpu, rows, NO_TIME if t is None else t)
        self.n += 1

    def extend(
        self, kind: str, wall: np.ndarray, cpu: np.ndarray, rows: np.ndarray, t: np.ndarray
    ) -> None:
        """Record many calls at once (arrays of equal length)."""
        m = len(wall)
        block = np.empty((m, 5), dtype=np.int64)
        block[:, 0] = _KIND_CODE[kind]
        block[:, 1] = wall
        block[:, 2] = cpu
        block[:, 3] = rows
        block[:, 4] = t
        need = self.n + m
        if need > len(self._a):
            grown = np.zeros((max(need, 2 * len(self._a)), 5), dtype=np.int64)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n : need] = block
        self.n = need

    def rows(self) -> np.ndarray:
        """The raw rows (kind code, wall, cpu, rows, t), to ship to another process."""
        return self._a[: self.n].copy()

    def extend_rows(self, rows: np.ndarray) -> None:
        """Append raw rows from :meth:`rows` of another log."""
        need = self.n + len(rows)
        if need > len(self._a):
            grown = np.zeros((max(need, 2 * len(self._a)), 5), dtype=np.int64)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n : need] = rows
        self.n = need

    def columns(self) -> dict[str, Any]:
        """Plain columns: kind (list of str), wall_ns, cpu_ns, rows, t (µs; NO_TIME = null)."""
        a = self._a[: self.n]
        return {
            "kind": [KINDS[k] for k in a[:, 0]],
            "wall_ns": a[:, 1].copy(),
            "cpu_ns": a[:, 2].copy(),
            "rows": a[:, 3].copy(),
            "t": a[:, 4].copy(),
        }


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """Exact p50/p90/p99/p99.9/max/mean of ``values`` (``None`` each when empty)."""
    keys = ("p50", "p90", "p99", "p99.9", "max", "mean")
    if len(values) == 0:
        return dict.fromkeys(keys)
    v = np.asarray(values, dtype=np.float64)
    q = np.percentile(v, [50, 90, 99, 99.9])
    return {
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "p99.9": float(q[3]),
        "max": float(v.max()),
        "mean": float(v.mean()),
    }
