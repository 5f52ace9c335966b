"""`rtml replay` through the CLI: bad input (exit 2, clear message, nothing written), input
formats, time column types, sinks, dry run, summary, Ctrl-C (exit 130)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc
import pytest

from rtml_cli.cli import app

T0 = dt.datetime(2024, 1, 1)


def _df(n: int = 5) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "user": [f"u{i % 2}" for i in range(n)],
            "x": [float(i) for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _bad(runner, args: list[str], *needles: str, out: Path | None = None) -> str:
    r = runner.invoke(app, ["replay", *args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output, r.output
    # exit 2 comes from the CLI edge (SystemExit), never from an exception that escaped it
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    for needle in needles:
        assert needle in r.output, r.output
    if out is not None:
        assert not out.exists(), "bad input must write nothing"
    return r.output


# --------------------------------------------------------------------------- bad input -> exit 2


def test_missing_file(runner, tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    _bad(
        runner,
        [str(tmp_path / "nope.parquet"), "--to", str(out)],
        "not found",
        "nope.parquet",
        out=out,
    )


def test_corrupt_file(runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    out = tmp_path / "o.ndjson"
    _bad(runner, [str(bad), "--to", str(out)], "cannot read table", "bad.parquet", out=out)


def test_unknown_format(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.xlsx"
    f.write_bytes(b"x")
    _bad(runner, [str(f)], "unknown table format", "Supported")


def test_empty_table(runner, tmp_path: Path) -> None:
    f = tmp_path / "e.parquet"
    _df(3).clear().write_parquet(f)
    out = tmp_path / "o.ndjson"
    _bad(runner, [str(f), "--to", str(out)], "empty", out=out)


def test_missing_time_column_suggests_closest(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _df().write_parquet(f)
    _bad(
        runner,
        [str(f), "--time-col", "tss"],
        "time column 'tss' not found",
        "Did you mean 'ts'?",
        "--time-col",
    )


def test_missing_label_column_suggests_closest(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _df().write_parquet(f)
    _bad(
        runner,
        [str(f), "--label-col", "lable"],
        "label column 'lable' not found",
        "Did you mean 'label'?",
        "Columns are: ts, user, x, label",
    )


def test_unparseable_time_shows_the_value(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("when,v\n2024-01-01 00:00:00,1\nyesterday,2\n")
    out = tmp_path / "o.ndjson"
    _bad(
        runner,
        [str(f), "--time-col", "when", "--to", str(out)],
        "'yesterday'",
        "--time-format",
        out=out,
    )


def test_null_times_are_counted_and_can_be_dropped(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    pl.DataFrame(
        {"ts": [T0, None, None, T0 + dt.timedelta(minutes=1)], "v": [1, 2, 3, 4]}
    ).write_parquet(f)
    _bad(runner, [str(f)], "2 null value(s) out of 4", "--drop-null-time")
    r = runner.invoke(app, ["replay", str(f), "--drop-null-time"])
    assert r.exit_code == 0, r.output
    msgs = _lines(r.stdout)
    assert [m["v"] for m in msgs] == [1, 4] and [m["rtml_event_id"] for m in msgs] == [0, 1]
    assert "dropped 2 row(s)" in r.output


def test_label_time_before_event_time(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    pl.DataFrame(
        {"ts": [T0, T0 + dt.timedelta(hours=1)], "label": [1, 0], "label_at": [T0, T0]}
    ).write_parquet(f)
    out = tmp_path / "o.ndjson"
    _bad(
        runner,
        [str(f), "--label-time-col", "label_at", "--to", str(out)],
        "before the event time in 1 row(s)",
        out=out,
    )


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--speed", "10", "--rate", "5"], "--speed and --rate contradict"),
        (["--max-speed", "--rate", "5"], "--max-speed contradicts"),
        (["--speed", "0"], "must be a number > 0"),
        (["--label-delay", "soon"], "--label-delay must be a duration"),
        (["--start", "tuesday"], "--start must be an ISO-8601"),
        (["--start", "2024-02-01", "--end", "2024-01-01"], "must be before --end"),
        (["--to", "out.xyz"], "unknown replay target"),
        (["--start", "2030-01-01"], "no event"),
    ],
)
def test_contradictory_or_invalid_flags(
    runner, tmp_path: Path, flags: list[str], needle: str
) -> None:
    f = tmp_path / "t.parquet"
    _df().write_parquet(f)
    _bad(runner, [str(f), *flags], needle)


# --------------------------------------------------------------------------- input formats


@pytest.mark.parametrize("fmt", ["parquet", "folder", "glob", "csv", "ndjson", "arrow"])
def test_each_input_format(runner, tmp_path: Path, fmt: str) -> None:
    df = _df(6)
    if fmt == "parquet":
        target = tmp_path / "t.parquet"
        df.write_parquet(target)
    elif fmt in ("folder", "glob"):
        (tmp_path / "parts").mkdir()
        df.head(3).write_parquet(tmp_path / "parts" / "a.parquet")
        df.tail(3).write_parquet(tmp_path / "parts" / "b.parquet")
        target = tmp_path / "parts" if fmt == "folder" else tmp_path / "parts" / "*.parquet"
    elif fmt == "csv":
        target = tmp_path / "t.csv"
        df.write_csv(target)
    elif fmt == "ndjson":
        target = tmp_path / "t.ndjson"
        df.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S")).write_ndjson(target)
    else:
        target = tmp_path / "t.arrow"
        df.write_ipc(target)
    args = ["replay", str(target)] + (["--time-col", "ts"] if fmt == "ndjson" else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    msgs = _lines(r.stdout)
    assert [m["rtml_event_id"] for m in msgs if m["rtml_kind"] == "event"] == list(range(6))
    assert [m["x"] for m in msgs if m["rtml_kind"] == "event"] == [float(i) for i in range(6)]
    assert sum(m["rtml_kind"] == "label" for m in msgs) == 6


@pytest.mark.parametrize(
    "column, flags, first",
    [
        (pl.Series([dt.date(2024, 1, 2), dt.date(2024, 1, 1)]), [], "2024-01-01T00:00:00"),
        (pl.Series([1_704_153_600, 1_704_067_200]), ["--time-unit", "s"], "2024-01-01T00:00:00"),
        (
            pl.Series([1_704_153_600_000, 1_704_067_200_000]),
            ["--time-unit", "ms"],
            "2024-01-01T00:00:00",
        ),
        (
            pl.Series(["02/01/2024 00:00", "01/01/2024 00:00"]),
            ["--time-format", "%d/%m/%Y %H:%M"],
            "2024-01-01T00:00:00",
        ),
        (pl.Series(["2024-01-02T00:00:00", "2024-01-01T00:00:00"]), [], "2024-01-01T00:00:00"),
    ],
)
def test_time_column_types(
    runner, tmp_path: Path, column: pl.Series, flags: list[str], first: str
) -> None:
    f = tmp_path / "t.parquet"
    pl.DataFrame({"when": column, "v": [2, 1]}).write_parquet(f)
    r = runner.invoke(app, ["replay", str(f), "--time-col", "when", *flags])
    assert r.exit_code == 0, r.output
    msgs = _lines(r.stdout)
    assert [m["rtml_time"] for m in msgs][0] == first and [m["v"] for m in msgs] == [1, 2]
    assert "not sorted" in r.output  # the table was given in reverse order


# --------------------------------------------------------------------------- sinks and output


def test_file_sinks_hold_the_same_messages(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _df(300).write_parquet(f)
    base = ["replay", str(f), "--label-delay", "90s"]
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    ref = _lines(r.stdout)
    for suffix in (".ndjson", ".jsonl", ".arrow", ".parquet"):
        out = tmp_path / f"o{suffix}"
        r = runner.invoke(app, [*base, "--to", str(out)])
        assert r.exit_code == 0, r.output
        if suffix in (".ndjson", ".jsonl"):
            got = [json.loads(x) for x in out.read_text().splitlines()]
            assert got == ref
        else:
            if suffix == ".arrow":
                with pa.OSFile(str(out), "rb") as fh:
                    frame = pl.from_arrow(pyarrow.ipc.open_stream(fh).read_all())
            else:
                frame = pl.read_parquet(out)
            assert frame.height == len(ref)
            assert frame["rtml_kind"].to_list() == [m["rtml_kind"] for m in ref]
            assert frame["rtml_event_id"].to_list() == [m["rtml_event_id"] for m in ref]


def test_summary_and_dry_run(runner, tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _df(61).write_parquet(f)
    out = tmp_path / "o.ndjson"
    r = runner.invoke(app, ["replay", str(f), "--dry-run", "--speed", "60", "--to", str(out)])
    assert r.exit_code == 0, r.output
    assert "61 events, 61 labels = 122 messages" in r.stdout
    assert "expected wall time: 1m" in r.stdout
    assert not out.exists()
    r = runner.invoke(app, ["replay", str(f), "--rate", "20000", "--to", str(out)])
    assert r.exit_code == 0, r.output
    assert "messages: 122 (61 events, 61 labels)" in r.output
    assert "lateness: p50" in r.output and "p99" in r.output and "max" in r.output
    assert len(out.read_text().splitlines()) == 122


def test_help_says_max_speed_is_the_default(runner) -> None:
    r = runner.invoke(app, ["replay", "--help"])
    assert r.exit_code == 0
    assert "--max-speed" in r.output and "default" in r.output.lower()


def test_ctrl_c_exits_130_and_leaves_the_previous_file_as_it_was(
    runner, tmp_path: Path, monkeypatch
) -> None:
    """Interrupted replays to a file write nothing: the target keeps its old bytes, no temp."""
    from rtml_cli.sinks import files

    f = tmp_path / "t.parquet"
    _df(50).write_parquet(f)
    real_write = files.NdjsonSink.write
    calls = {"n": 0}

    def write(self, batch):  # the second batch never gets written: Ctrl-C
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_write(self, batch)

    monkeypatch.setattr(files.NdjsonSink, "write", write)
    out = tmp_path / "o.ndjson"
    out.write_bytes(b"previous run\n")
    r = runner.invoke(app, ["replay", str(f), "--to", str(out), "--rate", "100000", "--force"])
    assert r.exit_code == 130, r.output
    assert "replay interrupted" in r.output
    assert "was left as it was" in r.output and "Run the replay again" in r.output
    assert out.read_bytes() == b"previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ndjson", "t.parquet"]


def test_real_table_elec2_via_cli(runner, tmp_path: Path) -> None:
    from conftest import shared_table

    out = tmp_path / "elec.ndjson"
    r = runner.invoke(
        app,
        ["replay", str(shared_table("elec2.parquet")), "--label-delay", "30m", "--to", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "messages: 90,624 (45,312 events, 45,312 labels)" in r.output
    assert "time column: 'timestamp'" in r.output and "label column: 'price_up'" in r.output
