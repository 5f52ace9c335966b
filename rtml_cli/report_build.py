"""Building the report: read a run directory and gather everything into one JSON-able dict.

A report never reruns the simulation: it reads the run with :func:`rtml_cli.runs.read_run_dir`
(``manifest.json``, ``metrics.json``, ``predictions.parquet`` for the event times that feed
capacity, ``timings.parquet`` for the service times). :func:`build_report` returns the
:class:`~rtml_cli.report_schema.Report` (the ``json`` format); the sentences of its verdict are
written by :mod:`rtml_cli.report_verdict`.

Check sources: every ``--check``, then ``[report] checks`` (a list) and ``[checks]`` (a list or a
table of name = expression) from the run's resolved config in the manifest. Checks use run A only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from rtml_cli import capacity as capacity_mod
from rtml_cli import checks as checks_mod
from rtml_cli.durations import parse_duration
from rtml_cli.errors import RunDirError, UsageError
from rtml_cli.metrics_schema import Diff, MetricName, MetricsJson, Percentiles
from rtml_cli.report_calls import negated, reference_names
from rtml_cli.report_level2 import cost_summaries, forgetting_summaries, recommendations
from rtml_cli.report_schema import (
    KINDS,
    PER_EVENT_KINDS,
    SCHEMA_VERSION,
    Capacity,
    CapacityAtTraffic,
    Check,
    Finding,
    Report,
    RunB,
    RunBRow,
)
from rtml_cli.report_verdict import run_b_sentences, verdict_sentences
from rtml_cli.runs import Run, read_run_dir

Kinds = dict[str, str | None]


def read_reportable_run(path: str | Path) -> Run:
    """Read a run directory (:func:`rtml_cli.runs.read_run_dir`) and check its metrics are usable.

    Raises
    ------
    RunDirError
        Missing, incomplete or incompatible run directory.
    """
    run = read_run_dir(path)
    for key in ("strategies", "quality", "metric_names", "baseline"):
        if key not in run.metrics:
            raise RunDirError(
                f"metrics.json in '{path}' lacks '{key}': it was written by an rtml without "
                "metrics support. Rerun `rtml compare` to write it again."
            )
    return run


def json_safe(o: Any) -> Any:
    """NaN and infinities become null: they are not JSON, and a reader cannot parse them."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def strategy_kinds(manifest: dict[str, Any], names: Sequence[str]) -> Kinds:
    """Each strategy's kind from the manifest; a run without kinds: guessed from the name."""
    kinds: Kinds = {n: None for n in names}
    for s in manifest.get("strategies", []) or []:
        if isinstance(s, dict) and s.get("name") in kinds:
            kinds[s["name"]] = s.get("kind")
    for n in names:  # as a user would guess
        if kinds[n] is None:
            for k in KINDS:
                if k in n.lower():
                    kinds[n] = k
                    break
    return kinds


def primary_metric(metrics: MetricsJson) -> MetricName:
    """The verdict's metric: AUC for binary (accuracy if AUC is unavailable), MAE otherwise."""
    names = metrics.get("metric_names") or []
    if metrics.get("task") == "regression":
        return "mae" if "mae" in names or not names else names[0]
    base = (metrics.get("quality") or {}).get(metrics.get("baseline") or "")
    if "auc" in names and base and base.get("auc") is not None:
        return "auc"
    return "accuracy" if "accuracy" in names or not names else names[0]


def paired_difference(metrics: MetricsJson, a: str, b: str, metric: MetricName) -> Diff | None:
    """Difference a − b for ``metric`` from the stored pairs (negated if stored as b − a)."""
    for p in metrics.get("pairs", []):
        d = p.get("metrics", {}).get(metric)
        if d is None:
            continue
        if p["strategy"] == a and p["reference"] == b:
            return Diff(**d)
        if p["strategy"] == b and p["reference"] == a:
            return negated(d)
    if b == metrics.get("baseline"):
        found = metrics.get("diff_to_baseline", {}).get(a, {}).get(metric)
        return Diff(**found) if found else None
    return None


