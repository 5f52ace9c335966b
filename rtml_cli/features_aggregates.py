"""The value of one windowed feature for every event, from its window index.

``count``, ``sum`` and ``mean`` are differences of prefix sums (:func:`window_sum`); ``std``
too, checked against cancellation and recomputed exactly where the prefix difference cannot
be trusted (:func:`window_std`); ``last`` is the newest known row; ``min``/``max`` use polars'
left-closed rolling windows (:func:`rolling_extreme`), ``count_distinct`` one active interval
per distinct value (:func:`window_count_distinct`); over the delayed label both use per-value
counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.errors import ConfigError
from rtml_cli.features_spec import MAX_LABEL_VALUES, NUMERIC_AGGS, FeatureSpec
from rtml_cli.features_window_index import (
    GLOBAL_KEY,
    KeyCodes,
    WindowIndex,
    build_window_index,
    composite_codes,
    index_signature,
    key_codes,
    window_sum,
    window_sum_with_magnitude,
)


def compute_windowed_feature(
    base: pl.DataFrame,
    spec: FeatureSpec,
    *,
    label: bool,
    arrival_col: str,
    codes_by_key: dict[tuple[str, ...], KeyCodes],
    indexes_by_signature: dict[tuple[Any, ...], WindowIndex],
    bounds: tuple[int, int],
    t_us: np.ndarray,
    q_us: np.ndarray,
) -> tuple[pl.Series, pl.Series]:
    """Value and age of one windowed feature for every row of ``base`` (time-sorted).

    ``label``: the feature aggregates the (delayed) label, known from ``arrival_col``.
    ``codes_by_key`` and ``indexes_by_signature`` cache the key codes and window indexes that
    features of the same key (and rows and window) share; ``bounds`` come from
    :func:`~rtml_cli.features_window_index.time_bounds`.
    ``t_us`` / ``q_us``: event and query times (the same array in the fresh view).
    """
    keys = list(spec.key) if spec.key else [GLOBAL_KEY]
    kc = codes_by_key.get(tuple(keys))
    if kc is None:
        kc = codes_by_key[tuple(keys)] = key_codes(base, keys, bounds)
    n = base.height
    w = spec.window_us
    agg = spec.agg

    if spec.column == "*":
        src = pl.Series(np.ones(n))
    else:
        src = base[spec.column]
        if src.dtype == pl.Boolean:
            src = src.cast(pl.Float64)
    # Features over the same rows, key and window share their index work (a column without
    # nulls has the same rows as "*").
    has_nulls = spec.column != "*" and src.null_count() > 0
    sig = index_signature(base, spec, label)
    win = indexes_by_signature.get(sig)
    if win is None:
        win = indexes_by_signature[sig] = build_window_index(
            base,
            kc,
            src if has_nulls else None,
            label=label,
            arrival_col=arrival_col,
            t_us=t_us,
            q_us=q_us,
            w=w,
        )
    rows, by_known, window_count = win.rows, win.by_known, win.window_count
    newest, in_window, age, codes_by_known, row_codes = (
        win.newest,
        win.in_window,
        win.age,
        win.codes_by_known,
        win.row_codes,
    )

    x = src.to_numpy()[rows] if agg in ("sum", "mean", "std") else None
    if agg == "count":
        value = pl.Series(window_count, dtype=pl.Int64)
    elif agg in ("sum", "mean", "std"):
        assert x is not None
        x = x.astype(np.float64)
        # Shift by the key's first known value so that sums of squares do not cancel badly.
        shift_code = np.zeros(max(kc.ncodes, 1))
        if rows.size:
            starts = np.flatnonzero(np.r_[True, codes_by_known[1:] != codes_by_known[:-1]])
            shift_code[codes_by_known[starts]] = x[by_known][starts]
        sx = x - shift_code[row_codes]
        # std needs the extra digits of long double (it subtracts large sums of squares).
        prec = np.longdouble if agg == "std" else np.float64
        s1, m1 = window_sum_with_magnitude(sx, win, prec)
        shift_q = shift_code[np.clip(kc.code, 0, None)]
        with np.errstate(divide="ignore", invalid="ignore"):
            if agg == "sum":
                v = np.where(window_count > 0, s1 + window_count * shift_q, 0.0)
                null = np.zeros(n, bool)
            elif agg == "mean":
                v = shift_q + s1 / window_count
                null = window_count == 0
            else:
                v = window_std(x, sx, win, kc, q_us=q_us, t_us=t_us, w=w, s1=s1, m1=m1)
                null = window_count < 2
        value = pl.Series(v).set(pl.Series(null), None)
    elif agg == "last":
        idx = pl.Series(newest, dtype=pl.UInt32).set(pl.Series(~in_window), None)
        value = src.gather(idx)
    elif label and agg in ("min", "max", "count_distinct"):
        xv = src.to_numpy()[rows]
        values = np.unique(xv)
        if len(values) > MAX_LABEL_VALUES:
            raise ConfigError(
                f"feature '{spec.name}': agg '{agg}' over the delayed label '{spec.column}' "
                f"supports at most {MAX_LABEL_VALUES} distinct label values; it has "
                f"{len(values)}. Use mean, sum, std, count or last for a regression label."
            )
        # Per-value counts decompose like count; min/max/distinct follow from which are > 0.
        present = np.zeros((len(values), n), bool)
        for i, val in enumerate(values):
            ind = (xv == val).astype(np.int64)
            present[i] = window_sum(ind, win, np.int64) > 0
        if agg == "count_distinct":
            value = pl.Series(present.sum(axis=0), dtype=pl.Int64)
        else:
            any_ = present.any(axis=0)
            if len(values):
                pos = (
                    present.argmax(axis=0)
                    if agg == "min"
                    else len(values) - 1 - present[::-1].argmax(axis=0)
                )
                v = values.astype(np.float64)[pos]
            else:
                v = np.zeros(n)
            value = pl.Series(v).set(pl.Series(~any_), None)
    elif agg == "count_distinct":
        value = window_count_distinct(src, rows, kc, t_us, q_us, w)
    else:
        value = rolling_extreme(src, rows, kc, t_us, q_us, w, agg, fresh=q_us is t_us)

    value = value.set(pl.Series(~kc.ok), None) if not kc.ok.all() else value
    if agg in ("count", "count_distinct"):
        value = value.cast(pl.Int64)
    elif agg in NUMERIC_AGGS or value.dtype == pl.Boolean:
        value = value.cast(pl.Float64)
    return value.alias(spec.value_col), age.cast(pl.Int64).alias(spec.age_col)


def value_hash(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each float's value (splitmix64 of its bits; -0.0 hashes like 0.0)."""
    h = (x + 0.0).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        h += np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def window_std(
    x: np.ndarray,
    sx: np.ndarray,
    win: WindowIndex,
    kc: KeyCodes,
    *,
    q_us: np.ndarray,
    t_us: np.ndarray,
    w: int,
    s1: np.ndarray,
    m1: np.ndarray,
) -> np.ndarray:
    """Sample std of the window of every query: exactly 0 for equal values, never 0 otherwise.

    The fast path subtracts prefix sums of squares (in long double), whose rounding error
    grows with everything summed before the window, other keys included. So a window of
    equal values is recognised exactly instead (the wrapping sum of a hash of its values is
    ``count`` times the hash of one of them), and a window of distinct values whose spread is
    too small for the prefix difference to be trusted is recomputed from its own values.
    """
    prec = np.longdouble
    by_known, known_before, window_count = win.by_known, win.known_before, win.window_count
    s2, m2 = window_sum_with_magnitude(sx * sx, win, prec)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss = s2 - s1 * s1 / window_count  # sum of squared deviations
        noise = 16 * np.finfo(prec).eps * (m2 + 2 * np.abs(s1) * m1 / window_count)
        v = np.sqrt(np.maximum(ss / (window_count - 1), 0)).astype(np.float64)
    several = win.in_window & (window_count >= 2)
    if not several.any():
        return v
    hx = value_hash(x)
    hashes, _ = window_sum_with_magnitude(hx, win, np.uint64)
    one = hx[np.clip(np.searchsorted(win.rows, win.newest), 0, len(x) - 1)]
    with np.errstate(over="ignore"):
        equal = several & (hashes == window_count.astype(np.uint64) * one)
    v[equal] = 0.0
    # Trust the fast path to ~1e-10 relative; below that recompute (rare: a spread that is
    # tiny next to the magnitudes summed before it), and wherever squares underflowed to 0.
    unsure = (noise > 1e-10 * np.abs(ss)) | ~(v > 0) | ~np.isfinite(v)
    redo = np.flatnonzero(several & ~equal & unsure)
    if redo.size:
        t_rows = t_us[win.rows]
        starts = np.searchsorted(win.codes_by_known, kc.code[redo], "left")
        for i, start in zip(redo.tolist(), starts.tolist(), strict=True):
            cand = by_known[start : known_before[i]]
            v[i] = exact_std(x[cand[t_rows[cand] >= q_us[i] - w]])
    return v


