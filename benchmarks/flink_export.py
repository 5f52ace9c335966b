"""Benchmark: the exported Flink job's time beside rtml's own computation of the same features.

    python benchmarks/flink_export.py [--rows 1000000] [--parallelism 2] [--skip-large]

For the shipped sample (50,000 events) and a generated clickstream of ``--rows`` events
(``rtml sample clickstream``, cached in /tmp/rtml_bench), with the sample's three windowed
features (rtml.toml) plus calendar parts, labels 15 min late and 5 min of disorder:

* ``rtml features``: :func:`rtml_cli.features_cli.compute_features` (read + compute);
* ``replay``: ``rtml replay`` to NDJSON (the job's input);
* ``flink``: the job of ``rtml export flink`` on PyFlink's local mini-cluster (batch mode), split
  into JVM start, DDL, planning/submission and the run itself;
* the number of (event, feature) values where Flink and rtml differ (0 expected).

Needs ``pip install 'rtml[flink]'`` and Java 17.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path("/tmp/rtml_bench")
CONFIG = ROOT / "sample_data" / "rtml.toml"


def _table(rows: int) -> Path:
    from rtml_cli.sample import write_sample

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"clickstream_{rows}.parquet"
    if not path.exists():
        write_sample("clickstream", rows=rows, seed=0, out=str(path), force=False)
    return path


def _differences(ref: pl.DataFrame, got: pl.DataFrame) -> int:
    bad = 0
    for c in ref.columns[1:]:
        x = ref[c].cast(pl.Float64).to_numpy()
        y = got[c].cast(pl.Float64).to_numpy()
        ok = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-9, atol=1e-9)
        bad += int((~ok).sum())
    return bad


def run(table: Path, work: Path, parallelism: int) -> dict[str, float | int]:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from rtml_cli.cli import app
    from rtml_cli.export_flink import build_export, parse_endpoint, read_sink
    from rtml_cli.features_cli import compute_features, resolve_job

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    resolve = {"config": CONFIG, "label_delay": "15m", "calendar": ["hour", "dow"]}
    t = time.perf_counter()
    job = resolve_job(table, **resolve)  # type: ignore[arg-type]
    ref = compute_features(job)
    t_rtml = time.perf_counter() - t

    from typer.testing import CliRunner

    msgs = work / "messages.ndjson"
    t = time.perf_counter()
    res = CliRunner().invoke(
        app,
        [
            "replay",
            str(table),
            "--config",
            str(CONFIG),
            "--label-delay",
            "15m",
            "--disorder",
            "5m",
            "-o",
            str(msgs),
        ],
    )
    assert res.exit_code == 0, res.output
    t_replay = time.perf_counter() - t

    export = build_export(
        job,
        source=parse_endpoint(f"ndjson:{msgs}", what="--source"),
        sink=parse_endpoint(f"ndjson:{work / 'out'}", what="--sink"),
        disorder_us=300_000_000,
        parallelism=parallelism,
    )
    t0 = time.perf_counter()
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t1 = time.perf_counter()
    for k, v in export.settings.items():
        env.get_config().set(k, v)
    for stmt in export.statements:
        env.execute_sql(stmt)
    t2 = time.perf_counter()
    result = env.execute_sql(export.insert)
    t3 = time.perf_counter()
    result.wait()
    t4 = time.perf_counter()
    got = read_sink(work / "out")
    assert got.height == ref.height, (got.height, ref.height)
    return {
        "events": ref.height,
        "rtml": t_rtml,
        "replay": t_replay,
        "jvm": t1 - t0,
        "ddl": t2 - t1,
        "plan": t3 - t2,
        "run": t4 - t3,
        "flink": t4 - t0,
        "diff": _differences(ref, got),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args()
    tables = [("sample", ROOT / "sample_data" / "clickstream.parquet")]
    if not args.skip_large:
        tables.append((f"clickstream {args.rows:,}", _table(args.rows)))
    print(
        "| table | events | rtml features | replay | Flink total (JVM / DDL / plan / run) "
        "| Flink / rtml | values differing |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, path in tables:
        r = run(path, BENCH_DIR / f"flink_{name.split()[0]}", args.parallelism)
        print(
            f"| {name} | {r['events']:,} | {r['rtml']:.2f} s | {r['replay']:.1f} s | "
            f"{r['flink']:.1f} s ({r['jvm']:.1f} / {r['ddl']:.1f} / {r['plan']:.1f} / "
            f"{r['run']:.1f}) | {r['flink'] / r['rtml']:.0f}× | {r['diff']} |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
