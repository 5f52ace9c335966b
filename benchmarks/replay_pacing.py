"""Pacing accuracy of `rtml replay --rate 5000` for 10 s to an NDJSON file: lateness (actual
send - scheduled send) p50/p99/max, as rtml's own summary reports it.

The peer, measured in the same run: a bare loop on the same clock that sleeps until each
message's scheduled time (the same 5000/s schedule) and does nothing else — the floor that
the OS timer and Python give on this machine. Ratio = rtml p99 / bare-loop p99.

    python benchmarks/replay_pacing.py [--rate 5000] [--seconds 10]

Goal: p99 lateness <= 2 ms on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# this checkout's rtml_cli, whatever editable install is active
sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parent.parent)]
from _tables import BENCH_DIR, event_table  # noqa: E402

from rtml_cli.io import Roles  # noqa: E402
from rtml_cli.replay import ReplayOptions, replay  # noqa: E402
from rtml_cli.replay_schedule import LatencyHistogram, Schedule  # noqa: E402


def bare_loop(rate: float, n: int) -> LatencyHistogram:
    sched = Schedule(rate=rate)
    start = time.perf_counter_ns()
    due = start + sched.offsets_ns(np.zeros(n, dtype=np.int64))
    late = np.empty(n, dtype=np.int64)
    for k in range(n):
        now = time.perf_counter_ns()
        if due[k] > now:
            time.sleep((due[k] - now) / 1e9)
            now = time.perf_counter_ns()
        late[k] = now - due[k]
    h = LatencyHistogram()
    h.record(late)
    return h


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    n = int(args.rate * args.seconds)
    table = event_table(1_000_000, label=False)
    out = BENCH_DIR / "pacing_out.ndjson"
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"{n:,} messages at {args.rate:g}/s"
    )
    floor = bare_loop(args.rate, n)
    s = replay(table, Roles(), ReplayOptions(rate=args.rate, limit=n), to=str(out), force=True)
    lat = s.lateness
    assert lat is not None
    print(
        f"bare sleep loop : p50 {ms(floor.percentile(50))}  p99 {ms(floor.percentile(99))}  "
        f"max {ms(floor.max_ns)}"
    )
    print(
        f"rtml replay     : p50 {ms(lat.percentile(50))}  p99 {ms(lat.percentile(99))}  "
        f"max {ms(lat.max_ns)}"
        f"  ({s.messages:,} messages in {s.wall_s:.2f}s, achieved {s.rate:,.0f}/s)"
    )
    print(
        f"p99 ratio rtml/bare loop: {lat.percentile(99) / max(floor.percentile(99), 1):.2f}; "
        f"p99 goal <= 2ms: {'met' if lat.percentile(99) <= 2e6 else 'NOT met'}"
    )
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
