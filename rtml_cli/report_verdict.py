"""The verdict: the report's findings as plain sentences, most important first.

:func:`verdict_sentences` decides what the verdict says and in which order; each helper writes the
sentences of one part (a finding, freshness, per-event latency, capacity, checks). The sentences
hold raw user text (strategy names); the renderers escape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rtml_cli.checks import CheckResult
from rtml_cli.metrics_schema import MetricName, MetricsJson
from rtml_cli.report_calls import (
    call_phrase,
    difference_text,
    practical_call,
    reference_sentences,
)
from rtml_cli.report_schema import (
    PER_EVENT_KINDS,
    Capacity,
    Finding,
    Recommendation,
    RunBRow,
    WorkersLatency,
)
from rtml_cli.report_svg import finite
from rtml_cli.report_values import (
    format_epoch_minute,
    format_metric,
    format_ms,
    format_seconds,
    format_signed,
    format_times_mean,
    metric_label,
    workers_phrase,
)


def verdict_sentences(
    m: MetricsJson,
    names: Sequence[str],
    kinds: dict[str, str | None],
    metric: MetricName,
    higher_is_better: bool,
    findings: Sequence[Finding],
    capacity: Capacity | None,
    results: Sequence[CheckResult],
    recommendations: Sequence[Recommendation] = (),
) -> list[str]:
    """The whole verdict, in reading order; it ends with one recommendation per level."""
    verdict = [finding_sentence(f, higher_is_better) for f in findings]
    if not names:
        verdict.append("This run has no strategies: there is nothing to compare.")
    verdict += best_sentences(m, names, metric, higher_is_better)
    verdict += reference_sentences(m, names, metric, higher_is_better)
    verdict += freshness_sentences(m, names, kinds)
    verdict += latency_sentences(m, names, kinds)
    if capacity:
        verdict += capacity_sentences(capacity)
    verdict += checks_sentences(results)
    verdict += [r["sentence"] for r in recommendations]
    return verdict


def finding_sentence(f: Finding, higher_is_better: bool) -> str:
    """``Fresh features (stream vs batch): AUC +0.021 [+0.010, +0.031], a gain (beyond ±0.005
    AUC).`` The practical call words it (a run without one: significance)."""
    label = metric_label(f["metric"])
    head = f"{f['label']} ({f['strategy']} vs {f['reference']})"
    est = f.get("estimate")
    if est is None:
        return (
            f"{head}: the {label} difference could not be computed "
            f"({f.get('reason') or 'no value'})."
        )
    if practical_call(f, higher_is_better) is not None:
        return f"{head}: {difference_text(f, f['metric'])}, " + (
            call_phrase(f, f["metric"], higher_is_better) + "."
        )
    interval = ""
    low, high = f.get("low"), f.get("high")
    if low is not None and high is not None:
        interval = f" [{format_metric(low)}, {format_metric(high)}]"
    if not f.get("significant"):
        why = f" ({f['reason']})" if f.get("reason") and not interval else ""
        return f"{head}: {label} {format_signed(est)}{interval}, not significant{why}."
    good = (est > 0) == higher_is_better
    return (
        f"{head}: {label} {format_signed(est)}{interval}, "
        f"a significant {'gain' if good else 'loss'}."
    )


def best_sentences(
    m: MetricsJson, names: Sequence[str], metric: MetricName, higher_is_better: bool
) -> list[str]:
    """The best strategy on the verdict's metric, and the baseline's value."""
    quality = m["quality"] or {}

    def value(strategy: str) -> float | None:
        q = quality.get(strategy)
        return q.get(metric) if q else None

    ranked = [n for n in names if finite(value(n))]
    if not ranked:
        return []
    best = (max if higher_is_better else min)(ranked, key=lambda n: value(n) or 0.0)
    base = m["baseline"]
    return [
        f"Best {metric_label(metric)}: {best} ({format_metric(value(best))}); "
        f"baseline {base}: {format_metric(value(base))}."
    ]


def freshness_sentences(
    m: MetricsJson, names: Sequence[str], kinds: dict[str, str | None]
) -> list[str]:
    """How stale batch serving is, in numbers (the cost the fresh strategies remove)."""
    out = []
    for n in names:
        freshness = m.get("freshness", {}).get(n)
        staleness = freshness.get("staleness_s") if freshness else None
        if freshness and staleness and kinds.get(n) == "batch" and staleness.get("mean"):
            cold = freshness.get("cold_start", 0)
            out.append(
                f"{n} serves features {format_seconds(staleness.get('mean'))} stale on average "
                f"(p90 {format_seconds(staleness.get('p90'))}, "
                f"max {format_seconds(staleness.get('max'))})"
                + (f"; {cold} events were cold starts" if cold else "")
                + "."
            )
    return out


def latency_sentences(
    m: MetricsJson, names: Sequence[str], kinds: dict[str, str | None]
) -> list[str]:
    """Per-event cost of the fresh strategies: one-row predict p99 (and update p99)."""
    parts = []
    for n in names:
        if kinds.get(n) not in PER_EVENT_KINDS:
            continue
        compute = m.get("compute", {}).get(n)
        single = compute.get("predict_single_row") if compute else None
        if not compute or not single:
            continue
        text = f"{n} {format_ms(single['wall_ms'].get('p99'))} ms"
        interval = single.get("wall_p99_interval_ms")
        if isinstance(interval, list) and len(interval) == 2:  # runs before 0.2 have none
            lo, hi = interval
            bounds = (
                f"[{format_ms(lo)}, {format_ms(hi) if finite(hi) else 'above the largest call'}]"
            )
            text += f" (95 % interval {bounds}, {single.get('count')} calls)"
        else:
            text += f" ({single.get('count')} calls)"
        update = (compute.get("kinds") or {}).get("update")
        if update:
            text += f", + update p99 {format_ms(update['wall_ms'].get('p99'))} ms"
        parts.append(text)
    out = [f"One-row predict p99: {'; '.join(parts)}."] if parts else []
    batch = [n for n in names if kinds.get(n) == "batch"]
    if batch:
        out.append(
            f"{', '.join(batch)} serve{'s' if len(batch) == 1 else ''} the precomputed scores of "
            "a scoring job: a request is a lookup, not a model call, so its cost is the "
            "scoring job's (Compute), not a per-request latency."
        )
    return out


def capacity_phrase(level: str, w: WorkersLatency | dict[str, Any], slo_ms: float) -> str:
    """Which traffic, which workers, which p99, and whether it meets the SLO, in one phrase.

    Examples
    --------
    >>> capacity_phrase("10x", {"workers": 1, "latency_ms": {"p99": 25.94}, "meets_slo": True}, 50)
    'at 10x traffic, 1 worker: p99 25.9 ms — meets p99 ≤ 50 ms'
    """
    p99 = (w.get("latency_ms") or {}).get("p99")
    latency = f"p99 {format_ms(p99)} ms" if finite(p99) else "p99 n/a"
    ok = "meets" if w.get("meets_slo") else "misses"
    return (
        f"at {level} traffic, {workers_phrase(w.get('workers'))}: {latency} — "
        f"{ok} p99 ≤ {slo_ms:g} ms"
    )


def capacity_sentences(capacity: Capacity) -> list[str]:
    """One sentence: the first per-event strategy at the highest traffic (the table has all)."""
    slo, lvl = capacity["slo_ms"], f"{capacity['traffic'][-1]:g}x"
    for s, per in capacity["strategies"].items():
        r = per.get(lvl) or {}
        by = {w.get("workers"): w for w in r.get("by_workers") or []}
        need, chosen = r.get("workers_needed"), r.get("chosen")
        if not chosen:
            return [f"Capacity of {s} at {lvl} traffic: {r.get('reason') or 'not computed'}."]
        text = f"Serving {s} per event {capacity_phrase(lvl, chosen, slo)}"
        if need and chosen.get("workers") != need:
            text += f"; {workers_phrase(need)} would meet it"
        elif need and need - 1 in by:
            text += f"; {capacity_phrase(lvl, by[need - 1], slo)}"
        peak_hour = r.get("peak_hour") or {}
        return [
            text + ". The busiest hour of the data "
            f"({format_epoch_minute(peak_hour.get('start_us'))}) arrives at "
            f"{format_times_mean(peak_hour.get('x_mean'))} the mean rate."
        ]
    return []


def checks_sentences(results: Sequence[CheckResult]) -> list[str]:
    """How many checks passed, failed and could not be computed."""
    if not results:
        return []
    passed = sum(r.status == "pass" for r in results)
    failed = sum(r.status == "fail" for r in results)
    errors = sum(r.status == "error" for r in results)
    return [
        f"Checks: {passed} passed, {failed} failed"
        + (f", {errors} could not be computed." if errors else ".")
    ]


def run_b_sentences(rows: Sequence[RunBRow], metric: MetricName, shared: bool) -> list[str]:
    """Run A vs run B on the verdict's metric, per shared strategy."""
    verdict = [
        f"{r['strategy']}: {metric_label(metric)} {format_metric(r['a'])} in run A, "
        f"{format_metric(r['b'])} in run B ({format_signed(r['diff'])})."
        for r in rows
        if r["metric"] == metric
    ]
    if not shared:
        verdict.append("The two runs share no strategy name; nothing to compare side by side.")
    return verdict
