"""The run directory of a deployed endpoint's answers (``rtml replay --to URL --record DIR``).

:func:`record_deployed_run` turns what a replay against a deployed model measured, event by
event (:class:`EndpointAnswers`), into the run format ``rtml report`` reads
(docs/ARCHITECTURE.md schemas), written atomically by :func:`rtml_cli.runs.write_run_dir`:

- ``predictions.parquet``: strategy ``"deployed"``, one row per event answered with a usable
  score, ``y`` joined from the label messages;
- ``timings.parquet``: one ``predict`` row per event, its latency from the schedule;
- ``manifest.json`` and ``metrics.json``;
- then ``responses.parquet``, an extra file the report does not need: every event's status,
  latency, error and score.

The task (binary or regression) and the encoding of ``y`` come from
:func:`rtml_cli.models.infer_task`, the same inference ``rtml compare`` makes; labels it cannot
score (none at all, one class) leave the run without metrics, with a warning saying why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.errors import RtmlError, SinkError
from rtml_cli.run_tables import PREDICTIONS_SCHEMA, TIMINGS_SCHEMA, conform

STRATEGY = "deployed"


@dataclass
class EndpointAnswers:
    """What a replay against an endpoint measured, one entry per answered event (any order).

    Attributes
    ----------
    event_id, t_us : the event's id and time (µs since the epoch).
    latency_ns : from the event's scheduled send time to the end of its answer.
    status : the HTTP status, 0 when no response came (a timeout, a broken answer).
    score : the score picked from the answer, NaN when it had none.
    errors : event id -> why its answer failed (``"503"``, ``"timeout"``, ...).
    labels : event id -> (label value, label time in µs) from the replayed label messages.
    """

    event_id: np.ndarray
    t_us: np.ndarray
    latency_ns: np.ndarray
    status: np.ndarray
    score: np.ndarray
    errors: Mapping[int, str] = field(default_factory=dict)
    labels: Mapping[int, tuple[Any, int | None]] = field(default_factory=dict)


@dataclass
class Recording:
    """Where the run goes and what the manifest says about the replay that made it.

    Attributes
    ----------
    dest : the new run directory.
    endpoint : the URL the events were sent to.
    source : the replayed table, or ``None``.
    label_col : the label column, ``None`` when unknown (``y`` is then null).
    score_field : dotted path of the score in an answer (``None``: a bare-number answer).
    interrupted : the replay was stopped (Ctrl-C) before the end of the table.
    started : wall-clock time (``time.time()``) the replay began.
    options : the replay's options, stored as given.
    transport : request counts (requests, retries, errors by kind), stored as given.
    """

    dest: Path
    endpoint: str
    source: str | None = None
    label_col: str | None = None
    score_field: str | None = None
    interrupted: bool = False
    started: float = field(default_factory=time.time)
    options: dict[str, Any] = field(default_factory=dict)
    transport: dict[str, Any] = field(default_factory=dict)


def _label_encoding(
    values: list[Any], label_col: str | None
) -> tuple[np.ndarray, str | None, Any, str | None]:
    """``(y, task, positive class, why not)`` of the answered events' labels.

    ``y`` is float64 with NaN where the label is missing; when the labels cannot be scored
    (:func:`~rtml_cli.models.infer_task` refuses them) ``task`` is ``None`` and ``why not``
    says why.
    """
    from rtml_cli.models import infer_task

    missing = np.full(len(values), np.nan)
    try:
        label = pl.Series("label", values)
    except (TypeError, pl.exceptions.PolarsError) as exc:
        return missing, None, None, f"the label values are of mixed types ({exc})"
    try:
        info = infer_task(label, name=label_col or "label", source="the replayed label messages")
    except RtmlError as exc:
        return missing, None, None, str(exc)
    if info.task == "multiclass":
        # an endpoint answers one score per event, not the class probabilities to score
        why = (
            f"the labels hold {len(info.classes or [])} classes; recorded answers are scored "
            "for a binary or a regression label only"
        )
        return missing, None, None, why
    return info.y, info.task, info.positive_class, None


def _sorted_answers(answers: EndpointAnswers) -> EndpointAnswers:
    order = np.argsort(answers.event_id, kind="stable")
    return EndpointAnswers(
        event_id=answers.event_id[order].astype(np.int64),
        t_us=answers.t_us[order].astype(np.int64),
        latency_ns=answers.latency_ns[order].astype(np.int64),
        status=answers.status[order].astype(np.int32),
        score=answers.score[order].astype(np.float64),
        errors=answers.errors,
        labels=answers.labels,
    )


def record_deployed_run(answers: EndpointAnswers, rec: Recording) -> Path:
    """Write the run directory of a replay against a deployed endpoint (temp dir + rename).

    Raises
    ------
    SinkError
        The directory cannot be written (the message names it and the fix).
    """
    from rtml_cli import __version__
    from rtml_cli.runs import versions, write_run_dir

    a = _sorted_answers(answers)
    eid, n = a.event_id, len(a.event_id)
    raw = [a.labels.get(int(e), (None, None)) for e in eid]
    y, task, positive, unscorable = _label_encoding([v for v, _ in raw], rec.label_col)
    t = pl.Series("t", a.t_us, dtype=pl.Int64).cast(pl.Datetime("us"))
    score = pl.Series("score", a.score, dtype=pl.Float64).fill_nan(None)
    responses = pl.DataFrame(
        {
            "event_id": pl.Series(eid, dtype=pl.Int64),
            "t": t,
            "status": pl.Series(a.status, dtype=pl.Int32).replace(0, None),
            "latency_ns": pl.Series(a.latency_ns, dtype=pl.Int64),
            "score": score,
            "error": pl.Series([a.errors.get(int(e)) for e in eid], dtype=pl.String),
        }
    )
    ok = (a.status >= 200) & (a.status < 300)
    predictions = conform(
        pl.DataFrame(
            {
                "event_id": eid,
                "strategy": [STRATEGY] * n,
                "t": t,
                "label_time": pl.Series([lt for _, lt in raw], dtype=pl.Int64),
                "y": pl.Series(y, dtype=pl.Float64).fill_nan(None),
                "score": score,
                "pred": (score >= 0.5).cast(pl.Float64) if task == "binary" else score,
                "model_version": np.zeros(n, dtype=np.int32),
                "model_time": pl.Series([None] * n, dtype=pl.Int64),
                "features_time": t,
                "staleness_us": np.zeros(n, dtype=np.int64),
                "feature_age_us": np.zeros(n, dtype=np.int64),
                "model_age_us": pl.Series([None] * n, dtype=pl.Int64),
                "cold_start": np.zeros(n, dtype=bool),
            }
        ),
        PREDICTIONS_SCHEMA,
    ).filter(pl.Series(ok) & pl.col("score").is_not_null())
    timings = conform(
        pl.DataFrame(
            {
                "strategy": [STRATEGY] * n,
                "kind": ["predict"] * n,
                "wall_ns": a.latency_ns,
                "cpu_ns": pl.Series([None] * n, dtype=pl.Int64),
                "rows": np.ones(n, dtype=np.int64),
                "t": t,
            }
        ),
        TIMINGS_SCHEMA,
    )
    warnings_: list[str] = []
    if rec.label_col is None:
        warnings_.append("no label column known: pass the label column so y can be joined")
    if rec.score_field is None:
        warnings_.append("no --score-field: scores are taken only from bare-number responses")
    if rec.interrupted:
        warnings_.append(
            f"the replay was interrupted (Ctrl-C): this run covers only the first {n:,} "
            "answered events, not the whole table"
        )
    metrics: dict[str, Any] | None = None
    if task is None:
        warnings_.append(f"metrics not computed: {unscorable}")
    else:
        try:
            from rtml_cli.metrics import compute_metrics

            metrics = compute_metrics(
                predictions, timings, task=task, strategies=[STRATEGY], baseline=STRATEGY
            )
        except RtmlError as exc:
            # Still keep what was measured (latencies, responses); `rtml report` will say why
            # it cannot score this run.
            warnings_.append(f"metrics not computed: {exc}")
    manifest = {
        "rtml_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "table": {"source": rec.source, "rows": None, "fingerprint": None},
        "roles": {"label": rec.label_col},
        "inferred": [],
        "task": task,
        "positive_class": positive,
        "config": {},
        "strategies": [{"name": STRATEGY, "kind": "deployed", "endpoint": rec.endpoint}],
        "baseline": STRATEGY,
        "model": {"spec": rec.endpoint, "repr": f"HTTP endpoint {rec.endpoint}"},
        "warmup_end": None,
        "scored_events": predictions.height,
        "versions": versions(),
        "timings": {"replay": round(time.time() - rec.started, 3)},
        "warnings": warnings_,
        "interrupted": bool(rec.interrupted),
        "options": rec.options,
        "http": {**rec.transport, "events": n},
    }
    dest = rec.dest
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
