"""The cost side of a deployment: measured CPU time per retrain, scoring job, request and update,
and what a real batch job would score (docs/semantics.md: cost).

Every number comes from the timed calls of the run (``timings.parquet``: thread CPU time of real
calls, measured in whichever process made them), scaled to the scored span: ``days`` is the time
from the end of the warm-up ``W`` to the last event.

A keyed ``batch`` strategy also gets ``batch_job``: a real batch job scores *every* entity that was
active in a look-back window at every cutoff, whether or not it comes back before the next one;
rtml's simulation scores only the events that came. ``predictions_made`` counts the former,
``entity_cutoffs_served`` the (entity, cutoff) pairs the events used, and ``used_share`` how
many of the job's predictions were ever served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from rtml_cli.durations import format_duration
from rtml_cli.metrics_schema import BatchJob, Cost

if TYPE_CHECKING:
    from rtml_cli.compare import Prepared

DAY_US = 86_400_000_000
DEFAULT_BATCH_LOOKBACK = "30d"


def _per(total: float, n: float) -> float | None:
    return total / n if n > 0 else None


def _kind(tim: pl.DataFrame, strategy: str, kind: str) -> tuple[int, float, np.ndarray]:
    """Count, total CPU seconds and per-call CPU ns of one kind of call of one strategy."""
    if tim.height == 0:
        return 0, 0.0, np.array([], dtype=np.int64)
    d = tim.filter((pl.col("strategy") == strategy) & (pl.col("kind") == kind))
    cpu = d["cpu_ns"].to_numpy().astype(np.int64)
    if kind == "predict":  # the latency sample: one real single-row call each
        cpu = cpu[d["rows"].to_numpy() == 1]
    return len(cpu), float(cpu.sum()) / 1e9, cpu


def strategy_cost(
    tim: pl.DataFrame,
    strategy: str,
    *,
    kind: str,
    days: float,
    scored: int,
    batch_job: BatchJob | None = None,
) -> Cost:
    """The ``cost`` entry of one strategy (schema: :class:`rtml_cli.metrics_schema.Cost`)."""
    n_fit, fit_s, _ = _kind(tim, strategy, "retrain")
    n_job, job_s, _ = _kind(tim, strategy, "score_job")
    n_upd, upd_s, upd = _kind(tim, strategy, "update")
    n_req, _, req = _kind(tim, strategy, "predict")
    if batch_job is not None and n_job:
        # the real job scores every active entity: at the measured CPU per scored row
        rows = tim.filter((pl.col("strategy") == strategy) & (pl.col("kind") == "score_job"))
        per_row = job_s / max(int(rows["rows"].sum()), 1)
        batch_job = BatchJob(**batch_job, cpu_s_estimate=per_row * batch_job["predictions_made"])
    per_request = float(req.mean()) / 1e3 if n_req else None
    # what serving the scored events costs a day: the jobs, plus one call per event where the
    # deployment calls the model per request (batch serves its job's scores)
    requests_s = (per_request or 0.0) * 1e-6 * scored if kind != "batch" else 0.0
    total_s = fit_s + job_s + upd_s + requests_s
    return {
        "days": days,
        "retrain": {
            "count": n_fit,
            "cpu_s": fit_s,
            "cpu_s_per_day": _per(fit_s, days),
            "cpu_s_per_fit": _per(fit_s, n_fit),
        },
        "score_job": {
            "count": n_job,
            "cpu_s": job_s,
            "cpu_s_per_cutoff": _per(job_s, n_job),
        },
        "predict": {
            "timed_calls": n_req,
            "cpu_us_per_request": per_request,
            "requests": scored if kind != "batch" else 0,
        },
        "update": {
            "count": n_upd,
            "cpu_s": upd_s,
            "cpu_s_per_day": _per(upd_s, days),
            "cpu_us_per_update": float(upd.mean()) / 1e3 if n_upd else None,
        },
        "cpu_s_per_day": _per(total_s, days),
        "batch_job": batch_job,
    }


def batch_job_counts(
    t: np.ndarray,
    keys: pl.Series,
    *,
    s0: int,
    every_us: int,
    lookback_us: int,
) -> BatchJob:
    """What a real batch job would score against what the scored events used.

    The job runs at every grid cutoff from the first scored event's cutoff to the last one's and
    scores every entity with an event in ``[c − lookback, c)``. An (entity, cutoff) pair is
    *served* when a scored event of that entity falls in the cutoff's span ``[c, c + R)``; it is
    *in the job* when the entity was also active in the look-back.

    Parameters
    ----------
    t : event times, µs, sorted (the whole table: warm-up events make entities active too).
    keys : the entity of each event (null: no entity, never scored by a job).
    s0 : index of the first scored event.
    every_us : the strategy's retrain (and scoring job) period R.
    lookback_us : the look-back window.
    """
    R, L = int(every_us), int(lookback_us)
    c_first, c_last = (int(t[s0]) // R) * R, (int(t[-1]) // R) * R
    codes = keys.rank("dense").fill_null(0).to_numpy().astype(np.int64)  # 0 = null key
    keep = codes > 0
    k, tt = codes[keep], t[keep]
    order = np.lexsort((tt, k))
    k, tt = k[order], tt[order]
    # entity active at c ⇔ an event in [c − L, c) ⇔ c in (t, t + L] for one of its events;
    # within an entity the intervals (t_j, min(t_j + L, t_j+1)] are disjoint and cover them all
    nxt = np.append(tt[1:], np.iinfo(np.int64).max)
    same = np.append(k[1:] == k[:-1], False)
    hi = np.where(same, np.minimum(tt + L, nxt), tt + L)
    lo = np.maximum(tt, c_first - 1)
    hi = np.minimum(hi, c_last)
    made = int(np.maximum(hi // R - lo // R, 0)[hi > lo].sum())
    # (entity, cutoff) pairs the scored events used, and whether the job had scored them: the
    # entity's latest event strictly before c lies in the look-back
    pairs = (
        pl.DataFrame({"k": codes[s0:], "c": (t[s0:] // R) * R})
        .filter(pl.col("k") > 0)
        .unique()
        .sort("c")
    )
    events = pl.DataFrame({"k": k, "prev": tt}).sort("prev")
    joined = pairs.join_asof(
        events,
        left_on="c",
        right_on="prev",
        by="k",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    served = joined.height
    in_job = int(joined.select((pl.col("prev") >= pl.col("c") - L).sum()).item() or 0)
    return {
        "lookback": format_duration(L),
        "lookback_s": L / 1e6,
        "cutoffs": int((c_last - c_first) // R + 1),
        "predictions_made": made,
        "events_served": int(len(t) - s0),
        "entity_cutoffs_served": int(served),
        "entity_cutoffs_served_from_job": in_job,
        "used_share": _per(float(in_job), float(made)),
    }


def cost_section(prep: Prepared, tim: pl.DataFrame, *, lookback_us: int) -> dict[str, Cost]:
    """``metrics.json``'s ``cost``: one :func:`strategy_cost` per strategy of the run."""
    d = prep.data
    days = (int(d.t[-1]) - d.W) / DAY_US
    scored = len(d.t) - d.s0
    key = prep.table.roles.key
    out: dict[str, Cost] = {}
    for s in prep.config.strategies:
        job = None
        if s.kind == "batch" and key is not None and s.retrain_every_us:
            job = batch_job_counts(
                d.t,
                prep.table.frame[key],
                s0=d.s0,
                every_us=s.retrain_every_us,
                lookback_us=lookback_us,
            )
        out[s.name] = strategy_cost(
            tim, s.name, kind=s.kind, days=days, scored=scored, batch_job=job
        )
    return out
