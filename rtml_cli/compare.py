"""``rtml compare``: table → feature views → strategies (in parallel) → run directory.

:func:`prepare` resolves the configuration against the table (roles, task, warm-up, model,
views); :func:`run_strategies` simulates every strategy; :func:`run_compare` does both and
writes the run directory (:mod:`rtml_cli.runs`) with ``metrics.json`` from
:func:`rtml_cli.metrics.compute_metrics` and the costs of :mod:`rtml_cli.cost`. The
manifest is built in :mod:`rtml_cli.run_manifest`, the command's flags and summary table in
:mod:`rtml_cli.compare_command`.

Examples
--------
>>> result = run_compare("sample_data/clickstream.parquet")  # doctest: +SKIP
>>> result.run_dir  # doctest: +SKIP
PosixPath('runs/clickstream-20260101T000000')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.baselines import entity_codes, reference_results
from rtml_cli.config import CompareConfig, StrategySpec, build_config, find_config, load_toml
from rtml_cli.cost import DEFAULT_BATCH_LOOKBACK, cost_section
from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import ClassImbalanceWarning, InputError, UsageError
from rtml_cli.features import FEATURE_PREFIX, calendar_features
from rtml_cli.forgetting_run import forgetting_section
from rtml_cli.io import EVENT_ID, EVENT_TIME, LABEL_TIME, EventTable, Roles, load_events
from rtml_cli.metrics import bucket_width, compute_metrics
from rtml_cli.models import (
    Encoding,
    LabelInfo,
    ModelBuilder,
    check_online,
    encode,
    infer_task,
    make_encoding,
    resolve_model,
)
from rtml_cli.progress import StrategyProgress
from rtml_cli.run_manifest import run_manifest, run_summary
from rtml_cli.run_tables import PREDICTIONS_SCHEMA, TIMINGS_SCHEMA, conform
from rtml_cli.runs import (
    check_out,
    default_out,
    refuse_run_dir_over_input,
    write_run_dir,
)
from rtml_cli.strategies import (
    NO_AGE,
    NO_LABEL,
    SimData,
    StrategyResult,
    View,
    make_view,
    simulate,
    uniform_sample,
    view_frame,
)
from rtml_cli.timing import NO_TIME
from rtml_cli.zero_config import LeakWarning, default_features, leak_warnings

DEFAULT_TIMING_SAMPLE = 2000
#: ``--timing-sample auto``: at most DEFAULT_TIMING_SAMPLE single-row calls per strategy, thinned
#: so that they take about this long (never fewer than strategies.MIN_TIMED_CALLS).
DEFAULT_TIMING_BUDGET_S = 2.0


@dataclasses.dataclass
class Prepared:
    """Everything the strategies need, resolved from table + config."""

    table: EventTable
    config: CompareConfig
    label: LabelInfo
    features: list[str]
    encoding: Encoding
    builder: ModelBuilder
    data: SimData
    views: dict[str, View]
    notes: list[str]
    #: features that alone predict the label almost perfectly (shown as LeakWarning)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def view_for(self, spec: StrategySpec) -> View:
        """The fresh view, or the batch view of the strategy's period."""
        return self.views[view_key(spec)]


def _block_width(data: SimData, bucket: str | None) -> int:
    """The report's time block (µs): ``[report] bucket``, else the metrics' automatic choice over
    the labelled scored events (the forgetting matrix uses the same blocks)."""
    scored = data.t[data.s0 :][data.l[data.s0 :] != NO_LABEL]
    if len(scored) == 0:
        return 0
    return max(bucket_width(int(scored[-1] - scored[0]), bucket), 0)


def view_key(spec: StrategySpec) -> str:
    """Name of the view a strategy sees: ``fresh`` or ``batch:<period µs>``."""
    return f"batch:{spec.retrain_every_us}" if spec.kind == "batch" else "fresh"


def warmup_end(t: np.ndarray, warmup: str | float, *, source: str) -> int:
    """W in µs: first event time + duration, or the time of the first event after the fraction."""
    n = len(t)
    if isinstance(warmup, float):
        # round first: 0.14 * 50 is 7.000000000000001 in binary floating point, and its ceil
        # would put an 8th event into a warm-up meant to hold 7
        idx = int(math.ceil(round(warmup * n, 9)))
        if idx >= n:
            raise InputError(
                f"warm-up fraction {warmup} of {source} leaves no event to score ({n} events). Use a smaller --warmup."
            )
        return int(t[idx])
    d = parse_duration(warmup, what="warm-up")
    W = int(t[0]) + d
    if W > int(t[-1]):
        span = format_duration(int(t[-1]) - int(t[0]))
        raise InputError(
            f"warm-up {warmup} is longer than the data of {source} (it spans {span}); no event "
            "would be scored. Use a shorter --warmup, or a fraction such as 0.2."
        )
    return W


