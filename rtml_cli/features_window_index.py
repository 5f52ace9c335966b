"""The window index: where each query time falls among the rows of its key.

A row *j* contributes to the query times in ``(a_j, e_j]``, where ``a_j`` is when its value
became known (``t_j``, or the label's arrival ``l_j``) and ``e_j = t_j + window``. Sorting the
rows of every key by ``a`` and by ``e`` and locating each query ``q`` in both orders (strict
as-of lookups by key) turns every decomposable aggregate into ``prefix(a < q) - prefix(e < q)``
(:func:`window_sum`). :func:`build_window_index` does that work once per (key, rows, window);
features sharing an :func:`index_signature` share it. Keys become dense integer codes
(:class:`KeyCodes`), and (key, time) pairs single int64 codes (:func:`composite_codes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.features_spec import FeatureSpec

#: Column of one constant key: features without a key aggregate over the whole table.
GLOBAL_KEY = "rtml_global_key"


@dataclasses.dataclass
class KeyCodes:
    """Dense integer codes of one key tuple over the time-sorted rows (-1 where a key is null)."""

    code: np.ndarray
    ok: np.ndarray
    ncodes: int
    #: ``code * span + (time - lo)`` orders (key, time) for every time in [lo, lo + span); None
    #: when that could overflow int64 (then :func:`composite_codes` ranks the times instead).
    span: int | None = None
    lo: int = 0
    _orders: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    _sorted: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def comp(self, code: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The (key, time) code of each pair (needs ``span``)."""
        assert self.span is not None
        return code * self.span + (times - self.lo)

    def sorted_code(self, name: str, order: np.ndarray) -> np.ndarray:
        """``code`` in ``order`` (by "t" or "q"); cached."""
        if "code_" + name not in self._sorted:
            self._sorted["code_" + name] = self.code[order]
        return self._sorted["code_" + name]

    def sorted_comp(self, name: str, times: np.ndarray, order: np.ndarray) -> np.ndarray:
        """``comp`` of every row, in ``order``; cached per time column."""
        if name not in self._sorted:
            self._sorted[name] = self.comp(self.code[order], times[order])
        return self._sorted[name]

    def order(self, name: str, times: np.ndarray) -> np.ndarray:
        """Row positions sorted by (code, times), stable; computed once per key and time column."""
        if name not in self._orders:
            (c,) = composite_codes([(self.code, times)])
            self._orders[name] = np.argsort(c, kind="stable")
        return self._orders[name]


def key_codes(base: pl.DataFrame, keys: list[str], bounds: tuple[int, int]) -> KeyCodes:
    kc = dense_key_codes(base, keys)
    lo, hi = bounds
    span = hi - lo + 1
    if kc.ncodes * span < 2**62:
        kc.span, kc.lo = span, lo
    return kc


def dense_key_codes(base: pl.DataFrame, keys: list[str]) -> KeyCodes:
    n = base.height
    if keys == [GLOBAL_KEY]:
        return KeyCodes(np.zeros(n, np.int64), np.ones(n, bool), 1)
    ok = (
        base.select(pl.all_horizontal([pl.col(k).is_not_null() for k in keys]))
        .to_series()
        .to_numpy()
    )
    expr = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    code = base.select(expr.rank("dense")).to_series().fill_null(1).cast(pl.Int64).to_numpy() - 1
    code = np.where(ok, code, -1)
    return KeyCodes(code, ok, int(code.max()) + 1 if n else 0)


def time_bounds(
    base: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    t_us: np.ndarray,
    q_us: np.ndarray,
    label_col: str | None,
    arrival_col: str,
) -> tuple[int, int]:
    """Smallest and largest time any stream or query can hold (for the (key, time) codes)."""
    if not len(t_us):
        return 0, 0
    lo = min(int(t_us.min()), int(q_us.min()))
    hi = max(int(t_us.max()) + max((s.window_us for s in specs), default=0), int(q_us.max()))
    if any(s.column == label_col for s in specs):
        arr = base[arrival_col].cast(pl.Datetime("us")).dt.epoch("us")
        if arr.null_count() < len(arr):
            lo = min(lo, int(arr.min()))  # type: ignore[arg-type]
            hi = max(hi, int(arr.max()))  # type: ignore[arg-type]
    return lo, hi


