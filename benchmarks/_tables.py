"""Benchmark tables, generated into /tmp (never into the repository)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

BENCH_DIR = Path("/tmp/rtml_bench")


def event_table(rows: int, *, label: bool = True, seed: int = 0) -> Path:
    """A sorted impression-like table of ``rows`` rows (cached by size and shape)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"events_{rows}_{'label' if label else 'nolabel'}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    start = np.datetime64(dt.datetime(2024, 1, 1), "us").astype(np.int64)
    ts = start + np.cumsum(rng.integers(0, 200_000, rows))  # ~10 events/s, many ties at ms
    df = pl.DataFrame(
        {
            "ts": pl.Series(ts).cast(pl.Datetime("us")),
            "user_id": rng.integers(0, 100_000, rows, dtype=np.int32),
            "item_id": rng.integers(0, 5_000, rows, dtype=np.int32),
            "price": np.round(rng.lognormal(3, 0.5, rows), 2),
            "position": rng.integers(1, 11, rows, dtype=np.int8),
            "device": pl.Series(["mobile", "desktop", "tablet"])[rng.integers(0, 3, rows)],
        }
    )
    if label:
        df = df.with_columns(click=pl.Series(rng.random(rows) < 0.1).cast(pl.Int8))
    df.write_parquet(path, row_group_size=100_000)
    return path
