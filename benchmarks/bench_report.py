"""Benchmark of the report side: metrics.json (block bootstrap) and the capacity queue.

Standalone script, not a test. Prints ratios against peers measured in the same run:

- ``compute_metrics`` (quality + 1000 paired block-bootstrap resamples of 5 metrics for every
  strategy pair + freshness + compute) against ONE scikit-learn ``roc_auc_score`` pass per
  strategy (the cost of a single point estimate), and against a naive bootstrap that resamples
  the events of the blocks and calls ``roc_auc_score`` per resample (timed on a few resamples,
  scaled to 1000);
- ``fifo_latency`` with 1 worker (closed-form Lindley, numpy) and 4 workers (heap) against a
  plain Python loop over a list of worker free-times.

Usage: ``python benchmarks/bench_report.py [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from rtml_cli.capacity import fifo_latency
from rtml_cli.metrics import compute_metrics


def _preds(n: int, strategies: list[str], rng: np.random.Generator) -> pl.DataFrame:
    t0 = dt.datetime(2024, 1, 1)
    t = pl.datetime_range(t0, t0 + dt.timedelta(days=30), interval="1s", eager=True)[:n]
    y = (rng.uniform(size=n) < 0.3).astype(float)
    frames = []
    for i, s in enumerate(strategies):
        p = np.clip(0.2 * (i + 1) * y + rng.uniform(size=n) * 0.7, 0, 1)
        frames.append(
            pl.DataFrame(
                {
                    "event_id": np.arange(n),
                    "strategy": [s] * n,
                    "t": t,
                    "y": y,
                    "score": p,
                    "pred": (p >= 0.5).astype(float),
                    "staleness_us": rng.integers(0, 86_400_000_000, n),
                    "feature_age_us": rng.integers(0, 86_400_000_000, n),
                    "model_age_us": rng.integers(0, 86_400_000_000, n),
                    "cold_start": np.zeros(n, dtype=bool),
                }
            )
        )
    return pl.concat(frames)


def _timings(n: int, strategies: list[str], rng: np.random.Generator) -> pl.DataFrame:
    k = n // 10
    return pl.DataFrame(
        {
            "strategy": np.repeat(strategies, k),
            "kind": ["predict"] * (k * len(strategies)),
            "wall_ns": rng.integers(100_000, 2_000_000, k * len(strategies)),
            "cpu_ns": rng.integers(100_000, 2_000_000, k * len(strategies)),
            "rows": np.ones(k * len(strategies), dtype=np.int64),
        }
    )


def bench_metrics(n: int) -> None:
    rng = np.random.default_rng(0)
    strategies = ["batch", "stream", "online"]
    preds = _preds(n, strategies, rng)
    timings = _timings(n, strategies, rng)
    t = time.perf_counter()
    m = compute_metrics(preds, timings, task="binary", strategies=strategies, baseline="batch")
    ours = time.perf_counter() - t

    t = time.perf_counter()
    for s in strategies:
        d = preds.filter(pl.col("strategy") == s)
        roc_auc_score(d["y"].to_numpy(), d["score"].to_numpy())
    one_pass = time.perf_counter() - t

    # naive paired bootstrap of AUC only, for one pair: resample blocks, gather their events
    base = preds.filter(pl.col("strategy") == "batch")
    other = preds.filter(pl.col("strategy") == "stream")
    width = m["bucket"]["us"]
    blk = (base["t"].dt.epoch("us").to_numpy() // width).astype(np.int64)
    blocks = np.unique(blk)
    idx_by_block = [np.flatnonzero(blk == b) for b in blocks]
    y, pa, pb = base["y"].to_numpy(), base["score"].to_numpy(), other["score"].to_numpy()
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        pick = rng.integers(0, blocks.size, blocks.size)
        idx = np.concatenate([idx_by_block[i] for i in pick])
        roc_auc_score(y[idx], pb[idx]) - roc_auc_score(y[idx], pa[idx])
    naive_1000 = (time.perf_counter() - t) / reps * m["bootstrap"]["resamples"]
    n_pairs = len(m["pairs"])

    print(
        f"compute_metrics: {len(strategies)} strategies x {n:,} events, "
        f"{m['bucket']['count']} blocks"
    )
    print(f"  compute_metrics total                    {ours:8.2f} s")
    print(
        f"  one roc_auc_score pass per strategy      {one_pass:8.2f} s   "
        f"ratio {ours / one_pass:6.1f}x"
    )
    print(
        f"  naive bootstrap, AUC only, 1 pair (est.) {naive_1000:8.2f} s   "
        f"ours does 5 metrics x {n_pairs} pairs in {ours / naive_1000:.3f}x its time"
    )


def bench_capacity(n: int) -> None:
    rng = np.random.default_rng(1)
    a = np.cumsum(rng.exponential(1.0, n))
    s = rng.exponential(0.9 * 4, n)  # 90 % load on 4 workers
    s1 = rng.exponential(0.9, n)  # 90 % load on 1 worker

    def naive(a, s, c):
        free = [0.0] * c
        out = []
        for ai, si in zip(a.tolist(), s.tolist(), strict=True):
            k = free.index(min(free))
            start = ai if ai > free[k] else free[k]
            free[k] = start + si
            out.append(free[k] - ai)
        return out

    res = {}
    for label, fn in (
        ("fifo_latency, 1 worker (Lindley, numpy)", lambda: fifo_latency(a, s1, workers=1)),
        ("naive loop, 1 worker", lambda: naive(a, s1, 1)),
        ("fifo_latency, 4 workers (heap)", lambda: fifo_latency(a, s, workers=4)),
        ("naive loop, 4 workers", lambda: naive(a, s, 4)),
    ):
        t = time.perf_counter()
        out = fn()
        res[label] = (time.perf_counter() - t, np.asarray(out))
    assert np.allclose(
        res["fifo_latency, 1 worker (Lindley, numpy)"][1], res["naive loop, 1 worker"][1]
    )
    assert np.allclose(res["fifo_latency, 4 workers (heap)"][1], res["naive loop, 4 workers"][1])
    print(f"capacity: FIFO queue, {n:,} arrivals (results equal to the naive loop)")
    for label, (sec, _) in res.items():
        print(f"  {label:42s} {sec:8.3f} s")
    r1 = res["naive loop, 1 worker"][0] / res["fifo_latency, 1 worker (Lindley, numpy)"][0]
    r4 = res["naive loop, 4 workers"][0] / res["fifo_latency, 4 workers (heap)"][0]
    print(f"  speed-up vs naive: 1 worker {r1:.0f}x, 4 workers {r4:.1f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="events per strategy")
    args = ap.parse_args()
    bench_metrics(args.rows)
    bench_capacity(args.rows)