def prepare(
    table: str | Path,
    cfg: CompareConfig,
    *,
    seed: int = 0,
    instance: Any = None,
) -> Prepared:
    """Load the table and resolve roles, task, warm-up, model and feature views.

    Parameters
    ----------
    table : the table path.
    cfg : the validated configuration.
    seed : random seed (presets, timing sample).
    instance : an estimator object to use instead of ``cfg.model`` (library use and tests).
    """
    ev = load_events(
        table,
        cfg.roles,
        label_delay_us=cfg.label_delay_us,
        need_label=True,
        infer_label_time=True,
    )
    notes = list(ev.notes)
    roles, frame, source = ev.roles, ev.frame, ev.source
    calendar_cols: list[str] = []
    if cfg.calendar:
        # Calendar parts of the event time are known at request time: request features of
        # every view (batch included), added to the table before anything else sees it.
        cal = calendar_features(frame, cfg.calendar)
        calendar_cols = [f"event_{c.removeprefix(FEATURE_PREFIX)}" for c in cal.columns]
        clash = [c for c in calendar_cols if c in frame.columns]
        if clash:
            raise InputError(
                f"calendar feature column '{clash[0]}' is already a column of {source}; rename "
                "that column or drop the calendar part."
            )
        frame = frame.hstack(cal.rename(dict(zip(cal.columns, calendar_cols, strict=True))))
        roles = dataclasses.replace(
            roles,
            features=None if roles.features is None else [*roles.features, *calendar_cols],
            request_features=[*roles.request_features, *calendar_cols],
        )
        ev = dataclasses.replace(ev, frame=frame, roles=roles)
        notes.append(f"calendar features: {', '.join(calendar_cols)} (known at request time)")
    assert roles.label is not None
    label = infer_task(frame[roles.label], name=roles.label, source=source)
    notes.append(
        f"task: {label.task}"
        + (f" (positive class: {label.positive_class!r})" if label.task == "binary" else "")
        + (f" ({len(label.classes or [])} classes)" if label.task == "multiclass" else "")
    )
    internal = {EVENT_TIME, LABEL_TIME, EVENT_ID}
    features = [c for c in roles.feature_columns(frame.columns) if c not in internal]
    if roles.features is None:
        # zero config: never a datetime or an identifier unless listed (rtml_cli.zero_config);
        # calendar columns were asked for by name
        chosen, left_out = default_features(frame, [c for c in features if c not in calendar_cols])
        features = [c for c in features if c in chosen or c in calendar_cols]
        notes.extend(left_out)
        shown = ", ".join(features[:12]) + (
            f", … ({len(features)} columns)" if len(features) > 12 else ""
        )
        rest = "every other column" + (" but those above" if left_out else "")
        notes.append(f"features: {shown} ({rest}; set --inputs or [data] inputs to change)")
    # A label is never used before it arrives: the label, its arrival time or a column the
    # user marked as a leak can never be a feature, even when listed explicitly.
    for col, role, fix in (
        (roles.label, "the label", "drop it from [data] inputs / --inputs"),
        (roles.label_time, "the label-time column", "drop it from [data] inputs / --inputs"),
        *((c, "an ignored column", "drop it from features or from ignore") for c in roles.ignore),
    ):
        if col is not None and col in features:
            raise UsageError(
                f"feature '{col}' of {source} is {role}: using it would leak the label into "
                f"predictions made before the label arrives. {fix[0].upper()}{fix[1:]}."
            )
    for f in cfg.features:
        # a window over past events' label-time or leak column still sees values that are not
        # known yet at query time (only the label itself is delayed to its arrival)
        if f.column in (roles.label_time, *roles.ignore):
            raise UsageError(
                f"[[feature]] '{f.name}' aggregates '{f.column}', the label-time column or an "
                "ignored (leak) column, whose values are not known when each event happens. "
                "Aggregate another column (the label itself is delayed to its arrival)."
            )
    if not features:
        raise InputError(
            f"{source} has no feature column left after time/label/key/ignore. Check --inputs/[data] inputs."
        )
    for rf in roles.request_features:
        if rf not in features:
            raise UsageError(
                f"request feature '{rf}' is not among the features ({', '.join(features)}). Add it to [data] features."
            )
    t = frame[EVENT_TIME].dt.epoch("us").to_numpy().astype(np.int64)
    W = warmup_end(t, cfg.warmup, source=source)
    notes.append(f"warm-up: {cfg.warmup} → scoring events from {_iso(W)}")
    l = frame[LABEL_TIME].dt.epoch("us").fill_null(NO_LABEL).to_numpy().astype(np.int64)  # noqa: E741 (l_i as in docs/semantics.md)
    data = SimData(t=t, l=l, y=label.y, W=W, task=label.task)
    data.block_us = _block_width(data, cfg.bucket)
    leaks = leak_warnings(frame, features, label.y, t < W, task=label.task, label=roles.label)
    for text in leaks:
        warnings.warn(text, LeakWarning, stacklevel=2)
    raw = bool(cfg.model.estimator or cfg.model.factory or instance is not None)
    enc = make_encoding(frame, features, raw=raw)
    builder = resolve_model(cfg.model, task=label.task, encoding=enc, seed=seed, instance=instance)
    if not (cfg.model.preset or cfg.model.estimator or cfg.model.factory) and instance is None:
        notes.append(f"model: {builder.describe()} (default; pass --model to change)")
    for s in cfg.strategies:
        if s.kind == "online":
            check_online(builder, what=s.name)
    views: dict[str, View] = {}
    for s in cfg.strategies:
        key = view_key(s)
        if key in views:
            continue
        vf = view_frame(
            frame,
            columns=features,
            key=roles.key,
            request_features=roles.request_features,
            every_us=s.retrain_every_us if s.kind == "batch" else None,
            feature_specs=cfg.features,
            label=roles.label,
        )
        cols = features + [f.name for f in cfg.features]
        enc_v = enc if not cfg.features else make_encoding(vf, cols, raw=raw)
        if cfg.features:
            # presets pick their columns by position: without this the windowed ones are dropped
            builder.encoding = enc_v
        views[key] = make_view(frame, vf, encode(vf, enc_v), key)
    return Prepared(ev, cfg, label, features, enc, builder, data, views, notes, leaks)


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat()


