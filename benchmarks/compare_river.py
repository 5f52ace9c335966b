"""Peer: River's own progressive validation vs rtml ``online`` with the same River learner, on elec2.

Both sides run the same model on the same events with the same label delay (30 min, one elec2
period, so a label is known to the next event in both loops):

* River: ``evaluate.progressive_val_score`` over the table's rows as dicts (``moment`` = the
  timestamp, dropped before the model by ``compose.Discard``; ``delay`` = 30 min);
* rtml: ``compare``'s ``online:1`` strategy (``run_strategies``, no latency sample) with
  ``--model river-logreg`` (StandardScaler | LogisticRegression) and with the import path
  ``river.linear_model:LogisticRegression``: warm-up rows learned one by one, then
  ``learn_one`` per arrived label and ``predict_proba_one`` per event.

Events/s is the table's events over the wall time of the loop (River predicts and learns every
event; rtml learns every label and predicts the scored events, the warm-up being learned without
predictions). Each side runs ``--repeat`` times, alternating, and the best run counts (the machine
is shared). The ratio rtml / River is the figure to watch (target ≥ 0.8). With ``--profile``, the
rtml loop is profiled once and the top functions printed: where rtml's time goes.

    python benchmarks/compare_river.py [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config

ELEC2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "elec2.parquet"
FEATURES = ["date", "day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
DELAY = dt.timedelta(minutes=30)


def river_model(kind: str) -> Any:
    from river import compose, linear_model, preprocessing  # the river extra

    final = linear_model.LogisticRegression()
    if kind == "river-logreg":
        final = preprocessing.StandardScaler() | final
    return compose.Discard("timestamp") | final


def river_pvs(df: pl.DataFrame, kind: str) -> tuple[float, float]:
    """(wall seconds, accuracy) of River's progressive_val_score over every event."""
    from river import evaluate, metrics

    rows = df.select(FEATURES + ["timestamp"]).to_dicts()
    ys = df["price_up"].to_list()
    model = river_model(kind)
    t0 = time.perf_counter()
    m = evaluate.progressive_val_score(
        zip(rows, ys, strict=True), model, metrics.Accuracy(), moment="timestamp", delay=DELAY
    )
    return time.perf_counter() - t0, m.get()


def rtml_prep(model: dict[str, Any]) -> Any:
    cfg = build_config(
        {
            "model": model,
            "data": {"time": "timestamp", "label": "price_up", "features": FEATURES},
        },
        warmup="0.2",
        label_delay="30m",
        strategies="online:1",
    )
    return prepare(ELEC2, cfg)


def rtml_online(prep: Any) -> tuple[float, float]:
    """(wall seconds, accuracy on the scored events) of rtml's online:1 strategy."""
    (r,) = run_strategies(prep, timing_sample=0)
    y = prep.data.y[prep.data.s0 :]
    ok = ~np.isnan(y)
    return r.wall_s, float((r.pred[ok] == y[ok]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    df = pl.read_parquet(ELEC2)
    n = df.height
    models = {
        "river-logreg": {"preset": "river-logreg"},
        "river LogisticRegression": {"estimator": "river.linear_model:LogisticRegression"},
    }
    print(f"elec2: {n:,} events, label delay {DELAY}, best of {args.repeat} alternating runs")
    print(
        f"{'model':26s} {'River pvs ev/s':>15s} {'rtml online ev/s':>17s} {'ratio':>6s}"
        f" {'acc River':>9s} {'acc rtml':>9s}"
    )
    for name, spec in models.items():
        kind = "river-logreg" if "preset" in spec else "plain"
        prep = rtml_prep(spec)
        best_r, best_o = float("inf"), float("inf")
        acc_r = acc_o = float("nan")
        for _ in range(args.repeat):
            w, acc_r = river_pvs(df, kind)
            best_r = min(best_r, w)
            w, acc_o = rtml_online(prep)
            best_o = min(best_o, w)
        print(
            f"{name:26s} {n / best_r:15,.0f} {n / best_o:17,.0f} {best_r / best_o:6.2f}"
            f" {acc_r:9.4f} {acc_o:9.4f}"
        )
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(rtml_online, prep)
            pstats.Stats(prof).sort_stats("tottime").print_stats(14)
    print("accuracy: River over every event, rtml over the events after its 20 % warm-up")


if __name__ == "__main__":
    main()