def exact_std(values: np.ndarray) -> float:
    """Sample std of ``values`` by two passes of exact sums, scaled so no square underflows."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = math.fsum(values.tolist()) / n
    dev = values - mean
    scale = float(np.max(np.abs(dev)))
    if scale == 0.0 or not math.isfinite(scale):
        return 0.0 if scale == 0.0 else math.nan
    return scale * math.sqrt(math.fsum(((dev / scale) ** 2).tolist()) / (n - 1))


def window_count_distinct(
    src: pl.Series, rows: np.ndarray, kc: KeyCodes, t_us: np.ndarray, q_us: np.ndarray, w: int
) -> pl.Series:
    # Each (key, value, time) is active on (t, min(next time of the value, t + w)]: exactly one
    # occurrence of each distinct value in [q - w, q) is active at q.
    occ = (
        pl.DataFrame(
            {"c": kc.code[rows], "x": src.gather(pl.Series(rows, dtype=pl.UInt32)), "t": t_us[rows]}
        )
        .unique(maintain_order=True)
        .with_columns(pl.col("t").shift(-1).over(["c", "x"]).alias("nxt"))
        .with_columns(pl.min_horizontal(pl.col("nxt"), pl.col("t") + w).alias("e"))
    )
    c = occ["c"].to_numpy()
    ca, ce, cq = composite_codes(
        [(c, occ["t"].to_numpy()), (c, occ["e"].to_numpy()), (kc.code, q_us)]
    )
    window_count = np.searchsorted(np.sort(ca), cq, "left") - np.searchsorted(
        np.sort(ce), cq, "left"
    )
    return pl.Series(window_count, dtype=pl.Int64)


def rolling_extreme(
    src: pl.Series,
    rows: np.ndarray,
    kc: KeyCodes,
    t_us: np.ndarray,
    q_us: np.ndarray,
    w: int,
    agg: str,
    *,
    fresh: bool,
) -> pl.Series:
    # polars' closed="left" window [q - w, q) over the key's rows. As of cutoffs, one
    # null-valued probe row per query is added at time q.
    keep = np.zeros(len(t_us), bool)
    keep[rows] = True
    data = pl.DataFrame(
        {
            "c": kc.code,
            "t": pl.Series(t_us).cast(pl.Datetime("us")),
            "x": src.cast(pl.Float64).set(pl.Series(~keep), None),
        }
    )
    fn = pl.col("x").rolling_min_by if agg == "min" else pl.col("x").rolling_max_by
    roll = fn("t", window_size=f"{w}us", closed="left").over("c").alias("v")
    if fresh:
        return data.select(roll)["v"]
    probes = pl.DataFrame(
        {
            "c": kc.code,
            "t": pl.Series(q_us).cast(pl.Datetime("us")),
            "x": pl.Series([None] * len(q_us), dtype=pl.Float64),
        }
    ).with_row_index("probe")
    both = pl.concat(
        [data.with_columns(pl.lit(None, pl.UInt32).alias("probe")), probes], how="diagonal"
    )
    both = both.sort("t", maintain_order=True)
    return both.with_columns(roll).filter(pl.col("probe").is_not_null()).sort("probe")["v"]
