"""Throughput of `rtml replay --max-speed` to an NDJSON file, against polars writing the same
rows to NDJSON directly (the bound), measured in the same run.

Both sides run as fresh subprocesses (same interpreter start-up cost) and read the same
Parquet table from /tmp; repetitions are interleaved and the median is reported, because the
machine is shared. Two tables: events only (one message per row, the like-for-like ratio) and
with a label column (one event and one label message per row, twice the lines).

    python benchmarks/replay_throughput.py [--rows 5000000] [--repeat 3] [--baseline DIR]

`rtml` runs this checkout's code (its root first on PYTHONPATH, whatever editable install is
active). `--baseline DIR` adds an earlier version as a third contender in the same run (DIR holds
its `rtml_cli/`, e.g. `git archive <rev> rtml_cli | tar -x -C DIR`): before/after under the
same load, since the shared machine's load swings absolute times by 2x.

Goals: rows/s of replay >= 0.5 x rows/s of the bound; with labels, bytes/s of replay (its
NDJSON file: event and label lines) >= 0.8 x bytes/s of the bound (polars' NDJSON of the table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _tables import BENCH_DIR, event_table  # noqa: E402

BOUND = "import polars as pl, sys; pl.read_parquet(sys.argv[1]).write_ndjson(sys.argv[2])"
# Second peer: polars writing the *messages* (same fields as rtml's: kind, id, ISO times),
# events and labels as two files, unordered. What polars' own writer needs for the same bytes.
MESSAGES = """
import polars as pl, sys
iso = "%Y-%m-%dT%H:%M:%S%.f"
df = pl.read_parquet(sys.argv[1]).with_row_index("rtml_event_id")
t = pl.col("ts").dt.to_string(iso)
payload = [c for c in df.columns if c not in ("rtml_event_id", "ts", "click")]
df.select(pl.lit("event").alias("rtml_kind"), "rtml_event_id", t.alias("rtml_time"),
          t.alias("ts"), *payload).write_ndjson(sys.argv[2])
if "click" in df.columns:
    df.select(pl.lit("label").alias("rtml_kind"), "rtml_event_id", "click",
              t.alias("rtml_time")).write_ndjson(sys.argv[2] + ".labels")
"""


REPO = Path(__file__).resolve().parent.parent


def _timed(cmd: list[str], code: Path | None = None, cpu: list[float] | None = None) -> float:
    """Wall seconds of ``cmd``; its CPU seconds (user + sys) are appended to ``cpu``."""
    env = None
    if code is not None:
        path = [str(code), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    # The previous contender's output (written, then deleted) is still being flushed and
    # discarded by the kernel: let that finish outside this one's time.
    os.sync()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="folder holding an earlier rtml_cli/")
    args = ap.parse_args()
    rtml = shutil.which("rtml") or sys.exit("install rtml first: pip install -e .")
    out = BENCH_DIR / "throughput_out.ndjson"
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"rows: {args.rows:,}; repeats: {args.repeat} (median)"
    )
    for label in (False, True):
        table = event_table(args.rows, label=label)
        bound, msgs, rep, base = [], [], [], []
        bound_bytes = rep_bytes = 0
        bound_cpu: list[float] = []
        rep_cpu: list[float] = []
        cmd = [rtml, "replay", str(table), "--max-speed", "--to", str(out)]
        for _ in range(args.repeat):
            bound.append(_timed([sys.executable, "-c", BOUND, str(table), str(out)], cpu=bound_cpu))
            bound_bytes = out.stat().st_size
            msgs.append(_timed([sys.executable, "-c", MESSAGES, str(table), str(out)]))
            if args.baseline is not None:
                out.unlink(missing_ok=True)  # replay refuses to replace a file without --force
                base.append(_timed(cmd, args.baseline))
            out.unlink(missing_ok=True)
            rep.append(_timed(cmd, REPO, cpu=rep_cpu))
            rep_bytes = out.stat().st_size
        lines = sum(1 for _ in open(out, "rb"))
        b, m, r = statistics.median(bound), statistics.median(msgs), statistics.median(rep)
        kind = "events + labels" if label else "events only"
        print(
            f"{kind:16s} bound {b:6.2f}s ({args.rows / b / 1e6:5.2f}M rows/s)   "
            f"replay {r:6.2f}s ({args.rows / r / 1e6:5.2f}M rows/s, "
            f"{lines / r / 1e6:5.2f}M messages/s)   "
            f"ratio {b / r:.2f} (goal >= 0.5)"
        )
        bb, rb = bound_bytes / b, rep_bytes / r
        print(
            f"{'':16s} bytes/s: bound {bb / 1e6:6.1f} MB/s ({bound_bytes / 1e6:.0f} MB), "
            f"replay {rb / 1e6:6.1f} MB/s ({rep_bytes / 1e6:.0f} MB), "
            f"ratio {rb / bb:.2f} (goal >= 0.8 with labels)"
        )
        print(
            f"{'':16s} peer: polars writing the same messages unordered {m:6.2f}s; "
            f"replay / that peer: {m / r:.2f}"
        )
        bc, rc = statistics.median(bound_cpu), statistics.median(rep_cpu)
        print(
            f"{'':16s} CPU seconds (user+sys): bound {bc:.2f}, replay {rc:.2f}, "
            f"ratio {bc / rc:.2f} (the wall ratio a saturated machine would give)"
        )
        if base:
            p = statistics.median(base)
            print(
                f"{'':16s} baseline ({args.baseline}) {p:6.2f}s, ratio {b / p:.2f} rows/s, "
                f"{rep_bytes / p / bb:.2f} bytes/s; "
                f"speed-up of this checkout: {p / r:.2f}x"
            )
    out.unlink(missing_ok=True)
    Path(str(out) + ".labels").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
