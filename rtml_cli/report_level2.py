"""The decision a team can act on: forgetting, cost, and one recommendation per level.

Three parts of the report dict, computed from ``metrics.json`` alone:

* :func:`forgetting_summaries` — per strategy whose model changes, the mean and worst forgetting
  of ``metrics.forgetting`` (:mod:`rtml_cli.forgetting`), with the worst block's end time and the
  best and final quality on it;
* :func:`cost_summaries` — per strategy, what it costs in CPU time: retraining per day of
  events, a scoring job per cutoff, a request, an update, and for a keyed batch job the
  predictions made against the ones served. From the run's ``cost`` section; a run without one
  gets what its timed calls (``compute``) tell;
* :func:`recommendations` — level 1 (fresh features: stream vs batch) and level 2 (online
  learning: online vs stream, else vs batch), each one sentence with the difference, its
  interval and practical call, persistence, forgetting and the compute it takes.

Every sentence is derived from the numbers; none is fixed text about a result. Sentences hold raw
user text (strategy names); the renderers escape it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from rtml_cli.metrics_schema import Diff, MetricName, MetricsJson
from rtml_cli.relevance import EQUIVALENT, GAIN, LOSS
from rtml_cli.report_calls import (
    PERSISTENCE,
    call_phrase,
    difference_text,
    practical_call,
    reference_names,
    versus_reference,
)
from rtml_cli.report_schema import CostSummary, ForgettingSummary, Recommendation
from rtml_cli.report_svg import finite, finite_values
from rtml_cli.report_values import format_metric, metric_label

Kinds = Mapping[str, str | None]
PairLookup = Callable[[str, str], Diff | None]

# The cost fields the report reads: each with the flattened key of a run's cost section
# (rtml_cli/cost.py; nested keys joined with "_") and the factor to the report's unit.
COST_FIELDS: dict[str, tuple[str, float]] = {
    "cpu_s_per_day": ("cpu_s_per_day", 1.0),
    "retrain_cpu_s_per_day": ("retrain_cpu_s_per_day", 1.0),
    "score_job_cpu_s_per_cutoff": ("score_job_cpu_s_per_cutoff", 1.0),
    "predict_cpu_ms_per_request": ("predict_cpu_us_per_request", 1e-3),
    "update_cpu_ms_per_update": ("update_cpu_us_per_update", 1e-3),
    "update_cpu_s_per_day": ("update_cpu_s_per_day", 1.0),
    "predictions_made": ("batch_job_predictions_made", 1.0),
    "predictions_used": ("batch_job_entity_cutoffs_served_from_job", 1.0),
}
# the details behind those fields, in the JSON but not repeated in the report's table
COST_DETAILS = frozenset(
    {
        "days", "batch_job", "retrain_count", "retrain_cpu_s", "retrain_cpu_s_per_fit", "score_job_count",
        "score_job_cpu_s", "predict_timed_calls", "predict_requests", "update_count",
        "update_cpu_s", "batch_job_lookback_s", "batch_job_cutoffs", "batch_job_events_served",
        "batch_job_entity_cutoffs_served", "batch_job_used_share",
    }
)  # fmt: skip


# --------------------------------------------------------------------------- forgetting


def forgetting_entry(m: MetricsJson, strategy: str) -> Mapping[str, Any]:
    """A strategy's entry of ``metrics.forgetting`` (empty when absent or not an object)."""
    forgetting = m.get("forgetting")
    entry = forgetting.get(strategy) if isinstance(forgetting, Mapping) else None
    return cast(Mapping[str, Any], entry) if isinstance(entry, Mapping) else {}


def forgetting_matrix(entry: Mapping[str, Any]) -> tuple[list[list[float | None]], list[str]]:
    """``Q[snapshot][block]`` with every value a finite number or None, and the block ends; a
    damaged entry reads as far as it makes sense (never raises)."""
    raw, raw_ends = entry.get("matrix"), entry.get("block_ends")
    rows = raw if isinstance(raw, list) else []
    matrix = [
        [float(v) if finite(v) else None for v in row] if isinstance(row, list) else []
        for row in rows
    ]
    ends = [str(e) for e in raw_ends] if isinstance(raw_ends, list) else []
    return matrix, ends


