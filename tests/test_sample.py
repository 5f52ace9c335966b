"""`rtml sample clickstream`: deterministic, realistic, drifting; the shipped sample matches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.io import Roles
from rtml_cli.sample import ATTRIBUTION_WINDOW_S, clickstream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def df() -> pl.DataFrame:
    return clickstream(20_000, seed=5)


def test_deterministic_under_a_seed() -> None:
    assert clickstream(2_000, seed=1).equals(clickstream(2_000, seed=1))
    assert not clickstream(2_000, seed=1).equals(clickstream(2_000, seed=2))


def test_schema_sorted_and_plausible(df: pl.DataFrame) -> None:
    assert df.columns == [
        "ts",
        "user_id",
        "item_id",
        "category",
        "price",
        "position",
        "device",
        "hour",
        "item_popularity",
        "click",
        "click_time",
    ]
    assert df.height == 20_000 and df["ts"].is_sorted()
    assert df["ts"].max() - df["ts"].min() > dt.timedelta(days=6)
    assert 0.03 < df["click"].mean() < 0.3
    assert set(df["device"].unique()) == {"mobile", "desktop", "tablet"}
    assert df["position"].min() == 1 and df["position"].max() <= 10
    # clicks fall with the slot on the page
    by_pos = df.group_by("position").agg(pl.col("click").mean()).sort("position")["click"]
    assert by_pos[0] > by_pos[5]


def test_label_time_rules(df: pl.DataFrame) -> None:
    delay = (df["click_time"] - df["ts"]).dt.total_seconds(fractional=True)
    clicked = df["click"] == 1
    d_click = delay.filter(clicked)
    assert d_click.min() >= 2 and d_click.max() < ATTRIBUTION_WINDOW_S  # seconds to minutes
    assert (
        delay.filter(~clicked) == ATTRIBUTION_WINDOW_S
    ).all()  # a 0 is known when the window closes


def test_preferences_drift_within_hours(df: pl.DataFrame) -> None:
    """The best category of a heavy user changes between 6-hour blocks of one day."""
    top = df["user_id"].value_counts().sort("count", descending=True)["user_id"][0]
    u = df.filter(pl.col("user_id") == top, pl.col("click") == 1)
    fav = (
        u.group_by(pl.col("ts").dt.truncate("6h"), "category")
        .len()
        .sort(["ts", "len"], descending=[False, True])
        .group_by("ts", maintain_order=True)
        .first()["category"]
    )
    assert fav.n_unique() >= 3
    # and category click rates move by 6-hour block for everyone (trend drift)
    rates = df.group_by(pl.col("ts").dt.truncate("6h"), "category").agg(pl.col("click").mean())
    spread = rates.group_by("category").agg(pl.col("click").std())["click"]
    assert float(np.median(spread.to_numpy())) > 0.02


def test_replays_with_its_label_time(tmp_path: Path) -> None:
    from rtml_cli.replay import ReplayOptions
    from rtml_cli.replay_source import prepare_replay

    p = tmp_path / "c.parquet"
    clickstream(500, seed=0).write_parquet(p)
    src = prepare_replay(p, Roles(label_time="click_time"), ReplayOptions())
    assert (src.roles.time, src.roles.label) == ("ts", "click")
    assert src.events == 500 and src.labels == 500


def test_cli_writes_the_table_in_each_format(runner, tmp_path: Path) -> None:
    for suffix, read in (
        (".parquet", pl.read_parquet),
        (".csv", pl.read_csv),
        (".arrow", pl.read_ipc),
        (".ndjson", pl.read_ndjson),
    ):
        out = tmp_path / f"c{suffix}"
        r = runner.invoke(
            app, ["sample", "clickstream", "--rows", "300", "--seed", "3", "-o", str(out)]
        )
        assert r.exit_code == 0, r.output
        assert f"wrote {out}" in r.output
        assert read(out).height == 300


def test_cli_bad_input(runner, tmp_path: Path) -> None:
    r = runner.invoke(app, ["sample", "clikstream"])
    assert r.exit_code == 2 and "Did you mean 'clickstream'?" in r.output
    r = runner.invoke(
        app, ["sample", "clickstream", "--rows", "0", "-o", str(tmp_path / "x.parquet")]
    )
    assert r.exit_code == 2 and "--rows" in r.output
    r = runner.invoke(app, ["sample", "clickstream", "-o", str(tmp_path / "x.xlsx")])
    assert r.exit_code == 2 and "unknown suffix" in r.output


def test_shipped_sample_is_the_documented_command() -> None:
    """sample_data/README.md says `--rows 50000 --seed 0`; the shipped file must be exactly that."""
    shipped = ROOT / "sample_data" / "clickstream.parquet"
    assert shipped.stat().st_size < 2_000_000
    assert (
        "rtml sample clickstream --rows 50000 --seed 0"
        in (ROOT / "sample_data" / "README.md").read_text()
    )
    assert pl.read_parquet(shipped).equals(clickstream(50_000, seed=0))


def test_shipped_config_names_the_roles() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "sample_data" / "rtml.toml").read_text())
    assert cfg["data"]["label_time"] == "click_time" and cfg["data"]["key"] == "user_id"
    assert {s["kind"] for s in cfg["strategy"]} == {"batch", "stream", "online", "static"}
    assert cfg["report"]["baseline"] == "batch_daily"
