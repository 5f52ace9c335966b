"""The run directory of a deployed endpoint's answers (rtml_cli.run_record), without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rtml_cli.models import infer_task
from rtml_cli.run_record import EndpointAnswers, Recording, record_deployed_run
from rtml_cli.run_tables import PREDICTIONS_SCHEMA, TIMINGS_SCHEMA
from rtml_cli.runs import read_run_dir

T0_US = 1_700_000_000_000_000


def _answers(labels: list[Any]) -> EndpointAnswers:
    n = len(labels)
    ids = np.arange(n, dtype=np.int64)[::-1].copy()  # in any order, as the workers leave them
    scores = np.linspace(0.05, 0.95, n)
    return EndpointAnswers(
        event_id=ids,
        t_us=T0_US + ids * 1_000_000,
        latency_ns=np.full(n, 2_000_000, dtype=np.int64),
        status=np.full(n, 200, dtype=np.int32),
        score=scores,
        errors={},
        labels={int(e): (labels[int(e)], int(T0_US + e * 1_000_000 + 500)) for e in ids},
    )


def _record(tmp_path: Path, answers: EndpointAnswers, label_col: str | None = "y") -> Path:
    rec = Recording(
        dest=tmp_path / "run",
        endpoint="http://127.0.0.1:1/p",
        label_col=label_col,
        score_field="score",
        transport={"requests": 1, "retries": 0, "errors": {}},
    )
    return record_deployed_run(answers, rec)


@pytest.mark.parametrize(
    "labels",
    [
        [i % 2 == 0 for i in range(20)],
        [i % 2 for i in range(20)],
        [0.0, 1.0] * 10,
        ["no", "yes"] * 10,
        [0.25, 0.75] * 10,  # two float values: binary, as compare infers it
        [i / 7 for i in range(20)],
    ],
)
def test_the_task_is_the_one_compare_infers(tmp_path, labels):
    run = _record(tmp_path, _answers(labels))
    manifest = json.loads((run / "manifest.json").read_text())
    want = infer_task(pl.Series(labels), name="y", source="t")
    assert manifest["task"] == want.task
    assert manifest["positive_class"] == want.positive_class
    pred = pl.read_parquet(run / "predictions.parquet")
    by_id = dict(zip(pred["event_id"], pred["y"], strict=True))
    assert [by_id[i] for i in range(len(labels))] == want.y.tolist()
    if want.task == "binary":
        assert pred["pred"].to_list() == (pred["score"] >= 0.5).cast(pl.Float64).to_list()
    else:
        assert pred["pred"].to_list() == pred["score"].to_list()
    assert read_run_dir(run).metrics["strategies"] == ["deployed"]


def test_tables_have_the_run_schema_and_only_answered_events_are_predictions(tmp_path):
    labels = [i % 2 for i in range(10)]
    answers = _answers(labels)
    answers.status[answers.event_id == 3] = 503
    answers.status[answers.event_id == 6] = 0  # no response (a timeout)
    answers.score[answers.event_id == 8] = np.nan  # a 2xx answer without a score
    run = _record(tmp_path, answers)
    pred = pl.read_parquet(run / "predictions.parquet")
    tim = pl.read_parquet(run / "timings.parquet")
    assert pred.schema == PREDICTIONS_SCHEMA and tim.schema == TIMINGS_SCHEMA
    assert pred["event_id"].to_list() == [0, 1, 2, 4, 5, 7, 9]  # sorted, answered, scored
    assert tim.height == 10 and set(tim["kind"]) == {"predict"}
    resp = pl.read_parquet(run / "responses.parquet")
    assert resp["status"].to_list() == [200, 200, 200, 503, 200, 200, None, 200, 200, 200]


def test_labels_that_cannot_be_scored_leave_a_run_without_metrics_saying_why(tmp_path):
    run = _record(tmp_path, _answers([None] * 8), label_col=None)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task"] is None
    assert json.loads((run / "metrics.json").read_text()) == {}
    assert any(
        w.startswith("metrics not computed") and "no non-null value" in w
        for w in manifest["warnings"]
    )
    assert pl.read_parquet(run / "timings.parquet").height == 8  # what was measured is kept
