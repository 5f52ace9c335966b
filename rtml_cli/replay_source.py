"""Preparing a table for replay: read, validate, count and plan the rows to replay.

:func:`prepare_replay` turns a table into a :class:`ReplaySource` before anything is sent:
bad input fails here, so it writes nothing. Memory does not grow with the table: the table is
streamed in record batches (pulled straight from Parquet files, or through polars' streaming
engine for other formats). An unsorted table is the one exception: it is sorted in memory, with
an :class:`~rtml_cli.errors.UnsortedInputWarning`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli.errors import InputError, UnsortedInputWarning
from rtml_cli.io import (
    EVENT_ID,
    EVENT_TIME,
    LABEL_TIME,
    TIME_DTYPE,
    Roles,
    _expand,
    check_time_column,
    label_time_expr,
    resolve_roles,
    scan_table,
    time_expr,
)
from rtml_cli.io import check_reserved_columns as io_check_reserved
from rtml_cli.replay_columns import KIND, TIME, WORKING_COLUMNS
from rtml_cli.replay_options import DEFAULT_CHUNK_ROWS, ReplayOptions, validate_options
from rtml_cli.replay_prefetch import stream_batches


@dataclasses.dataclass
class ReplaySource:
    """A validated table, ready to stream (built by :func:`prepare_replay`).

    Attributes
    ----------
    frame : lazy frame with :data:`~rtml_cli.io.EVENT_ID`, :data:`~rtml_cli.io.EVENT_TIME`,
        (:data:`~rtml_cli.io.LABEL_TIME`), the payload columns and the label, filtered by
        start/end/limit, in stable time order.
    roles : resolved roles.
    source : the table's path.
    notes : what was inferred or fixed.
    payload : the columns an event message carries (the row's columns minus label and label time).
    events, labels : how many event and label messages the stream holds.
    first_time, last_time : event-time span of the replayed events.
    was_sorted : whether the input was already in time order.
    """

    frame: pl.LazyFrame
    roles: Roles
    source: str
    notes: list[str]
    payload: list[str]
    schema: pl.Schema
    events: int
    labels: int
    first_time: dt.datetime | None
    last_time: dt.datetime | None
    was_sorted: bool
    options: ReplayOptions
    #: Pull-based reader of ``frame``'s batches (Parquet): ``reader(chunk_rows)``. When None,
    #: batches come from polars' streaming engine, which may read ahead of a slow consumer.
    reader: Callable[[int], Iterator[pl.DataFrame]] | None = None

    def batches(self, chunk_rows: int) -> Iterator[pl.DataFrame]:
        """The rows to replay in record batches, in stable time order."""
        if self.reader is not None:
            return self.reader(chunk_rows)
        return stream_batches(self.frame, chunk_rows, source=self.source)

    @property
    def messages(self) -> int:
        """Messages in the full stream (before ``start_position`` is skipped)."""
        return self.events + self.labels


def check_reserved_columns(columns: list[str], *, ignore: list[str], source: str) -> None:
    """Raise :class:`InputError` for a table column named like a message field or one of
    replay's working columns (unless ignored)."""
    io_check_reserved(columns, ignore=ignore, source=source, also=WORKING_COLUMNS)


def _collect(lf: pl.LazyFrame, *, source: str, what: str) -> pl.DataFrame:
    """Collect with the streaming engine (bounded memory), errors named after ``source``."""
    try:
        return lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"cannot read table '{source}' while {what}: {first}. The file may be corrupt or "
            "not of the format its name says."
        ) from None


def _parquet_batches(
    files: list[str],
    columns: list[str],
    schema: pl.Schema,
    plan: Callable[[pl.DataFrame], pl.DataFrame],
    window: list[pl.Expr],
    limit: int | None,
    chunk_rows: int,
    *,
    source: str,
) -> Generator[pl.DataFrame, None, None]:
    """Record batches of Parquet files, read only when asked for (bounded memory).

    Each raw batch goes through ``plan`` (the same expressions as the lazy query: time, label
    time, null-time rows dropped), gets its event ids from a running count, then the
    ``--start/--end`` window and ``--limit`` apply.
    """
    import pyarrow.parquet as pq

    next_id = 0
    left = limit
    for path in files:
        try:
            # pre_buffer (the default) reads whole column chunks ahead: memory would grow with
            # the file. A small read buffer keeps it flat at a small cost in speed.
            pfile = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            raw_batches = pfile.iter_batches(batch_size=chunk_rows, columns=columns)
            for rb in raw_batches:
                raw = pl.from_arrow(rb)
                assert isinstance(raw, pl.DataFrame)
                raw = raw.cast({c: schema[c] for c in columns if raw.schema[c] != schema[c]})
                out = plan(raw)
                out = out.with_row_index(EVENT_ID, offset=next_id).with_columns(
                    pl.col(EVENT_ID).cast(pl.Int64)
                )
                next_id += out.height
                if window:
                    out = out.filter(*window)
                if left is not None:
                    out = out.head(left)
                    left -= out.height
                if out.height:
                    yield out
                if left == 0:
                    return
        except (OSError, pl.exceptions.PolarsError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"cannot read table '{source}' ({path}) while replaying: {first}. "
                "The file may be corrupt."
            ) from None


