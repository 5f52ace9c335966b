"""Harness overhead of `rtml compare`: online, update_every=1, SGDClassifier on elec2.

rtml's online simulation (span bookkeeping, timing every partial_fit, sampled single-row
latency, output arrays) against a bare loop — ``predict_proba`` one row, then ``partial_fit``
one row — on the same arrays, from the same warm-up model, under the same sklearn config.
Runs alternate (best of ``--repeat``) so background load hits both. Goal: ratio ≤ 1.10.

    python benchmarks/compare_overhead.py [--repeat 3] [--timing-sample 2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import clone

from rtml_cli.compare import prepare
from rtml_cli.config import build_config
from rtml_cli.strategies import _train_rows, simulate, uniform_sample

ELEC2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "elec2.parquet"


def bare_loop(model, X, y, s0: int) -> np.ndarray:
    out = np.empty(len(X) - s0)
    pp, pf = model.predict_proba, model.partial_fit
    for i in range(s0, len(X)):
        out[i - s0] = pp(X[i : i + 1])[0, 1]
        pf(X[i : i + 1], y[i : i + 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timing-sample", type=int, default=2000)
    ap.add_argument("--table", default=str(ELEC2))
    a = ap.parse_args()
    cfg = build_config(
        {
            "model": {
                "estimator": "sklearn.linear_model:SGDClassifier",
                "params": {"loss": "log_loss", "random_state": 0},
            }
        },
        warmup="0.2",
        strategies="online:1",
    )
    prep = prepare(a.table, cfg)
    spec = cfg.strategies[0]
    view, d = prep.view_for(spec), prep.data
    s0, n = d.s0, len(d.t)
    sample = uniform_sample(n - s0, a.timing_sample, 0)
    rows = _train_rows(d, d.W, None)
    warm = prep.builder.make().fit(view.X[rows], d.y[rows])
    best_rtml = best_bare = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        res = simulate(spec, d, view, prep.builder, sample=sample)
        best_rtml = min(best_rtml, time.perf_counter() - t0)
        m = clone(warm).fit(view.X[rows], d.y[rows])
        t0 = time.perf_counter()
        with sklearn.config_context(skip_parameter_validation=True, assume_finite=view.finite):
            bare = bare_loop(m, view.X, d.y, s0)
        best_bare = min(best_bare, time.perf_counter() - t0)
    # rtml predicts events that share a timestamp before any of their labels arrive (docs/semantics.md,
    # tie rule); the bare loop interleaves, so the two agree exactly up to the first tie only.
    diff = np.flatnonzero(~np.isclose(res.score, bare, rtol=1e-9, atol=1e-12))
    first_tie = (
        s0 + int(np.flatnonzero(np.diff(d.t[s0:]) == 0)[0]) if (np.diff(d.t[s0:]) == 0).any() else n
    )
    same = (
        f"identical before the first tied timestamp: {len(diff) == 0 or s0 + diff[0] >= first_tie}"
    )
    ev = n - s0
    print(
        f"elec2 online update_every=1, SGDClassifier(log_loss): {ev} scored events, {ev} partial_fit calls"
    )
    print(f"bare loop : {best_bare:7.2f} s  {ev / best_bare:9,.0f} events/s")
    print(
        f"rtml      : {best_rtml:7.2f} s  {ev / best_rtml:9,.0f} events/s  (timing sample {a.timing_sample}, every partial_fit timed)"
    )
    print(
        f"ratio rtml/bare: {best_rtml / best_bare:.3f}  (goal <= 1.10)   same predictions: {same}"
    )


if __name__ == "__main__":
    main()