def forgetting_summaries(m: MetricsJson, kinds: Kinds) -> list[ForgettingSummary]:
    """One summary per strategy in ``metrics.forgetting`` (strategies' order), none before it."""
    qot = m.get("quality_over_time")
    counts = qot.get("n") if isinstance(qot, Mapping) else None
    n_per_bucket = [int(x) for x in counts if finite(x)] if isinstance(counts, list) else []
    names = [n for n in m.get("strategies") or [] if forgetting_entry(m, n)]
    out = []
    for n in names:
        f = forgetting_entry(m, n)
        matrix, ends = forgetting_matrix(f)
        worst = f.get("max_block")
        worst = worst if isinstance(worst, int) and not isinstance(worst, bool) else None
        best = final = None
        if isinstance(worst, int) and 0 <= worst < len(matrix) and matrix:
            column = [float(v) for row in matrix if worst < len(row) and finite(v := row[worst])]
            higher = bool(f.get("higher_is_better", True))
            best = (max if higher else min)(column) if column else None
            last = matrix[-1]
            final = last[worst] if worst < len(last) else None
        cap = f.get("sampled_per_block")
        blocks = len(matrix) or len(ends)
        sampled = None
        if finite(cap) and cap > 0 and len(n_per_bucket) == blocks:
            sampled = sum(k > cap for k in n_per_bucket)
        out.append(
            ForgettingSummary(
                strategy=n,
                kind=kinds.get(n),
                metric=str(f.get("metric") or ""),
                higher_is_better=bool(f.get("higher_is_better", True)),
                blocks=blocks,
                mean=f["mean"] if finite(f.get("mean")) else None,
                max=f["max"] if finite(f.get("max")) else None,
                worst_block=worst if isinstance(worst, int) else None,
                worst_block_end=(
                    ends[worst] if isinstance(worst, int) and 0 <= worst < len(ends) else None
                ),
                best_on_worst=best if finite(best) else None,
                final_on_worst=final if finite(final) else None,
                sampled_per_block=int(cap) if finite(cap) else None,
                sampled_blocks=sampled,
            )
        )
    return out


def forgetting_phrase(f: ForgettingSummary) -> str:
    """``forgets 0.004 AUC of a past block on average (at most 0.012, the block ending …)``."""
    label = metric_label(f["metric"])
    if not finite(f["mean"]):
        return "forgetting could not be measured"
    text = f"forgets {format_metric(f['mean'])} {label} of a past block on average"
    if finite(f["max"]):
        where = f", the block ending {f['worst_block_end'][:16]}" if f["worst_block_end"] else ""
        text += f" (at most {format_metric(f['max'])}{where})"
    return text


# --------------------------------------------------------------------------- cost


