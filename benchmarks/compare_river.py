"""Peer: River's progressive validation vs rtml online on elec2.

River: ``evaluate.progressive_val_score`` with ``preprocessing.StandardScaler() |
linear_model.LogisticRegression()`` (test-then-train per event, accuracy). rtml: ``online``
strategies with the ``sgd`` preset (frozen scaler from warm-up + SGDClassifier.partial_fit) at
update_every 1, 32 and 256, scored on the same events (after a 20 % warm-up; River is scored on
those same events too). Prints events/s and accuracy side by side.

    python benchmarks/compare_river.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl

from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config

ELEC2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "elec2.parquet"


def river_run(path: Path, s0: int) -> tuple[float, float, int]:
    from river import linear_model, metrics, preprocessing, stream  # bench extra

    df = pl.read_parquet(path)
    feats = [c for c in df.columns if c not in ("timestamp", "price_up")]
    X = df.select(feats).to_dicts()
    y = df["price_up"].to_list()
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    acc = metrics.Accuracy()
    t0 = time.perf_counter()
    # progressive validation by hand so accuracy covers only the events rtml scores
    for i, (x, yi) in enumerate(
        stream.iter_array(np.array([list(r.values()) for r in X]), np.array(y), feature_names=feats)
    ):
        p = model.predict_one(x)
        if i >= s0:
            acc.update(yi, p)
        model.learn_one(x, yi)
    wall = time.perf_counter() - t0
    return wall, acc.get(), len(y)


def river_progressive(path: Path) -> tuple[float, float]:
    from river import evaluate, linear_model, metrics, preprocessing, stream

    df = pl.read_parquet(path)
    feats = [c for c in df.columns if c not in ("timestamp", "price_up")]
    ds = stream.iter_array(
        df.select(feats).to_numpy(), df["price_up"].to_numpy(), feature_names=feats
    )
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    t0 = time.perf_counter()
    m = evaluate.progressive_val_score(ds, model, metrics.Accuracy())
    return time.perf_counter() - t0, m.get()


def main() -> None:
    cfg = build_config(
        {"model": {"preset": "sgd"}}, warmup="0.2", strategies="online:1,online:32,online:256"
    )
    prep = prepare(ELEC2, cfg)
    s0, n = prep.data.s0, len(prep.data.t)
    scored = n - s0
    wall_pv, acc_pv = river_progressive(ELEC2)
    wall_r, acc_r, _ = river_run(ELEC2, s0)
    print(f"elec2: {n:,} events, {scored:,} scored (after the 20 % warm-up)")
    print(f"{'engine':34s} {'events/s':>10s} {'accuracy':>9s}")
    print(f"{'river progressive_val_score (all)':34s} {n / wall_pv:10,.0f} {acc_pv:9.4f}")
    print(f"{'river test-then-train (scored)':34s} {n / wall_r:10,.0f} {acc_r:9.4f}")
    for r in run_strategies(prep, timing_sample=0):
        y = prep.data.y[s0:]
        ok = ~np.isnan(y)
        acc = float((r.pred[ok] == y[ok]).mean())
        print(f"{'rtml ' + r.name + ' (sgd preset)':34s} {scored / r.wall_s:10,.0f} {acc:9.4f}")


if __name__ == "__main__":
    main()
