"""The shape of ``metrics.json`` as types, so that every reader of it is checked by mypy.

:func:`rtml_cli.metrics.compute_metrics` writes this dict (the prose schema and the meaning of
each field are in :mod:`rtml_cli.metrics`); ``rtml report`` and the checks read it. A number that
is missing, or was not finite when written, is ``None`` (JSON ``null``), so every number here may
be ``None`` to a reader. Keys that vary with the data (strategy names, timing kinds) are ``dict``
keys; keys fixed by rtml are TypedDict fields, so a misspelt key is a type error.

A metric name used as a key (``quality[s][metric]``) must be a :data:`MetricName`: mypy then
knows the value is a ``float | None``.
"""

from __future__ import annotations

from typing import Literal, TypedDict

#: Every metric rtml computes: binary ``accuracy log_loss auc f1 brier``, regression ``mae rmse r2``.
MetricName = Literal["accuracy", "log_loss", "auc", "f1", "brier", "mae", "rmse", "r2"]
Task = Literal["binary", "regression"]


class _DiffRequired(TypedDict):
    estimate: float | None
    low: float | None
    high: float | None
    significant: bool | None
    #: the difference goes the good way for this metric and is significant
    better: bool | None
    reason: str | None


class Diff(_DiffRequired, total=False):
    """A paired difference a − b with its block-bootstrap interval (runs before the practical
    reading lack ``min_effect`` and ``call``)."""

    #: the smallest difference that matters, in the metric's unit (None: not known)
    min_effect: float | None
    #: "gain" | "loss" | "no practical difference" | "inconclusive" (rtml_cli/relevance.py)
    call: str


class Summary(TypedDict):
    """Distribution of a duration over events (missing values excluded)."""

    mean: float | None
    p50: float | None
    p90: float | None
    max: float | None
    count: int


#: Percentiles of call durations in milliseconds (``p99.9`` is not an identifier, hence the form).
Percentiles = TypedDict(
    "Percentiles",
    {
        "p50": float | None,
        "p90": float | None,
        "p99": float | None,
        "p99.9": float | None,
        "max": float | None,
        "mean": float | None,
    },
)


class _CallsRequired(TypedDict):
    count: int
    rows: int
    wall_ms: Percentiles
    cpu_ms: Percentiles
    wall_total_s: float
    cpu_total_s: float


class Calls(_CallsRequired, total=False):
    """The timed calls of one kind (or the single-row predict calls) of a strategy."""

    #: 95 % interval of the p99 wall time [low, high]; high is None above the largest call.
    #: Runs written before 0.2 have none.
    wall_p99_interval_ms: list[float | None]


class Compute(TypedDict):
    """What one strategy's timed calls cost."""

    kinds: dict[str, Calls]
    #: ``predict`` calls with one row: the latency a per-event service pays
    predict_single_row: Calls | None
    events: int
    busy_s: float
    events_per_s: float | None


class _QualityRequired(TypedDict):
    n: int
    #: why a metric is None, by metric name
    reasons: dict[str, str]


class Quality(_QualityRequired, total=False):
    """Overall quality of one strategy: the task's metrics (the others are absent)."""

    accuracy: float | None
    log_loss: float | None
    auc: float | None
    f1: float | None
    brier: float | None
    mae: float | None
    rmse: float | None
    r2: float | None


class _StalenessBucketRequired(TypedDict):
    label: str
    lo_s: float
    hi_s: float | None
    n: int


class StalenessBucket(_StalenessBucketRequired, total=False):
    """Quality of the events served with staleness in ``(lo_s, hi_s]`` (the task's metrics)."""

    accuracy: float | None
    log_loss: float | None
    auc: float | None
    f1: float | None
    brier: float | None
    mae: float | None
    rmse: float | None
    r2: float | None


class Freshness(TypedDict):
    """How old the features and the model were when a strategy served an event."""

    staleness_s: Summary
    feature_age_s: Summary
    model_age_s: Summary
    cold_start: int
    events: int


class Pair(TypedDict):
    """Differences ``strategy`` − ``reference`` for every metric."""

    strategy: str
    reference: str
    metrics: dict[MetricName, Diff]