def _flat(prefix: str, value: Any, out: dict[str, float | None]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        out[prefix] = float(value) if finite(value) else None


def cost_section(m: MetricsJson, strategy: str) -> Mapping[str, Any] | None:
    """The run's cost section of a strategy (top-level ``cost``, or inside ``compute``)."""
    raw = cast(Mapping[str, Any], m)
    cost = raw.get("cost")
    if isinstance(cost, Mapping) and isinstance(cost.get(strategy), Mapping):
        return cast(Mapping[str, Any], cost[strategy])
    comp = (m.get("compute") or {}).get(strategy)
    inner = cast(Mapping[str, Any], comp).get("cost") if comp else None
    return cast(Mapping[str, Any], inner) if isinstance(inner, Mapping) else None


def _span_days(m: MetricsJson) -> float | None:
    span = m.get("span") or {}
    try:
        start = dt.datetime.fromisoformat(str(span.get("start")))
        end = dt.datetime.fromisoformat(str(span.get("end")))
    except ValueError:
        return None
    days = (end - start).total_seconds() / 86400
    return days if days > 0 else None


def _from_compute(m: MetricsJson, strategy: str, kind: str | None) -> dict[str, float | None]:
    """The cost fields the timed calls of a run without a cost section can tell."""
    comp = (m.get("compute") or {}).get(strategy)
    if not comp:
        return {}
    calls = comp.get("kinds") or {}
    days = _span_days(m)
    out: dict[str, float | None] = {}
    retrain = calls.get("retrain")
    total = retrain.get("cpu_total_s") if retrain else None
    if finite(total) and days:
        out["retrain_cpu_s_per_day"] = total / days
    job = calls.get("score_job")
    total, count = (job.get("cpu_total_s"), job.get("count")) if job else (None, None)
    if finite(total) and finite(count) and count > 0:
        out["score_job_cpu_s_per_cutoff"] = total / count
    single = comp.get("predict_single_row")
    if single and kind != "batch":  # a batch request is a lookup, not a model call
        out["predict_cpu_ms_per_request"] = (single.get("cpu_ms") or {}).get("mean")
    update = calls.get("update")
    if update:
        out["update_cpu_ms_per_update"] = (update.get("cpu_ms") or {}).get("mean")
        total = update.get("cpu_total_s")
        if finite(total) and days:
            out["update_cpu_s_per_day"] = total / days
    # in all: the jobs and updates as timed, plus one model call per scored event where the
    # deployment calls the model per request
    jobs = [
        c.get("cpu_total_s") for k, c in calls.items() if k in ("retrain", "score_job", "update")
    ]
    per_request = out.get("predict_cpu_ms_per_request")
    requests_s = per_request * 1e-3 * comp.get("events", 0) if finite(per_request) else 0.0
    if days and (jobs or requests_s):
        out["cpu_s_per_day"] = (sum(finite_values(jobs)) + requests_s) / days
    return out


def cost_summaries(m: MetricsJson, kinds: Kinds) -> list[CostSummary]:
    """One summary per strategy that has a cost section or timed calls."""
    out = []
    for n in m.get("strategies") or []:
        section = cost_section(m, n)
        numbers: dict[str, float | None] = {}
        if section is not None:
            _flat("", section, numbers)
            source = "cost"
        else:
            numbers = _from_compute(m, n, kinds.get(n))
            source = "compute"
        if not numbers:
            continue
        if source == "cost":
            picked = {
                field: (v * scale if finite(v := numbers.get(key)) else None)
                for field, (key, scale) in COST_FIELDS.items()
            }
            known = {key for key, _ in COST_FIELDS.values()} | COST_DETAILS
            other = {k: v for k, v in numbers.items() if k not in known}
        else:
            picked = {field: numbers.get(field) for field in COST_FIELDS}
            other = {}
        if kinds.get(n) == "batch":  # a batch request is a lookup of the job's score
            picked["predict_cpu_ms_per_request"] = None
        lookback = (section or {}).get("batch_job") or {}
        out.append(
            CostSummary(
                strategy=n,
                kind=kinds.get(n),
                source=source,
                cpu_s_per_day=picked["cpu_s_per_day"],
                retrain_cpu_s_per_day=picked["retrain_cpu_s_per_day"],
                score_job_cpu_s_per_cutoff=picked["score_job_cpu_s_per_cutoff"],
                predict_cpu_ms_per_request=picked["predict_cpu_ms_per_request"],
                update_cpu_ms_per_update=picked["update_cpu_ms_per_update"],
                update_cpu_s_per_day=picked["update_cpu_s_per_day"],
                predictions_made=picked["predictions_made"],
                predictions_used=picked["predictions_used"],
                batch_lookback=(
                    str(lookback.get("lookback"))
                    if isinstance(lookback, Mapping) and lookback.get("lookback")
                    else None
                ),
                other=other,
            )
        )
    return out


def format_cpu_s(x: Any) -> str:
    """CPU seconds, 3 significant digits."""
    return f"{x:.3g}" if finite(x) else "n/a"


def format_share(made: Any, used: Any) -> str:
    """``3,000 of 12,000 batch predictions used, 25%``."""
    if not (finite(made) and finite(used)):
        return "n/a"
    share = f", {used / made:.0%}" if made > 0 else ""
    return f"{used:,.0f} of {made:,.0f} batch predictions used{share}"


def cost_parts(c: CostSummary | None) -> str:
    """The measured parts of a strategy's cost (empty when nothing is known)."""
    if c is None:
        return ""
    parts = []
    if finite(c["predict_cpu_ms_per_request"]):
        parts.append(f"{c['predict_cpu_ms_per_request']:.3g} ms CPU per request")
    if finite(c["update_cpu_ms_per_update"]):
        parts.append(f"{c['update_cpu_ms_per_update']:.3g} ms CPU per update")
    if finite(c["retrain_cpu_s_per_day"]):
        parts.append(f"{format_cpu_s(c['retrain_cpu_s_per_day'])} CPU s of retraining per day")
    if finite(c["score_job_cpu_s_per_cutoff"]):
        parts.append(f"{format_cpu_s(c['score_job_cpu_s_per_cutoff'])} CPU s per scoring job")
    if finite(c["predictions_made"]) and finite(c["predictions_used"]):
        parts.append(format_share(c["predictions_made"], c["predictions_used"]))
    return ", ".join(parts)


def compute_clause(
    candidate: str, current: str, cc: CostSummary | None, cu: CostSummary | None
) -> str:
    """What the move would cost: the candidate's CPU per day of events against the current
    strategy's (as a ratio when both are known), then the parts of each."""
    parts_c, parts_u = cost_parts(cc), cost_parts(cu)
    total_c = cc["cpu_s_per_day"] if cc else None
    total_u = cu["cpu_s_per_day"] if cu else None
    if finite(total_c) and finite(total_u) and total_u > 0:
        detail = "; ".join(
            f"{name}: {parts}"
            for name, parts in ((candidate, parts_c), (current, parts_u))
            if parts
        )
        return (
            f"{candidate} takes {format_cpu_s(total_c)} CPU s per day of events in all, "
            f"{total_c / total_u:.2g}× {current}'s {format_cpu_s(total_u)}"
            + (f" ({detail})" if detail else "")
        )
    if not parts_c:
        return ""
    return f"{candidate} takes {parts_c}" + (f" (against {current}: {parts_u})" if parts_u else "")


# --------------------------------------------------------------------------- recommendations

_LEVELS = (
    (1, "fresh features", ("stream",), ("batch",)),
    (2, "online learning", ("online",), ("stream", "batch")),
)


def _first_of(names: Sequence[str], kinds: Kinds, kind: str) -> str | None:
    return next((n for n in names if kinds.get(n) == kind), None)


def _advice(call: str | None, d: Diff, higher_is_better: bool) -> str:
    """move / stay / undecided, from the practical call (a run without one: significance)."""
    if call is None:
        if not d.get("significant") or not finite(d.get("estimate")):
            return "undecided"
        return "move" if d.get("better") else "stay"
    if call == GAIN:
        return "move"
    if call in (LOSS, EQUIVALENT):
        return "stay"
    return "undecided"


def recommendations(
    m: MetricsJson,
    names: Sequence[str],
    kinds: Kinds,
    metric: MetricName,
    higher_is_better: bool,
    pair: PairLookup,
    forgetting: Sequence[ForgettingSummary],
    cost: Sequence[CostSummary],
) -> list[Recommendation]:
    """Level 1 and level 2, each where the run has both sides (``pair(a, b)`` is a − b)."""
    out: list[Recommendation] = []
    for level, question, (candidate_kind,), current_kinds in _LEVELS:
        candidate = _first_of(names, kinds, candidate_kind)
        current = next(
            (c for k in current_kinds if (c := _first_of(names, kinds, k)) is not None), None
        )
        if candidate is None or current is None:
            continue
        d = pair(candidate, current)
        if d is None:
            continue
        vs_p = (
            versus_reference(m, candidate, PERSISTENCE, metric)
            if PERSISTENCE in reference_names(m)
            else None
        )
        call = practical_call(d, higher_is_better) if finite(d.get("estimate")) else None
        advice = _advice(call, d, higher_is_better)
        # level 2 is asked against the fresh-feature strategy; when level 1 keeps the batch one,
        # the team's real alternative is online against batch, so the sentence says that too
        kept = None
        level1 = out[0] if out and out[0]["level"] == 1 else None
        if level1 and level1["advice"] != "move" and level1["candidate"] == current:
            to_kept = pair(candidate, level1["current"])
            kept = (level1["current"], to_kept) if to_kept else None
        sentence = _sentence(
            level, question, advice, candidate, current, metric, higher_is_better, d, vs_p,
            {f["strategy"]: f for f in forgetting}, {c["strategy"]: c for c in cost}, kept,
        )  # fmt: skip
        out.append(
            Recommendation(
                level=level,
                question=question,
                advice=advice,
                candidate=candidate,
                current=current,
                metric=metric,
                difference=d,
                versus_persistence=vs_p,
                sentence=sentence,
            )
        )
    return out


def _sentence(
    level: int,
    question: str,
    advice: str,
    candidate: str,
    current: str,
    metric: MetricName,
    higher_is_better: bool,
    d: Diff,
    vs_p: Diff | None,
    forgetting: Mapping[str, ForgettingSummary],
    cost: Mapping[str, CostSummary],
    kept: tuple[str, Diff] | None = None,
) -> str:
    head = f"Level {level}, {question}"
    diff = f"{difference_text(d, metric)} ({candidate} − {current}), " + call_phrase(
        d, metric, higher_is_better
    )
    if not finite(d.get("estimate")):
        why = d.get("reason") or "no value"
        return f"{head}: {candidate} vs {current} could not be compared ({why})."
    verb = {1: "move to fresh features", 2: "add online learning"}[level]
    if advice == "move":
        text = f"{head}: {verb} ({candidate} over {current}): {diff}"
    elif advice == "stay":
        text = f"{head}: stay with {current}, it is not worth it to {verb}: {diff}"
    else:
        text = f"{head}: this run cannot tell whether to {verb}: {diff}"
    clauses = []
    if kept is not None and finite(kept[1].get("estimate")):
        clauses.append(
            f"against {kept[0]}, which level 1 keeps: {difference_text(kept[1], metric)}, "
            + call_phrase(kept[1], metric, higher_is_better)
        )
    if vs_p is not None and finite(vs_p.get("estimate")):
        good = practical_call(vs_p, higher_is_better) == GAIN or (
            practical_call(vs_p, higher_is_better) is None and bool(vs_p.get("better"))
        )
        clauses.append(
            f"{candidate} {'beats' if good else 'does not beat'} persistence "
            f"({difference_text(vs_p, metric)})"
        )
    f = forgetting.get(candidate)
    if f is not None:
        clauses.append(f"{candidate} {forgetting_phrase(f)}")
    compute = compute_clause(candidate, current, cost.get(candidate), cost.get(current))
    if compute:
        clauses.append(compute)
    return text + ("; " + "; ".join(clauses) if clauses else "") + "."