def _time_columns(roles: Roles, *, has_label_time: bool) -> list[str]:
    cols = [EVENT_TIME]
    if has_label_time:
        cols.append(LABEL_TIME)
    if roles.label is not None:
        cols.append(roles.label)  # counted, and checked against a label-time column
    return cols


def _scan_times(
    batches: Iterator[pl.DataFrame], roles: Roles, *, has_label_time: bool
) -> dict[str, Any]:
    """Sortedness of :data:`~rtml_cli.io.EVENT_TIME` and label-time sanity, over bounded
    batches of those columns.

    Also counts rows and labels and keeps the first and last time: the counts of the replay
    when no ``--start/--end/--limit`` narrows it (saves a pass over the table).
    """
    stats: dict[str, Any] = {"rows": 0, "unsorted": 0, "early": 0, "nolt": 0, "labels": 0}
    stats["first"] = last = None
    for batch in batches:
        if batch.height == 0:
            continue
        t = batch[EVENT_TIME]
        stats["rows"] += batch.height
        if stats["first"] is None:
            stats["first"] = t[0]
        if roles.label is not None:
            stats["labels"] += int(batch[roles.label].is_not_null().sum())
        if not stats["unsorted"]:
            if (last is not None and t[0] is not None and t[0] < last) or not t.is_sorted():
                stats["unsorted"] = 1
        last = t[-1]
        if has_label_time:
            bad = batch.filter(pl.col(LABEL_TIME) < pl.col(EVENT_TIME))
            if bad.height:
                if not stats["early"]:
                    stats["early_t"], stats["early_l"] = bad[EVENT_TIME][0], bad[LABEL_TIME][0]
                stats["early"] += bad.height
            if roles.label_time is not None and roles.label is not None:
                stats["nolt"] += int(
                    (batch[roles.label].is_not_null() & batch[LABEL_TIME].is_null()).sum()
                )
    stats["last"] = last
    return stats


def _count(lf: pl.LazyFrame, roles: Roles, *, source: str) -> dict[str, Any]:
    """Events, labels and event-time span of the rows to replay (one lazy aggregate)."""
    counts = [
        pl.len().alias("events"),
        pl.col(EVENT_TIME).min().alias("first"),
        pl.col(EVENT_TIME).max().alias("last"),
        pl.col(roles.label).is_not_null().sum().alias("labels")
        if roles.label
        else pl.lit(0).alias("labels"),
    ]
    return _collect(lf.select(counts), source=source, what="counting rows").row(0, named=True)


