"""Replay's fast JSON encoding and merge, against plain references.

The encoder takes shortcuts per batch (plain text for finite floats and unescaped strings,
shared id/time text, literal names); these tests pin its output to polars' own JSON encoder on
the same fields, the merge to a stable sort, and the NDJSON writer to the lines it was given.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtml_cli.io import EVENT_ID, Roles
from rtml_cli.replay_columns import JSON, KIND, TIME
from rtml_cli.replay_encode import ReplayBatch, encode_messages
from rtml_cli.replay_options import ReplayOptions
from rtml_cli.replay_order import iter_messages, merge_order
from rtml_cli.replay_source import prepare_replay

T0 = dt.datetime(2024, 1, 1)
ISO = "%Y-%m-%dT%H:%M:%S%.f"


def _reference(frame: pl.DataFrame, fields: list[str]) -> list[str]:
    """polars' own JSON of ``fields`` per row, datetimes as ISO-8601 text (the message format)."""
    cols = []
    for c in fields:
        d = frame.schema[c]
        if isinstance(d, pl.Datetime):
            fmt = ISO + ("%:z" if d.time_zone else "")
            cols.append(pl.col(c).dt.to_string(fmt))
        else:
            cols.append(pl.col(c))
    return frame.select(pl.struct(cols).struct.json_encode()).to_series().to_list()


def _event_frame(
    values: dict[str, list[object]], n: int, dtypes: dict[str, pl.DataType]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            KIND: ["event"] * n,
            EVENT_ID: pl.Series(range(n), dtype=pl.Int64),
            TIME: pl.Series([T0 + dt.timedelta(microseconds=7 * i) for i in range(n)]),
            **{c: pl.Series(c, v, dtype=dtypes[c]) for c, v in values.items()},
        }
    )


_text = st.text(
    alphabet=st.sampled_from(
        ["a", "é", "中", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "\u2028", " "]
    ),
    max_size=6,
)
_float = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e16, 1e21, 1e-7, 0.1, 22.62]),
)
_stamp = st.one_of(
    st.none(),
    st.integers(-(10**13), 10**13).map(lambda us: T0 + dt.timedelta(microseconds=us)),
    st.integers(0, 10**6).map(lambda s: T0 + dt.timedelta(seconds=s)),
    st.integers(0, 10**6).map(lambda ms: T0 + dt.timedelta(milliseconds=ms)),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
            _float,
            st.one_of(st.none(), _text),
            st.one_of(st.none(), st.booleans()),
            _stamp,
            st.one_of(st.none(), st.integers(0, 3650).map(lambda d: T0.date() + dt.timedelta(d))),
        ),
        min_size=1,
        max_size=30,
    ),
    f32=st.booleans(),
)
def test_event_json_equals_polars_json_of_the_same_fields(rows: list[tuple], f32: bool) -> None:
    n = len(rows)
    cols = ["i", "f", "s", "b", "t", "d"]
    values = {c: [r[k] for r in rows] for k, c in enumerate(cols)}
    dtypes = {
        "i": pl.Int64,
        "f": pl.Float32 if f32 else pl.Float64,
        "s": pl.String,
        "b": pl.Boolean,
        "t": pl.Datetime("us"),
        "d": pl.Date,
    }
    frame = _event_frame(values, n, dtypes)
    got = encode_messages(frame, None).to_list()
    assert got == _reference(
        frame.with_columns(pl.lit("event").alias(KIND)), [KIND, EVENT_ID, TIME, *cols]
    )


@pytest.mark.parametrize("fill", [None, float("nan"), float("inf"), 1.5])
def test_plain_and_escaped_columns_in_one_batch(fill: float | None) -> None:
    # One float column needs the non-finite path only because of one value; strings likewise.
    frame = _event_frame(
        {"f": [0.5, 2.0, fill], "s": ["plain", "x", 'quo"te'], "s2": ["a", "b", "c"]},
        3,
        {"f": pl.Float64, "s": pl.String, "s2": pl.String},
    )
    got = encode_messages(frame, None).to_list()
    assert got == _reference(frame, [KIND, EVENT_ID, TIME, "f", "s", "s2"])
    assert got[2].endswith(',"s":"quo\\"te","s2":"c"}')
    if fill is None or not math.isfinite(fill):
        assert ',"f":null,' in got[2]