class QualityOverTime(TypedDict):
    start: list[str]
    n: list[int]
    #: strategy → metric → one value per bucket
    strategies: dict[str, dict[MetricName, list[float | None]]]


class Span(TypedDict):
    start: str
    end: str
    events: int


class Bucket(TypedDict):
    us: int
    text: str
    count: int
    auto: bool


class Bootstrap(TypedDict):
    resamples: int
    seed: int
    level: float
    blocks: int
    block: str


class Forgetting(TypedDict, total=False):
    """Catastrophic forgetting of one strategy whose model changes (rtml_cli/forgetting.py)."""

    metric: str
    higher_is_better: bool
    #: end of each time block (ISO), the snapshot times
    block_ends: list[str]
    #: Q[snapshot][block], None above the diagonal or where undefined
    matrix: list[list[float | None]]
    #: best quality any snapshot had on a block minus the final snapshot's (len = blocks - 1)
    per_block: list[float | None]
    mean: float | None
    max: float | None
    max_block: int | None
    #: labelled events each block is scored on at most (a seeded sample beyond that)
    sampled_per_block: int


class CostRetrain(TypedDict):
    count: int
    cpu_s: float
    cpu_s_per_day: float | None
    cpu_s_per_fit: float | None


class CostScoreJob(TypedDict):
    count: int
    cpu_s: float
    cpu_s_per_cutoff: float | None


class CostPredict(TypedDict):
    #: single-row calls of the latency sample the mean comes from
    timed_calls: int
    cpu_us_per_request: float | None
    #: model calls a per-event deployment makes (scored events; 0 for batch)
    requests: int


class CostUpdate(TypedDict):
    count: int
    cpu_s: float
    cpu_s_per_day: float | None
    cpu_us_per_update: float | None


class _BatchJobRequired(TypedDict):
    lookback: str
    lookback_s: float
    cutoffs: int
    #: (entity, cutoff) scores a real job makes: every entity active in the look-back
    predictions_made: int
    events_served: int
    entity_cutoffs_served: int
    #: of those, the ones the job had scored (the entity was active in the look-back)
    entity_cutoffs_served_from_job: int
    used_share: float | None


class BatchJob(_BatchJobRequired, total=False):
    """What a real keyed batch job would score against what the events used (rtml_cli/cost.py)."""

    #: the job's CPU at the measured CPU per scored row
    cpu_s_estimate: float


class Cost(TypedDict):
    """Measured CPU cost of one strategy (rtml_cli/cost.py; docs/semantics.md: cost)."""

    #: scored span, W to the last event, in days
    days: float
    retrain: CostRetrain
    score_job: CostScoreJob
    predict: CostPredict
    update: CostUpdate
    #: retrains + scoring jobs + updates + per-request calls, per day of events
    cpu_s_per_day: float | None
    #: keyed batch strategies only
    batch_job: BatchJob | None


class _MetricsJsonRequired(TypedDict):
    schema_version: int
    task: Task
    baseline: str
    strategies: list[str]
    metric_names: list[MetricName]
    higher_is_better: dict[MetricName, bool]
    span: Span
    bucket: Bucket
    bootstrap: Bootstrap
    quality: dict[str, Quality]
    quality_over_time: QualityOverTime
    diff_to_baseline: dict[str, dict[MetricName, Diff]]
    pairs: list[Pair]
    freshness: dict[str, Freshness]
    quality_by_staleness: dict[str, list[StalenessBucket]]
    compute: dict[str, Compute]


class MetricsJson(_MetricsJsonRequired, total=False):
    """The whole of ``metrics.json`` (``schema_version`` 1)."""

    #: strategies found in the predictions but not asked for
    ignored_strategies: list[str]
    #: the naive references (persistence, prior) scored beside the strategies
    references: list[str]
    #: strategy -> reference -> metric -> strategy − reference
    vs_references: dict[str, dict[str, dict[str, Diff]]]
    #: the smallest difference that matters per metric, as configured ("0.005" or "1%")
    min_effect: dict[str, str]
    #: strategy (whose model changes) -> forgetting matrix and summary
    forgetting: dict[str, Forgetting]
    #: strategy -> measured CPU cost (runs written before the cost section have none)
    cost: dict[str, Cost]