def findings(metrics: MetricsJson, kinds: Kinds, metric: MetricName) -> list[Finding]:
    """The comparisons a migration turns on: fresh features (stream vs batch), online learning
    (online vs stream, or vs batch), never retraining (static); else each strategy vs the
    baseline."""
    names = list(metrics.get("strategies", []))
    first = {k: next((n for n in names if kinds.get(n) == k), None) for k in KINDS}
    batch, stream, online, static = (first[k] for k in KINDS)
    wanted: list[tuple[str, str, str]] = []
    if batch and stream:
        wanted.append(("Fresh features", stream, batch))
    if stream and online:
        wanted.append(("Online learning", online, stream))
    elif batch and online:
        wanted.append(("Streaming with online learning", online, batch))
    fresh = stream or online
    if static and fresh:
        wanted.append(("Never retraining", static, fresh))
    if not wanted:
        base = str(metrics.get("baseline"))
        wanted = [(f"{n}", n, base) for n in names if n != base]
    out = []
    for label, a, reference in wanted:
        d = paired_difference(metrics, a, reference, metric)
        if d is None:
            continue
        out.append(Finding(label=label, strategy=a, reference=reference, metric=metric, **d))
    return out


def check_sources(manifest: dict[str, Any], given: Sequence[str]) -> list[str]:
    """``--check`` expressions, then the run config's ``[report] checks`` and ``[checks]``;
    each expression once."""
    out = list(given)
    cfg = manifest.get("config") or {}
    for section in ((cfg.get("report") or {}).get("checks"), cfg.get("checks")):
        if isinstance(section, str):
            out.append(section)
        elif isinstance(section, list):
            out.extend(str(c) for c in section)
        elif isinstance(section, dict):
            out.extend(str(c) for c in section.values())
    return list(dict.fromkeys(out))


def serving_capacity(
    run: Run,
    kinds: Kinds,
    traffic: float | None,
    slo_ms: float,
    workers: int | None,
) -> Capacity | None:
    """Queueing simulation of each per-event strategy fed with the run's own arrivals and
    measured single-row predict times, at 1x and at ``traffic``."""
    timings = run.timings
    single = (
        timings.filter((pl.col("kind") == "predict") & (pl.col("rows") == 1))
        if timings.height
        else timings
    )
    per_event = [n for n, k in kinds.items() if k in PER_EVENT_KINDS]
    if not per_event:
        per_event = sorted(single["strategy"].unique().to_list()) if single.height else []
    if not per_event:
        return None
    levels = [1.0] + ([float(traffic)] if traffic and traffic != 1.0 else [])
    result = Capacity(slo_ms=slo_ms, traffic=levels, workers=workers, strategies={})
    preds = run.predictions.lazy()
    for s in per_event:
        t = (
            preds.filter(pl.col("strategy") == s)
            .select(pl.col("t").cast(pl.Datetime("us")).dt.epoch("us"))
            .collect()
        )
        arrivals = np.sort(t.to_series().to_numpy())
        svc = single.filter(pl.col("strategy") == s)["wall_ns"].cast(pl.Float64).to_numpy() / 1e3
        if kinds.get(s) == "online" and svc.size:
            svc = with_updates(svc, timings.filter(pl.col("strategy") == s), arrivals.size)
        per: dict[str, CapacityAtTraffic] = {}
        for lvl in levels:
            r = capacity_mod.simulate_capacity(
                arrivals, svc, traffic=lvl, slo_ms=slo_ms, workers=[workers] if workers else None
            )
            want = workers or r.get("workers_needed")
            r["chosen"] = next((w for w in r["by_workers"] if w["workers"] == want), None)
            per[f"{lvl:g}x"] = cast(CapacityAtTraffic, r)
        result["strategies"][s] = per
    return result


def with_updates(predict_us: np.ndarray, timings: pl.DataFrame, events: int) -> np.ndarray:
    """Service samples of an online worker: one predict plus its share of ``partial_fit`` work.

    The same workers apply the updates, so each event pays, on average, the update time times
    (updates / events). Seeded; returns ``predict_us`` unchanged when no update was timed.
    """
    upd = timings.filter(pl.col("kind") == "update")
    if upd.height == 0 or events == 0:
        return predict_us
    wall = upd["wall_ns"].cast(pl.Float64).to_numpy() / 1e3
    share = min(1.0, upd.height / events)  # update calls per scored event
    rng = np.random.default_rng(0)
    n = max(predict_us.size, 10_000)
    base = rng.choice(predict_us, size=n)
    extra = np.where(rng.uniform(size=n) < share, rng.choice(wall, size=n), 0.0)
    return base + extra


def _single_row_wall_ms(m: MetricsJson, strategy: str) -> Percentiles | None:
    """Wall-time percentiles of a strategy's single-row predict calls; None if none was timed."""
    compute = m.get("compute", {}).get(strategy)
    single = compute.get("predict_single_row") if compute else None
    return single.get("wall_ms") if single else None


