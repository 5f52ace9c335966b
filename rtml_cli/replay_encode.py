"""Replay messages as JSON: one flat object per message, encoded column-wise by polars.

Events carry every field but the label; labels carry kind, event id, label and time
(docs/semantics.md, "Replay messages"). Encoding is per record batch, per kind, without a
Python object per message; :class:`ReplayBatch` carries the result to the sinks, and file
sinks write it as NDJSON bytes (:func:`ndjson_buffers`).
"""

from __future__ import annotations

from typing import IO

import numpy as np
import polars as pl

from rtml_cli.io import EVENT_ID, EVENT_TIME, TIME_DTYPE
from rtml_cli.replay_columns import ID_TEXT, JSON, KIND, LABEL_ARRIVAL, TIME, TIME_TEXT
from rtml_cli.sinks.base import MessageBatch

#: Messages joined into one buffer per write to an NDJSON file (~3-5 MB).
_WRITE_SLICE = 25_000
_ISO = "%Y-%m-%dT%H:%M:%S%.f"
#: Characters that polars' JSON writer escapes in a string: control characters, quote, backslash.
#: Looked for as plain substrings (Aho-Corasick over the bytes, twice as fast as a regex class;
#: in UTF-8 these bytes never occur inside a multi-byte character).
_NEEDS_ESCAPE = ['"', "\\", *map(chr, range(0x20))]


def _plain_columns(frame: pl.DataFrame, columns: list[str]) -> set[str]:
    """The float and string ``columns`` of ``frame`` whose JSON value is their plain text.

    A float column is when all its values are finite (JSON has no NaN or infinity: those are
    null); a string column is when no value needs escaping. Such columns skip polars' JSON
    encoder (twice as slow, and its braces must be stripped). One query for all the columns.
    """
    checks = []
    for c in columns:
        dtype = frame.schema[c]
        if dtype.is_float():
            checks.append(pl.col(c).is_finite().all().alias(c))
        elif dtype == pl.String:
            checks.append(pl.col(c).str.contains_any(_NEEDS_ESCAPE).any().not_().alias(c))
    if not checks:
        return set()
    return {c for c, plain in frame.select(checks).row(0, named=True).items() if plain}


def _iso(col: str, dtype: pl.DataType) -> pl.Expr:
    """ISO-8601 text of a datetime column (polars' JSON would write a space, and slowly)."""
    tz = isinstance(dtype, pl.Datetime) and dtype.time_zone
    return pl.col(col).dt.to_string(_ISO + ("%:z" if tz else ""))


def _json_expr(
    fields: list[str],
    schema: pl.Schema,
    *,
    kind: str | None = None,
    source: dict[str, str] | None = None,
    text: dict[str, str] | None = None,
    nullable: set[str] | frozenset[str] = frozenset(),
    plain: set[str] | frozenset[str] = frozenset(),
    end: str = "",
) -> pl.Expr:
    """One flat JSON object per row over ``fields``, in that order (String, named :data:`JSON`).

    One ``concat_str`` over literal names and value texts, so that most fields skip a JSON
    encoder: datetimes as ISO-8601, integers, booleans, finite floats and strings without
    escapes (``plain``) as their text, the message kind as a literal when ``kind`` is given.
    Runs of other fields (escaped strings, dates, nested values) go through
    ``struct.json_encode``, braces dropped. A field reads the frame column ``source[field]``
    (default: its own name); ``text`` maps a field to a column already holding its text.
    Only ``nullable`` columns pay for writing ``null``. ``end`` follows each object (a newline
    makes the column NDJSON lines, at no extra cost).
    """
    import json as _json

    source = source or {}
    text = text or {}
    pieces: list[pl.Expr | str] = []
    run: list[pl.Expr] = []

    def literal(s: str) -> None:
        if pieces and isinstance(pieces[-1], str):
            pieces[-1] += s
        else:
            pieces.append(s)

    def flush() -> None:
        if run:
            literal("," if pieces else "{")
            enc = pl.struct(run).struct.json_encode()
            pieces.append(enc.str.strip_prefix("{").str.strip_suffix("}"))
            run.clear()

    for field in fields:
        col = source.get(field, field)
        dtype = schema[field]
        name = _json.dumps(field)
        quoted = False
        value: pl.Expr
        if field == KIND and kind is not None:
            flush()
            literal(("," if pieces else "{") + f"{name}:{_json.dumps(kind)}")
            continue
        if field in text:
            value, quoted = pl.col(text[field]), isinstance(dtype, pl.Datetime)
        elif isinstance(dtype, pl.Datetime):
            value, quoted = _iso(col, dtype), True
        elif dtype.is_integer() or dtype == pl.Boolean or (dtype.is_float() and col in plain):
            value = pl.col(col).cast(pl.String)
        elif dtype.is_float():
            value = pl.when(pl.col(col).is_finite()).then(pl.col(col).cast(pl.String))
            value = value.otherwise(pl.lit("null"))  # NaN, infinity and null alike
            col = ""  # never null now
        elif dtype == pl.String and col in plain:
            value, quoted = pl.col(col), True
        else:
            run.append(pl.col(col).alias(field))
            continue
        flush()
        literal(("," if pieces else "{") + f"{name}:")
        if col in nullable:
            if quoted:
                value = pl.concat_str([pl.lit('"'), value, pl.lit('"')])
            pieces.append(value.fill_null(pl.lit("null")))
        else:
            literal('"' if quoted else "")
            pieces.append(value)
            literal('"' if quoted else "")
    flush()
    literal("}" + end)
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in pieces]
    return pl.concat_str(exprs).alias(JSON)


