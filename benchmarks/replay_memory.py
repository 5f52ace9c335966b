"""Peak memory of `rtml replay --max-speed` to an NDJSON file: it must not grow with the
table's length. Each run is a fresh subprocess; its peak RSS comes from os.wait4 (ru_maxrss).

    python benchmarks/replay_memory.py [--sizes 1000000,5000000,10000000]

Prints the peak RSS for each size and the ratio largest/smallest (goal: ~1.0; the streaming
replay keeps a few record batches and the messages not yet due). For scale it also prints the
peak RSS of polars reading the largest table whole (what an in-memory replay needs at least).
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

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb(cmd: list[str]) -> float:
    # `rtml` runs this checkout's code, whatever editable install is active
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000", help="comma-separated row counts")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rtml = shutil.which("rtml") or sys.exit("install rtml first: pip install -e .")
    out = BENCH_DIR / "memory_out.ndjson"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    res = {}
    for rows in sizes:
        table = event_table(rows, label=True)
        out.unlink(missing_ok=True)  # replay refuses to replace a file without --force
        res[rows] = peak_rss_mb([rtml, "replay", str(table), "--max-speed", "--to", str(out)])
        print(f"replay {rows:>10,} rows (events + labels): peak RSS {res[rows]:7.1f} MB")
    read_all = "import polars as pl, sys; pl.read_parquet(sys.argv[1])"
    whole = peak_rss_mb([sys.executable, "-c", read_all, str(event_table(sizes[-1]))])
    ratio = res[sizes[-1]] / res[sizes[0]]
    print(f"ratio {sizes[-1]:,} / {sizes[0]:,} rows: {ratio:.2f} (goal: ~1.0, no growth)")
    print(f"for scale: polars reading the {sizes[-1]:,}-row table whole: peak RSS {whole:.1f} MB")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
