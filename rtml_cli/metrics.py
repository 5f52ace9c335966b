"""Quality, paired block-bootstrap differences, freshness and compute summaries → ``metrics.json``.

:func:`compute_metrics` turns the two per-event / per-call tables of a run directory
(``predictions.parquet`` and ``timings.parquet``, schemas in ``docs/ARCHITECTURE.md``) into one
JSON-able dict, written by the compare engine as ``metrics.json`` and read by ``rtml report``.

Why a block bootstrap: events close in time share drift, sessions and entities, so they are not
independent; resampling single events would give intervals that are too narrow. The scored span is
cut into time blocks (the same grid as the per-bucket quality), blocks are resampled with
replacement, and the *same* resample is applied to every strategy so the differences are paired.
Each metric is computed from per-block sufficient statistics (sums, confusion counts and, for ROC
AUC, a block × block matrix of concordant positive/negative pairs), so every resample costs a
matrix product instead of a pass over the events.

``metrics.json`` schema (``schema_version`` 1). Times are ISO-8601 strings (naive, as in the
table), durations in the unit named by the key suffix (``_s``, ``_ms``, ``_us``). Every metric
that could not be computed is ``null`` and its reason is in the sibling ``reasons`` mapping.
The same schema as types, for readers: :class:`rtml_cli.metrics_schema.MetricsJson`.

.. code-block:: text

    {
      "schema_version": 1,
      "task": "binary" | "multiclass" | "regression",
      "baseline": str,                       # strategy the differences are taken against
      "strategies": [str, ...],              # in the order given
      "metric_names": [str, ...],            # binary: accuracy log_loss auc f1 brier;
                                             # multiclass: accuracy macro_f1 log_loss;
                                             # regression: mae rmse r2
      "higher_is_better": {metric: bool},
      "span": {"start": iso, "end": iso, "events": int},   # scored events with a label
      "bucket": {"us": int, "text": "1h", "count": int, "auto": bool},
      "bootstrap": {"resamples": int, "seed": int, "level": 0.95, "blocks": int,
                    "block": "same as bucket"},
      "quality": {strategy: {"n": int, metric: float|null, ...,
                             "reasons": {metric: str}}},
      "quality_over_time": {"start": [iso, ...], "n": [int, ...],
                            "strategies": {strategy: {metric: [float|null, ...]}}},
      "diff_to_baseline": {strategy: {metric: DIFF}},       # baseline itself omitted
      "pairs": [{"strategy": a, "reference": b, "metrics": {metric: DIFF}}, ...],
                # every unordered pair once, a after b in `strategies`; value = a − b
      "freshness": {strategy: {"staleness_s": SUMMARY, "feature_age_s": SUMMARY,
                               "model_age_s": SUMMARY, "cold_start": int, "events": int}},
      "quality_by_staleness": {strategy: [{"label": "0", "lo_s": 0, "hi_s": 0, "n": int,
                                           metric: float|null, ...}, ...]},
      "compute": {strategy: {"kinds": {kind: CALLS}, "predict_single_row": CALLS|null,
                             "events": int, "busy_s": float, "events_per_s": float|null}},
      "cost": {strategy: COST}   # added by compare from the same calls: rtml_cli/cost.py,
                                 # metrics_schema.Cost, docs/semantics.md "Cost"
    }

    DIFF    = {"estimate": float|null, "low": float|null, "high": float|null,
               "significant": bool|null, "better": bool|null, "reason": str|null}
               # `better`: the difference goes the good way for this metric and is significant
    SUMMARY = {"mean": f, "p50": f, "p90": f, "max": f, "count": int}   # nulls excluded
    CALLS   = {"count": int, "rows": int, "wall_ms": PCT, "cpu_ms": PCT,
               "wall_total_s": float, "cpu_total_s": float}
    PCT     = {"p50": f, "p90": f, "p99": f, "p99.9": f, "max": f, "mean": f}

``predict_single_row`` summarises only ``predict`` calls with ``rows == 1``: the latency of one
real single-row call, including scikit-learn's per-call overhead (what a per-event service pays).
``busy_s`` is the summed wall time of every timed call of the strategy; ``events_per_s`` =
scored events / ``busy_s``.

Examples
--------
>>> m = compute_metrics(predictions, timings, task="binary",          # doctest: +SKIP
...                     strategies=["batch", "stream"], baseline="batch")
>>> m["diff_to_baseline"]["stream"]["auc"]["estimate"]                 # doctest: +SKIP
0.021
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import MetricError, UsageError
from rtml_cli.metrics_blocks import (
    binary_block_stats,
    block_stats_by_group,
    class_proba,
    metrics_from_stats,
    multiclass_block_stats,
    regression_block_stats,
    undefined_reason,
)
from rtml_cli.relevance import DEFAULT_MIN_EFFECT, INCONCLUSIVE, classify, threshold

SCHEMA_VERSION = 1

BINARY_METRICS = ["accuracy", "log_loss", "auc", "f1", "brier"]
MULTICLASS_METRICS = ["accuracy", "macro_f1", "log_loss"]
REGRESSION_METRICS = ["mae", "rmse", "r2"]
HIGHER_IS_BETTER = {
    "accuracy": True,
    "macro_f1": True,
    "log_loss": False,
    "auc": True,
    "f1": True,
    "brier": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
TIMING_KINDS = ["predict", "update", "retrain", "score_job", "feature"]

#: Candidate bucket widths; the auto choice is the smallest giving at most MAX_BUCKETS buckets.
#: Consecutive widths differ by at most 2.5x, so the count lands in ~20-48.
_NICE_BUCKETS = [
    "1s", "2s", "5s", "10s", "20s", "30s", "1m", "2m", "5m", "10m", "20m", "30m", "1h", "2h",
    "4h", "6h", "12h", "1d", "2d", "4d", "7d", "14d", "28d", "56d", "91d", "182d", "364d",
    "728d", "1820d", "3640d",
]  # fmt: skip
MAX_BUCKETS = 48
#: Upper bound on the bucket count for an explicit bucket width.
MAX_GIVEN_BUCKETS = 1000
#: Upper edges (seconds) of the staleness buckets used for "quality by staleness".
_STALENESS_EDGES_S = [0.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, math.inf]
_STALENESS_LABELS = ["0", "≤1h", "1h–6h", "6h–1d", "1d–7d", ">7d"]
_EPS = 1e-15
_EPOCH = dt.datetime(1970, 1, 1)


# --------------------------------------------------------------------------- helpers


def _iso(us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=int(us))).isoformat()


def _finite_or_none(x: float | np.floating | None) -> float | None:
    """A JSON-safe float: NaN/inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def choose_bucket(span_us: int) -> int:
    """Pick a calendar-aligned bucket width (µs) giving about 20–48 buckets over ``span_us``.

    Examples
    --------
    >>> format_duration(choose_bucket(86_400_000_000 * 30))
    '1d'
    """
    for text in _NICE_BUCKETS:
        width = parse_duration(text)
        # +1: buckets are aligned on the epoch grid, so a span can straddle one more.
        if span_us // width + 1 <= MAX_BUCKETS:
            return width
    return parse_duration(_NICE_BUCKETS[-1])