class MessageEncoder:
    """Encodes the event and label messages of a record batch as JSON, per batch.

    What each batch needs is decided from the batch: which columns hold nulls, which floats
    and strings are plain text (:func:`_plain_columns`), whether labels arrive at their
    event's time. The event id and the event time are turned into text once and shared by
    both kinds (the time also by the table's own time column when it holds the same instant).

    Parameters
    ----------
    schema : the message schema (:attr:`~rtml_cli.replay_source.ReplaySource.schema`).
    payload : the columns of an event message after kind, id and time.
    label : the label column, or None (events only).
    time_col : the table's time column (a payload column too, unless ignored).
    newline : end each message with a newline (NDJSON lines, see :func:`ndjson_buffers`).
    """

    def __init__(
        self,
        schema: pl.Schema,
        payload: list[str],
        label: str | None,
        *,
        time_col: str | None,
        newline: bool = False,
    ) -> None:
        self.end = "\n" if newline else ""
        self.schema = schema
        self.payload = payload
        self.label = label
        # The table's own time column holds the event time's instant when it already has its type.
        self.same_as_t = time_col if time_col and schema.get(time_col) == TIME_DTYPE else None

    def encode(self, frame: pl.DataFrame, *, parts: int = 1) -> tuple[pl.Series, pl.Series | None]:
        """JSON of every row's event message, and of its label message (null for a null label).

        ``frame`` holds :data:`~rtml_cli.io.EVENT_ID`, :data:`~rtml_cli.io.EVENT_TIME`,
        :data:`TIME` (the event's arrival), the payload, and with a label the label and its
        arrival (:data:`LABEL_ARRIVAL`).
        Encoded in ``parts`` slices run in parallel (one polars expression uses one core).
        """
        label = self.label
        cols = [*self.payload, *([label] if label else [])]
        nullable = {c for c in cols if frame[c].null_count()}
        plain = _plain_columns(frame, cols)
        shared = [pl.col(EVENT_ID).cast(pl.String).alias(ID_TEXT)]
        ev_text = {EVENT_ID: ID_TEXT}
        t_used = False
        if frame[TIME].equals(frame[EVENT_TIME]):  # no disorder: the event arrives at its own time
            ev_text[TIME] = TIME_TEXT
            t_used = True
        if self.same_as_t is not None and self.same_as_t in self.payload:
            ev_text[self.same_as_t] = TIME_TEXT
            t_used = True
        ev_expr = _json_expr(
            [KIND, EVENT_ID, TIME, *self.payload],
            self.schema,
            kind="event",
            text=ev_text,
            nullable=nullable,
            plain=plain,
            end=self.end,
        )
        exprs = [ev_expr]
        if label is not None:
            lab_text = {EVENT_ID: ID_TEXT}
            # e.g. no label delay: the label arrives at the event time, whose text is shared
            if frame[LABEL_ARRIVAL].equals(frame[EVENT_TIME]):
                lab_text[TIME] = TIME_TEXT
                t_used = True
            lab_expr = _json_expr(
                [KIND, EVENT_ID, label, TIME],
                self.schema,
                kind="label",
                source={TIME: LABEL_ARRIVAL},
                text=lab_text,
                nullable=nullable - {label},  # null labels send no message: left null
                plain=plain,
                end=self.end,
            )
            exprs.append(lab_expr.alias(JSON + "_label"))
        if t_used:
            shared.append(_iso(EVENT_TIME, TIME_DTYPE).alias(TIME_TEXT))
        step = -(-frame.height // max(1, parts))
        queries = [
            frame.slice(i, step).lazy().with_columns(shared).select(exprs)
            for i in range(0, frame.height, step)
        ]
        done = pl.concat(pl.collect_all(queries)) if len(queries) > 1 else queries[0].collect()
        ev_json = done.to_series(0).alias(JSON)
        lab_json = done.to_series(1).alias(JSON) if label is not None else None
        return ev_json, lab_json


def encode_messages(frame: pl.DataFrame, label: str | None) -> pl.Series:
    """The messages of a message frame as flat JSON objects (a String Series, one per message).

    Events carry every field but the label; labels carry kind, event id, label and time.
    Encoded column-wise by polars (separately per kind, then put back in order).
    """
    schema = frame.schema
    payload = [c for c in frame.columns if c not in (KIND, EVENT_ID, TIME, label, JSON)]
    cols = [*payload, *([label] if label else [])]
    nullable = {c for c in cols if frame[c].null_count()}
    plain = _plain_columns(frame, cols)
    ev_expr = _json_expr(
        [KIND, EVENT_ID, TIME, *payload], schema, kind="event", nullable=nullable, plain=plain
    )
    if label is None:
        return frame.select(ev_expr).to_series()
    lab_expr = _json_expr(
        [KIND, EVENT_ID, label, TIME], schema, kind="label", nullable=nullable, plain=plain
    )
    is_ev = (frame[KIND] == "event").to_numpy()
    n_ev = int(is_ev.sum())
    if n_ev == frame.height:
        return frame.select(ev_expr).to_series()
    if n_ev == 0:
        return frame.select(lab_expr).to_series()
    ev_json = frame.filter(pl.Series(is_ev)).select(ev_expr).to_series()
    lab_json = frame.filter(pl.Series(~is_ev)).select(lab_expr).to_series()
    # position -> index into [events..., labels...]
    idx = np.where(is_ev, np.cumsum(is_ev) - 1, n_ev + np.cumsum(~is_ev) - 1)
    return pl.concat([ev_json, lab_json]).gather(idx)


def ndjson_buffers(json: pl.Series, *, terminated: bool = False) -> list[bytes | memoryview]:
    """Encoded messages as NDJSON bytes (each line ends in a newline), in a few large buffers.

    ``terminated``: each message already ends in its newline (``MessageEncoder(newline=True)``):
    the Arrow data buffer of a slice of messages is then the NDJSON text itself, handed on as
    is (one copy, out of polars' string views). Otherwise polars joins a slice into one string
    first. No Python object per message either way; slices of a few MB keep the bytes in cache
    for the kernel's copy into the page cache.
    """
    n = len(json)
    if n < 256:
        if not n:
            return []
        lines = json.to_list()
        return [("".join(lines) if terminated else "\n".join(lines) + "\n").encode()]
    import pyarrow as pa

    out: list[bytes | memoryview] = []
    for i in range(0, n, _WRITE_SLICE):
        piece = json.slice(i, _WRITE_SLICE)
        text = (piece if terminated else piece.str.join("\n")).to_arrow()
        if text.type != pa.large_string():
            text = text.cast(pa.large_string())
        _validity, offsets, data = text.buffers()
        first = np.frombuffer(offsets, dtype=np.int64, count=1, offset=8 * text.offset)[0]
        last = np.frombuffer(
            offsets, dtype=np.int64, count=1, offset=8 * (text.offset + len(text))
        )[0]
        out.append(memoryview(data)[first:last])
        if not terminated:
            out.append(b"\n")
    return out


class ReplayBatch(MessageBatch):
    """A :class:`MessageBatch` that carries its messages already encoded (``json``, a Series).

    Sinks that only know the protocol call :meth:`json_lines`; file sinks call
    :meth:`write_ndjson`, which writes the encoded column without a Python object per message.
    ``ndjson``: the same as NDJSON bytes when they were made ahead (:func:`ndjson_buffers`).
    ``terminated``: each message in ``json`` ends in its newline (NDJSON lines).
    """

    __slots__ = ("json", "label", "ndjson", "terminated")

    def __init__(
        self,
        frame: pl.DataFrame,
        label: str | None,
        *,
        json: pl.Series | None = None,
        scheduled_ns: np.ndarray | None = None,
        ndjson: list[bytes | memoryview] | None = None,
        terminated: bool = False,
    ) -> None:
        if json is None:
            json = encode_messages(frame, label)
            terminated = False

        def lines(_frame: pl.DataFrame) -> list[str]:
            return (json.str.strip_suffix("\n") if terminated else json).to_list()

        super().__init__(frame, scheduled_ns=scheduled_ns, encoder=lines)
        self.json = json
        self.label = label
        self.ndjson = ndjson
        self.terminated = terminated

    def write_ndjson(self, fh: IO[bytes]) -> None:
        """Write the batch as NDJSON lines to a binary file."""
        bufs = self.ndjson
        if bufs is None:
            bufs = ndjson_buffers(self.json, terminated=self.terminated)
        for buf in bufs:
            fh.write(buf)
