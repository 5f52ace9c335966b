"""[[feature]] entries flowing through config and the compare engine's feature views."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from conftest import ROOT

from rtml_cli.config import build_config
from rtml_cli.errors import ConfigError
from rtml_cli.features import derived_columns
from rtml_cli.io import EVENT_ID, EVENT_TIME, LABEL_TIME
from rtml_cli.strategies import view_frame

DAY = 86_400_000_000


def example() -> pl.DataFrame:
    """docs/semantics.md's worked example (label delay 1h) plus a second user."""
    d = lambda day, h, m=0: dt.datetime(2024, 1, 1 + day, h, m)  # noqa: E731
    df = pl.DataFrame(
        {
            EVENT_TIME: [d(0, 2), d(0, 14), d(1, 0, 30), d(1, 1), d(1, 6), d(1, 23, 30), d(2, 9)],
            "u": ["a", "a", "a", "b", "a", "a", "a"],
            "x": [1.0, 2, 3, 100, 4, 5, 6],
            "y": [0, 1, 1, 1, 0, 1, 0],
        }
    )
    return df.with_row_index(EVENT_ID).with_columns(
        (pl.col(EVENT_TIME) + pl.duration(hours=1)).alias(LABEL_TIME)
    )


def config_with(entries: list[dict]) -> object:
    raw = {"data": {"time": "ts", "label": "y", "key": "u"}, "feature": entries}
    return build_config(raw, source="rtml.toml")


def test_config_feature_errors_name_key_value_and_fix() -> None:
    with pytest.raises(
        ConfigError,
        match=r"\[\[feature\]\] #1 'ctr': 'agg' = 'avg' is not an aggregation. Did you mean 'mean'\?",
    ):
        config_with([{"name": "ctr", "column": "y", "agg": "avg", "window": "1h"}])
    cfg = config_with([{"name": "ctr", "column": "y", "agg": "mean", "window": "1d"}])
    assert [f.name for f in cfg.features] == ["ctr"]


def test_views_get_fresh_and_cutoff_features() -> None:
    df = example()
    cfg = config_with(
        [
            {
                "name": "ctr",
                "column": "y",
                "agg": "mean",
                "window": "1d",
            },  # key defaults to [data] key
            {"name": "n_all", "key": [], "column": "*", "agg": "count", "window": "1d"},
        ]
    )
    fresh = view_frame(df, columns=["x"], key="u", feature_specs=cfg.features, label="y")
    batch = view_frame(
        df, columns=["x"], key="u", every_us=DAY, feature_specs=cfg.features, label="y"
    )
    # Fresh, user a at day1 06:00: labels of e1 (1) and e2 (1, arrived 01:30) in the last day.
    assert fresh["ctr"].to_list() == [None, 0.0, 0.5, None, 1.0, 0.5, 1.0]
    # Batch: the day1 snapshot sees user a's labels of day0 (0 and 1); day2's sees e2, e3 only.
    assert batch["ctr"].to_list() == [None, None, 0.5, None, 0.5, 0.5, 0.5]
    # A global count sees every user's events.
    assert fresh["n_all"].to_list() == [0, 1, 2, 3, 3, 3, 1]
    assert batch["n_all"].to_list() == [0, 0, 2, 2, 2, 2, 4]


def test_label_aggregate_refuses_to_run_without_the_label() -> None:
    df = example()
    cfg = config_with([{"name": "ctr", "column": "y", "agg": "mean", "window": "1d"}])
    with pytest.raises(Exception, match="needs label="):
        derived_columns(df, cfg.features, key="u", every_us=None)


def test_feature_name_clashing_with_a_column() -> None:
    df = example()
    cfg = config_with([{"name": "x", "column": "x", "agg": "sum", "window": "1d"}])
    with pytest.raises(ConfigError, match="name 'x' is already a column of the table"):
        derived_columns(df, cfg.features, key="u", every_us=None, label="y")


def _write_config(path, feature: str) -> None:
    base = (ROOT / "sample_data" / "rtml.toml").read_text()
    base = base[: base.index("[[feature]]")] if "[[feature]]" in base else base
    path.write_text(base + feature)


def test_cli_rejects_a_bad_feature_with_exit_2(runner, tmp_path) -> None:
    from rtml_cli.cli import app

    cfg = tmp_path / "rtml.toml"
    _write_config(
        cfg, '\n[[feature]]\nname = "ctr"\ncolumn = "click"\nagg = "avg"\nwindow = "1h"\n'
    )
    table = str(ROOT / "sample_data" / "clickstream.parquet")
    r = runner.invoke(app, ["compare", table, "--config", str(cfg), "-o", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert "'agg' = 'avg' is not an aggregation. Did you mean 'mean'?" in r.output
    assert "Traceback" not in r.output


@pytest.mark.slow
def test_compare_feeds_windowed_features_to_the_model(runner, tmp_path) -> None:
    """End to end: a label-rate feature changes the stream model's scores, and is point-in-time."""
    from rtml_cli.cli import app

    table = tmp_path / "clicks.parquet"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "3000", "--out", str(table)])
    assert r.exit_code == 0, r.output
    runs = {}
    for name, feature in [
        ("plain", ""),
        ("ctr", '\n[[feature]]\nname = "ctr"\ncolumn = "click"\nagg = "mean"\nwindow = "2h"\n'),
    ]:
        cfg = tmp_path / f"{name}.toml"
        _write_config(cfg, feature)
        out = tmp_path / name
        r = runner.invoke(
            app,
            ["compare", str(table), "--config", str(cfg), "-o", str(out), "--timing-sample", "10"],
        )
        assert r.exit_code == 0, r.output
        runs[name] = pl.read_parquet(out / "predictions.parquet").filter(
            pl.col("strategy") == "stream"
        )
    assert runs["plain"].height == runs["ctr"].height
    assert not runs["plain"]["score"].equals(runs["ctr"]["score"])
