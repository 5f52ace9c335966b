"""`rtml sweep` wall time: the same 8-cell sweep serially, with --jobs 2, and on a 2-worker Dask
LocalCluster (processes), and the check that all three give the same curve.

    python benchmarks/sweep.py                 # elec2, first 8000 rows (about 5 months)
    python benchmarks/sweep.py --rows 0        # the whole table (slow: minutes per cell)

Prints the wall time of each and its ratio to the serial run (goal on 2 idle cores: <= 0.6).
Writes into /tmp/rtml_bench/sweep-*. 2026-12-02, load average 4-6 on the 2 shared cores:
serial 105.0 s, --jobs 2 74.2 s (0.71), Dask 2 workers 68.6 s (0.65), all three the same curve.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import polars as pl

from rtml_cli.sweep import run_sweep

ROOT = Path("/tmp/rtml_bench")
ELEC2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "elec2.parquet"
GRID = ["retrain_every=28d,7d,1d,12h", "update_every=1,64"]
SAME = ["cell", "strategy", "refresh_s", "n", "auc", "auc_diff", "auc_diff_low", "auc_diff_high",
        "log_loss", "accuracy", "retrains", "updates"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8000, help="first N rows of elec2 (0: all)")
    ap.add_argument("--timing-sample", type=int, default=200)
    args = ap.parse_args()
    ROOT.mkdir(exist_ok=True)
    table = ROOT / f"elec2-{args.rows or 'all'}.parquet"
    df = pl.read_parquet(ELEC2)
    (df.head(args.rows) if args.rows else df).write_parquet(table)
    common = dict(grid=GRID, strategies="batch,stream,online,static", baseline="static",
                  timing_sample=args.timing_sample, timing_budget_s=None, force=True)  # fmt: skip
    walls: dict[str, float] = {}
    curves: dict[str, pl.DataFrame] = {}

    def one(name: str, **kw: object) -> None:
        out = ROOT / f"sweep-{name}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        res = run_sweep(table, out=out, **common, **kw)  # type: ignore[arg-type]
        walls[name] = time.perf_counter() - t
        assert res.exit_code == 0, [c["error"] for c in res.failed]
        curves[name] = pl.read_parquet(out / "curve.parquet").select(SAME)

    one("serial")
    one("jobs2", jobs=2)
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        one("dask2", dask=cluster.scheduler_address)
    print(f"table: {table.name} ({pl.read_parquet(table).height:,} rows), 8 cells, {GRID}")
    print("| runner | wall s | ratio to serial | same curve |")
    print("|---|---|---|---|")
    for name, wall in walls.items():
        same = curves[name].equals(curves["serial"])
        print(f"| {name} | {wall:.1f} | {wall / walls['serial']:.2f} | {same} |")


if __name__ == "__main__":
    main()
