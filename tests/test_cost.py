"""metrics.json's cost section: measured CPU per retrain, job, request and update, and what a real
keyed batch job would score against what the events used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtml_cli.cli import app
from rtml_cli.cost import batch_job_counts
from tests.test_parallel import delayed_table


def brute_force(t: list[int], keys: list[int | None], s0: int, R: int, L: int) -> tuple[int, ...]:
    """The definition, read literally: every cutoff, every entity, every event."""
    c_first, c_last = (t[s0] // R) * R, (t[-1] // R) * R
    made = 0
    for c in range(c_first, c_last + 1, R):
        made += len({k for k, ti in zip(keys, t, strict=True) if k is not None and c - L <= ti < c})
    pairs = {(keys[i], (t[i] // R) * R) for i in range(s0, len(t)) if keys[i] is not None}
    in_job = sum(
        1
        for e, c in pairs
        if any(k == e and c - L <= ti < c for k, ti in zip(keys, t, strict=True))
    )
    return made, len(pairs), in_job


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 120), st.one_of(st.none(), st.integers(0, 4))),
        min_size=1,
        max_size=40,
    ),
    s0_frac=st.floats(0, 0.99),
    R=st.integers(1, 12),
    L=st.integers(1, 40),
)
@example(data=[(0, 1), (5, 1), (10, 1)], s0_frac=0.5, R=5, L=5)  # events exactly on cutoffs
@example(data=[(3, None), (4, None)], s0_frac=0.0, R=2, L=3)  # no key at all
def test_batch_job_counts_match_the_definition(
    data: list[tuple[int, int | None]], s0_frac: float, R: int, L: int
) -> None:
    data = sorted(data, key=lambda x: x[0])
    t = [d[0] for d in data]
    keys = [d[1] for d in data]
    s0 = int(s0_frac * len(t))
    got = batch_job_counts(
        np.array(t, dtype=np.int64),
        pl.Series(keys, dtype=pl.Int64),
        s0=s0,
        every_us=R,
        lookback_us=L,
    )
    made, served, in_job = brute_force(t, keys, s0, R, L)
    assert got["predictions_made"] == made
    assert got["entity_cutoffs_served"] == served
    assert got["entity_cutoffs_served_from_job"] == in_job
    assert got["events_served"] == len(t) - s0


def compare(runner: Any, tmp_path: Path, *args: str) -> dict[str, Any]:
    table = delayed_table(tmp_path, n=500)
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--time-col",
            "ts",
            "--label-col",
            "label",
            "--label-time-col",
            "label_ts",
            "--warmup",
            "3d",
            "--timing-sample",
            "60",
            "-s",
            "batch:1d,stream:12h,online:4",
            "-o",
            str(out),
            *args,
        ],
    )
    assert res.exit_code == 0, res.output
    return {
        "metrics": json.loads((out / "metrics.json").read_text()),
        "manifest": json.loads((out / "manifest.json").read_text()),
        "tim": pl.read_parquet(out / "timings.parquet"),
    }


def test_cost_section_is_the_measured_calls(tmp_path: Path, runner: Any) -> None:
    run = compare(runner, tmp_path, "--key-col", "user", "--batch-lookback", "2d")
    cost = run["metrics"]["cost"]
    tim = run["tim"]
    assert list(cost) == ["batch", "stream", "online"]
    for s in run["manifest"]["strategies"]:
        c = cost[s["name"]]
        assert c["retrain"]["count"] == s["fits"]
        assert c["update"]["count"] == s["updates"]
        fits = tim.filter((pl.col("strategy") == s["name"]) & (pl.col("kind") == "retrain"))
        assert c["retrain"]["cpu_s"] == fits["cpu_ns"].sum() / 1e9
        assert c["days"] > 0
    batch, stream, online = cost["batch"], cost["stream"], cost["online"]
    # batch serves its scoring jobs' scores: jobs, no per-request call
    assert batch["score_job"]["count"] > 0 and batch["predict"]["requests"] == 0
    assert batch["predict"]["cpu_us_per_request"] is None
    assert stream["predict"]["timed_calls"] > 0 and stream["predict"]["cpu_us_per_request"] > 0
    assert online["update"]["count"] > 0 and online["update"]["cpu_us_per_update"] > 0
    job = batch["batch_job"]
    assert job["lookback"] == "2d"
    assert job["predictions_made"] >= job["entity_cutoffs_served_from_job"] > 0
    assert job["entity_cutoffs_served"] >= job["entity_cutoffs_served_from_job"]
    assert job["used_share"] == job["entity_cutoffs_served_from_job"] / job["predictions_made"]
    assert stream["batch_job"] is None


def test_unkeyed_batch_has_no_batch_job(tmp_path: Path, runner: Any) -> None:
    cost = compare(runner, tmp_path)["metrics"]["cost"]
    assert cost["batch"]["batch_job"] is None
    assert cost["batch"]["retrain"]["count"] > 0


def test_a_bad_lookback_is_a_usage_error(tmp_path: Path, runner: Any) -> None:
    table = delayed_table(tmp_path, n=300)
    res = runner.invoke(
        app, ["compare", str(table), "--batch-lookback", "soon", "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 2
    assert "--batch-lookback" in res.output
    assert not (tmp_path / "r").exists()
