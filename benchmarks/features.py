"""Benchmark: point-in-time windowed features against polars written directly (the bound).

    python benchmarks/features.py [--rows 5000000] [--keys 100000] [--repeat 1]

A synthetic table (``--rows`` events over 30 days, ``--keys`` entities with heavy-tailed
activity, a float column, a 0/1 label that arrives 10 s to 1 h after its event) and four
windowed features per key:

* ``count(*)`` over 1h, ``sum(x)`` over 1h, ``max(x)`` over 10m: plain columns;
* ``mean(label)`` over 1d, with label arrival respected (only labels known before t_i).

Each variant runs in its own subprocess (fresh heap) and reports wall time and the growth of
peak RSS over the table itself:

* ``bound``: ``rolling_*_by(t, window, closed="left").over(key)`` for the four aggregates, i.e.
  what one would write by hand in polars. It does not respect label arrival (the label mean
  uses labels as of their event time, which leaks), so it is a lower bound on the work;
* ``fresh``: :func:`rtml_cli.features.fresh_features` (values and ages, as of each event);
* ``asof``: :func:`rtml_cli.features.asof_features` at daily cutoffs (the batch view).

Prints time and memory ratios against the bound measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import polars as pl

DAY_US = 86_400_000_000


def make_table(rows: int, keys: int, seed: int = 0) -> pl.DataFrame:
    """Time-sorted synthetic events (deterministic under ``seed``)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 30 * DAY_US, rows)) + 1_700_000_000_000_000
    # Zipf-like activity: a few keys are very busy, most are quiet.
    k = (rng.pareto(1.2, rows) * keys / 20).astype(np.int64) % keys
    x = rng.normal(10.0, 3.0, rows)
    y = (rng.random(rows) < 0.1).astype(np.float64)
    delay = rng.integers(10_000_000, 3_600_000_000, rows)
    return pl.DataFrame(
        {
            "rtml_t": pl.Series(t).cast(pl.Datetime("us")),
            "key": k,
            "x": x,
            "y": y,
            "rtml_l": pl.Series(t + delay).cast(pl.Datetime("us")),
        }
    )


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_variant(name: str, rows: int, keys: int) -> dict[str, float]:
    from rtml_cli.features import FeatureSpec, asof_features, cutoff_grid, fresh_features

    df = make_table(rows, keys)
    base_mb = _rss_peak_mb()
    specs = [
        FeatureSpec.parse("key:*:count:1h:n_1h"),
        FeatureSpec.parse("key:x:sum:1h:x_sum_1h"),
        FeatureSpec.parse("key:x:max:10m:x_max_10m"),
        FeatureSpec.parse("key:y:mean:1d:y_mean_1d"),
    ]
    t0 = time.perf_counter()
    if name == "bound":
        out = df.select(
            pl.col("x")
            .is_not_null()
            .cast(pl.Int64)
            .rolling_sum_by("rtml_t", "1h", closed="left")
            .over("key")
            .alias("n_1h"),
            pl.col("x").rolling_sum_by("rtml_t", "1h", closed="left").over("key").alias("x_sum_1h"),
            pl.col("x")
            .rolling_max_by("rtml_t", "10m", closed="left")
            .over("key")
            .alias("x_max_10m"),
            pl.col("y")
            .rolling_mean_by("rtml_t", "1d", closed="left")
            .over("key")
            .alias("y_mean_1d"),
        )
    elif name == "fresh":
        out = fresh_features(df, specs, label_col="y")
    elif name == "asof":
        out = asof_features(df, specs, cutoff_grid(df["rtml_t"], DAY_US), label_col="y")
    else:
        raise SystemExit(f"unknown variant {name}")
    wall = time.perf_counter() - t0
    assert out.height == rows
    return {
        "wall_s": wall,
        "peak_growth_mb": _rss_peak_mb() - base_mb,
        "table_mb": df.estimated_size() / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (best time is kept)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run_variant(a.variant, a.rows, a.keys)))
        return
    results: dict[str, dict[str, float]] = {}
    for _ in range(a.repeat):
        for name in ("bound", "fresh", "asof"):  # alternated so machine noise hits all alike
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    name,
                    "--rows",
                    str(a.rows),
                    "--keys",
                    str(a.keys),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            best = results.get(name)
            if best is None or r["wall_s"] < best["wall_s"]:
                results[name] = r
    b = results["bound"]
    print(
        f"{a.rows:,} events, {a.keys:,} keys, 4 windowed features (table {b['table_mb']:.0f} MB); polars {pl.__version__}"
    )
    print(f"{'variant':<8} {'wall s':>8} {'x bound':>8} {'peak +MB':>9} {'x bound':>8}")
    for name, r in results.items():
        print(
            f"{name:<8} {r['wall_s']:>8.2f} {r['wall_s'] / b['wall_s']:>8.2f} "
            f"{r['peak_growth_mb']:>9.0f} {r['peak_growth_mb'] / max(b['peak_growth_mb'], 1):>8.2f}"
        )


if __name__ == "__main__":
    main()
