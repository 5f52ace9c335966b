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
needed).

Check sources: every ``--check``, then ``[report] checks`` (a list) and ``[checks]`` (a list or a
table of name = expression) from the run's resolved config in the manifest. Checks use run A only.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli import capacity as cap_mod
from rtml_cli import checks as checks_mod
from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import RunDirError, UsageError
from rtml_cli.runs import Run
from rtml_cli.runs import read_run as _runs_read

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
_SPARK = "▁▂▃▄▅▆▇█"


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


def fnum(x: float | None, digits: int = 3) -> str:
    """A metric value: fixed decimals, ``n/a`` when missing."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def fdiff(x: float | None, digits: int = 3) -> str:
    """A signed difference (``+0.021``), ``n/a`` when missing."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}"


def fms(x: float | None) -> str:
    """Milliseconds with 3 significant digits."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def fsec(x: float | None) -> str:
    """Seconds as a compact duration ("6h", "1d2h"); exactly zero is "0"."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return format_duration(x * 1e6)


def sparkline(
    values: Sequence[float | None], lo: float | None = None, hi: float | None = None
) -> str:
    """Unicode sparkline; missing values are spaces. ``lo``/``hi`` share a scale across lines.

    Examples
    --------
    >>> sparkline([0, 0.5, 1, None])
    '▁▅█ '
    """
    fin = [v for v in values if v is not None and math.isfinite(v)]
    if not fin:
        return " " * len(values)
    lo = min(fin) if lo is None else lo
    hi = max(fin) if hi is None else hi
    span = hi - lo
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        else:
            i = 0 if span <= 0 else int(round((v - lo) / span * (len(_SPARK) - 1)))
            out.append(_SPARK[max(0, min(len(_SPARK) - 1, i))])
    return "".join(out)


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
    names = metrics.get("metric_names", [])
    if metrics.get("task") == "regression":
        return "mae" if "mae" in names else names[0]
    base = metrics.get("quality", {}).get(metrics.get("baseline"), {})
    if "auc" in names and base.get("auc") is not None:
        return "auc"
    return "accuracy" if "accuracy" in names else names[0]


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
                neg[k] = None if d.get(k2) is None else -d[k2]
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
    m = run.metrics
    names = list(m["strategies"])
    kinds = _kinds(run.manifest, names)
    metric = primary_metric(m)
    hib = bool(m.get("higher_is_better", {}).get(metric, True))
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
    results = checks_mod.evaluate_checks(_check_sources(run.manifest, checks), values, reasons)
    findings = _findings(m, kinds, metric)
    verdict = [_finding_sentence(f, hib) for f in findings]
    q = m["quality"]
    ranked = [n for n in names if q.get(n, {}).get(metric) is not None]
    if ranked:
        best = (max if hib else min)(ranked, key=lambda n: q[n][metric])
        base = m["baseline"]
        verdict.append(
            f"Best {METRIC_LABEL.get(metric, metric)}: {best} ({fnum(q[best][metric])}); "
            f"baseline {base}: {fnum(q.get(base, {}).get(metric))}."
        )
    verdict += _freshness_sentences(m, names, kinds)
    verdict += _latency_sentences(m, names, kinds)
    if capacity:
        lvl = f"{capacity['traffic'][-1]:g}x"
        for s, per in capacity["strategies"].items():
            r = per[lvl]
            if r.get("workers_needed"):
                ch = r.get("chosen") or {}
                verdict.append(
                    f"Serving {s} per event needs {r['workers_needed']} worker(s) for p99 ≤ "
                    f"{slo_ms:g} ms at {lvl} traffic"
                    + (
                        f" (p99 {fms(ch.get('latency_ms', {}).get('p99'))} ms with {ch['workers']})"
                        if ch
                        else ""
                    )
                    + "; the busiest hour runs at "
                    + f"{_x(r.get('peak_hour', {}).get('x_mean'))} the mean rate."
                )
            elif r.get("reason"):
                verdict.append(f"Capacity for {s} at {lvl}: {r['reason']}.")
            break  # one sentence: the first per-event strategy; the table has the rest
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
        "manifest": run.manifest,
        "run_b": None,
    }
    if run_b is not None:
        out["run_b"] = _compare_runs(m, read_run(run_b).metrics, str(run_b), metric)
    return out


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}x"


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
        upd = (comp.get("kinds") or {}).get("update")
        if upd:
            text += f" (+ update p99 {fms(upd['wall_ms'].get('p99'))} ms)"
        parts.append(text)
    return [f"One-row predict p99: {', '.join(parts)}."] if parts else []


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


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Series:
    """Quality over time: one line per strategy over shared bucket starts."""

    title: str
    x: list[str]
    lines: dict[str, list[float | None]]


