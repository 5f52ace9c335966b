"""The report dict (``rtml report --format json``) as types: what :func:`build_report` returns.

JSON format (``schema_version`` 1)::

    {
      "schema_version": 1,
      "run": str,                                  # run directory as given
      "task": "binary" | "regression",
      "baseline": str,
      "strategies": [{"name": str, "kind": str | null}],
      "primary_metric": "auc" | "accuracy" | "mae",   # the metric the verdict uses
      "verdict": [str, ...],                       # plain sentences, most important first
      "findings": [{"label", "strategy", "reference", "metric", "estimate", "low", "high",
                    "significant", "better", "reason"}],     # the pairs behind the verdict
      "checks": [{"check", "status": "pass"|"fail"|"error", "values": {name: float},
                  "detail"}],
      "exit_code": 0 | 1 | 3,                      # what `rtml report` exits with
      "capacity": {"slo_ms", "traffic": [float], "workers": int | null,
                   "strategies": {name: {"<traffic>x": CAPACITY}}} | null,
      "metrics": {...},                            # metrics.json as is (rtml_cli.metrics_schema)
      "manifest": {...},                           # manifest.json as is
      "run_b": null | {"run": str, "rows": [{"strategy", "metric", "a", "b", "diff"}],
                       "verdict": [str]},
      "references": [str],                         # naive references (persistence, prior)
      "forgetting": [{"strategy", "kind", "metric", "higher_is_better", "blocks", "mean", "max",
                      "worst_block", "worst_block_end", "best_on_worst", "final_on_worst",
                      "sampled_per_block", "sampled_blocks"}],
      "cost": [{"strategy", "kind", "source": "cost"|"compute", "cpu_s_per_day",
                "retrain_cpu_s_per_day", "score_job_cpu_s_per_cutoff",
                "predict_cpu_ms_per_request", "update_cpu_ms_per_update", "update_cpu_s_per_day",
                "predictions_made", "predictions_used", "batch_lookback", "other"}],
      "recommendations": [{"level": 1|2, "question", "advice": "move"|"stay"|"undecided",
                           "candidate", "current", "metric", "difference", "versus_persistence",
                           "sentence"}]
    }

A difference (``findings``, ``recommendations``) carries ``min_effect`` and ``call`` when the run
has them; the verdict words it with the call (:mod:`rtml_cli.report_calls`).

CAPACITY is the dict of :func:`rtml_cli.capacity.simulate_capacity` plus ``"chosen"`` (the
``by_workers`` entry used for ``e2e_p99_ms`` checks: ``--workers`` if given, else the workers
needed). Its busiest minute and hour are clock windows of the data's own timeline at every
traffic level. A number that is missing or not finite (NaN in ``metrics.json``) is ``null``.

User text (strategy names, paths, check expressions, manifest values) stays raw in the dict and
in the layout; the renderers in :mod:`rtml_cli.report_render` escape it for their medium.

A new part of the report gets a key here (``total=False`` in :class:`Report` if old readers may
lack it), is filled in :func:`rtml_cli.report_build.build_report`, and drawn by a section
function of :mod:`rtml_cli.report_layout`.
"""

from __future__ import annotations

from typing import Any, TypedDict

from rtml_cli.metrics_schema import Diff, MetricName, MetricsJson

SCHEMA_VERSION = 1
#: The four deployment kinds a strategy can have.
KINDS = ("batch", "stream", "online", "static")
#: Kinds that serve each event with a model call, so serving capacity applies to them.
PER_EVENT_KINDS = ("stream", "online", "static")


class StrategyKind(TypedDict):
    name: str
    #: batch, stream, online or static; None when neither the manifest nor the name says
    kind: str | None


class Finding(Diff):
    """One comparison behind the verdict (``strategy`` − ``reference``)."""

    label: str
    strategy: str
    reference: str
    metric: MetricName


class Check(TypedDict):
    """A check's outcome (:meth:`rtml_cli.checks.CheckResult.to_dict`)."""

    check: str
    status: str
    values: dict[str, float]
    detail: str