def prepare_replay(path: str | Path, roles: Roles, opts: ReplayOptions) -> ReplaySource:
    """Open, validate and plan the replay of a table. Nothing is sent, nothing is written.

    Raises
    ------
    UsageError
        Contradictory options.
    InputError
        Missing/corrupt/empty table, missing column, unparseable or null times, labels that
        arrive before their event.
    """
    validate_options(opts)
    source = str(path)
    lf = scan_table(source)
    schema = lf.collect_schema()
    check_reserved_columns(schema.names(), ignore=roles.ignore, source=source)
    ignored_internal = [c for c in schema.names() if c in WORKING_COLUMNS and c in roles.ignore]
    if ignored_internal:  # left out of messages: dropped before rtml adds its own columns
        lf = lf.drop(ignored_internal)
    roles, notes = resolve_roles(schema, roles, source=source)
    lf, _dropped = check_time_column(
        lf, schema, roles, source=source, drop_null_time=opts.drop_null_time
    )
    lexpr = label_time_expr(schema, roles, label_delay_us=opts.label_delay_us)
    if lexpr is not None:
        lf = lf.with_columns(lexpr.alias(LABEL_TIME))

    files, fmt = _expand(source)
    t_expr = time_expr(schema, roles).alias(EVENT_TIME)

    def parquet_reader(
        out_cols: list[str], window: list[pl.Expr], limit: int | None
    ) -> Callable[[int], Iterator[pl.DataFrame]]:
        """Pull-based batches of ``out_cols`` (+ event id) straight from the Parquet files."""
        raw_cols = {*out_cols, roles.time, roles.label_time, roles.label}
        needed = [c for c in schema.names() if c in raw_cols]

        def prep(raw: pl.DataFrame) -> pl.DataFrame:
            # the same steps as the lazy query, on one batch
            df = raw.with_columns(t_expr)
            if opts.drop_null_time:
                df = df.filter(pl.col(EVENT_TIME).is_not_null())
            if lexpr is not None:
                df = df.with_columns(lexpr.alias(LABEL_TIME))
            return df.select(out_cols)

        return lambda chunk: _parquet_batches(
            files, needed, schema, prep, window, limit, chunk, source=source
        )

    # One pass over the time columns only, in bounded batches: sortedness and label times.
    tcols = _time_columns(roles, has_label_time=lexpr is not None)
    if fmt == "parquet":
        time_batches = parquet_reader(tcols, [], None)(DEFAULT_CHUNK_ROWS)
    else:
        time_batches = stream_batches(lf.select(tcols), DEFAULT_CHUNK_ROWS, source=source)
    stats = _scan_times(time_batches, roles, has_label_time=lexpr is not None)
    if stats.get("early"):
        raise InputError(
            f"label-time column '{roles.label_time}' of {source} is before the event time in "
            f"{stats['early']} row(s), e.g. an event at {stats['early_t']} has its label at "
            f"{stats['early_l']}. A label cannot be known before its event: fix the column or "
            "use --label-delay."
        )
    if stats.get("nolt"):
        raise InputError(
            f"label-time column '{roles.label_time}' of {source} is null or unparseable in "
            f"{stats['nolt']} row(s) that have a label. Fill it, or pass --time-format."
        )
    was_sorted = stats["unsorted"] == 0
    if not was_sorted:
        warnings.warn(
            f"{source} is not sorted by '{roles.time}'; rtml sorted it in memory (stable: ties "
            "keep table order). Sort the table first to replay it in bounded memory.",
            UnsortedInputWarning,
            stacklevel=2,
        )
        notes.append(f"table was not sorted by '{roles.time}': sorted it (stable)")
        lf = (
            _collect(lf, source=source, what="sorting by time")
            .sort(EVENT_TIME, maintain_order=True)
            .lazy()
        )

    lf = lf.with_row_index(EVENT_ID).with_columns(pl.col(EVENT_ID).cast(pl.Int64))
    window: list[pl.Expr] = []
    if opts.start is not None:
        window.append(pl.col(EVENT_TIME) >= pl.lit(opts.start).cast(TIME_DTYPE))
    if opts.end is not None:
        window.append(pl.col(EVENT_TIME) < pl.lit(opts.end).cast(TIME_DTYPE))
    if window:
        lf = lf.filter(*window)
    if opts.limit is not None:
        lf = lf.head(opts.limit)

    skip = {roles.label, roles.label_time, *roles.ignore}
    payload = [c for c in schema.names() if c not in skip]
    keep = [EVENT_ID, EVENT_TIME, *([LABEL_TIME] if lexpr is not None else []), *payload]
    if roles.label is not None:
        keep.append(roles.label)
    lf = lf.select(keep)

    reader = None
    if was_sorted and fmt == "parquet" and not window and opts.limit is None:
        # the whole table: the time scan above counted it already
        reader = parquet_reader(keep[1:], window, opts.limit)
        c: dict[str, Any] = {k: stats[k] for k in ("labels", "first", "last")}
        c["events"] = stats["rows"]
    elif was_sorted and fmt == "parquet":
        reader = parquet_reader(keep[1:], window, opts.limit)
        narrow = [EVENT_TIME, *([roles.label] if roles.label else [])]
        c = {"events": 0, "labels": 0, "first": None, "last": None}
        for b in parquet_reader(narrow, window, opts.limit)(DEFAULT_CHUNK_ROWS):
            c["events"] += b.height
            c["labels"] += int(b[roles.label].is_not_null().sum()) if roles.label else 0
            c["first"] = b[EVENT_TIME][0] if c["first"] is None else c["first"]
            c["last"] = b[EVENT_TIME][-1]
    else:
        c = _count(lf, roles, source=source)
    if c["events"] == 0:
        bounds = [f"at or after --start {opts.start}"] if opts.start else []
        bounds += [f"before --end {opts.end}"] if opts.end else []
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise InputError(
            f"no event of {source} lies{where or ' in the selection'}; nothing to replay."
        )

    msg_schema = pl.Schema(
        [(KIND, pl.String()), (EVENT_ID, pl.Int64()), (TIME, TIME_DTYPE)]
        + [(cname, schema[cname]) for cname in payload]
        + ([(roles.label, schema[roles.label])] if roles.label else [])
    )
    return ReplaySource(
        reader=reader,
        frame=lf,
        roles=roles,
        source=source,
        notes=notes,
        payload=payload,
        schema=msg_schema,
        events=int(c["events"]),
        labels=int(c["labels"]),
        first_time=c["first"],
        last_time=c["last"],
        was_sorted=was_sorted,
        options=opts,
    )
