"""``rtml report``: turn a run directory into a verdict, tables, charts and a CI gate.

A report never reruns the simulation: it reads the run with :func:`rtml_cli.runs.read_run`
(``manifest.json``, ``metrics.json``, ``predictions.parquet`` for the event times that feed
capacity, ``timings.parquet`` for the service times). :func:`build_report` gathers everything
into one JSON-able dict (the ``json`` format, schema below); :func:`layout` turns it into
format-neutral sections (paragraphs, bullet lists, tables, series) that each renderer draws, so
the terminal, Markdown and HTML outputs always say the same thing.

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
      "metrics": {...},                            # metrics.json as is (rtml_cli.metrics)
      "manifest": {...},                           # manifest.json as is
      "run_b": null | {"run": str, "rows": [{"strategy", "metric", "a", "b", "diff"}],
                       "verdict": [str]}
    }

CAPACITY is the dict of :func:`rtml_cli.capacity.simulate_capacity` plus ``"chosen"`` (the
``by_workers`` entry used for ``e2e_p99_ms`` checks: ``--workers`` if given, else the workers
needed). Its busiest minute and hour are clock windows of the data's own timeline at every
traffic level. A number that is missing or not finite (NaN in ``metrics.json``) is ``null``.

User text (strategy names, paths, check expressions, manifest values) stays raw in the dict and
in :func:`layout`; the renderers in :mod:`rtml_cli.report_render` escape it for their medium.

Check sources: every ``--check``, then ``[report] checks`` (a list) and ``[checks]`` (a list or a
table of name = expression) from the run's resolved config in the manifest. Checks use run A only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli import capacity as cap_mod
from rtml_cli import checks as checks_mod
from rtml_cli import report_render as _render
from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import RunDirError, UsageError
from rtml_cli.escape import for_json, for_terminal, for_xml
from rtml_cli.report_render import Block, Curve, Series, Table, finite, fnum
from rtml_cli.report_render import sparkline as sparkline  # re-exported: part of the API
from rtml_cli.runs import Run
from rtml_cli.runs import read_run as _runs_read
from rtml_cli.safe_write import atomic_output, refuse_existing, refuse_input_as_output

SCHEMA_VERSION = 1
FORMATS = ("terminal", "markdown", "html", "json", "junit")
PER_EVENT_KINDS = ("stream", "online", "static")
METRIC_LABEL = {
    "auc": "AUC",
    "accuracy": "accuracy",
    "log_loss": "log loss",
    "f1": "F1",
    "brier": "Brier score",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
}


# --------------------------------------------------------------------------- reading a run


def read_run(path: str | Path) -> Run:
    """Read a run directory (:func:`rtml_cli.runs.read_run`) and check its metrics are usable.

    Raises
    ------
    RunDirError
        Missing, incomplete or incompatible run directory.
    """
    run = _runs_read(path)
    for key in ("strategies", "quality", "metric_names", "baseline"):
        if key not in run.metrics:
            raise RunDirError(
                f"metrics.json in '{path}' lacks '{key}': it was written by an rtml without "
                "metrics support. Rerun `rtml compare` to write it again."
            )
    return run


# --------------------------------------------------------------------------- formatting


def fdiff(x: Any, digits: int = 3) -> str:
    """A signed difference (``+0.021``), ``n/a`` when missing."""
    return f"{x:+.{digits}f}" if finite(x) else "n/a"


def fms(x: Any) -> str:
    """Milliseconds with 3 significant digits."""
    if not finite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def fsec(x: Any) -> str:
    """Seconds as a compact duration ("6h", "1d2h"); exactly zero is "0"."""
    if not finite(x):
        return "n/a"
    if x == 0:
        return "0"
    return format_duration(x * 1e6)


def fint(x: Any) -> str:
    """A count, ``n/a`` when missing."""
    return str(int(x)) if finite(x) else "n/a"


# --------------------------------------------------------------------------- building


def _kinds(manifest: dict[str, Any], names: Sequence[str]) -> dict[str, str | None]:
    kinds: dict[str, str | None] = {n: None for n in names}
    for s in manifest.get("strategies", []) or []:
        if isinstance(s, dict) and s.get("name") in kinds:
            kinds[s["name"]] = s.get("kind")
    for n in names:  # a run without kinds: guess from the name, as a user would
        if kinds[n] is None:
            for k in ("batch", "stream", "online", "static"):
                if k in n.lower():
                    kinds[n] = k
                    break
    return kinds


def primary_metric(metrics: dict[str, Any]) -> str:
    """The verdict's metric: AUC for binary (accuracy if AUC is unavailable), MAE otherwise."""
    names = metrics.get("metric_names") or []
    if metrics.get("task") == "regression":
        return "mae" if "mae" in names or not names else str(names[0])
    base = (metrics.get("quality") or {}).get(metrics.get("baseline")) or {}
    if "auc" in names and base.get("auc") is not None:
        return "auc"
    return "accuracy" if "accuracy" in names or not names else str(names[0])