@dataclass
class Curve:
    """An x/y chart, drawn in HTML only (terminal and Markdown show the numbers as a table)."""

    title: str
    xlabel: str
    ylabel: str
    lines: dict[str, list[tuple[float, float]]]
    hline: float | None = None
    logy: bool = False


Block = Any  # str (paragraph) | list[str] (bullets) | Table | Series | Curve


def layout(rep: dict[str, Any]) -> list[tuple[str, list[Block]]]:
    """Format-neutral sections of the report, in reading order."""
    m = rep["metrics"]
    names = [s["name"] for s in rep["strategies"]]
    kinds = {s["name"]: s["kind"] for s in rep["strategies"]}
    metric = rep["primary_metric"]
    base = rep["baseline"]
    sections: list[tuple[str, list[Block]]] = [("Verdict", [list(rep["verdict"])])]

    if rep["checks"]:
        rows = [[c["status"].upper(), c["check"], c["detail"]] for c in rep["checks"]]
        sections.append(("Checks", [Table(["status", "check", "value"], rows)]))

    mnames = m["metric_names"]
    q = m["quality"]
    rows = []
    for n in names:
        row = [n, kinds.get(n) or "", str(q[n].get("n", ""))] + [fnum(q[n].get(x)) for x in mnames]
        if n == base:
            row.append("baseline")
        else:
            d = m.get("diff_to_baseline", {}).get(n, {}).get(metric, {})
            iv = (
                f" [{fnum(d.get('low'))}, {fnum(d.get('high'))}]"
                if d.get("low") is not None
                else ""
            )
            row.append(f"{fdiff(d.get('estimate'))}{iv}")
        rows.append(row)
    notes = [f"{n}.{x}: {why}" for n in names for x, why in (q[n].get("reasons") or {}).items()]
    boot = m.get("bootstrap", {})
    caption = (
        f"Δ{METRIC_LABEL.get(metric, metric)} vs {base} with a {boot.get('level', 0.95):.0%} "
        f"block-bootstrap interval ({boot.get('resamples', 0)} resamples over "
        f"{boot.get('blocks', 0)} time blocks of {m.get('bucket', {}).get('text', '?')})."
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

    qot = m.get("quality_over_time", {})
    lines = {n: qot.get("strategies", {}).get(n, {}).get(metric, []) for n in names}
    sections.append(
        (
            "Quality over time",
            [
                Series(
                    f"{METRIC_LABEL.get(metric, metric)} per "
                    f"{m.get('bucket', {}).get('text', 'bucket')} "
                    f"({m.get('span', {}).get('start', '')[:16]} → "
                    f"{m.get('span', {}).get('end', '')[:16]})",
                    list(qot.get("start", [])),
                    lines,
                )
            ],
        )
    )

    fr = m.get("freshness", {})
    rows = []
    for n in names:
        f = fr.get(n, {})
        st, fa, ma = f.get("staleness_s", {}), f.get("feature_age_s", {}), f.get("model_age_s", {})
        rows.append([
            n, fsec(st.get("mean")), fsec(st.get("p90")), fsec(st.get("max")),
            fsec(fa.get("mean")), fsec(fa.get("p90")), fsec(ma.get("mean")), fsec(ma.get("p90")),
            str(f.get("cold_start", 0)),
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
    for n in names:
        for b in m.get("quality_by_staleness", {}).get(n, []):
            srows.append([n, b["label"], str(b["n"]), fnum(b.get(metric))])
    if any(len(m.get("quality_by_staleness", {}).get(n, [])) > 1 for n in names):
        blocks.append(
            Table(
                ["strategy", "staleness", "events", METRIC_LABEL.get(metric, metric)],
                srows,
                "Quality by staleness bucket: does older served data score worse?",
            )  # fmt: skip
        )
    sections.append(("Freshness", blocks))

    comp = m.get("compute", {})
    rows = []
    for n in names:
        c = comp.get(n, {})
        entries = [("predict (1 row)", c.get("predict_single_row"))] + [
            (k, v) for k, v in (c.get("kinds") or {}).items()
        ]
        single_n = (c.get("predict_single_row") or {}).get("count")
        for label, calls in entries:
            if not calls or (label == "predict" and calls["count"] == single_n):
                continue  # every predict call was a single-row one: same numbers twice
            w = calls["wall_ms"]
            rows.append([
                n, label, str(calls["count"]), fms(w.get("p50")), fms(w.get("p90")),
                fms(w.get("p99")), fms(w.get("p99.9")), fms(w.get("max")),
                fms(calls["cpu_ms"].get("p50")), f"{calls['wall_total_s']:.3g}",
            ])  # fmt: skip
    thr = [f"{n}: {fnum(comp.get(n, {}).get('events_per_s'), 0)} events/s" for n in names]
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
        rows = []
        peaks = []
        for s, per in capacity["strategies"].items():
            for lvl, r in per.items():
                if r.get("reason") and not r["by_workers"]:
                    peaks.append(f"{s} at {lvl}: {r['reason']}")
                    continue
                for w in r["by_workers"]:
                    lat = w["latency_ms"]
                    rows.append([
                        s, lvl, str(w["workers"]), fms(lat.get("p50")), fms(lat.get("p99")),
                        fms(lat.get("p99.9")), fms(lat.get("max")), fms(w.get("peak_hour_p99_ms")),
                        _pct(w.get("utilization")),
                        "yes" if w["meets_slo"] else "no",
                    ])  # fmt: skip
                need = r.get("workers_needed")
                pm, ph = r.get("peak_minute", {}), r.get("peak_hour", {})
                peaks.append(
                    f"{s} at {lvl}: {need if need else 'no'} worker(s) meet "
                    f"p99 ≤ {capacity['slo_ms']:g} ms"
                    + (f" ({r['reason']})" if r.get("reason") else "")
                    + f"; mean rate {fms(r.get('rate_per_s'))}/s, busiest minute "
                    f"{fms(pm.get('rate_per_s'))}/s ({_x(pm.get('x_mean'))}), busiest hour "
                    f"{fms(ph.get('rate_per_s'))}/s ({_x(ph.get('x_mean'))}) from "
                    f"{_iso(ph.get('start_us'))}"
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
                    f"p99 ≤ {capacity['slo_ms']:g} ms",
                ],
                rows,
                "End-to-end latency (queueing + service) of a FIFO queue fed with the historical "
                "arrivals and the measured single-row predict times.",
            )  # fmt: skip
        )
        capb.append(peaks)
        curves = {
            f"{s} at {lvl}": [
                (float(w["workers"]), float(w["latency_ms"]["p99"]))
                for w in r["by_workers"]
                if w["latency_ms"].get("p99") is not None
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
                    hline=capacity["slo_ms"],
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
        ["data", str(tbl.get("source", "n/a"))],
        ["rows", str(tbl.get("rows", "n/a"))],
        ["fingerprint", str(tbl.get("fingerprint", "n/a"))],
        ["task", str(man.get("task", m.get("task")))],
        ["model", str(model.get("repr") or model.get("spec") or "n/a")],
        ["warm-up ends", str(man.get("warmup_end", "n/a"))],
        ["scored events", str(man.get("scored_events", m.get("span", {}).get("events", "n/a")))],
        ["created", str(man.get("created", "n/a"))],
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "n/a"],
    ]
    if isinstance(man.get("peak_memory_mb"), (int, float)):
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


def _pct(u: float | None) -> str:
    if u is None:
        return "n/a"
    return "<1%" if 0 < u < 0.01 else f"{u:.0%}"


def _iso(us: int | None) -> str:
    if us is None:
        return "n/a"
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat(
        timespec="minutes"
    )


# --------------------------------------------------------------------------- renderers


def _series_lines(s: Series) -> list[tuple[str, str, str]]:
    fin = [v for vals in s.lines.values() for v in vals if v is not None and math.isfinite(v)]
    lo, hi = (min(fin), max(fin)) if fin else (None, None)
    out = []
    for name, vals in s.lines.items():
        f = [v for v in vals if v is not None and math.isfinite(v)]
        rng = f"{fnum(min(f))}–{fnum(max(f))}" if f else "n/a"
        out.append((name, sparkline(vals, lo, hi), rng))
    return out


def render_terminal(rep: dict[str, Any], *, color: bool = False, width: int | None = None) -> str:
    """Rich tables and sparklines; ANSI colour only when ``color`` (the CLI passes isatty)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RTable
    from rich.text import Text

    buf = io.StringIO()
    con = Console(
        file=buf, force_terminal=color, no_color=not color, color_system="auto" if color else None,
        width=width or (None if color else 120), highlight=False, soft_wrap=False,
    )  # fmt: skip
    con.print(Text(f"rtml report — {rep['run']}", style="bold"))
    status_style = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold yellow"}
    for title, blocks in layout(rep):
        con.print()
        con.print(Text(title, style="bold underline"))
        for b in blocks:
            if isinstance(b, str):
                con.print(b)
            elif isinstance(b, list):
                for line in b:
                    con.print(Text("• " + line))
            elif isinstance(b, Table):
                t = RTable(box=box.SIMPLE_HEAD, caption=b.caption or None, caption_justify="left",
                           show_edge=False, pad_edge=False)  # fmt: skip
                for h in b.headers:
                    t.add_column(h, overflow="fold")
                for r in b.rows:
                    cells = [Text(c, style=status_style.get(c, "")) for c in r]
                    t.add_row(*cells)
                con.print(t)
            elif isinstance(b, Series):
                con.print(b.title)
                t = RTable(box=None, show_header=False, pad_edge=False)
                t.add_column("strategy")
                t.add_column("sparkline", no_wrap=True)
                t.add_column("range")
                for name, spark, rng in _series_lines(b):
                    t.add_row(name, Text(spark, style="cyan"), rng)
                con.print(t)
    return buf.getvalue()


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_markdown(rep: dict[str, Any]) -> str:
    """Markdown for a pull-request comment or a GitHub job summary."""
    out = [f"## rtml report — `{rep['run']}`", ""]
    for title, blocks in layout(rep):
        detail = title in ("Run", "Compute", "Capacity") and title != "Verdict"
        if detail:
            out += [f"<details><summary><b>{title}</b></summary>", ""]
        else:
            out += [f"### {title}", ""]
        for b in blocks:
            if isinstance(b, str):
                out += [b, ""]
            elif isinstance(b, list):
                out += [f"- {line}" for line in b] + [""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
                out.append("|" + "---|" * len(b.headers))
                for r in b.rows:
                    cells = [_md_cell(c) for c in r]
                    if title == "Checks":
                        cells[0] = {"PASS": "✅ pass", "FAIL": "❌ fail", "ERROR": "⚠️ error"}.get(
                            r[0], r[0]
                        )
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
                if b.caption:
                    out += [f"_{b.caption}_", ""]
            elif isinstance(b, Series):
                out += [f"{b.title}:", "", "```"]
                lines = _series_lines(b)
                pad = max(len(n) for n, _, _ in lines) if lines else 0
                out += [f"{n.ljust(pad)}  {s}  {r}" for n, s, r in lines]
                out += ["```", ""]
        if detail:
            out += ["</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _svg_chart(s: Series, ylabel: str) -> str:
    """Inline SVG line chart (matplotlib, Agg-free SVG canvas, no pyplot global state)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with rc_context({"svg.hashsalt": "rtml", "svg.fonttype": "none"}):
        fig = Figure(figsize=(8, 3.2))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        x = np.arange(len(s.x))
        for name, vals in s.lines.items():
            y = np.array([np.nan if v is None else v for v in vals], dtype=float)
            ax.plot(x, y, marker=".", label=name)
        step = max(1, len(s.x) // 6)
        ax.set_xticks(x[::step])
        ax.set_xticklabels([t[:16].replace("T", " ") for t in s.x[::step]], fontsize=7)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return clean_svg(buf.getvalue())


def _svg_curve(c: Curve) -> str:
    """Inline SVG x/y chart with an optional horizontal reference line (the SLO)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with rc_context({"svg.hashsalt": "rtml", "svg.fonttype": "none"}):
        fig = Figure(figsize=(8, 3.2))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        for name, pts in c.lines.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        if c.hline is not None:
            ax.axhline(c.hline, color="grey", linestyle="--", label=f"SLO {c.hline:g} ms")
        if c.logy:
            ax.set_yscale("log")
        ax.set_xlabel(c.xlabel)
        ax.set_ylabel(c.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return clean_svg(buf.getvalue())


def clean_svg(svg: str) -> str:
    """Make matplotlib's SVG inline-ready and free of external URLs (namespaces, metadata)."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href", "href")
    return svg.strip()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:72em;
color:#222;padding:0 1em}
h1{font-size:1.4em}
h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;font-size:.85em;color:#555;padding-top:.3em}
.PASS{color:#176f2c;font-weight:bold}.FAIL{color:#b00020;font-weight:bold}.ERROR{color:#a66a00;font-weight:bold}
.verdict li{margin:.3em 0}pre{background:#f6f6f6;padding:.6em}
"""


def render_html(rep: dict[str, Any]) -> str:
    """One self-contained, well-formed HTML file (inline CSS and SVG; no external URL)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8" />',
        f"<title>rtml report — {e(rep['run'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>rtml report — <code>{e(rep['run'])}</code></h1>",
    ]
    for title, blocks in layout(rep):
        parts.append(f"<h2>{e(title)}</h2>")
        for b in blocks:
            if isinstance(b, str):
                parts.append(f"<p>{e(b)}</p>")
            elif isinstance(b, list):
                cls = ' class="verdict"' if title == "Verdict" else ""
                parts.append(f"<ul{cls}>" + "".join(f"<li>{e(x)}</li>" for x in b) + "</ul>")
            elif isinstance(b, Table):
                rows = []
                for r in b.rows:
                    cells = "".join(
                        f'<td class="{e(c)}">{e(c)}</td>'
                        if c in ("PASS", "FAIL", "ERROR")
                        else f"<td>{e(c)}</td>"
                        for c in r
                    )
                    rows.append(f"<tr>{cells}</tr>")
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
                parts.append(
                    f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                )
            elif isinstance(b, Series):
                parts.append(f"<p>{e(b.title)}</p>")
                ylabel = METRIC_LABEL.get(rep["primary_metric"], rep["primary_metric"])
                try:
                    parts.append(f'<div class="chart">{_svg_chart(b, ylabel)}</div>')
                except ImportError:
                    lines = _series_lines(b)
                    parts.append(
                        "<p>Charts need matplotlib: install the plot extra "
                        "(<code>pip install 'rtml[plot]'</code>). Sparklines instead:</p><pre>"
                        + e("\n".join(f"{n}  {s}  {r}" for n, s, r in lines))
                        + "</pre>"
                    )
            elif isinstance(b, Curve):
                try:
                    parts.append(f"<p>{e(b.title)}</p>")
                    parts.append(f'<div class="chart">{_svg_curve(b)}</div>')
                except ImportError:
                    parts.append("<p>(chart omitted: install the plot extra, rtml[plot])</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_json(rep: dict[str, Any]) -> str:
    """The report dict as stable JSON (sorted keys, schema in the module docstring)."""
    return json.dumps(rep, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def render_junit(rep: dict[str, Any]) -> str:
    """JUnit XML: one test case per check; failed checks carry <failure>, missing values <error>."""
    res = rep["checks"]
    suite = ET.Element(
        "testsuite",
        {
            "name": f"rtml report {rep['run']}",
            "tests": str(len(res)),
            "failures": str(sum(c["status"] == "fail" for c in res)),
            "errors": str(sum(c["status"] == "error" for c in res)),
            "skipped": "0",
        },
    )
    for c in res:
        case = ET.SubElement(suite, "testcase", {"classname": "rtml.checks", "name": c["check"]})
        if c["status"] == "fail":
            f = ET.SubElement(
                case, "failure", {"message": f"check failed: {c['detail']}", "type": "CheckFailed"}
            )
            f.text = f"{c['check']}\n{c['detail']}"
        elif c["status"] == "error":
            f = ET.SubElement(case, "error", {"message": c["detail"], "type": "MetricError"})
            f.text = c["detail"]
        out = ET.SubElement(case, "system-out")
        out.text = c["detail"]
    root = ET.Element("testsuites", {"name": "rtml", "tests": str(len(res))})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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


@dataclass
class ReportOutput:
    """What the CLI prints (``stdout``, may be empty) and exits with."""

    stdout: str
    exit_code: int
    written: str | None = None


def run_report(
    run_dir: str | Path,
    run_b: str | Path | None = None,
    *,
    fmt: str = "terminal",
    checks: Sequence[str] = (),
    output: str | Path | None = None,
    github_summary: bool = False,
    traffic: str | None = None,
    slo: str | None = None,
    workers: int | None = None,
    color: bool = False,
) -> ReportOutput:
    """Everything ``rtml report`` does: build, render, write the file and the job summary.

    With ``output`` the rendered report goes to that file and stdout gets a one-line note plus
    the check results; ``github_summary`` appends the Markdown rendering to
    ``$GITHUB_STEP_SUMMARY``.
    """
    if fmt not in FORMATS:
        raise UsageError(f"Unknown report format {fmt!r}. Choose one of: {', '.join(FORMATS)}.")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if github_summary and not summary_path:
        raise UsageError(
            "--github-summary appends to the file named by $GITHUB_STEP_SUMMARY, which is not set "
            "(GitHub Actions sets it). Use --format markdown --output FILE elsewhere."
        )
    rep = build_report(run_dir, run_b, checks=checks, traffic=traffic, slo=slo, workers=workers)
    text = render(rep, fmt, color=color and output is None)
    written = None
    stdout = text
    if output is not None:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"Cannot write the report to '{output}' ({exc}); pass another --output."
            ) from None
        written = str(output)
        lines = [f"wrote {fmt} report to {output}"]
        lines += [f"{c['status'].upper():5} {c['check']}  ({c['detail']})" for c in rep["checks"]]
        stdout = "\n".join(lines) + "\n"
    if github_summary and summary_path:
        md = text if fmt == "markdown" else render_markdown(rep)
        with open(summary_path, "a", encoding="utf-8") as fh:
            fh.write(md + "\n")
    return ReportOutput(stdout, rep["exit_code"], written)