def bucket_width(span_us: int, bucket: str | None) -> int:
    """The time block (µs) of a scored span: ``bucket`` as given, else :func:`choose_bucket`.

    The quality buckets, the bootstrap blocks and the forgetting blocks all use this one width.

    >>> format_duration(bucket_width(86_400_000_000 * 30, None)), bucket_width(0, "1s")
    ('1d', 1000000)
    """
    return (
        choose_bucket(span_us) if bucket is None else parse_duration(bucket, what="metrics bucket")
    )


def _times_us(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Datetime("us")).dt.epoch("us").to_numpy().astype(np.int64)


# --------------------------------------------------------------------------- summaries


def _summary(values: np.ndarray) -> dict[str, Any]:
    v = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if v.size == 0:
        return {"mean": None, "p50": None, "p90": None, "max": None, "count": 0}
    p50, p90 = np.percentile(v, [50, 90])
    return {
        "mean": _finite_or_none(v.mean()),
        "p50": _finite_or_none(p50),
        "p90": _finite_or_none(p90),
        "max": _finite_or_none(v.max()),
        "count": int(v.size),
    }


def _pct(values_ms: np.ndarray) -> dict[str, float | None]:
    if values_ms.size == 0:
        return {k: None for k in [*PERCENTILES, "max", "mean"]}
    qs = np.percentile(values_ms, list(PERCENTILES.values()))
    out: dict[str, float | None] = {
        k: _finite_or_none(q) for k, q in zip(PERCENTILES, qs, strict=True)
    }
    out["max"] = _finite_or_none(values_ms.max())
    out["mean"] = _finite_or_none(values_ms.mean())
    return out