def composite_codes(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Order-preserving int64 codes of (key code, time) pairs: ``code * span + time``.

    When that could overflow, times are first replaced by their rank among all times given.
    """
    times = [t for _, t in pairs if t.size]
    if not times:
        return [np.zeros(0, np.int64) for _ in pairs]
    lo = min(int(t.min()) for t in times)
    hi = max(int(t.max()) for t in times)
    ncodes = max((int(c.max()) for c, _ in pairs if c.size), default=0) + 1
    span = hi - lo + 1
    if ncodes * span < 2**62:
        return [c * span + (t - lo) for c, t in pairs]
    allt = np.unique(np.concatenate(times))
    span = len(allt)
    return [c * span + np.searchsorted(allt, t) for c, t in pairs]


def prefix_sums(weights: np.ndarray, order: np.ndarray, dtype: Any) -> np.ndarray:
    """Cumulative sums of ``weights`` in ``order`` with a leading 0 (``out[k]`` = first k)."""
    out = np.zeros(len(order) + 1, dtype=dtype)
    np.cumsum(weights[order], dtype=dtype, out=out[1:])
    return out


def window_sum(weights: np.ndarray, win: WindowIndex, dtype: Any) -> np.ndarray:
    """Sum of ``weights`` over the rows active at each query: prefix(a < q) - prefix(e < q)."""
    total, _ = window_sum_with_magnitude(weights, win, dtype)
    return total.astype(np.float64 if dtype is not np.int64 else np.int64)


def window_sum_with_magnitude(
    weights: np.ndarray, win: WindowIndex, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_sum` in ``dtype``, with the magnitude of the two prefixes it subtracts.

    ``weights`` holds one value per contributing row (``win.rows``). The magnitude bounds the
    rounding error of the difference (about eps x magnitude), which a caller needs to tell a
    true small result from cancellation noise.
    """
    za = prefix_sums(weights, win.by_known, dtype)
    ze = za if win.by_end is win.by_known else prefix_sums(weights, win.by_end, dtype)
    a, e = za[win.known_before], ze[win.ended_before]
    return a - e, np.abs(a) + np.abs(e)


@dataclasses.dataclass
class WindowIndex:
    """Where each query falls in the known/expired streams of one (key, rows, window)."""

    rows: np.ndarray  # contributing row positions (time order)
    row_codes: np.ndarray  # their key codes
    by_known: np.ndarray  # rows (as indexes into ``rows``) by (key, known time)
    by_end: np.ndarray  # rows by (key, end of window)
    codes_by_known: np.ndarray  # row_codes in ``by_known`` order
    known_before: np.ndarray  # per query: rows of keys before it, or of its key known before q
    ended_before: np.ndarray  # per query: same, with the window ended before q
    window_count: np.ndarray  # known_before - ended_before: rows in the window
    newest: np.ndarray  # per query: position of the newest known row of its key
    in_window: np.ndarray  # that row is in the window (else nothing contributes)
    age: pl.Series  # t - time of that row, null when nothing contributes


def build_window_index(
    base: pl.DataFrame,
    kc: KeyCodes,
    src: pl.Series | None,
    *,
    label: bool,
    arrival_col: str,
    t_us: np.ndarray,
    q_us: np.ndarray,
    w: int,
) -> WindowIndex:
    n = base.height
    ok = kc.ok.copy()
    if src is not None:
        ok &= src.is_not_null().to_numpy()
    if label:
        arr = base[arrival_col].cast(pl.Datetime("us")).dt.epoch("us")
        ok &= arr.is_not_null().to_numpy()
        a_full = arr.fill_null(0).to_numpy()
    else:
        a_full = t_us
    e_full = t_us + w
    # A label arriving after its window closed never counts anywhere.
    if label:
        ok &= a_full < e_full
    rows = np.flatnonzero(ok)
    every = rows.size == n
    row_codes = kc.code if every else kc.code[rows]
    # Orders by (key, time) are shared by every feature of the same key: e = t + w sorts like t,
    # and so does a = t for a plain column; only a delayed label needs its own sort.
    by_t = kc.order("t", t_us)
    by_end = by_t if every else np.searchsorted(rows, by_t[ok[by_t]])
    by_q = by_t if q_us is t_us else kc.order("q", q_us)
    if kc.span is not None:
        cq_s = kc.sorted_comp("q", q_us, by_q)
        if not label and every:
            a_s = kc.sorted_comp("t", t_us, by_t)
            e_s = a_s + w
            by_known = by_end
        else:
            ca = kc.comp(row_codes, a_full[rows])
            by_known = np.argsort(ca, kind="stable") if label else by_end
            a_s = ca[by_known]
            e_s = kc.comp(row_codes, e_full[rows])[by_end]
    else:
        ca, ce, cq = composite_codes(
            [(row_codes, a_full[rows]), (row_codes, e_full[rows]), (kc.code, q_us)]
        )
        by_known = np.argsort(ca, kind="stable") if label else by_end
        a_s, e_s, cq_s = ca[by_known], ce[by_end], cq[by_q]
    # Rows of other keys fall on both sides of the subtraction and cancel; within the key this
    # counts rows known before q (a < q) minus rows whose window ended before q (e < q).
    known_before = np.empty(n, np.int64)
    ended_before = np.empty(n, np.int64)
    ia_s = np.searchsorted(a_s, cq_s, "left")
    known_before[by_q] = ia_s
    ended_before[by_q] = np.searchsorted(e_s, cq_s, "left")

    # The newest row known before q: per-key running max of the row position, made global by
    # adding code * n (codes are non-decreasing in this order). Looked up in query order, where
    # the positions are monotone (cache-friendly), then scattered back.
    codes_by_known = (
        kc.sorted_code("t", by_t) if (every and by_known is by_t) else row_codes[by_known]
    )
    newest = np.zeros(n, np.int64)
    valid = np.zeros(n, bool)
    if rows.size:
        cm = np.maximum.accumulate(codes_by_known * n + (by_known if every else rows[by_known]))
        j = ia_s - 1
        jj = np.clip(j, 0, None)
        code_q = kc.sorted_code("q", by_q)
        v_s = (j >= 0) & (codes_by_known[jj] == code_q)
        valid[by_q] = v_s
        newest[by_q] = np.where(v_s, cm[jj] - code_q * n, 0)
    in_window = valid & (t_us[newest] >= q_us - w) & kc.ok
    age = pl.Series(np.where(in_window, t_us - t_us[newest], 0)).set(pl.Series(~in_window), None)
    return WindowIndex(
        rows,
        row_codes,
        by_known,
        by_end,
        codes_by_known,
        known_before,
        ended_before,
        known_before - ended_before,
        newest,
        in_window,
        age,
    )


def index_signature(base: pl.DataFrame, spec: FeatureSpec, label: bool) -> tuple[Any, ...]:
    """Features with equal signatures have the same rows, key and window (so the same index)."""
    keys = tuple(spec.key) if spec.key else (GLOBAL_KEY,)
    plain = spec.column == "*" or (not label and base[spec.column].null_count() == 0)
    return (keys, "*" if plain else spec.column, label, spec.window_us)
