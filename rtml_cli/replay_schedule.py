"""Pacing: when each message is due (:class:`Schedule`), how late it went out
(:class:`LatencyHistogram`), and the seeded delays of ``--disorder`` (:func:`disorder_delays`).

Pacing is scheduled against the start: the target wall time of message *k* is computed from the
start of the replay, so lateness does not add up over a long replay.
"""

from __future__ import annotations

import math

import numpy as np


class LatencyHistogram:
    """Log-bucketed histogram of non-negative durations in ns (1 % relative precision).

    Memory is fixed whatever the number of samples; the maximum is kept exactly.

    Examples
    --------
    >>> h = LatencyHistogram()
    >>> h.record(np.array([1_000, 2_000, 3_000]))
    >>> h.count, h.max_ns
    (3, 3000)
    """

    _GROWTH = math.log(1.01)
    _BINS = 3_000  # 1.01**3000 us ~ 10**13 us: any lateness fits

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS, dtype=np.int64)
        self.count = 0
        self.max_ns = 0

    def record(self, values_ns: np.ndarray) -> None:
        """Add samples (negative values, i.e. early sends, count as 0)."""
        if len(values_ns) == 0:
            return
        v = np.maximum(np.asarray(values_ns, dtype=np.float64), 0.0)
        idx = np.minimum((np.log1p(v / 1_000.0) / self._GROWTH).astype(np.int64), self._BINS - 1)
        self.counts += np.bincount(idx, minlength=self._BINS)
        self.count += len(v)
        self.max_ns = max(self.max_ns, int(v.max()))

    def percentile(self, q: float) -> float:
        """The q-th percentile in ns (bucket midpoint, capped at the exact maximum)."""
        if self.count == 0:
            return float("nan")
        rank = max(1, math.ceil(q / 100.0 * self.count))
        b = int(np.searchsorted(np.cumsum(self.counts), rank))
        mid_us = math.expm1((b + 0.5) * self._GROWTH)
        return min(mid_us * 1_000.0, float(self.max_ns))


class Schedule:
    """Target send offsets (ns after the start) of successive messages.

    ``speed``: message at event time ``t`` is due ``(t - t_first) / speed`` after the start, where
    idle gaps between consecutive messages longer than ``max_gap_us`` count as ``max_gap_us``.
    ``rate``: message ``k`` is due ``k / rate`` seconds after the start. State carries over between
    calls, so feeding the stream in chunks gives the same offsets as feeding it at once.

    Examples
    --------
    >>> s = Schedule(speed=2.0)
    >>> s.offsets_ns(np.array([0, 1_000_000, 3_000_000])).tolist()
    [0, 500000000, 1500000000]
    """

    def __init__(
        self,
        *,
        speed: float | None = None,
        rate: float | None = None,
        max_gap_us: int | None = None,
    ) -> None:
        self.speed = speed
        self.rate = rate
        self.max_gap_us = max_gap_us
        self._index = 0
        self._last_us: int | None = None
        self._elapsed_us = 0  # compressed event time since the first message

    def offsets_ns(self, times_us: np.ndarray) -> np.ndarray:
        """Offsets for the next ``len(times_us)`` messages (event times in µs, non-decreasing)."""
        n = len(times_us)
        if self.rate is not None:
            k = np.arange(self._index, self._index + n, dtype=np.float64)
            self._index += n
            return np.round(k * (1e9 / self.rate)).astype(np.int64)
        assert self.speed is not None
        t = np.asarray(times_us, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        prev = t[0] if self._last_us is None else self._last_us
        gaps = np.diff(t, prepend=prev)
        if self.max_gap_us is not None:
            gaps = np.minimum(gaps, self.max_gap_us)
        elapsed = self._elapsed_us + np.cumsum(gaps)
        self._elapsed_us = int(elapsed[-1])
        self._last_us = int(t[-1])
        self._index += n
        return np.round(elapsed.astype(np.float64) * (1e3 / self.speed)).astype(np.int64)


def disorder_delays(event_ids: np.ndarray, *, disorder_us: int, seed: int) -> np.ndarray:
    """Seeded delays in ``[0, disorder_us]`` µs, one per event id.

    A counter-based hash of (seed, event id), so an event gets the same delay however the table
    is chunked or filtered (``--start``/``--limit``): reproducible and stable.
    """
    # splitmix64 of (event id + seed * golden ratio): overflow is the point of it.
    with np.errstate(over="ignore"):
        x = np.asarray(event_ids, dtype=np.uint64) + np.uint64(
            seed & 0xFFFFFFFFFFFFFFFF
        ) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(disorder_us + 1)).astype(np.int64)