def compare_runs(a: MetricsJson, b: MetricsJson, b_path: str, metric: MetricName) -> RunB:
    """Run A beside run B (e.g. another model): every shared strategy and metric, and the
    single-row predict p99 (two models differ in cost too)."""
    rows: list[RunBRow] = []
    common = [s for s in a["strategies"] if s in b.get("strategies", [])]
    names = [n for n in a.get("metric_names", []) if n in b.get("metric_names", [])]
    for s in common:
        for n in names:
            va, vb = a["quality"][s].get(n), b["quality"][s].get(n)
            d = None if va is None or vb is None else vb - va
            rows.append(RunBRow(strategy=s, metric=n, a=va, b=vb, diff=d))
        wall_a, wall_b = _single_row_wall_ms(a, s), _single_row_wall_ms(b, s)
        if wall_a or wall_b:
            va = wall_a.get("p99") if wall_a else None
            vb = wall_b.get("p99") if wall_b else None
            d = None if va is None or vb is None else vb - va
            rows.append(RunBRow(strategy=s, metric="predict_p99_ms", a=va, b=vb, diff=d))
    return RunB(run=b_path, rows=rows, verdict=run_b_sentences(rows, metric, bool(common)))


def build_report(
    run_dir: str | Path,
    run_b: str | Path | None = None,
    *,
    checks: Sequence[str] = (),
    traffic: str | float | None = None,
    slo: str | None = None,
    workers: int | None = None,
) -> Report:
    """Read a run directory and gather the report (the ``json`` format, :mod:`report_schema`).

    Parameters
    ----------
    run_dir : the run directory (``rtml compare --out``).
    run_b : optional second run shown side by side (e.g. another model).
    checks : extra check expressions (``--check``), evaluated with the run's own checks.
    traffic : traffic multiplier for capacity, e.g. ``"10x"`` (1x is always included).
    slo : end-to-end latency objective at p99, e.g. ``"50ms"`` (default 50 ms).
    workers : a worker count to report in capacity (and use for ``e2e_p99_ms`` checks).

    Raises
    ------
    RunDirError
        Missing or incomplete run directory.
    UsageError
        A check does not parse or names an unknown metric; bad traffic, SLO or workers.
    """
    run = read_reportable_run(run_dir)
    # NaN is a missing value from here on: every renderer shows it as n/a, JSON as null
    m: MetricsJson = json_safe(run.metrics)
    manifest: dict[str, Any] = json_safe(run.manifest)
    names = [str(n) for n in m["strategies"] or []]
    kinds = strategy_kinds(manifest, names)
    metric = primary_metric(m)
    higher_is_better = bool((m.get("higher_is_better") or {}).get(metric, True))
    traffic_level = capacity_mod.parse_traffic(traffic) if traffic is not None else None
    slo_ms = parse_duration(slo, what="--slo") / 1000 if slo is not None else 50.0
    if slo is not None and slo_ms <= 0:
        raise UsageError(f"The --slo must be a latency > 0 such as '50ms'. Got {slo!r}.")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1. Got {workers} instead.")
    capacity = serving_capacity(run, kinds, traffic_level, slo_ms, workers)
    at_top_traffic = None
    if capacity:
        top = f"{capacity['traffic'][-1]:g}x"
        at_top_traffic = {s: per[top] for s, per in capacity["strategies"].items()}
    values, reasons = checks_mod.named_metrics(m, at_top_traffic)
    results = checks_mod.evaluate_checks(check_sources(manifest, checks), values, reasons)
    found = findings(m, kinds, metric)
    forgetting = forgetting_summaries(m, kinds)
    cost = cost_summaries(m, kinds)
    advice = recommendations(
        m, names, kinds, metric, higher_is_better,
        lambda a, b: paired_difference(m, a, b, metric), forgetting, cost,
    )  # fmt: skip
    verdict = verdict_sentences(
        m, names, kinds, metric, higher_is_better, found, capacity, results, advice
    )
    out = Report(
        schema_version=SCHEMA_VERSION,
        run=str(run_dir),
        task=m.get("task"),
        baseline=m.get("baseline"),
        strategies=[{"name": n, "kind": kinds[n]} for n in names],
        primary_metric=metric,
        verdict=verdict,
        findings=found,
        checks=[cast(Check, r.to_dict()) for r in results],
        exit_code=checks_mod.exit_code(results),
        capacity=capacity,
        metrics=m,
        manifest=manifest,
        run_b=None,
        references=reference_names(m),
        forgetting=forgetting,
        cost=cost,
        recommendations=advice,
    )
    if run_b is not None:
        out["run_b"] = compare_runs(
            m, json_safe(read_reportable_run(run_b).metrics), str(run_b), metric
        )
    return out
