"""Reading a difference for a decision: its practical call, and how a strategy fares against the
naive references.

A difference between two strategies carries its bootstrap interval, the smallest effect that
matters ``δ`` (``min_effect``) and the practical call of :mod:`rtml_cli.relevance`: "gain",
"loss", "no practical difference" or "inconclusive". The report words every comparison with that
call, never with bare significance: a difference inside ``±δ`` is never called a gain or a loss.
A run written before rtml knew ``δ`` has neither field, and its differences are read by
significance as before.

The naive references (``persistence``, ``prior``; :mod:`rtml_cli.baselines`) are scored like
strategies but are not deployments: :func:`reference_sentences` says whether the best strategy
beats persistence with its interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rtml_cli.metrics_schema import Diff, MetricName, MetricsJson
from rtml_cli.relevance import EQUIVALENT, GAIN, INCONCLUSIVE, LOSS, classify
from rtml_cli.report_svg import finite
from rtml_cli.report_values import format_metric, format_signed, metric_label

CALLS = (GAIN, LOSS, EQUIVALENT, INCONCLUSIVE)
#: the reference a strategy must beat to be worth serving
PERSISTENCE = "persistence"


def practical_call(d: Mapping[str, Any], higher_is_better: bool) -> str | None:
    """The practical call of a difference; None for a run without one (read by significance).

    The call is recomputed from the interval and ``δ`` when both are there, so a difference
    within ``±δ`` is never a gain or a loss, whatever the file says (and a negated difference
    gets the right direction).

    >>> practical_call({"estimate": 0.003, "low": 0.001, "high": 0.004, "min_effect": 0.005,
    ...                 "call": "gain"}, True)
    'no practical difference'
    >>> practical_call({"estimate": 0.02, "low": 0.01, "high": 0.03}, True) is None
    True
    """
    if "call" not in d and "min_effect" not in d:
        return None
    est, low, high, delta = (d.get(k) for k in ("estimate", "low", "high", "min_effect"))
    if finite(delta) and finite(est) and finite(low) and finite(high):
        return classify(est, low, high, delta, higher_is_better=higher_is_better)
    call = d.get("call")
    return call if call in CALLS and call not in (GAIN, LOSS) else INCONCLUSIVE


def format_effect(delta: Any) -> str:
    """``δ`` in the metric's unit, three significant digits (``0.005``, ``0.123``)."""
    return f"{delta:.3g}" if finite(delta) else "n/a"


def within_phrase(d: Mapping[str, Any], metric: str) -> str:
    """``±0.005 AUC``: the band a difference must leave to matter."""
    return f"±{format_effect(d.get('min_effect'))} {metric_label(metric)}"


def call_phrase(d: Mapping[str, Any], metric: str, higher_is_better: bool) -> str:
    """What a difference means for a decision, in a few words.

    >>> call_phrase({"estimate": 0.001, "low": -0.002, "high": 0.004, "min_effect": 0.005},
    ...             "auc", True)
    'no practical difference (within ±0.005 AUC)'
    >>> call_phrase({"estimate": 0.02, "low": 0.01, "high": 0.03, "significant": True}, "auc", True)
    'a significant gain'
    """
    call = practical_call(d, higher_is_better)
    if call is None:  # a run before the practical reading: significance, as it was then
        est = d.get("estimate")
        if not d.get("significant") or not finite(est):
            return "not significant"
        return f"a significant {'gain' if (est > 0) == higher_is_better else 'loss'}"
    if call == EQUIVALENT:
        return f"no practical difference (within {within_phrase(d, metric)})"
    if call in (GAIN, LOSS):
        return f"a {call} (beyond {within_phrase(d, metric)})"
    if not finite(d.get("min_effect")):
        return f"inconclusive (no smallest difference that matters is known for {metric_label(metric)})"
    return f"inconclusive (the interval is too wide to tell at {within_phrase(d, metric)})"


def interval_text(d: Mapping[str, Any]) -> str:
    """`` [+0.010, +0.031]`` (signed bounds), empty when the interval is missing."""
    low, high = d.get("low"), d.get("high")
    if not (finite(low) and finite(high)):
        return ""
    return f" [{format_signed(low)}, {format_signed(high)}]"


