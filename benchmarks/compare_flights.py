"""nycflights13 (all 336,776 rows): batch daily vs stream vs online(update_every=256), preset sgd.

Leak columns (dep_time, dep_delay, arr_time, arr_delay, air_time) are ignored; label
``dep_delayed_15`` (null = cancelled: scored by no metric, trains no model). Prints wall time and
events/s per strategy, and the preparation (read + views) time.

    python benchmarks/compare_flights.py [--rows N] [--jobs 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config

FLIGHTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nycflights13.parquet"
LEAKS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--table", default=str(FLIGHTS))
    a = ap.parse_args()
    t0 = time.perf_counter()
    cfg = build_config(
        {
            "data": {
                "time": "timestamp",
                "label": "dep_delayed_15",
                "key": "tailnum",
                "ignore": [*LEAKS, "time_hour", "year"],
                "warmup": "14d",
            },
            "model": {"preset": "sgd"},
        },
        strategies="batch:1d,stream:1d,online:256",
    )
    prep = prepare(a.table, cfg)
    t_prep = time.perf_counter() - t0
    scored = len(prep.data.t) - prep.data.s0
    print(f"nycflights13: {len(prep.data.t):,} rows, {scored:,} scored, features {prep.features}")
    print(f"prepare (read, roles, views incl. the as-of join by tailnum): {t_prep:.2f} s")
    t1 = time.perf_counter()
    results = run_strategies(prep, jobs=a.jobs, timing_sample=2000)
    total = time.perf_counter() - t1
    for r in results:
        fits = sum(1 for f in r.fits if f[0] == "retrain")
        ups = sum(1 for f in r.fits if f[0] == "update")
        print(
            f"{r.name:8s} wall {r.wall_s:8.2f} s  {scored / r.wall_s:10,.0f} events/s  fits {fits:4d}  updates {ups:5d}"
        )
    print(f"all strategies (jobs={a.jobs}): {total:.2f} s")


if __name__ == "__main__":
    main()
