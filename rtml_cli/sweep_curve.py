"""``curve.parquet`` of a sweep: one row per finished cell and strategy.

Columns (a metric that a run could not compute is null):

- ``cell`` (``c003``), ``cell_id`` (its folder under ``cells/``), one string column per grid key
  (the cell's value, e.g. ``retrain_every`` = ``"1h"``);
- ``strategy``, ``kind``, ``baseline`` (the strategy every difference is against); the run's
  naive references (``persistence``, ``prior``), when it has some, are rows of kind
  ``reference`` without settings or compute;
- the strategy's own settings: ``retrain_every_s`` (batch, stream), ``update_every_n``
  (online), ``train_window_s`` (null: all), ``label_delay_s``, ``model_spec``;
- ``refresh_s``: how often the deployment refreshes, the x axis of the freshness curve: the
  retrain period for batch and stream, the scored span divided by the applied updates for
  online (its mean time between updates), null for static;
- ``n`` and every quality metric ``M`` of the run (``auc``, ``log_loss``, ... or ``mae``,
  ``rmse``, ``r2``) with ``M_diff``, ``M_diff_low``, ``M_diff_high`` (estimate and 95 % block
  bootstrap interval of M(strategy) − M(baseline), null on the baseline's own row);
- freshness means ``staleness_mean_s``, ``feature_age_mean_s``, ``model_age_mean_s``;
- compute measured in the run (CPU seconds over the scored span): ``retrain_cpu_s``,
  ``update_cpu_s``, ``score_job_cpu_s``, ``predict_cpu_mean_ms`` (a single-row call),
  ``serving_cpu_s`` (batch: its scoring jobs; per-event kinds: mean single-row predict CPU ×
  scored events), ``compute_cpu_s`` (retrain + update + serving: the cost axis of the report),
  ``retrains``, ``updates``, ``predict_p99_ms``, ``events_per_s``;
- ``cost_*``: every number of the run's ``cost`` section for the strategy, when the run has one
  (nested keys joined with ``_``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli.safe_write import atomic_output
from rtml_cli.sweep_grid import duration_s

PER_EVENT_KINDS = ("stream", "online", "static")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _flat(prefix: str, value: Any, out: dict[str, float | None]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}_{k}", v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = _num(value)


def _span_s(metrics: Mapping[str, Any]) -> float | None:
    import datetime as dt

    span = metrics.get("span") or {}
    try:
        a = dt.datetime.fromisoformat(str(span["start"]))
        b = dt.datetime.fromisoformat(str(span["end"]))
    except (KeyError, ValueError):
        return None
    return (b - a).total_seconds()


def cost_section(metrics: Mapping[str, Any], strategy: str) -> Mapping[str, Any] | None:
    """The run's ``cost`` section of a strategy, where the run has one."""
    cost = metrics.get("cost")
    if isinstance(cost, Mapping) and isinstance(cost.get(strategy), Mapping):
        return cost[strategy]  # type: ignore[no-any-return]
    comp = (metrics.get("compute") or {}).get(strategy) or {}
    return comp.get("cost") if isinstance(comp.get("cost"), Mapping) else None