def run_strategies(
    prep: Prepared,
    *,
    jobs: int = 1,
    dask: str | None = None,
    timing_sample: int | None = DEFAULT_TIMING_SAMPLE,
    timing_budget_s: float | None = None,
    seed: int = 0,
    fast: bool = True,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[StrategyResult]:
    """Simulate every configured strategy.

    ``jobs`` > 1: every retrain (with the events it serves) of a scheduled strategy, and every
    online strategy, is a task for ``jobs`` local worker processes; ``dask``: the same tasks on
    the Dask scheduler at that address (:mod:`rtml_cli.parallel`). The results are the serial
    run's, bit for bit, except timings.

    ``progress``: bars in a terminal, else a line per strategy at most every
    :data:`rtml_cli.progress.PROGRESS_INTERVAL_S` and one as each ends (through ``echo``).
    """
    specs = prep.config.strategies
    m = len(prep.data.t) - prep.data.s0
    sample = uniform_sample(m, timing_sample, seed)
    names = [s.name for s in specs]
    with StrategyProgress(progress, names, m, echo=echo) as bars:
        if jobs <= 1 and not dask:
            out = []
            for s in specs:
                r = simulate(
                    s,
                    prep.data,
                    prep.view_for(s),
                    prep.builder,
                    sample=sample,
                    fast=fast,
                    progress=bars.callback(s.name),
                    timing_budget_s=timing_budget_s,
                )
                bars.finished(s.name)
                out.append(r)
            return out
        from rtml_cli.executor import make_backend
        from rtml_cli.parallel import Payload, run_parallel

        keys = [view_key(s) for s in specs]
        views = {k: prep.views[k] for k in keys}
        payload = Payload(prep.data, views, prep.builder, list(specs), keys, fast)
        backend = make_backend(payload, jobs=jobs, dask=dask)
        return run_parallel(payload, backend, sample=sample, budget_s=timing_budget_s, bars=bars)


def predictions_frame(prep: Prepared, results: list[StrategyResult]) -> pl.DataFrame:
    """``predictions.parquet`` (schema in docs/ARCHITECTURE.md): one row per scored event × strategy."""
    d, s0 = prep.data, prep.data.s0
    frame = prep.table.frame
    t = d.t[s0:]
    lt = d.l[s0:]
    ev_ids = frame[EVENT_ID].to_numpy()[s0:].astype(np.int64)
    parts = []
    for r in results:
        age = r.feature_age
        parts.append(
            pl.DataFrame(
                {
                    "event_id": ev_ids,
                    "strategy": [r.name] * len(t),
                    "t": pl.Series(t).cast(pl.Datetime("us")),
                    "label_time": pl.Series(np.where(lt == NO_LABEL, 0, lt)).cast(
                        pl.Datetime("us")
                    ),
                    "label_null": lt == NO_LABEL,
                    "y": d.y[s0:],
                    "score": r.score,
                    "pred": r.pred,
                    "model_version": r.model_version.astype(np.int32),
                    "model_time": pl.Series(r.model_time).cast(pl.Datetime("us")),
                    "features_time": pl.Series(r.features_time).cast(pl.Datetime("us")),
                    "staleness_us": t - r.features_time,
                    "feature_age_us": pl.Series(age).set(pl.Series(age == NO_AGE), None)
                    if (age == NO_AGE).any()
                    else age,
                    "model_age_us": t - r.model_time,
                    "cold_start": r.cold_start,
                }
            )
        )
    df = pl.concat(parts, how="vertical_relaxed")
    df = df.with_columns(
        pl.when(pl.col("label_null"))
        .then(None)
        .otherwise(pl.col("label_time"))
        .alias("label_time"),
        pl.col("y").fill_nan(None),
    )
    out = conform(df, PREDICTIONS_SCHEMA)
    if d.task == "multiclass":
        # class probabilities, class code c at position c (the manifest's `classes` names them)
        proba = np.concatenate([r.proba for r in results if r.proba is not None])
        out = out.with_columns(pl.Series("proba", proba).cast(pl.List(pl.Float64)))
    return out


def timings_frame(results: list[StrategyResult]) -> pl.DataFrame:
    """``timings.parquet``: one row per timed call."""
    parts = []
    for r in results:
        c = r.calls
        tt = c["t"]
        parts.append(
            pl.DataFrame(
                {
                    "strategy": [r.name] * len(tt),
                    "kind": c["kind"],
                    "wall_ns": c["wall_ns"],
                    "cpu_ns": c["cpu_ns"],
                    "rows": c["rows"],
                    "t": pl.Series(np.where(tt == NO_TIME, 0, tt)).cast(pl.Datetime("us")),
                    "t_null": tt == NO_TIME,
                },
                schema_overrides={"kind": pl.String, "strategy": pl.String},
            )
        )
    if not parts:
        return conform(pl.DataFrame(), TIMINGS_SCHEMA)
    df = pl.concat(parts).with_columns(
        pl.when(pl.col("t_null")).then(None).otherwise(pl.col("t")).alias("t")
    )
    return conform(df, TIMINGS_SCHEMA)


def _metrics(
    pred: pl.DataFrame,
    tim: pl.DataFrame,
    *,
    task: str,
    names: list[str],
    baseline: str,
    bucket: str | None,
    seed: int,
    references: Sequence[str] = (),
    min_effect: dict[str, str] | None = None,
) -> dict[str, Any]:
    return compute_metrics(
        pred, tim, task=task, strategies=names, baseline=baseline, bucket=bucket, seed=seed,
        references=references, min_effect=min_effect,
    )  # fmt: skip


@dataclasses.dataclass
class CompareResult:
    """What :func:`run_compare` did: where it wrote, what it inferred, a short summary."""

    run_dir: Path
    notes: list[str]
    summary: list[dict[str, Any]]
    main_metric: str
    warnings: list[str]
    metrics: dict[str, Any]


def resolve_config(
    table: str | Path,
    *,
    config: str | Path | None = None,
    roles: Roles | None = None,
    **overrides: Any,
) -> CompareConfig:
    """``--config``, else the ``rtml.toml`` beside the table (said in the notes), else zero config."""
    raw: dict[str, Any] = {}
    source = None
    found = None
    if config is not None:
        raw, source = load_toml(config), str(config)
    else:
        found = find_config(table)
        if found is not None:
            raw, source = load_toml(found), str(found)
    cfg = build_config(raw, source=source, roles=roles, **overrides)
    if found is not None:
        cfg.notes.insert(
            0, f"config: {found} (found beside the table; pass --config to use another)"
        )
        if cfg.model.factory and overrides.get("model") is None:
            # a file found beside a table (not named by the user) is about to run Python code
            cfg.notes.append(
                f"running model factory {cfg.model.factory} named in {found} (a factory file is "
                "Python run with your permissions; pass --model or --config to use another model)"
            )
    return cfg


def run_compare(
    table: str | Path,
    *,
    config: str | Path | None = None,
    roles: Roles | None = None,
    label_delay: str | None = None,
    warmup: str | None = None,
    model: str | None = None,
    strategies: str | None = None,
    baseline: str | None = None,
    features: Sequence[str] = (),
    calendar: Sequence[str] | None = None,
    min_effect: Sequence[str] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    jobs: int = 1,
    dask: str | None = None,
    batch_lookback: str = DEFAULT_BATCH_LOOKBACK,
    timing_sample: int | None = DEFAULT_TIMING_SAMPLE,
    timing_budget_s: float | None = None,
    seed: int = 0,
    fast: bool = True,
    progress: bool = False,
    instance: Any = None,
    echo: Callable[[str], None] | None = None,
) -> CompareResult:
    """Simulate every strategy on ``table`` and write a run directory.

    Parameters mirror the CLI flags; ``None`` means "from the config / inferred".
    ``timing_sample=None`` times every event with a single-row call; ``timing_budget_s`` thins
    the sample so that each strategy's timed calls take about that long; ``force`` replaces an
    existing run directory at ``out`` once the new one is complete. ``dask``: the address of a
    Dask scheduler that runs the retrains (:mod:`rtml_cli.parallel`); ``batch_lookback``: the
    window in which an entity counts as active for a batch job's cost (:mod:`rtml_cli.cost`).

    Raises
    ------
    RtmlError
        Any bad input; nothing that looks like a finished run directory is left behind.
    """
    t_start = time.perf_counter()
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1. Got {jobs}.")
    if timing_sample is not None and timing_sample < 0:
        raise UsageError(f"--timing-sample must be >= 0 or 'all'. Got {timing_sample}.")
    lookback_us = parse_duration(batch_lookback, what="--batch-lookback")
    cfg = resolve_config(
        table,
        config=config,
        roles=roles,
        label_delay=label_delay,
        warmup=warmup,
        model=model,
        strategies=strategies,
        baseline=baseline,
        features=features,
        calendar=calendar,
        min_effect=min_effect,
    )
    out_dir = check_out(out if out is not None else default_out(table), force=force)
    refuse_run_dir_over_input(out_dir, table)
    if echo is not None:
        # said before any code of the model runs: which config (and factory) it comes from
        for note in cfg.notes:
            echo(f"note: {note}")
    prep = prepare(table, cfg, seed=seed, instance=instance)
    notes = cfg.notes + prep.notes
    if echo is not None:
        for note in prep.notes:
            echo(f"note: {note}")
    t_prep = time.perf_counter()
    results = run_strategies(
        prep,
        jobs=jobs,
        dask=dask,
        timing_sample=timing_sample,
        timing_budget_s=timing_budget_s,
        seed=seed,
        fast=fast,
        progress=progress,
        echo=echo,
    )
    t_sim = time.perf_counter()
    sim_warnings = [w for r in results for w in r.warnings]
    for w in sim_warnings:
        warnings.warn(w, ClassImbalanceWarning, stacklevel=2)
    warn_list = prep.warnings + sim_warnings
    names = [s.name for s in cfg.strategies]
    # the naive references, scored under the same label-arrival rule (rtml_cli/baselines.py)
    refs = reference_results(prep.data, entity_codes(prep.table.frame, prep.table.roles.key))
    pred = predictions_frame(prep, results + refs)
    tim = timings_frame(results)
    assert cfg.baseline is not None
    metrics = _metrics(
        pred,
        tim,
        task=prep.label.task,
        names=names,
        baseline=cfg.baseline,
        bucket=cfg.bucket,
        seed=seed,
        references=[r.name for r in refs],
        min_effect=cfg.min_effect,
    )
    metrics["cost"] = cost_section(prep, tim, lookback_us=lookback_us)
    metrics["forgetting"] = forgetting_section(
        cfg.strategies,
        [prep.view_for(s) for s in cfg.strategies],
        prep.data,
        prep.builder,
        results,
        fast=fast,
    )
    t_met = time.perf_counter()
    manifest = run_manifest(
        prep,
        results,
        notes,
        warn_list,
        jobs=jobs,
        dask=dask,
        timing_sample=timing_sample,
        timing_budget_s=timing_budget_s,
        fast=fast,
        timings={
            "prepare_s": t_prep - t_start,
            "simulate_s": t_sim - t_prep,
            "metrics_s": t_met - t_sim,
        },
    )
    run_dir = write_run_dir(
        out_dir, manifest=manifest, predictions=pred, timings=tim, metrics=metrics, force=force
    )
    main = {"binary": "auc", "multiclass": "accuracy"}.get(prep.label.task, "rmse")
    return CompareResult(
        run_dir,
        notes,
        run_summary(results, metrics, main, len(prep.data.t) - prep.data.s0),
        main,
        warn_list,
        metrics,
    )