def test_label_messages_carry_kind_id_label_time() -> None:
    frame = pl.DataFrame(
        {
            KIND: ["event", "label", "label"],
            EVENT_ID: pl.Series([0, 0, 1], dtype=pl.Int64),
            TIME: [T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(microseconds=1500)],
            "x": [1.25, None, None],
            "y": [None, 1.0, float("nan")],
        }
    )
    assert encode_messages(frame, "y").to_list() == [
        '{"rtml_kind":"event","rtml_event_id":0,"rtml_time":"2024-01-01T00:00:00","x":1.25}',
        '{"rtml_kind":"label","rtml_event_id":0,"y":1.0,"rtml_time":"2024-01-01T00:00:01"}',
        '{"rtml_kind":"label","rtml_event_id":1,"y":null,"rtml_time":"2024-01-01T00:00:00.001500"}',
    ]


@given(
    ev=st.lists(st.integers(0, 20), max_size=40).map(sorted),
    lab=st.lists(st.integers(0, 20), max_size=40).map(sorted),
)
def test_merge_order_is_a_stable_sort_by_time_then_kind(ev: list[int], lab: list[int]) -> None:
    order = merge_order(np.array(ev, dtype=np.int64), np.array(lab, dtype=np.int64))
    keys = [(t, 0) for t in ev] + [(t, 1) for t in lab]
    expected = sorted(range(len(keys)), key=lambda i: keys[i])  # sorted() is stable
    assert order.tolist() == expected


@pytest.mark.parametrize("n", [0, 3, 255, 256, 60_001])
def test_ndjson_write_is_the_lines_each_ending_in_a_newline(n: int) -> None:
    lines = [f'{{"k":{i},"s":"é{"x" * (i % 50)}"}}' for i in range(n)]
    frame = pl.DataFrame({KIND: ["event"] * n})
    batch = ReplayBatch(frame, None, json=pl.Series(JSON, lines, dtype=pl.String))
    buf = io.BytesIO()
    batch.write_ndjson(buf)
    assert buf.getvalue() == "".join(line + "\n" for line in lines).encode()


@pytest.mark.parametrize("n", [0, 3, 255, 256, 60_001])
def test_terminated_lines_write_as_themselves_and_read_back_without_newlines(n: int) -> None:
    """Messages encoded with their newline (NDJSON sinks) are written as is, sliced anywhere,
    and still give sinks that read JSON lines the messages without it."""
    lines = [f'{{"k":{i},"s":"é{"x" * (i % 50)}"}}' for i in range(n)]
    json = pl.Series(JSON, [line + "\n" for line in lines], dtype=pl.String)
    frame = pl.DataFrame({KIND: ["event"] * n})
    start = min(n, 7)  # a slice that does not start at the column's first value
    batch = ReplayBatch(frame.slice(start), None, json=json.slice(start), terminated=True)
    buf = io.BytesIO()
    batch.write_ndjson(buf)
    assert buf.getvalue() == "".join(line + "\n" for line in lines[start:]).encode()
    assert batch.json_lines() == lines[start:]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    delay_s=st.sampled_from([None, 0, 1, 3]),
    chunk=st.integers(1, 9),
    nulls=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_encoded_stream_equals_encoding_the_message_frames(
    tmp_path: Path, delay_s: int | None, chunk: int, nulls: list[bool]
) -> None:
    """The per-batch encoder (shared id/time text) gives what encoding each message gives."""
    n = 25
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(milliseconds=500 * (i // 3)) for i in range(n)],
            "v": [None if z else i / 4 for i, z in enumerate(nulls)],
            "y": [None if z and i % 2 else i % 2 for i, z in enumerate(nulls)],
        }
    )
    path = tmp_path / f"t{chunk}_{delay_s}.parquet"
    df.write_parquet(path)
    delay = None if delay_s is None else delay_s * 1_000_000
    opts = ReplayOptions(label_delay_us=delay, chunk_rows=chunk)
    plain = pl.concat(iter_messages(prepare_replay(path, Roles(label="y"), opts)))
    fast = pl.concat(iter_messages(prepare_replay(path, Roles(label="y"), opts), encode=True))
    assert fast.drop(JSON).equals(plain)
    assert fast[JSON].to_list() == encode_messages(plain, "y").to_list()
    src = prepare_replay(path, Roles(label="y"), opts)
    lines = pl.concat(iter_messages(src, encode=True, narrow=True, newline=True))[JSON]
    assert lines.to_list() == [m + "\n" for m in fast[JSON].to_list()]
