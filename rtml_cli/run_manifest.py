"""The manifest and the short summary of a ``compare`` run (docs/ARCHITECTURE.md: run directory).

``manifest.json`` records what was resolved and inferred, versions, a fingerprint of the table,
the fits and updates per strategy, warnings, timings and options; :func:`run_summary` gives the
per-strategy rows ``rtml compare`` prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import resource
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from rtml_cli import __version__
from rtml_cli.runs import versions
from rtml_cli.strategies import StrategyResult
from rtml_cli.timing import percentiles

if TYPE_CHECKING:
    from rtml_cli.compare import Prepared


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat()


def run_summary(
    results: list[StrategyResult], metrics: dict[str, Any], main: str, scored: int
) -> list[dict[str, Any]]:
    """One row per strategy: its main metric, events/s, single-row predict p99, wall."""
    rows = []
    for r in results:
        q = metrics.get("quality", {}).get(r.name, {})
        c = r.calls
        single = (
            c["wall_ns"][(np.array(c["kind"]) == "predict") & (c["rows"] == 1)]
            if len(c["kind"])
            else np.array([])
        )
        p99 = percentiles(single)["p99"]
        rows.append(
            {
                "strategy": r.name,
                "kind": r.kind,
                main: q.get(main),
                "events_per_s": scored / r.wall_s if r.wall_s > 0 else None,
                "predict_p99_ms": None if p99 is None else p99 / 1e6,
                "wall_s": r.wall_s,
            }
        )
    return rows


def _fingerprint(frame: pl.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(str(frame.schema).encode())
    h.update(str(frame.height).encode())
    h.update(np.asarray(frame.hash_rows(seed=0).sum()).tobytes())
    return h.hexdigest()[:16]


def run_manifest(
    prep: Prepared,
    results: list[StrategyResult],
    notes: list[str],
    warn_list: list[str],
    *,
    jobs: int,
    timing_sample: int | None,
    dask: str | None = None,
    fast: bool,
    timings: dict[str, float],
    timing_budget_s: float | None = None,
) -> dict[str, Any]:
    """The content of ``manifest.json``."""
    cfg, ev = prep.config, prep.table
    # with --jobs > 1 the retrains ran in worker processes: report the larger peak (a Dask
    # cluster's workers are not measured here)
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "rtml_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "table": {
            "source": ev.source,
            "rows": ev.frame.height,
            "fingerprint": _fingerprint(ev.frame),
        },
        "roles": dataclasses.asdict(ev.roles),
        "features": prep.features,
        "inferred": notes,
        "task": prep.label.task,
        "positive_class": prep.label.positive_class,
        "classes": prep.label.classes,
        "config": cfg.to_json(),
        "strategies": [
            {
                **s.params(),
                "wall_s": r.wall_s,
                "cpu_s": r.cpu_s,
                "fits": sum(1 for f in r.fits if f[0] == "retrain"),
                "updates": sum(1 for f in r.fits if f[0] == "update"),
            }
            for s, r in zip(cfg.strategies, results, strict=True)
        ],
        "baseline": cfg.baseline,
        "model": {"spec": dataclasses.asdict(cfg.model), "repr": prep.builder.describe()},
        "warmup_end": _iso(prep.data.W),
        "scored_events": int(len(prep.data.t) - prep.data.s0),
        "versions": versions(),
        "timings": timings,
        "peak_memory_mb": peak_kb / 1024,
        "warnings": warn_list,
        "options": {
            "timing_sample": "all" if timing_sample is None else timing_sample,
            "timing_budget_s": timing_budget_s,
            "jobs": jobs,
            "dask": dask,
            "sklearn_fast": fast,
            "sklearn_config": {
                "skip_parameter_validation": fast,
                "assume_finite": "when the view has no NaN" if fast else False,
            },
        },
    }
