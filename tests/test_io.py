"""Reading tables (rtml_cli.io): formats, role inference, time normalisation, validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from rtml_cli.errors import ColumnNotFoundError, InputError, UnsortedInputWarning, UsageError
from rtml_cli.io import (
    EVENT_ID,
    EVENT_TIME,
    LABEL_TIME,
    Roles,
    load_events,
    resolve_roles,
    scan_table,
    time_expr,
)

T0 = dt.datetime(2024, 1, 1)


def _write(tmp_path: Path, df: pl.DataFrame, name: str = "t.parquet") -> str:
    p = tmp_path / name
    df.write_parquet(p)
    return str(p)


def test_scan_reads_only_the_schema_and_keeps_column_order(tmp_path: Path) -> None:
    p = _write(tmp_path, pl.DataFrame({"ts": [T0], "b": [1], "a": ["x"]}))
    assert scan_table(p).collect_schema().names() == ["ts", "b", "a"]


def test_mixed_formats_in_a_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pl.DataFrame({"ts": [T0]}).write_parquet(tmp_path / "d" / "a.parquet")
    pl.DataFrame({"ts": [T0]}).write_csv(tmp_path / "d" / "b.csv")
    with pytest.raises(InputError, match="mixes table formats"):
        scan_table(tmp_path / "d")


def test_glob_without_match_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no file matches the glob"):
        scan_table(str(tmp_path / "*.parquet"))


def test_inference_of_time_and_label_with_notes() -> None:
    schema = pl.Schema({"when": pl.Datetime("us"), "x": pl.Float64, "clicked": pl.Int8})
    roles, notes = resolve_roles(schema, Roles(), source="t")
    assert (roles.time, roles.label) == ("when", "clicked")
    assert any("time column: 'when' (inferred" in n for n in notes)
    assert any("label column: 'clicked'" in n for n in notes)


def test_several_datetimes_prefer_a_time_like_name() -> None:
    schema = pl.Schema({"ts": pl.Datetime("us"), "click_time": pl.Datetime("us"), "click": pl.Int8})
    roles, _ = resolve_roles(schema, Roles(), source="t")
    assert roles.time == "ts"


def test_ambiguous_time_column_asks_for_the_flag() -> None:
    schema = pl.Schema({"a": pl.Datetime("us"), "b": pl.Datetime("us")})
    with pytest.raises(InputError, match="--time-col"):
        resolve_roles(schema, Roles(), source="t")


def test_missing_column_lists_columns_and_closest_name() -> None:
    schema = pl.Schema({"ts": pl.Datetime("us"), "price": pl.Float64})
    with pytest.raises(
        ColumnNotFoundError, match=r"Did you mean 'price'\?.*Columns are: ts, price"
    ):
        resolve_roles(schema, Roles(features=["prise"]), source="t")


def test_one_column_two_roles_is_a_usage_error() -> None:
    schema = pl.Schema({"ts": pl.Datetime("us"), "y": pl.Int8})
    with pytest.raises(UsageError, match="two roles"):
        resolve_roles(schema, Roles(label="y", key="y"), source="t")


def test_time_zone_is_converted_to_utc_and_dropped() -> None:
    df = pl.DataFrame({"ts": [dt.datetime(2024, 1, 1, 12)]}).with_columns(
        pl.col("ts").dt.replace_time_zone("Europe/Paris")
    )
    out = df.select(time_expr(df.schema, Roles(time="ts")).alias("t"))
    assert out["t"].dtype == pl.Datetime("us") and out["t"][0] == dt.datetime(2024, 1, 1, 11)


def test_unknown_time_unit_is_refused() -> None:
    schema = pl.Schema({"ts": pl.Int64})
    with pytest.raises(UsageError, match="--time-unit"):
        time_expr(schema, Roles(time="ts", time_unit="minutes"))


def test_load_events_sorts_stably_and_numbers_rows_in_time_order(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(hours=h) for h in (1, 0, 1, 0)],
            "row": [0, 1, 2, 3],
            "label": [1, 0, 1, 0],
        }
    )
    with pytest.warns(UnsortedInputWarning):
        table = load_events(_write(tmp_path, df), Roles(), label_delay_us=60_000_000)
    assert table.frame["row"].to_list() == [1, 3, 0, 2]
    assert table.frame[EVENT_ID].to_list() == [0, 1, 2, 3]
    assert (table.frame[LABEL_TIME] - table.frame[EVENT_TIME]).dt.total_seconds().to_list() == [
        60
    ] * 4
    assert not table.was_sorted


def test_load_events_refuses_label_before_event(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0, T0], "label": [1, 0], "lt": [T0, T0 - dt.timedelta(seconds=1)]})
    with pytest.raises(InputError, match="before the event time in 1 row"):
        load_events(_write(tmp_path, df), Roles(label_time="lt"))


def test_label_time_and_label_delay_together_are_refused(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0], "label": [1], "lt": [T0]})
    with pytest.raises(UsageError, match="not both"):
        load_events(_write(tmp_path, df), Roles(label_time="lt"), label_delay_us=5)


def test_null_label_has_no_arrival(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0, T0], "label": [1, None]})
    table = load_events(_write(tmp_path, df), Roles())
    assert table.frame[LABEL_TIME].to_list() == [T0, None]


def test_a_nan_label_has_no_arrival_like_a_null(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(hours=i) for i in range(4)],
            "y": [1.0, float("nan"), 0.0, None],
            "done": [
                T0 + dt.timedelta(hours=i, minutes=5) if i % 2 == 0 else None for i in range(4)
            ],
        }
    )
    p = _write(tmp_path, df)
    # the label-time column is null where the label is NaN or null: that is not "missing"
    ev = load_events(p, Roles(label="y", label_time="done"))
    assert ev.frame[LABEL_TIME].is_null().to_list() == [False, True, False, True]
    ev = load_events(p, Roles(label="y"), label_delay_us=60_000_000)
    assert ev.frame[LABEL_TIME].is_null().to_list() == [False, True, False, True]


@pytest.mark.parametrize("name", ["rtml_kind", "rtml_time", "rtml_event_id", "rtml_row", "rtml_t"])
def test_reserved_column_names_are_refused_unless_ignored(tmp_path: Path, name: str) -> None:
    from rtml_cli.io import check_reserved_columns

    df = pl.DataFrame({"ts": [T0, T0 + dt.timedelta(hours=1)], name: [7, 8], "y": [True, False]})
    p = _write(tmp_path, df)
    with pytest.raises(InputError) as err:
        load_events(p, Roles())
    text = str(err.value)
    assert f"has column(s) '{name}', a name rtml reserves" in text
    assert "rename it in the table" in text and f"--ignore {name}" in text
    ev = load_events(p, Roles(ignore=[name]))
    assert ev.frame.height == 2 and ev.frame[EVENT_ID].to_list() == [0, 1]
    assert name not in ev.frame.columns or name in (EVENT_ID, EVENT_TIME)
    check_reserved_columns(["ts", "y"], source="t")
    with pytest.raises(InputError, match="'rtml_row'"):
        check_reserved_columns(["ts", "rtml_row"], source="t")
    check_reserved_columns(["ts", "rtml_row"], source="t", ignore=["rtml_row"])
