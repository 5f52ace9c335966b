"""Peak memory of `rtml replay --max-speed` to an NDJSON file: it must not grow with the
table's length. Each run is a fresh subprocess; its peak RSS comes from os.wait4 (ru_maxrss).

    python benchmarks/replay_memory.py [--small 1000000] [--large 5000000]

Prints the peak RSS for each size and the ratio large/small (goal: ~1.0; the streaming replay
keeps one record batch and the messages not yet due). For scale it also prints the peak RSS
of polars reading the large table whole (what an in-memory replay would need at least).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _tables import BENCH_DIR, event_table  # noqa: E402


def peak_rss_mb(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=1_000_000)
    ap.add_argument("--large", type=int, default=5_000_000)
    args = ap.parse_args()
    rtml = shutil.which("rtml") or sys.exit("install rtml first: pip install -e .")
    out = BENCH_DIR / "memory_out.ndjson"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    res = {}
    for rows in (args.small, args.large):
        table = event_table(rows, label=True)
        res[rows] = peak_rss_mb([rtml, "replay", str(table), "--max-speed", "--to", str(out)])
        print(f"replay {rows:>10,} rows (events + labels): peak RSS {res[rows]:7.1f} MB")
    whole = peak_rss_mb(
        [
            sys.executable,
            "-c",
            "import polars as pl, sys; pl.read_parquet(sys.argv[1])",
            str(event_table(args.large)),
        ]
    )
    print(f"ratio large/small: {res[args.large] / res[args.small]:.2f} (goal: ~1.0, no growth)")
    print(f"for scale: polars reading the {args.large:,}-row table whole: peak RSS {whole:.1f} MB")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