def cell_rows(
    cell: Mapping[str, Any], manifest: Mapping[str, Any], metrics: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The curve rows of one finished cell (see the module docstring)."""
    rows = []
    names = list(metrics.get("metric_names") or [])
    baseline = metrics.get("baseline")
    span = _span_s(metrics)
    model = (manifest.get("model") or {}).get("spec") or {}
    model_text = model.get("preset") or model.get("estimator") or model.get("factory") or "default"
    cfg = manifest.get("config") or {}
    delay_us = cfg.get("label_delay_us")
    deployed = list(manifest.get("strategies") or [])
    names_seen = {s.get("name") for s in deployed}
    # naive references (persistence, prior) are scored beside the strategies, not deployed
    refs = [{"name": r, "kind": "reference"} for r in metrics.get("references") or []
            if r not in names_seen]  # fmt: skip
    for s in deployed + refs:
        name, kind = s.get("name"), s.get("kind")
        row: dict[str, Any] = {"cell": cell["alias"], "cell_id": cell["id"]}
        row.update({k: str(v) for k, v in (cell.get("params") or {}).items()})
        retrain_s = duration_s(s.get("retrain_every")) if kind in ("batch", "stream") else None
        updates = s.get("updates") or 0
        refresh = retrain_s
        if kind == "online":
            refresh = span / updates if span and updates else None
        row.update(
            strategy=name,
            kind=kind,
            baseline=baseline,
            retrain_every_s=retrain_s,
            update_every_n=s.get("update_every") if kind == "online" else None,
            train_window_s=duration_s(s.get("train_window")),
            label_delay_s=None if delay_us is None else delay_us / 1e6,
            model_spec=str(model_text),
            refresh_s=refresh,
        )
        q = (metrics.get("quality") or {}).get(name) or {}
        row["n"] = _num(q.get("n"))
        diff = (metrics.get("diff_to_baseline") or {}).get(name) or {}
        for m in names:
            row[m] = _num(q.get(m))
            d = diff.get(m) or {}
            row[f"{m}_diff"] = _num(d.get("estimate"))
            row[f"{m}_diff_low"] = _num(d.get("low"))
            row[f"{m}_diff_high"] = _num(d.get("high"))
            row[f"{m}_diff_min_effect"] = _num(d.get("min_effect"))
        fr = (metrics.get("freshness") or {}).get(name) or {}
        for what in ("staleness", "feature_age", "model_age"):
            row[f"{what}_mean_s"] = _num((fr.get(f"{what}_s") or {}).get("mean"))
        comp = (metrics.get("compute") or {}).get(name) or {}
        kinds = comp.get("kinds") or {}

        def cpu(k: str, kinds: Mapping[str, Any] = kinds) -> float:
            return _num((kinds.get(k) or {}).get("cpu_total_s")) or 0.0

        single = comp.get("predict_single_row") or {}
        pmean = _num((single.get("cpu_ms") or {}).get("mean"))
        events = _num(comp.get("events")) or 0.0
        if kind == "batch":
            serving: float | None = cpu("score_job")
        else:
            serving = None if pmean is None else pmean / 1e3 * events
        row.update(
            retrain_cpu_s=cpu("retrain"),
            update_cpu_s=cpu("update"),
            score_job_cpu_s=cpu("score_job"),
            predict_cpu_mean_ms=pmean,
            serving_cpu_s=serving,
            compute_cpu_s=None if serving is None else cpu("retrain") + cpu("update") + serving,
            retrains=s.get("fits"),
            updates=s.get("updates"),
            predict_p99_ms=_num((single.get("wall_ms") or {}).get("p99")),
            events_per_s=_num(comp.get("events_per_s")),
        )
        costs: dict[str, float | None] = {}
        _flat("cost", cost_section(metrics, str(name)) or {}, costs)
        row.update(costs)
        rows.append(row)
    return rows


def read_cell(sweep_dir: Path, cell: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and metrics of a finished cell's run directory."""
    run = sweep_dir / str(cell["run_dir"])
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    return manifest, metrics


def curve_frame(sweep_dir: Path, doc: Mapping[str, Any]) -> pl.DataFrame:
    """Every finished cell's rows, in cell order (an empty frame when none finished)."""
    rows: list[dict[str, Any]] = []
    for cell in doc.get("cells") or []:
        if cell.get("status") != "ok":
            continue
        manifest, metrics = read_cell(sweep_dir, cell)
        rows.extend(cell_rows(cell, manifest, metrics))
    if not rows:
        return pl.DataFrame(
            {"cell": [], "strategy": []}, schema={"cell": pl.String, "strategy": pl.String}
        )
    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    text = {"cell", "cell_id", "strategy", "kind", "baseline", "model_spec", *doc.get("grid", {})}
    schema = {c: (pl.String if c in text else pl.Float64) for c in cols}
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], schema=schema)


def write_curve(sweep_dir: Path, doc: Mapping[str, Any]) -> pl.DataFrame:
    """Write ``curve.parquet`` (beside, then renamed) and return it."""
    frame = curve_frame(sweep_dir, doc)
    with atomic_output(sweep_dir / "curve.parquet") as tmp:
        frame.write_parquet(tmp)
    return frame