def _pair(metrics: dict[str, Any], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """Difference a − b for ``metric`` from the stored pairs (negated if stored as b − a)."""
    for p in metrics.get("pairs", []):
        d = p.get("metrics", {}).get(metric)
        if d is None:
            continue
        if p["strategy"] == a and p["reference"] == b:
            return dict(d)
        if p["strategy"] == b and p["reference"] == a:
            neg = dict(d)
            for k, k2 in (("estimate", "estimate"), ("low", "high"), ("high", "low")):
                neg[k] = -d[k2] if finite(d.get(k2)) else None
            if d.get("better") is not None and d.get("significant"):
                neg["better"] = not d["better"]
            return neg
    if b == metrics.get("baseline"):
        d = metrics.get("diff_to_baseline", {}).get(a, {}).get(metric)
        return dict(d) if d else None
    return None


def _findings(
    metrics: dict[str, Any], kinds: dict[str, str | None], metric: str
) -> list[dict[str, Any]]:
    names = list(metrics.get("strategies", []))
    first = {
        k: next((n for n in names if kinds.get(n) == k), None)
        for k in ("batch", "stream", "online", "static")
    }
    b, s, o, st = first["batch"], first["stream"], first["online"], first["static"]
    wanted: list[tuple[str, str, str]] = []
    if b and s:
        wanted.append(("Fresh features", s, b))
    if s and o:
        wanted.append(("Online learning", o, s))
    elif b and o:
        wanted.append(("Streaming with online learning", o, b))
    if st and (s or o):
        wanted.append(("Never retraining", st, s or o))  # type: ignore[arg-type]
    if not wanted:
        base = str(metrics.get("baseline"))
        wanted = [(f"{n}", n, base) for n in names if n != base]
    out = []
    for label, a, ref in wanted:
        d = _pair(metrics, a, ref, metric)
        if d is None:
            continue
        out.append({"label": label, "strategy": a, "reference": ref, "metric": metric, **d})
    return out


def _finding_sentence(f: dict[str, Any], hib: bool) -> str:
    m = METRIC_LABEL.get(f["metric"], f["metric"])
    head = f"{f['label']} ({f['strategy']} vs {f['reference']})"
    est = f.get("estimate")
    if est is None:
        return (
            f"{head}: the {m} difference could not be computed ({f.get('reason') or 'no value'})."
        )
    interval = ""
    if f.get("low") is not None and f.get("high") is not None:
        interval = f" [{fnum(f['low'])}, {fnum(f['high'])}]"
    if not f.get("significant"):
        why = f" ({f['reason']})" if f.get("reason") and not interval else ""
        return f"{head}: {m} {fdiff(est)}{interval}, not significant{why}."
    good = (est > 0) == hib
    return f"{head}: {m} {fdiff(est)}{interval}, a significant {'gain' if good else 'loss'}."


def _check_sources(manifest: dict[str, Any], given: Sequence[str]) -> list[str]:
    out = list(given)
    cfg = manifest.get("config") or {}
    for section in ((cfg.get("report") or {}).get("checks"), cfg.get("checks")):
        if isinstance(section, str):
            out.append(section)
        elif isinstance(section, list):
            out.extend(str(c) for c in section)
        elif isinstance(section, dict):
            out.extend(str(c) for c in section.values())
    seen: set[str] = set()
    return [c for c in out if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


def _capacity(
    run: Run,
    kinds: dict[str, str | None],
    traffic: float | None,
    slo_ms: float,
    workers: int | None,
) -> dict[str, Any] | None:
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
    result: dict[str, Any] = {
        "slo_ms": slo_ms,
        "traffic": levels,
        "workers": workers,
        "strategies": {},
    }
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
            svc = _with_updates(svc, timings.filter(pl.col("strategy") == s), arrivals.size)
        per: dict[str, Any] = {}
        for lvl in levels:
            r = cap_mod.simulate_capacity(
                arrivals, svc, traffic=lvl, slo_ms=slo_ms, workers=[workers] if workers else None
            )
            want = workers or r.get("workers_needed")
            r["chosen"] = next((w for w in r["by_workers"] if w["workers"] == want), None)
            per[f"{lvl:g}x"] = r
        result["strategies"][s] = per
    return result


def _with_updates(predict_us: np.ndarray, timings: pl.DataFrame, events: int) -> np.ndarray:
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


def build_report(
    run_dir: str | Path,
    run_b: str | Path | None = None,
    *,
    checks: Sequence[str] = (),
    traffic: str | float | None = None,
    slo: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Read a run directory and gather the report (the ``json`` format; schema in module doc).

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
    run = read_run(run_dir)
    # NaN is a missing value from here on: every renderer shows it as n/a, JSON as null
    m, manifest = _json_safe(run.metrics), _json_safe(run.manifest)
    names = [str(n) for n in m["strategies"] or []]
    kinds = _kinds(manifest, names)
    metric = primary_metric(m)
    hib = bool((m.get("higher_is_better") or {}).get(metric, True))
    tr = cap_mod.parse_traffic(traffic) if traffic is not None else None
    slo_ms = parse_duration(slo, what="--slo") / 1000 if slo is not None else 50.0
    if slo is not None and slo_ms <= 0:
        raise UsageError(f"The --slo must be a latency > 0 such as '50ms'. Got {slo!r}.")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1. Got {workers} instead.")
    capacity = _capacity(run, kinds, tr, slo_ms, workers)
    top = None
    if capacity:
        top = {s: per[f"{capacity['traffic'][-1]:g}x"] for s, per in capacity["strategies"].items()}
    values, reasons = checks_mod.named_metrics(m, top)
    results = checks_mod.evaluate_checks(_check_sources(manifest, checks), values, reasons)
    findings = _findings(m, kinds, metric)
    verdict = [_finding_sentence(f, hib) for f in findings]
    if not names:
        verdict.append("This run has no strategies: there is nothing to compare.")
    q = m["quality"] or {}
    ranked = [n for n in names if finite((q.get(n) or {}).get(metric))]
    if ranked:
        best = (max if hib else min)(ranked, key=lambda n: q[n][metric])
        base = m["baseline"]
        verdict.append(
            f"Best {METRIC_LABEL.get(metric, metric)}: {best} ({fnum(q[best][metric])}); "
            f"baseline {base}: {fnum((q.get(base) or {}).get(metric))}."
        )
    verdict += _freshness_sentences(m, names, kinds)
    verdict += _latency_sentences(m, names, kinds)
    if capacity:
        verdict += _capacity_sentences(capacity)
    if results:
        npass = sum(r.status == "pass" for r in results)
        nfail = sum(r.status == "fail" for r in results)
        nerr = sum(r.status == "error" for r in results)
        verdict.append(
            f"Checks: {npass} passed, {nfail} failed"
            + (f", {nerr} could not be computed." if nerr else ".")
        )
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": str(run_dir),
        "task": m.get("task"),
        "baseline": m.get("baseline"),
        "strategies": [{"name": n, "kind": kinds[n]} for n in names],
        "primary_metric": metric,
        "verdict": verdict,
        "findings": findings,
        "checks": [r.to_dict() for r in results],
        "exit_code": checks_mod.exit_code(results),
        "capacity": capacity,
        "metrics": m,
        "manifest": manifest,
        "run_b": None,
    }
    if run_b is not None:
        out["run_b"] = _compare_runs(m, _json_safe(read_run(run_b).metrics), str(run_b), metric)
    return out


def _x(v: Any) -> str:
    return f"{v:.1f}x" if finite(v) else "n/a"


def _n_workers(n: Any) -> str:
    return f"{fint(n)} worker" + ("" if n == 1 else "s")


def capacity_phrase(level: str, w: dict[str, Any], slo_ms: float) -> str:
    """Which traffic, which workers, which p99, and whether it meets the SLO, in one phrase.

    Examples
    --------
    >>> capacity_phrase("10x", {"workers": 1, "latency_ms": {"p99": 25.94}, "meets_slo": True}, 50)
    'at 10x traffic, 1 worker: p99 25.9 ms — meets p99 ≤ 50 ms'
    """
    p99 = (w.get("latency_ms") or {}).get("p99")
    lat = f"p99 {fms(p99)} ms" if finite(p99) else "p99 n/a"
    ok = "meets" if w.get("meets_slo") else "misses"
    return f"at {level} traffic, {_n_workers(w.get('workers'))}: {lat} — {ok} p99 ≤ {slo_ms:g} ms"


def _capacity_sentences(capacity: dict[str, Any]) -> list[str]:
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
            text += f"; {_n_workers(need)} would meet it"
        elif need and need - 1 in by:
            text += f"; {capacity_phrase(lvl, by[need - 1], slo)}"
        ph = r.get("peak_hour") or {}
        return [
            text + f". The busiest hour of the data ({_iso(ph.get('start_us'))}) arrives at "
            f"{_x(ph.get('x_mean'))} the mean rate."
        ]
    return []


def _freshness_sentences(
    m: dict[str, Any], names: Sequence[str], kinds: dict[str, str | None]
) -> list[str]:
    """How stale batch serving is, in numbers (the cost the fresh strategies remove)."""
    out = []
    for n in names:
        st = m.get("freshness", {}).get(n, {}).get("staleness_s", {})
        if kinds.get(n) == "batch" and st.get("mean"):
            cold = m["freshness"][n].get("cold_start", 0)
            out.append(
                f"{n} serves features {fsec(st['mean'])} stale on average (p90 "
                f"{fsec(st.get('p90'))}, max {fsec(st.get('max'))})"
                + (f"; {cold} events were cold starts" if cold else "")
                + "."
            )
    return out


def _latency_sentences(
    m: dict[str, Any], names: Sequence[str], kinds: dict[str, str | None]
) -> list[str]:
    """Per-event cost of the fresh strategies: one-row predict p99 (and update p99)."""
    parts = []
    for n in names:
        if kinds.get(n) not in PER_EVENT_KINDS:
            continue
        comp = m.get("compute", {}).get(n, {})
        single = comp.get("predict_single_row")
        if not single:
            continue
        text = f"{n} {fms(single['wall_ms'].get('p99'))} ms"
        interval = single.get("wall_p99_interval_ms")
        if isinstance(interval, list) and len(interval) == 2:  # runs before 0.2 have none
            lo, hi = interval
            bounds = f"[{fms(lo)}, {fms(hi) if finite(hi) else 'above the largest call'}]"
            text += f" (95 % interval {bounds}, {single.get('count')} calls)"
        else:
            text += f" ({single.get('count')} calls)"
        upd = (comp.get("kinds") or {}).get("update")
        if upd:
            text += f", + update p99 {fms(upd['wall_ms'].get('p99'))} ms"
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


def _fmt_value(metric: str, v: float | None) -> str:
    return fms(v) if metric.endswith("_ms") else fnum(v)


def _compare_runs(a: dict[str, Any], b: dict[str, Any], b_path: str, metric: str) -> dict[str, Any]:
    rows = []
    common = [s for s in a["strategies"] if s in b.get("strategies", [])]
    names = [n for n in a.get("metric_names", []) if n in b.get("metric_names", [])]
    for s in common:
        for n in names:
            va, vb = a["quality"][s].get(n), b["quality"][s].get(n)
            d = None if va is None or vb is None else vb - va
            rows.append({"strategy": s, "metric": n, "a": va, "b": vb, "diff": d})
        # two models differ in cost too: the per-event latency of each
        pa = (a.get("compute", {}).get(s, {}).get("predict_single_row") or {}).get("wall_ms", {})
        pb = (b.get("compute", {}).get(s, {}).get("predict_single_row") or {}).get("wall_ms", {})
        if pa or pb:
            va, vb = pa.get("p99"), pb.get("p99")
            d = None if va is None or vb is None else vb - va
            rows.append({"strategy": s, "metric": "predict_p99_ms", "a": va, "b": vb, "diff": d})
    verdict = []
    for r in rows:
        if r["metric"] == metric:
            verdict.append(
                f"{r['strategy']}: {METRIC_LABEL.get(metric, metric)} {fnum(r['a'])} in run A, "
                f"{fnum(r['b'])} in run B ({fdiff(r['diff'])})."
            )
    if not common:
        verdict.append("The two runs share no strategy name; nothing to compare side by side.")
    return {"run": b_path, "rows": rows, "verdict": verdict}


# --------------------------------------------------------------------------- layout


def layout(rep: dict[str, Any]) -> list[tuple[str, list[Block]]]:
    """Format-neutral sections of the report, in reading order."""
    m = rep["metrics"]
    names = [s["name"] for s in rep["strategies"]]
    kinds = {s["name"]: s["kind"] for s in rep["strategies"]}
    metric = rep["primary_metric"]
    base = rep["baseline"]
    sections: list[tuple[str, list[Block]]] = [("Verdict", [list(rep["verdict"])])]

    if rep["checks"]:
        rows = [
            [str(c["status"]).upper(), str(c["check"]), str(c["detail"])] for c in rep["checks"]
        ]
        sections.append(("Checks", [Table(["status", "check", "value"], rows)]))

    mnames = [str(x) for x in m["metric_names"] or []]
    q = {n: (m["quality"] or {}).get(n) or {} for n in names}
    rows = []
    for n in names:
        row = [n, kinds.get(n) or "", fint(q[n].get("n"))] + [fnum(q[n].get(x)) for x in mnames]
        if n == base:
            row.append("baseline")
        else:
            d = ((m.get("diff_to_baseline") or {}).get(n) or {}).get(metric) or {}
            iv = f" [{fnum(d.get('low'))}, {fnum(d.get('high'))}]" if finite(d.get("low")) else ""
            row.append(f"{fdiff(d.get('estimate'))}{iv}")
        rows.append(row)
    notes = [f"{n}.{x}: {why}" for n in names for x, why in (q[n].get("reasons") or {}).items()]
    span, bucket = m.get("span") or {}, (m.get("bucket") or {}).get("text") or "bucket"
    boot = m.get("bootstrap") or {}
    level = boot.get("level")
    caption = (
        f"Δ{METRIC_LABEL.get(metric, metric)} vs {base} with a "
        f"{_pct(level) if finite(level) else 'n/a'} "
        f"block-bootstrap interval ({fint(boot.get('resamples'))} resamples over "
        f"{fint(boot.get('blocks'))} time blocks of {(m.get('bucket') or {}).get('text', '?')})."
    )
    blocks: list[Block] = [
        Table(
            ["strategy", "kind", "events"]
            + [METRIC_LABEL.get(x, x) for x in mnames]
            + [f"Δ{METRIC_LABEL.get(metric, metric)} vs {base}"],
            rows,
            caption,
        )  # fmt: skip
    ]
    if notes:
        blocks.append(["not computed: " + n for n in notes])
    sections.append(("Quality", blocks))

    qot = m.get("quality_over_time") or {}
    lines = {n: list(((qot.get("strategies") or {}).get(n) or {}).get(metric) or []) for n in names}
    sections.append(
        (
            "Quality over time",
            [
                Series(
                    f"{METRIC_LABEL.get(metric, metric)} per {bucket} "
                    f"({str(span.get('start') or '')[:16]} → {str(span.get('end') or '')[:16]})",
                    [str(x) for x in qot.get("start") or []],
                    lines,
                    METRIC_LABEL.get(metric, metric),
                )
            ],
        )
    )

    fr = m.get("freshness") or {}
    rows = []
    for n in names:
        f = fr.get(n) or {}
        st, fa, ma = (f.get(k) or {} for k in ("staleness_s", "feature_age_s", "model_age_s"))
        rows.append([
            n, fsec(st.get("mean")), fsec(st.get("p90")), fsec(st.get("max")),
            fsec(fa.get("mean")), fsec(fa.get("p90")), fsec(ma.get("mean")), fsec(ma.get("p90")),
            fint(f.get("cold_start", 0)),
        ])  # fmt: skip
    blocks = [
        Table(
            [
                "strategy",
                "staleness mean",
                "p90",
                "max",
                "feature age mean",
                "p90",
                "model age mean",
                "p90",
                "cold starts",
            ],
            rows,
        )  # fmt: skip
    ]
    srows = []
    qbs = m.get("quality_by_staleness") or {}
    for n in names:
        for b in qbs.get(n) or []:
            srows.append([n, str(b.get("label")), fint(b.get("n")), fnum(b.get(metric))])
    if any(len(qbs.get(n) or []) > 1 for n in names):
        blocks.append(
            Table(
                ["strategy", "staleness", "events", METRIC_LABEL.get(metric, metric)],
                srows,
                "Quality by staleness bucket: does older served data score worse?",
            )  # fmt: skip
        )
    sections.append(("Freshness", blocks))

    comp = m.get("compute") or {}
    rows = []
    for n in names:
        c = comp.get(n) or {}
        entries = [("predict (1 row)", c.get("predict_single_row"))] + [
            (k, v) for k, v in (c.get("kinds") or {}).items()
        ]
        single_n = (c.get("predict_single_row") or {}).get("count")
        for label, calls in entries:
            if not calls or (label == "predict" and calls.get("count") == single_n):
                continue  # every predict call was a single-row one: same numbers twice
            w, tot = calls.get("wall_ms") or {}, calls.get("wall_total_s")
            rows.append([
                n, str(label), fint(calls.get("count")), fms(w.get("p50")), fms(w.get("p90")),
                fms(w.get("p99")), fms(w.get("p99.9")), fms(w.get("max")),
                fms((calls.get("cpu_ms") or {}).get("p50")), f"{tot:.3g}" if finite(tot) else "n/a",
            ])  # fmt: skip
    thr = [f"{n}: {fnum((comp.get(n) or {}).get('events_per_s'), 0)} events/s" for n in names]
    sections.append(
        (
            "Compute",
            [
                Table(
                    [
                        "strategy",
                        "call",
                        "calls",
                        "p50 ms",
                        "p90 ms",
                        "p99 ms",
                        "p99.9 ms",
                        "max ms",
                        "CPU p50 ms",
                        "total s",
                    ],
                    rows,
                    "predict (1 row): real single-row calls, i.e. the per-event latency including "
                    "the model library's per-call overhead; other rows are whole calls.",
                ),  # fmt: skip
                ["throughput (scored events / busy time): " + "; ".join(thr)],
            ],
        )
    )

    capb: list[Block] = []
    capacity = rep.get("capacity")
    if capacity:
        slo = capacity["slo_ms"]
        rows, said = [], []
        for s, per in capacity["strategies"].items():
            for lvl, r in per.items():
                if r.get("reason") and not r.get("by_workers"):
                    said.append(f"{s} at {lvl} traffic: {r['reason']}.")
                    continue
                for w in r.get("by_workers") or []:
                    lat = w.get("latency_ms") or {}
                    rows.append([
                        s, lvl, fint(w.get("workers")), fms(lat.get("p50")), fms(lat.get("p99")),
                        fms(lat.get("p99.9")), fms(lat.get("max")), fms(w.get("peak_hour_p99_ms")),
                        _pct(w.get("utilization")), "yes" if w.get("meets_slo") else "no",
                    ])  # fmt: skip
                need = r.get("workers_needed")
                pm, ph = r.get("peak_minute") or {}, r.get("peak_hour") or {}
                phrases = [capacity_phrase(lvl, w, slo) for w in r.get("by_workers") or []]
                said.append(
                    f"{s} at {lvl} traffic: "
                    + (
                        f"{_n_workers(need)} needed for p99 ≤ {slo:g} ms"
                        if need
                        else f"no worker count meets p99 ≤ {slo:g} ms"
                    )
                    + (f" ({r['reason']})" if r.get("reason") else "")
                    + ". "
                    + "; ".join(
                        p[0].upper() + p[1:] if i == 0 else p for i, p in enumerate(phrases)
                    )
                    + f". Arrivals: mean {fms(r.get('rate_per_s'))}/s; busiest minute "
                    f"{_iso(pm.get('start_us'))} at {fms(pm.get('rate_per_s'))}/s "
                    f"({_x(pm.get('x_mean'))} the mean); busiest hour {_iso(ph.get('start_us'))} "
                    f"at {fms(ph.get('rate_per_s'))}/s ({_x(ph.get('x_mean'))}), on the data's "
                    "own clock."
                )
        capb.append(
            Table(
                [
                    "strategy",
                    "traffic",
                    "workers",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "busiest-hour p99 ms",
                    "utilization",
                    f"p99 ≤ {slo:g} ms",
                ],
                rows,
                "End-to-end latency (queueing + service) of a FIFO queue fed with the historical "
                "arrivals and the measured single-row predict times.",
            )  # fmt: skip
        )
        capb.append(said)
        curves = {
            f"{s} at {lvl} traffic": [
                (float(w["workers"]), float(w["latency_ms"]["p99"]))
                for w in r.get("by_workers") or []
                if finite(w.get("workers")) and finite((w.get("latency_ms") or {}).get("p99"))
            ]
            for s, per in capacity["strategies"].items()
            for lvl, r in per.items()
        }
        if any(len(v) > 1 for v in curves.values()):
            capb.append(
                Curve(
                    "End-to-end p99 latency by number of workers",
                    "workers",
                    "p99 latency (ms)",
                    {k: v for k, v in curves.items() if v},
                    hline=slo,
                    logy=True,
                )
            )
    else:
        capb.append(
            "No per-event strategy with timed single-row predict calls: capacity not computed."
        )
    sections.append(("Capacity", capb))

    man = rep.get("manifest", {})
    tbl = man.get("table", {}) or {}
    model = man.get("model", {}) or {}
    versions = man.get("versions", {}) or {}
    kv = [
        ["data", _val(tbl.get("source"))],
        ["rows", _val(tbl.get("rows"))],
        ["fingerprint", _val(tbl.get("fingerprint"))],
        ["task", _val(man.get("task", m.get("task")))],
        ["model", _val(model.get("repr") or model.get("spec"))],
        ["warm-up ends", _val(man.get("warmup_end"))],
        ["scored events", _val(man.get("scored_events", (m.get("span") or {}).get("events")))],
        ["created", _val(man.get("created"))],
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "n/a"],
    ]
    if finite(man.get("peak_memory_mb")):
        kv.append(["peak memory", f"{man['peak_memory_mb']:.0f} MB"])
    phases = man.get("timings") or {}
    if isinstance(phases, dict) and phases:
        kv.append(["compare phases", ", ".join(f"{k} {fnum(v, 2)}" for k, v in phases.items())])
    mb: list[Block] = [Table(["field", "value"], kv)]
    if man.get("warnings"):
        mb.append(["warning: " + str(w) for w in man["warnings"]])
    sections.append(("Run", mb))

    rb = rep.get("run_b")
    if rb:
        rows = [
            [
                r["strategy"],
                METRIC_LABEL.get(r["metric"], r["metric"]),
                _fmt_value(r["metric"], r["a"]),
                _fmt_value(r["metric"], r["b"]),
                fms(r["diff"]) if r["metric"].endswith("_ms") else fdiff(r["diff"]),
            ]
            for r in rb["rows"]
        ]
        sections.append(
            (
                "Run A vs run B",
                [
                    list(rb["verdict"]),
                    Table(
                        ["strategy", "metric", "A", "B", "B − A"],
                        rows,
                        f"A = {rep['run']}, B = {rb['run']}",
                    ),
                ],  # fmt: skip
            )
        )
    return sections


def _val(x: Any) -> str:
    """A manifest value as text; missing (None, NaN) is ``n/a``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return str(x)


def _pct(u: Any) -> str:
    if not finite(u):
        return "n/a"
    return "<1%" if 0 < u < 0.01 else f"{u:.0%}"


def _iso(us: Any) -> str:
    if not finite(us):
        return "n/a"
    try:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))
    except OverflowError:
        return "n/a"
    return when.isoformat(timespec="minutes")


# --------------------------------------------------------------------------- renderers


def _head(rep: dict[str, Any]) -> str:
    return f"rtml report — {rep['run']}"


def render_terminal(rep: dict[str, Any], *, color: bool = False, width: int | None = None) -> str:
    """Rich tables and sparklines (:func:`rtml_cli.report_render.render_terminal`)."""
    return _render.render_terminal(_head(rep), layout(rep), color=color, width=width)


def render_markdown(rep: dict[str, Any]) -> str:
    """Markdown for a pull-request comment or a GitHub job summary; long sections fold."""
    return _render.render_markdown(_head(rep), layout(rep), folded=("Run", "Compute", "Capacity"))


def render_html(rep: dict[str, Any]) -> str:
    """One self-contained, well-formed HTML file (inline CSS and SVG; no external URL)."""
    return _render.render_html(_head(rep), layout(rep))


def _json_safe(o: Any) -> Any:
    """NaN and infinities become null: they are not JSON, and a reader cannot parse them."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def render_json(rep: dict[str, Any]) -> str:
    """The report dict as stable JSON (sorted keys, schema in the module docstring)."""
    text = json.dumps(
        _json_safe(rep), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    return for_json(text) + "\n"


def render_junit(rep: dict[str, Any]) -> str:
    """JUnit XML: one test case per check; failed checks carry <failure>, missing values <error>.

    Written as text with :func:`for_xml` on every value: ElementTree escapes ``<`` and ``&`` but
    lets control characters through, which makes the file ill-formed for every JUnit reader.
    """
    x = for_xml
    res = rep["checks"]
    nfail = sum(c["status"] == "fail" for c in res)
    nerr = sum(c["status"] == "error" for c in res)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="rtml" tests="{len(res)}">',
        f'  <testsuite name="{x("rtml report " + str(rep["run"]))}" tests="{len(res)}" '
        f'failures="{nfail}" errors="{nerr}" skipped="0">',
    ]
    for c in res:
        check, detail = str(c["check"]), str(c["detail"])
        out.append(f'    <testcase classname="rtml.checks" name="{x(check)}">')
        if c["status"] == "fail":
            out.append(
                f'      <failure message="{x("check failed: " + detail)}" type="CheckFailed">'
                f"{x(check)}\n{x(detail)}</failure>"
            )
        elif c["status"] == "error":
            out.append(f'      <error message="{x(detail)}" type="MetricError">{x(detail)}</error>')
        out.append(f"      <system-out>{x(detail)}</system-out>")
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def render(rep: dict[str, Any], fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """Render a built report in one of :data:`FORMATS`."""
    if fmt == "terminal":
        return render_terminal(rep, color=color, width=width)
    if fmt == "markdown":
        return render_markdown(rep)
    if fmt == "html":
        return render_html(rep)
    if fmt == "json":
        return render_json(rep)
    if fmt == "junit":
        return render_junit(rep)
    raise UsageError(f"Unknown report format {fmt!r}. Choose one of: {', '.join(FORMATS)}.")


# --------------------------------------------------------------------------- the command


def _write_atomic(target: Path, text: str, *, force: bool, inputs: Sequence[Path]) -> None:
    """Write beside the target and rename: a failed write never leaves half a report, an
    existing file is replaced only with ``force``, and a file of the run is never the target."""
    refuse_input_as_output(target, inputs)
    refuse_existing(target, force=force, what="report file")
    try:
        with atomic_output(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"Cannot write the report to '{for_terminal(target, inline=True)}' "
            f"({exc.strerror or exc}); pass another --out."
        ) from None


def _check_summary_target(path: str, runs: Sequence[str | Path]) -> None:
    """$GITHUB_STEP_SUMMARY is appended to: never a file of the run read (that would damage
    the run), never something other than a regular file (a FIFO would block forever)."""
    shown = for_terminal(path, inline=True)
    try:
        refuse_input_as_output(path, runs)
    except UsageError:
        raise UsageError(
            f"$GITHUB_STEP_SUMMARY ('{shown}') lies inside the run directory being reported; "
            "appending the summary would damage the run. Point it at another file."
        ) from None
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UsageError(
            f"$GITHUB_STEP_SUMMARY ('{shown}') is not a regular file; rtml appends the job "
            "summary only to a regular file. Point it at another file, or unset it."
        )


@dataclass
class ReportOutput:
    """What the CLI prints (``stdout``, may be empty; ``notes``, one stderr line each) and exits
    with."""

    stdout: str
    exit_code: int
    written: str | None = None
    notes: list[str] = field(default_factory=list)


#: The format of ``rtml report -o FILE`` when ``--format`` is not given.
_FORMAT_OF_SUFFIX = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
    ".xml": "junit",
}


def run_report(
    run_dir: str | Path,
    run_b: str | Path | None = None,
    *,
    fmt: str | None = None,
    checks: Sequence[str] = (),
    output: str | Path | None = None,
    force: bool = False,
    github_summary: bool = False,
    traffic: str | None = None,
    slo: str | None = None,
    workers: int | None = None,
    color: bool = False,
) -> ReportOutput:
    """Everything ``rtml report`` does: build, render, write the file and the job summary.

    With ``output`` the rendered report goes to that file and stdout gets a one-line note plus
    the check results; ``github_summary`` appends the Markdown rendering to
    ``$GITHUB_STEP_SUMMARY``. Outside GitHub Actions (the variable unset) the summary goes to
    stdout instead, with a note saying so; it is left out, with a note, when stdout already
    carries a JSON, JUnit or HTML report that Markdown would corrupt. Without ``fmt`` the
    format follows ``output``'s suffix (``.html``, ``.md``, ``.json``, ``.xml``), else terminal.
    """
    if fmt is None:
        suffix = Path(output).suffix.lower() if output is not None else ""
        fmt = _FORMAT_OF_SUFFIX.get(suffix, "terminal")
    if fmt not in FORMATS:
        raise UsageError(f"Unknown report format {fmt!r}. Choose one of: {', '.join(FORMATS)}.")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if github_summary and summary_path:
        _check_summary_target(summary_path, [run_dir] + ([run_b] if run_b is not None else []))
    rep = build_report(run_dir, run_b, checks=checks, traffic=traffic, slo=slo, workers=workers)
    text = render(rep, fmt, color=color and output is None)
    written = None
    stdout = text
    notes: list[str] = []
    if output is not None:
        runs = [Path(run_dir)] + ([Path(run_b)] if run_b is not None else [])
        _write_atomic(Path(output), text, force=force, inputs=runs)
        written = str(output)
        t = for_terminal
        lines = [f"wrote {fmt} report to {t(output, inline=True)}"]
        lines += [
            f"{str(c['status']).upper():5} {t(c['check'], inline=True)}  "
            f"({t(c['detail'], inline=True)})"
            for c in rep["checks"]
        ]
        stdout = "\n".join(lines) + "\n"
    if github_summary:
        md = text if fmt == "markdown" else render_markdown(rep)
        unset = "$GITHUB_STEP_SUMMARY is not set (GitHub Actions sets it)"
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(md + "\n")
        elif fmt == "markdown" and output is None:
            notes.append(f"{unset}: the Markdown summary is the report on stdout.")
        elif output is None and fmt in ("json", "junit", "html"):
            notes.append(
                f"{unset}, and stdout carries the {fmt} report: the Markdown summary was not "
                "written. Pass --output FILE to get it on stdout."
            )
        else:
            stdout += ("\n" if stdout else "") + md
            notes.append(f"{unset}: the Markdown summary went to stdout.")
    return ReportOutput(stdout, rep["exit_code"], written, notes)