class PeakWindow(TypedDict, total=False):
    """The busiest clock minute or hour of the arrivals."""

    start_us: int
    end_us: int
    events: int
    rate_per_s: float | None
    x_mean: float | None


class WorkersLatency(TypedDict, total=False):
    """End-to-end latency with a given number of workers."""

    workers: int
    latency_ms: dict[str, float | None]
    utilization: float | None
    peak_hour_p99_ms: float | None
    meets_slo: bool


class CapacityAtTraffic(TypedDict, total=False):
    """:func:`rtml_cli.capacity.simulate_capacity` at one traffic level, plus ``chosen``."""

    traffic: float
    slo_ms: float
    rate_per_s: float | None
    workers_needed: int | None
    by_workers: list[WorkersLatency]
    peak_minute: PeakWindow
    peak_hour: PeakWindow
    reason: str | None
    chosen: WorkersLatency | None


class Capacity(TypedDict):
    slo_ms: float
    #: traffic multipliers, 1.0 first
    traffic: list[float]
    workers: int | None
    #: strategy → "<traffic>x" → result
    strategies: dict[str, dict[str, CapacityAtTraffic]]


class RunBRow(TypedDict):
    strategy: str
    #: a metric name, or ``predict_p99_ms``
    metric: str
    a: float | None
    b: float | None
    diff: float | None


class RunB(TypedDict):
    run: str
    rows: list[RunBRow]
    verdict: list[str]


class ForgettingSummary(TypedDict):
    """How much one strategy's final model forgot of the earlier blocks (``metrics.forgetting``)."""

    strategy: str
    kind: str | None
    #: the metric the snapshots were scored with
    metric: str
    higher_is_better: bool
    blocks: int
    mean: float | None
    max: float | None
    #: the block forgotten most, its end time, and the best and final quality on it
    worst_block: int | None
    worst_block_end: str | None
    best_on_worst: float | None
    final_on_worst: float | None
    #: labelled events each block was scored on at most (a seeded sample beyond that)
    sampled_per_block: int | None
    #: blocks that had more labelled events than that (None when the run does not say)
    sampled_blocks: int | None


class CostSummary(TypedDict):
    """What one strategy costs to run, in CPU time (``metrics.cost``, or the timed calls of
    ``metrics.compute`` for a run without it)."""

    strategy: str
    kind: str | None
    #: "cost" (the run's cost section) or "compute" (derived from its timed calls)
    source: str
    #: retraining, scoring jobs, updates and per-request calls, per day of scored events
    cpu_s_per_day: float | None
    retrain_cpu_s_per_day: float | None
    score_job_cpu_s_per_cutoff: float | None
    #: None for a batch strategy: a request is a lookup of a precomputed score
    predict_cpu_ms_per_request: float | None
    update_cpu_ms_per_update: float | None
    update_cpu_s_per_day: float | None
    #: keyed batch: predictions a real scoring job makes vs the ones served
    predictions_made: float | None
    predictions_used: float | None
    #: the look-back in which an entity counts as active for the batch job ("30d")
    batch_lookback: str | None
    #: every other number of the cost section, nested keys joined with "_"
    other: dict[str, float | None]


class Recommendation(TypedDict):
    """One level of the decision: fresh features (1) or online learning (2)."""

    level: int
    #: "fresh features" or "online learning"
    question: str
    #: "move" | "stay" | "undecided"
    advice: str
    candidate: str
    current: str
    metric: MetricName
    #: candidate − current, with its practical call
    difference: Diff | None
    #: candidate − persistence
    versus_persistence: Diff | None
    sentence: str


class Report(TypedDict):
    schema_version: int
    run: str
    task: str | None
    baseline: str | None
    strategies: list[StrategyKind]
    primary_metric: MetricName
    verdict: list[str]
    findings: list[Finding]
    checks: list[Check]
    exit_code: int
    capacity: Capacity | None
    metrics: MetricsJson
    manifest: dict[str, Any]
    run_b: RunB | None
    #: the naive references scored beside the strategies (none in older runs)
    references: list[str]
    forgetting: list[ForgettingSummary]
    cost: list[CostSummary]
    recommendations: list[Recommendation]