def difference_text(d: Mapping[str, Any], metric: str) -> str:
    """``AUC +0.021 [+0.010, +0.031]``."""
    return f"{metric_label(metric)} {format_signed(d.get('estimate'))}{interval_text(d)}"


def negated(d: Mapping[str, Any]) -> Diff:
    """b − a from a − b: the interval flips, a significant gain becomes a loss; the practical
    call is recomputed by :func:`practical_call` from the flipped interval."""
    out = Diff(**d)  # type: ignore[typeddict-item]
    estimate, low, high = d.get("estimate"), d.get("low"), d.get("high")
    out["estimate"] = -estimate if finite(estimate) else None
    out["low"] = -high if finite(high) else None
    out["high"] = -low if finite(low) else None
    if d.get("better") is not None and d.get("significant"):
        out["better"] = not d["better"]
    if d.get("call") in (GAIN, LOSS):
        out["call"] = LOSS if d.get("call") == GAIN else GAIN
    return out


def reference_names(m: MetricsJson) -> list[str]:
    """The naive references the run scored (none in a run before them)."""
    return [str(r) for r in m.get("references") or [] if r in (m.get("quality") or {})]


def versus_reference(
    m: MetricsJson, strategy: str, reference: str, metric: MetricName
) -> Diff | None:
    """``strategy`` − ``reference`` on ``metric``, from ``vs_references`` (or the baseline's
    difference to the reference, negated, when the strategy is the baseline)."""
    found: Any = m.get("vs_references")
    for key in (strategy, reference, metric):  # a damaged file may hold anything here
        found = found.get(key) if isinstance(found, Mapping) else None
    if isinstance(found, Mapping) and found:
        return Diff(**found)  # type: ignore[typeddict-item]
    if strategy == m.get("baseline"):
        to_baseline = (m.get("diff_to_baseline") or {}).get(reference)
        d = to_baseline.get(metric) if to_baseline else None
        return negated(d) if d else None
    return None


def quality_value(m: MetricsJson, name: str, metric: MetricName) -> float | None:
    """The overall value of ``metric`` for a strategy or reference (None when missing)."""
    q = (m.get("quality") or {}).get(name)
    return q.get(metric) if q else None


def best_strategy(
    m: MetricsJson, names: Sequence[str], metric: MetricName, higher_is_better: bool
) -> str | None:
    """The strategy with the best value of ``metric`` (None when no strategy has one)."""
    ranked = [n for n in names if finite(quality_value(m, n, metric))]
    if not ranked:
        return None
    return (max if higher_is_better else min)(
        ranked, key=lambda n: float(quality_value(m, n, metric) or 0.0)
    )


def beats(d: Mapping[str, Any] | None, higher_is_better: bool) -> bool:
    """``d`` (strategy − reference) shows the strategy better beyond ``δ`` (or, in a run before
    ``δ``, significantly better)."""
    if not d:
        return False
    call = practical_call(d, higher_is_better)
    if call is None:
        return bool(d.get("better"))
    return call == GAIN


def reference_sentences(
    m: MetricsJson, names: Sequence[str], metric: MetricName, higher_is_better: bool
) -> list[str]:
    """The references' own values, then whether the best strategy beats persistence."""
    refs = reference_names(m)
    if not refs or not names:
        return []
    label = metric_label(metric)
    values = ", ".join(f"{r} {format_metric(quality_value(m, r, metric))}" for r in refs)
    out = [f"Naive references ({label}): {values}."]
    best = best_strategy(m, names, metric, higher_is_better)
    if best is None or PERSISTENCE not in refs:
        return out
    d = versus_reference(m, best, PERSISTENCE, metric)
    if d is None or not finite(d.get("estimate")):
        out.append(
            f"The best strategy, {best}, has no paired difference to persistence in this run "
            f"({label} {format_metric(quality_value(m, best, metric))} vs "
            f"{format_metric(quality_value(m, PERSISTENCE, metric))})."
        )
    elif beats(d, higher_is_better):
        out.append(
            f"The best strategy, {best}, beats persistence: {difference_text(d, metric)} "
            f"against it, {call_phrase(d, metric, higher_is_better)}."
        )
    else:
        out.append(
            f"No strategy beats persistence: the best, {best}, is {difference_text(d, metric)} "
            f"against it, {call_phrase(d, metric, higher_is_better)}."
        )
    return out