def quantile_interval(
    values: np.ndarray, q: float = 0.99, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    """Distribution-free interval for the ``q`` quantile of the population ``values`` sample.

    The number of sample values below the true quantile is Binomial(n, q), so the order
    statistics at that distribution's two tail quantiles bracket it with at least
    ``confidence`` (no assumption on the shape of the latency distribution). ``None`` where the
    sample is too small for a bound on that side (the upper one, below about 300 calls for
    p99: the interval then reaches past the largest call seen).

    Examples
    --------
    >>> quantile_interval(np.arange(1000.0))
    (982.0, 996.0)
    """
    from scipy.stats import binom

    v = np.sort(np.asarray(values, dtype=np.float64))
    n = v.size
    if n == 0:
        return None, None
    tail = (1 - confidence) / 2
    # B = values below the quantile. The lo-th smallest value is <= it when B >= lo, which
    # fails with probability CDF(lo - 1) < tail; the (hi+1)-th is >= it when B <= hi.
    lo = int(binom.ppf(tail, n, q))
    hi = int(binom.ppf(1 - tail, n, q))
    low = _finite_or_none(v[lo - 1]) if lo >= 1 else None
    high = _finite_or_none(v[hi]) if hi < n else None
    return low, high


def _calls(df: pl.DataFrame) -> dict[str, Any]:
    wall = df["wall_ns"].cast(pl.Float64).fill_null(0).to_numpy() / 1e6
    cpu = df["cpu_ns"].cast(pl.Float64).fill_null(0).to_numpy() / 1e6
    rows = df["rows"].cast(pl.Int64).fill_null(0).sum() if "rows" in df.columns else 0
    return {
        "count": int(df.height),
        "rows": int(rows or 0),
        "wall_ms": _pct(wall),
        "wall_p99_interval_ms": list(quantile_interval(wall)),
        "cpu_ms": _pct(cpu),
        "wall_total_s": float(wall.sum() / 1e3),
        "cpu_total_s": float(cpu.sum() / 1e3),
    }


def compute_summary(timings: pl.DataFrame, strategy: str, events: int) -> dict[str, Any]:
    """Compute summary of one strategy's timed calls (see the module schema, ``compute``)."""
    t = timings.filter(pl.col("strategy") == strategy) if timings.height else timings
    kinds: dict[str, Any] = {}
    present = t["kind"].unique().to_list() if t.height else []
    for kind in [k for k in TIMING_KINDS if k in present] + sorted(
        k for k in present if k not in TIMING_KINDS and k is not None
    ):
        kinds[kind] = _calls(t.filter(pl.col("kind") == kind))
    single = t.filter((pl.col("kind") == "predict") & (pl.col("rows") == 1)) if t.height else t
    busy = float(t["wall_ns"].cast(pl.Float64).fill_null(0).sum() / 1e9) if t.height else 0.0
    return {
        "kinds": kinds,
        "predict_single_row": _calls(single) if single.height else None,
        "events": int(events),
        "busy_s": busy,
        "events_per_s": _finite_or_none(events / busy) if busy > 0 else None,
    }


# --------------------------------------------------------------------------- main entry


def _validate(
    predictions: pl.DataFrame,
    timings: pl.DataFrame,
    task: str,
    strategies: Sequence[str],
    baseline: str,
) -> None:
    if task not in ("binary", "multiclass", "regression"):
        raise UsageError(
            f"The task must be 'binary', 'multiclass' or 'regression'. Got {task!r} instead."
        )
    need = {"event_id", "strategy", "t", "y", "score", "pred"}
    missing = need - set(predictions.columns)
    if missing:
        raise MetricError(
            f"predictions lack column(s) {sorted(missing)}; columns are {predictions.columns}. "
            "The run directory was written by an incompatible rtml; rerun `rtml compare`."
        )
    tneed = {"strategy", "kind", "wall_ns", "cpu_ns", "rows"}
    if timings.height and tneed - set(timings.columns):
        raise MetricError(
            f"timings lack column(s) {sorted(tneed - set(timings.columns))}; rerun `rtml compare`."
        )
    if not strategies:
        raise UsageError("No strategies to compute metrics for; name at least one strategy.")
    if baseline not in strategies:
        raise UsageError(
            f"The baseline strategy '{baseline}' is not one of the strategies "
            f"({', '.join(strategies)}). Set [report] baseline to one of them."
        )


def _diff(
    est_a: float,
    est_b: float,
    boot_a: np.ndarray | None,
    boot_b: np.ndarray | None,
    metric: str,
    level: float,
    reason: str | None,
    min_effect: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "estimate": None,
        "low": None,
        "high": None,
        "significant": None,
        "better": None,
        "reason": reason,
        "min_effect": None,
        "call": INCONCLUSIVE,
    }
    if min_effect is not None:
        out["min_effect"] = threshold(min_effect, est_b if math.isfinite(est_b) else None)
    est = est_a - est_b
    if not math.isfinite(est):
        out["reason"] = reason or f"{metric} is undefined for one of the two strategies"
        return out
    out["estimate"] = float(est)
    if boot_a is None or boot_b is None:
        out["reason"] = reason or "fewer than 2 time blocks: no interval"
        return out
    d = boot_a - boot_b
    d = d[np.isfinite(d)]
    if d.size < 0.5 * boot_a.size:
        out["reason"] = (
            f"{metric} is undefined in most bootstrap resamples (too few blocks with both classes)"
        )
        return out
    alpha = (1 - level) / 2
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    out["low"], out["high"] = float(lo), float(hi)
    sig = bool(lo > 0 or hi < 0)
    out["significant"] = sig
    out["better"] = bool(sig and ((est > 0) == HIGHER_IS_BETTER[metric]))
    out["call"] = classify(
        out["estimate"], out["low"], out["high"], out["min_effect"],
        higher_is_better=HIGHER_IS_BETTER[metric],
    )  # fmt: skip
    return out


def compute_metrics(
    predictions: pl.DataFrame,
    timings: pl.DataFrame,
    *,
    task: str,
    strategies: list[str],
    baseline: str,
    bucket: str | None = None,
    seed: int = 0,
    resamples: int = 1000,
    level: float = 0.95,
    references: Sequence[str] = (),
    min_effect: Mapping[str, str] | None = None,
) -> dict:
    """Compute every metric of a run (the content of ``metrics.json``; schema in the module doc).

    Parameters
    ----------
    predictions : one row per (scored event, strategy), schema ``predictions.parquet``.
    timings : one row per timed call, schema ``timings.parquet`` (may be empty).
    task : ``"binary"``, ``"multiclass"`` (predictions carry a ``proba`` list column) or
        ``"regression"``.
    strategies : strategy names, in display order.
    baseline : the strategy differences are taken against.
    bucket : time bucket (and bootstrap block) width such as ``"1h"``; default: chosen to give
        about 20–48 buckets over the scored span.
    seed : seed of the bootstrap resampling.
    resamples : number of bootstrap resamples.
    level : confidence level of the intervals.
    references : naive references scored like strategies (``persistence``, ``prior``): they get
        quality, quality over time, a difference to the baseline and ``vs_references`` entries,
        but no freshness or compute (they are not deployments).
    min_effect : the smallest difference that matters per metric (``relevance.parse_min_effect``);
        default: ``relevance.DEFAULT_MIN_EFFECT``.

    Returns
    -------
    dict
        JSON-able; ``json.dumps`` it as ``metrics.json``.

    Raises
    ------
    MetricError
        The tables lack required columns, or no event is scored with a label.
    UsageError
        Unknown task, or the baseline is not among the strategies.
    """
    _validate(predictions, timings, task, strategies, baseline)
    names = {"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS}.get(
        task, REGRESSION_METRICS
    )
    deployments = list(strategies)
    effect = dict(DEFAULT_MIN_EFFECT if min_effect is None else min_effect)
    # references are scored like strategies below; `deployments` keeps the strategies alone
    strategies = deployments + [r for r in references if r not in deployments]
    preds = predictions.filter(pl.col("strategy").is_in(list(strategies)))
    unknown = set(predictions["strategy"].unique().to_list()) - set(strategies)
    labelled = preds.filter(pl.col("y").is_not_null() & pl.col("score").is_not_null())
    # split once (a filter per strategy is cheaper than partition_by on a string column)
    preds_by = {s: preds.filter(pl.col("strategy") == s) for s in strategies}
    labelled_by = {s: labelled.filter(pl.col("strategy") == s) for s in strategies}
    empty_p, empty_l = preds.clear(), labelled.clear()
    if labelled.height == 0:
        raise MetricError(
            "No scored event has both a label and a score, so no quality metric can be computed. "
            "Check the label column and the warm-up (it may cover the whole table)."
        )

    # Events scored (with a label) by every strategy: the paired set.
    common = None
    per_strategy: dict[str, pl.DataFrame] = {}
    for s in strategies:
        d = labelled_by.get(s, empty_l).sort("event_id")
        per_strategy[s] = d
        ids = d.select("event_id")
        common = ids if common is None else common.join(ids, on="event_id", how="inner")
    assert common is not None

    t_all = _times_us(labelled["t"])
    t0, t1 = int(t_all.min()), int(t_all.max())
    auto = bucket is None
    width = bucket_width(t1 - t0, bucket)
    if width <= 0:
        raise UsageError(f"The metrics bucket must be > 0. Got {bucket!r} instead.")
    first = (t0 // width) * width  # epoch-aligned grid, like retrain cutoffs
    n_buckets = int((t1 - first) // width) + 1
    if n_buckets > MAX_GIVEN_BUCKETS:
        # the AUC statistics hold a buckets x buckets matrix: keep it small
        raise UsageError(
            f"The metrics bucket {bucket!r} cuts the scored span "
            f"({format_duration(t1 - t0)}) into {n_buckets} buckets; at most "
            f"{MAX_GIVEN_BUCKETS} are supported. Pass a wider bucket, e.g. "
            f"'{format_duration(choose_bucket(t1 - t0))}', or omit it to choose automatically."
        )
    starts = [_iso(first + i * width) for i in range(n_buckets)]

    rng = np.random.default_rng(seed)
    # Same resample for every strategy: weights over the blocks that hold paired events.
    common_ids = common["event_id"]
    sample_blocks: np.ndarray | None = None

    stats: dict[str, dict[str, np.ndarray]] = {}
    paired_stats: dict[str, dict[str, np.ndarray]] = {}

    def block_stats(d: pl.DataFrame) -> dict[str, np.ndarray]:
        y = d["y"].cast(pl.Float64).to_numpy()
        p = d["score"].cast(pl.Float64).to_numpy()
        blk = ((_times_us(d["t"]) - first) // width).astype(np.int64)
        if task == "multiclass":
            return multiclass_block_stats(y, class_proba(d), blk, n_buckets)
        if task == "binary":
            pred = d["pred"].cast(pl.Float64).fill_null(0.0).to_numpy()
            return binary_block_stats(y, p, pred, blk, n_buckets)
        return regression_block_stats(y, p, blk, n_buckets)

    for s in strategies:
        stats[s] = block_stats(per_strategy[s])
        paired = per_strategy[s].join(common.select("event_id"), on="event_id", how="semi")
        # the usual case: every strategy scored the same events, nothing to recompute
        paired_stats[s] = (
            stats[s] if paired.height == per_strategy[s].height else block_stats(paired)
        )

    ones = np.ones((1, n_buckets))
    quality: dict[str, Any] = {}
    over_time: dict[str, Any] = {}
    eye = np.eye(n_buckets)
    for s in strategies:
        vals = metrics_from_stats(stats[s], ones, task)
        q: dict[str, Any] = {"n": int(stats[s]["n"].sum())}
        reasons = {}
        for m in names:
            v = _finite_or_none(vals[m][0])
            q[m] = v
            if v is None:
                reasons[m] = undefined_reason(m, stats[s], ones[0], task)
        q["reasons"] = reasons
        quality[s] = q
        per_bucket = metrics_from_stats(stats[s], eye, task)
        over_time[s] = {m: [_finite_or_none(x) for x in per_bucket[m]] for m in names}
    bucket_n = [int(x) for x in stats[baseline]["n"]]

    # Bootstrap over the blocks that contain paired events.
    occupied = np.flatnonzero(paired_stats[baseline]["n"] > 0)
    n_occ = occupied.size
    boot: dict[str, dict[str, np.ndarray]] | None = None
    if n_occ >= 2 and resamples > 0:
        counts = rng.multinomial(n_occ, np.full(n_occ, 1.0 / n_occ), size=resamples)
        w = np.zeros((resamples, n_buckets))
        w[:, occupied] = counts
        sample_blocks = w
        boot = {s: metrics_from_stats(paired_stats[s], sample_blocks, task) for s in strategies}
    point = {s: metrics_from_stats(paired_stats[s], ones, task) for s in strategies}

    def pair(a: str, b: str) -> dict[str, Any]:
        res = {}
        for m in names:
            reason = None
            if len(common_ids) == 0:
                reason = "the strategies share no scored event"
            res[m] = _diff(
                float(point[a][m][0]),
                float(point[b][m][0]),
                None if boot is None else boot[a][m],
                None if boot is None else boot[b][m],
                m,
                level,
                reason,
                effect.get(m),
            )
        return res

    diff_to_baseline = {s: pair(s, baseline) for s in strategies if s != baseline}
    pairs = [
        {
            "strategy": deployments[j],
            "reference": deployments[i],
            "metrics": pair(deployments[j], deployments[i]),
        }
        for i in range(len(deployments))
        for j in range(i + 1, len(deployments))
    ]
    vs_references = {
        s: {r: pair(s, r) for r in strategies[len(deployments) :]} for s in deployments
    }

    # Freshness: over every scored event (labelled or not).
    freshness: dict[str, Any] = {}
    by_stale: dict[str, Any] = {}
    for s in deployments:
        d = preds_by.get(s, empty_p)
        col = {
            c: d[c].cast(pl.Float64).to_numpy() / 1e6 if c in d.columns else np.array([])
            for c in ("staleness_us", "feature_age_us", "model_age_us")
        }
        cold = int(d["cold_start"].fill_null(False).sum()) if "cold_start" in d.columns else 0
        freshness[s] = {
            "staleness_s": _summary(col["staleness_us"]),
            "feature_age_s": _summary(col["feature_age_us"]),
            "model_age_s": _summary(col["model_age_us"]),
            "cold_start": cold,
            "events": int(d.height),
        }
        rows = []
        ds = per_strategy[s]
        if "staleness_us" in ds.columns and ds.height:
            st = ds["staleness_us"].cast(pl.Float64).fill_null(0).to_numpy() / 1e6
            idx = np.searchsorted(_STALENESS_EDGES_S, st, side="left")
            sb = block_stats_by_group(ds, idx, len(_STALENESS_EDGES_S), task)
            vals = metrics_from_stats(sb, np.eye(len(_STALENESS_EDGES_S)), task)
            for g, label in enumerate(_STALENESS_LABELS):
                n = int(sb["n"][g])
                if n == 0:
                    continue
                lo = 0.0 if g == 0 else _STALENESS_EDGES_S[g - 1]
                hi = _STALENESS_EDGES_S[g]
                row: dict[str, Any] = {
                    "label": label,
                    "lo_s": lo,
                    "hi_s": _finite_or_none(hi),
                    "n": n,
                }
                row.update({m: _finite_or_none(vals[m][g]) for m in names})
                rows.append(row)
        by_stale[s] = rows

    compute = {
        s: compute_summary(timings, s, int(preds_by.get(s, empty_p).height)) for s in deployments
    }

    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "baseline": baseline,
        "strategies": deployments,
        "references": strategies[len(deployments) :],
        "metric_names": list(names),
        "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in names},
        "span": {"start": _iso(t0), "end": _iso(t1), "events": int(common.height)},
        "bucket": {
            "us": int(width),
            "text": format_duration(width),
            "count": n_buckets,
            "auto": auto,
        },
        "bootstrap": {
            "resamples": int(resamples) if boot is not None else 0,
            "seed": int(seed),
            "level": level,
            "blocks": int(n_occ),
            "block": "same as bucket",
        },
        "quality": quality,
        "quality_over_time": {"start": starts, "n": bucket_n, "strategies": over_time},
        "diff_to_baseline": diff_to_baseline,
        "pairs": pairs,
        "vs_references": vs_references,
        "min_effect": {m: effect[m] for m in names if m in effect},
        "freshness": freshness,
        "quality_by_staleness": by_stale,
        "compute": compute,
    }
    if unknown:
        out["ignored_strategies"] = sorted(str(u) for u in unknown)
    return out
