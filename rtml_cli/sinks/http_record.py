"""The run directory of a recorded HTTP replay (``rtml replay --to http://... --record DIR``).

:func:`write_run` turns what the :class:`~rtml_cli.sinks.http.HttpSink` measured into the run
format ``rtml report`` reads (docs/ARCHITECTURE.md schemas): ``predictions.parquet`` (strategy
``"deployed"``, the score of each answered event, ``y`` joined from the label messages),
``timings.parquet`` (one ``predict`` row per event, latency from schedule), ``manifest.json``,
``metrics.json``; then ``responses.parquet``, every event's status, latency, error and score.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from rtml_cli.errors import RtmlError, SinkError

if TYPE_CHECKING:
    from rtml_cli.sinks.http import HttpSink

STRATEGY = "deployed"


def _to_y(values: list[Any]) -> tuple[list[float | None], str, Any]:
    """Labels -> Float64 ``y``, the task and the positive class (docs/semantics.md, The event table: 1.0 = positive)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return [None if v is None else float(v) for v in values], "binary", True
    if all(isinstance(v, (int, float)) for v in present):
        ys = [None if v is None else float(v) for v in values]
        distinct = {y for y in ys if y is not None}
        task = "binary" if distinct <= {0.0, 1.0} else "regression"
        return ys, task, (1 if task == "binary" else None)
    classes = sorted({str(v) for v in present})
    positive = classes[-1] if classes else None
    return [None if v is None else float(str(v) == positive) for v in values], "binary", positive


def write_run(sink: HttpSink) -> Path:
    """Write the run directory of a recorded HTTP replay (temp dir + rename)."""
    from rtml_cli import __version__

    assert sink.record is not None
    dest = sink.record
    res = sink._results

    def cat(name: str, dtype: Any) -> np.ndarray:
        parts = [np.frombuffer(getattr(r, name), dtype=dtype) for r in res]
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    eid = cat("event_id", np.int64)
    order = np.argsort(eid, kind="stable")
    eid = eid[order]
    t_us = cat("t_us", np.int64)[order]
    lat = cat("latency_ns", np.int64)[order]
    status = cat("status", np.int32)[order]
    score = cat("score", np.float64)[order]
    errors: dict[int, str] = {}
    for r in res:
        errors.update(r.errors)
    raw = [sink._labels.get(int(e), (None, None)) for e in eid]
    y, task, positive = _to_y([v for v, _ in raw])
    t = pl.Series("t", t_us, dtype=pl.Int64).cast(pl.Datetime("us"))
    responses = pl.DataFrame(
        {
            "event_id": pl.Series(eid, dtype=pl.Int64),
            "t": t,
            "status": pl.Series(status, dtype=pl.Int32).replace(0, None),
            "latency_ns": pl.Series(lat, dtype=pl.Int64),
            "score": pl.Series(score, dtype=pl.Float64).fill_nan(None),
            "error": pl.Series([errors.get(int(e)) for e in eid], dtype=pl.String),
        }
    )
    ok = (status >= 200) & (status < 300)
    label_time = pl.Series("label_time", [lt for _, lt in raw], dtype=pl.Int64).cast(
        pl.Datetime("us")
    )
    score_s = pl.Series("score", score, dtype=pl.Float64).fill_nan(None)
    pred = (score_s >= 0.5).cast(pl.Float64) if task == "binary" else score_s
    null_dt = pl.Series([None] * len(eid), dtype=pl.Datetime("us"))
    predictions = pl.DataFrame(
        {
            "event_id": pl.Series(eid, dtype=pl.Int64),
            "strategy": pl.Series([STRATEGY] * len(eid), dtype=pl.String),
            "t": t,
            "label_time": label_time,
            "y": pl.Series(y, dtype=pl.Float64),
            "score": score_s,
            "pred": pred,
            "model_version": pl.Series([0] * len(eid), dtype=pl.Int32),
            "model_time": null_dt,
            "features_time": t,
            "staleness_us": pl.Series([0] * len(eid), dtype=pl.Int64),
            "feature_age_us": pl.Series([0] * len(eid), dtype=pl.Int64),
            "model_age_us": pl.Series([None] * len(eid), dtype=pl.Int64),
            "cold_start": pl.Series([False] * len(eid), dtype=pl.Boolean),
        }
    ).filter(pl.Series(ok) & pl.col("score").is_not_null())
    timings = pl.DataFrame(
        {
            "strategy": pl.Series([STRATEGY] * len(eid), dtype=pl.String),
            "kind": pl.Series(["predict"] * len(eid), dtype=pl.String),
            "wall_ns": pl.Series(lat, dtype=pl.Int64),
            "cpu_ns": pl.Series([None] * len(eid), dtype=pl.Int64),
            "rows": pl.Series([1] * len(eid), dtype=pl.Int64),
            "t": t,
        }
    )
    warnings_: list[str] = []
    if sink.label_col is None:
        warnings_.append("no label column known: pass the label column so y can be joined")
    if sink.score_field is None:
        warnings_.append("no --score-field: scores are taken only from bare-number responses")
    if sink.interrupted:
        warnings_.append(
            f"the replay was interrupted (Ctrl-C): this run covers only the first {len(eid):,} "
            "answered events, not the whole table"
        )
    metrics: dict[str, Any] | None = None
    try:
        from rtml_cli.metrics import compute_metrics

        metrics = compute_metrics(
            predictions, timings, task=task, strategies=[STRATEGY], baseline=STRATEGY
        )
    except RtmlError as exc:
        # Still keep what was measured (latencies, responses); `rtml report` will say why
        # it cannot score this run.
        warnings_.append(f"metrics not computed: {exc}")
    from rtml_cli.runs import versions

    manifest = {
        "rtml_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "table": {"source": sink.source, "rows": None, "fingerprint": None},
        "roles": {"label": sink.label_col},
        "inferred": [],
        "task": task,
        "positive_class": positive,
        "config": {},
        "strategies": [{"name": STRATEGY, "kind": "deployed", "endpoint": sink.target}],
        "baseline": STRATEGY,
        "model": {"spec": sink.target, "repr": f"HTTP endpoint {sink.target}"},
        "warmup_end": None,
        "scored_events": predictions.height,
        "versions": versions(),
        "timings": {"replay": round(time.time() - sink._started, 3)},
        "warnings": warnings_,
        "interrupted": bool(sink.interrupted),
        "options": {
            "concurrency": sink.concurrency,
            "batch_size": sink.batch_size,
            "timeout_s": sink.timeout_s,
            "max_response_bytes": sink.max_response_bytes,
            "score_field": sink.score_field,
        },
        "http": {
            "requests": sink._requests,
            "retries": sink.retried,
            "events": int(len(eid)),
            "errors": dict(sorted(sink._errors_by_status.items())),
        },
        # runs.read_run (used by `rtml report`) only accepts a run marked complete
        "format": 1,
        "complete": True,
    }
    from rtml_cli.runs import write_run as write_run_dir

    try:
        write_run_dir(
            dest,
            manifest=manifest,
            predictions=predictions,
            timings=timings,
            metrics=metrics if metrics is not None else {},
        )
        # Extra file, beside the four of the run format: every response, errors included.
        # Written after the atomic rename, itself atomically (temp file + replace).
        tmp = dest / ".responses.parquet.tmp"
        responses.write_parquet(tmp)
        os.replace(tmp, dest / "responses.parquet")
    except OSError as exc:
        raise SinkError(
            f"cannot write --record run directory {dest}: {exc.strerror or exc}. "
            "Pass a writable path that does not exist yet."
        ) from None
    return dest
