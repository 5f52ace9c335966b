"""Replay: a historical table becomes an ordered, paced stream of event and label messages.

docs/semantics.md, "Replay order and ties" and "Replay messages". Event *i* is sent at ``t_i`` (delayed by a
seeded amount in ``[0, D]`` under ``disorder``), its label at ``l_i`` (the label-time column, or
``t_i`` + label delay; never before the event message, never for a null label). Ties are broken
by time, then events before labels, then table order.

Memory does not grow with the table: the table is streamed in record batches and only the
messages that are not yet due (labels waiting for their arrival time, events held back by
disorder) are kept between batches. An unsorted table is the one exception: it is sorted in
memory, with an :class:`~rtml_cli.errors.UnsortedInputWarning`.

Pacing is scheduled against the start: the target wall time of message *k* is computed from the
start of the replay (:class:`Schedule`), the loop sleeps until the next message is due and then
sends every message that is due as one batch. Lateness (actual send - scheduled) is recorded
per message in a log-bucketed histogram (:class:`LatencyHistogram`).

Examples
--------
>>> from rtml_cli.io import Roles
>>> opts = ReplayOptions(label_delay_us=60_000_000, limit=100)
>>> path = "sample_data/clickstream.parquet"
>>> summary = replay(path, Roles(), opts, to="o.ndjson")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import polars as pl

from rtml_cli.errors import InputError, UnsortedInputWarning, UsageError
from rtml_cli.io import (
    EVENT_ID,
    TIME_DTYPE,
    L,
    Roles,
    T,
    _expand,
    check_time_column,
    label_time_expr,
    resolve_roles,
    scan_table,
    time_expr,
)
from rtml_cli.io import check_reserved_columns as io_check_reserved
from rtml_cli.replay_guard import check_output, resolve_start_position
from rtml_cli.replay_progress import Progress
from rtml_cli.sinks.base import MessageBatch, Sink, open_sink

#: Message columns that every message frame starts with.
KIND = "rtml_kind"
TIME = "rtml_time"
#: Column of pre-encoded JSON messages inside the replay loop (never shown to sinks).
JSON = "rtml_json"
#: Rows read per record batch. Large enough for columnar speed, small enough to bound memory.
DEFAULT_CHUNK_ROWS = 100_000
_PACED_CHUNK_ROWS = 5_000
#: Messages joined into one buffer per write to an NDJSON file (~3-5 MB).
_WRITE_SLICE = 25_000
#: End-of-stream marker between a reading thread and its consumer.
_DONE = object()
_ISO = "%Y-%m-%dT%H:%M:%S%.f"
_Item = TypeVar("_Item")


# --------------------------------------------------------------------------------------------
# Options, plan and summary
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ReplayOptions:
    """What to replay and how fast. Stored as given; checked by :func:`validate_options`.

    Parameters
    ----------
    label_delay_us : fixed label delay when there is no label-time column (default 0).
    drop_null_time : drop rows whose time is null instead of failing.
    start, end : replay only events with ``start <= t < end`` (event time, naive, as in the table).
    limit : replay at most this many events (after ``start``).
    max_gap_us : compress idle gaps of event time longer than this in the pacing schedule.
    disorder_us : delay each event's arrival by a seeded amount in ``[0, disorder_us]``.
    seed : seed of the disorder.
    speed : event-time seconds per wall second.
    rate : messages per wall second.
        Neither ``speed`` nor ``rate``: as fast as possible (``--max-speed``).
    start_position : skip the first N messages of the stream without sending them (resume).
        ``None``: from the target's ``--checkpoint`` file when it exists (checked to belong
        to this target, table and stream), else 0. Beyond the stream's end is an error.
    chunk_rows : rows read per record batch.
    """

    label_delay_us: int | None = None
    drop_null_time: bool = False
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: int | None = None
    max_gap_us: int | None = None
    disorder_us: int = 0
    seed: int = 0
    speed: float | None = None
    rate: float | None = None
    start_position: int | None = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def paced(self) -> bool:
        """Whether messages follow a schedule (``--speed`` or ``--rate``)."""
        return self.speed is not None or self.rate is not None

    def pace_text(self) -> str:
        """The pace in words, for plans and summaries."""
        if self.rate is not None:
            return f"--rate {self.rate:g} messages/s"
        if self.speed is not None:
            gap = f", idle gaps > {_fmt_us(self.max_gap_us)} compressed" if self.max_gap_us else ""
            return f"--speed {self.speed:g} (event-time s per wall s{gap})"
        return "--max-speed (as fast as possible)"


def validate_options(opts: ReplayOptions) -> None:
    """Raise :class:`UsageError` for contradictory or out-of-range options."""
    if opts.speed is not None and opts.rate is not None:
        raise UsageError(
            "--speed and --rate contradict each other: --speed paces by event time, --rate by "
            "message count. Pass one of them (or neither, for --max-speed)."
        )
    for name, value in (("speed", opts.speed), ("rate", opts.rate)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(
                f"The '--{name}' option of replay must be a number > 0. Got {value!r} instead."
            )
    for name, value in (("limit", opts.limit), ("resume-from", opts.start_position)):
        if value is not None and value < 0:
            raise UsageError(
                f"The '--{name}' option of replay must be >= 0. Got {value!r} instead."
            )
    if opts.max_gap_us is not None and opts.speed is None:
        raise UsageError(
            "--max-gap shortens idle gaps of event time, which only --speed follows: with "
            "--rate or --max-speed it has no meaning. Add --speed, or drop --max-gap."
        )
    if opts.max_gap_us is not None and opts.max_gap_us <= 0:
        raise UsageError("The '--max-gap' option of replay must be a duration > 0, such as '1m'.")
    if opts.disorder_us < 0:
        raise UsageError("The '--disorder' option of replay must be a duration >= 0.")
    if opts.chunk_rows < 1:
        raise UsageError(f"chunk_rows must be >= 1. Got {opts.chunk_rows!r} instead.")
    if opts.start is not None and opts.end is not None and opts.start >= opts.end:
        raise UsageError(
            f"--start ({opts.start.isoformat()}) must be before --end ({opts.end.isoformat()})."
        )


@dataclasses.dataclass
class ReplaySource:
    """A validated table, ready to stream (built by :func:`prepare_replay`).

    Attributes
    ----------
    frame : lazy frame with :data:`EVENT_ID`, :data:`T`, (:data:`L`), the payload columns and the
        label, filtered by start/end/limit, in stable time order.
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
        return _stream_batches(self.frame, chunk_rows, source=self.source)

    @property
    def messages(self) -> int:
        """Messages in the full stream (before ``start_position`` is skipped)."""
        return self.events + self.labels


@dataclasses.dataclass
class ReplayPlan:
    """What a replay would do (``--dry-run``): nothing is sent."""

    source: str
    notes: list[str]
    rows: int
    events: int
    labels: int
    messages: int
    skipped: int
    first_time: dt.datetime | None
    last_time: dt.datetime | None
    last_message_time: dt.datetime | None
    pace: str
    expected_wall_s: float | None

    def lines(self) -> list[str]:
        """The plan as human-readable lines."""
        span = _span_text(self.first_time, self.last_time)
        wall = (
            "as fast as the sink takes them"
            if self.expected_wall_s is None
            else _fmt_us(self.expected_wall_s * 1e6)
        )
        out = [
            f"dry run of {self.source}: nothing sent",
            f"rows: {self.rows:,} events, {self.labels:,} labels = {self.messages:,} messages",
            f"event time: {span}",
            f"pace: {self.pace}",
            f"expected wall time: {wall}",
        ]
        if self.skipped:
            out.insert(3, f"resume: the first {self.skipped:,} messages are skipped")
        return out


@dataclasses.dataclass
class ReplaySummary:
    """How a replay went (printed on stderr at the end, also after Ctrl-C)."""

    source: str
    target: str
    sink_name: str
    notes: list[str]
    events: int = 0
    labels: int = 0
    skipped: int = 0
    planned: int = 0
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    wall_s: float = 0.0
    lateness: LatencyHistogram | None = None
    sink_stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    #: the file target was left as it was (an interrupted or failed run writes no file)
    discarded: bool = False
    pace: str = ""

    @property
    def messages(self) -> int:
        """Messages sent."""
        return self.events + self.labels

    @property
    def next_position(self) -> int:
        """The ``--resume-from`` value that continues where this run stopped.

        A network sink's confirmed position wins when it has one: it is what its checkpoint
        holds, and a message can be confirmed after the replay last counted its batch.
        """
        confirmed = self.sink_stats.get("position")
        if isinstance(confirmed, int):
            return confirmed
        return self.skipped + self.messages

    @property
    def rate(self) -> float:
        """Achieved messages per wall second."""
        return self.messages / self.wall_s if self.wall_s > 0 else float("nan")

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (name, value) pairs, for plain or rich rendering."""
        out = [
            ("messages", f"{self.messages:,} ({self.events:,} events, {self.labels:,} labels)"),
            ("event time", _span_text(self.first_time, self.last_time)),
            ("wall time", f"{self.wall_s:.3f}s"),
            ("rate", f"{self.rate:,.0f} messages/s" if self.wall_s > 0 else "-"),
            ("pace", self.pace),
        ]
        if self.lateness is not None and self.lateness.count:
            lat = self.lateness
            out.append(
                (
                    "lateness",
                    f"p50 {_fmt_ns(lat.percentile(50))}, p99 {_fmt_ns(lat.percentile(99))}, "
                    f"max {_fmt_ns(lat.max_ns)} (send - scheduled)",
                )
            )
        else:
            out.append(("lateness", "- (not paced)"))
        if self.skipped:
            out.append(("resumed", f"skipped the first {self.skipped:,} messages"))
        stats = ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in self.sink_stats.items()
        )
        out.append(
            ("sink", f"{self.sink_name} -> {self.target}" + (f" ({stats})" if stats else ""))
        )
        if self.interrupted and self.discarded:
            out.append(
                (
                    "interrupted",
                    f"after {self.messages:,} of {self.planned - self.skipped:,} messages; "
                    f"nothing written: {self.target} was left as it was (a file is written "
                    "whole or not at all). Run the replay again to write it",
                )
            )
        elif self.interrupted:
            out.append(
                (
                    "interrupted",
                    f"after {self.messages:,} of {self.planned - self.skipped:,} messages; "
                    f"continue with --resume-from {self.next_position}",
                )
            )
        return out


def _span_text(first: dt.datetime | None, last: dt.datetime | None) -> str:
    if first is None or last is None:
        return "-"
    span_us = (last - first) / dt.timedelta(microseconds=1)
    return f"{first.isoformat()} -> {last.isoformat()} ({_fmt_us(span_us)})"


def _fmt_us(us: float | None) -> str:
    from rtml_cli.durations import format_duration

    return "-" if us is None else format_duration(us)


def _fmt_ns(ns: float) -> str:
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}us"
    return f"{ns / 1_000_000:.2f}ms"


# --------------------------------------------------------------------------------------------
# Lateness histogram and schedule
# --------------------------------------------------------------------------------------------


class LatencyHistogram:
    """Log-bucketed histogram of non-negative durations in ns (1 % relative precision).

    Memory is fixed whatever the number of samples; the maximum is kept exactly.

    Examples
    --------
    >>> h = LatencyHistogram()
    >>> h.record(np.array([1_000, 2_000, 3_000]))
    >>> h.count, h.max_ns
    (3, 3000)
    """

    _GROWTH = math.log(1.01)
    _BINS = 3_000  # 1.01**3000 us ~ 10**13 us: any lateness fits

    def __init__(self) -> None:
        self.counts = np.zeros(self._BINS, dtype=np.int64)
        self.count = 0
        self.max_ns = 0

    def record(self, values_ns: np.ndarray) -> None:
        """Add samples (negative values, i.e. early sends, count as 0)."""
        if len(values_ns) == 0:
            return
        v = np.maximum(np.asarray(values_ns, dtype=np.float64), 0.0)
        idx = np.minimum((np.log1p(v / 1_000.0) / self._GROWTH).astype(np.int64), self._BINS - 1)
        self.counts += np.bincount(idx, minlength=self._BINS)
        self.count += len(v)
        self.max_ns = max(self.max_ns, int(v.max()))

    def percentile(self, q: float) -> float:
        """The q-th percentile in ns (bucket midpoint, capped at the exact maximum)."""
        if self.count == 0:
            return float("nan")
        rank = max(1, math.ceil(q / 100.0 * self.count))
        b = int(np.searchsorted(np.cumsum(self.counts), rank))
        mid_us = math.expm1((b + 0.5) * self._GROWTH)
        return min(mid_us * 1_000.0, float(self.max_ns))


class Schedule:
    """Target send offsets (ns after the start) of successive messages.

    ``speed``: message at event time ``t`` is due ``(t - t_first) / speed`` after the start, where
    idle gaps between consecutive messages longer than ``max_gap_us`` count as ``max_gap_us``.
    ``rate``: message ``k`` is due ``k / rate`` seconds after the start. State carries over between
    calls, so feeding the stream in chunks gives the same offsets as feeding it at once.

    Examples
    --------
    >>> s = Schedule(speed=2.0)
    >>> s.offsets_ns(np.array([0, 1_000_000, 3_000_000])).tolist()
    [0, 500000000, 1500000000]
    """

    def __init__(
        self,
        *,
        speed: float | None = None,
        rate: float | None = None,
        max_gap_us: int | None = None,
    ) -> None:
        self.speed = speed
        self.rate = rate
        self.max_gap_us = max_gap_us
        self._index = 0
        self._last_us: int | None = None
        self._elapsed_us = 0  # compressed event time since the first message

    def offsets_ns(self, times_us: np.ndarray) -> np.ndarray:
        """Offsets for the next ``len(times_us)`` messages (event times in µs, non-decreasing)."""
        n = len(times_us)
        if self.rate is not None:
            k = np.arange(self._index, self._index + n, dtype=np.float64)
            self._index += n
            return np.round(k * (1e9 / self.rate)).astype(np.int64)
        assert self.speed is not None
        t = np.asarray(times_us, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        prev = t[0] if self._last_us is None else self._last_us
        gaps = np.diff(t, prepend=prev)
        if self.max_gap_us is not None:
            gaps = np.minimum(gaps, self.max_gap_us)
        elapsed = self._elapsed_us + np.cumsum(gaps)
        self._elapsed_us = int(elapsed[-1])
        self._last_us = int(t[-1])
        self._index += n
        return np.round(elapsed.astype(np.float64) * (1e3 / self.speed)).astype(np.int64)


def disorder_delays(event_ids: np.ndarray, *, disorder_us: int, seed: int) -> np.ndarray:
    """Seeded delays in ``[0, disorder_us]`` µs, one per event id.

    A counter-based hash of (seed, event id), so an event gets the same delay however the table
    is chunked or filtered (``--start``/``--limit``): reproducible and stable.
    """
    # splitmix64 of (event id + seed * golden ratio): overflow is the point of it.
    with np.errstate(over="ignore"):
        x = np.asarray(event_ids, dtype=np.uint64) + np.uint64(
            seed & 0xFFFFFFFFFFFFFFFF
        ) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(disorder_us + 1)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Preparing the source
# --------------------------------------------------------------------------------------------


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


def _stream_batches(
    lf: pl.LazyFrame, chunk_rows: int, *, source: str
) -> Generator[pl.DataFrame, None, None]:
    """Record batches of ``lf`` with back-pressure: memory holds a couple of batches at most.

    ``collect_batches`` runs the query ahead of a slow consumer and buffers what it read, so
    memory grows with the table. ``sink_batches`` calls us from inside the streaming engine
    instead: blocking on a small queue there stops the engine until the consumer catches up,
    and returning True stops it early when the consumer goes away.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def on_batch(df: pl.DataFrame) -> bool | None:
        return None if put(df) else True

    def work() -> None:
        try:
            lf.sink_batches(on_batch, chunk_size=chunk_rows, engine="streaming")
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(exc)

    thread = threading.Thread(target=work, name="rtml-replay-scan", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, pl.exceptions.PolarsError):
                first = (str(item).strip().splitlines() or [type(item).__name__])[0]
                raise InputError(
                    f"cannot read table '{source}': {first}. The file may be corrupt or not of "
                    "the format its name says."
                ) from None
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


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
    cols = [T]
    if has_label_time:
        cols.append(L)
    if roles.label is not None:
        cols.append(roles.label)  # counted, and checked against a label-time column
    return cols


def _scan_times(
    batches: Iterator[pl.DataFrame], roles: Roles, *, has_label_time: bool
) -> dict[str, Any]:
    """Sortedness of :data:`T` and label-time sanity, over bounded batches of those columns.

    Also counts rows and labels and keeps the first and last time: the counts of the replay
    when no ``--start/--end/--limit`` narrows it (saves a pass over the table).
    """
    stats: dict[str, Any] = {"rows": 0, "unsorted": 0, "early": 0, "nolt": 0, "labels": 0}
    stats["first"] = last = None
    for batch in batches:
        if batch.height == 0:
            continue
        t = batch[T]
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
            bad = batch.filter(pl.col(L) < pl.col(T))
            if bad.height:
                if not stats["early"]:
                    stats["early_t"], stats["early_l"] = bad[T][0], bad[L][0]
                stats["early"] += bad.height
            if roles.label_time is not None and roles.label is not None:
                stats["nolt"] += int((batch[roles.label].is_not_null() & batch[L].is_null()).sum())
    stats["last"] = last
    return stats


def _count(lf: pl.LazyFrame, roles: Roles, *, source: str) -> dict[str, Any]:
    """Events, labels and event-time span of the rows to replay (one lazy aggregate)."""
    counts = [
        pl.len().alias("events"),
        pl.col(T).min().alias("first"),
        pl.col(T).max().alias("last"),
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
    ignored_internal = [c for c in schema.names() if c in _INTERNAL and c in roles.ignore]
    if ignored_internal:  # left out of messages: dropped before rtml adds its own columns
        lf = lf.drop(ignored_internal)
    roles, notes = resolve_roles(schema, roles, source=source)
    lf, _dropped = check_time_column(
        lf, schema, roles, source=source, drop_null_time=opts.drop_null_time
    )
    lexpr = label_time_expr(schema, roles, label_delay_us=opts.label_delay_us)
    if lexpr is not None:
        lf = lf.with_columns(lexpr.alias(L))

    files, fmt = _expand(source)
    t_expr = time_expr(schema, roles).alias(T)

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
                df = df.filter(pl.col(T).is_not_null())
            if lexpr is not None:
                df = df.with_columns(lexpr.alias(L))
            return df.select(out_cols)

        return lambda chunk: _parquet_batches(
            files, needed, schema, prep, window, limit, chunk, source=source
        )

    # One pass over the time columns only, in bounded batches: sortedness and label times.
    tcols = _time_columns(roles, has_label_time=lexpr is not None)
    if fmt == "parquet":
        time_batches = parquet_reader(tcols, [], None)(DEFAULT_CHUNK_ROWS)
    else:
        time_batches = _stream_batches(lf.select(tcols), DEFAULT_CHUNK_ROWS, source=source)
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
        lf = _collect(lf, source=source, what="sorting by time").sort(T, maintain_order=True).lazy()

    lf = lf.with_row_index(EVENT_ID).with_columns(pl.col(EVENT_ID).cast(pl.Int64))
    window: list[pl.Expr] = []
    if opts.start is not None:
        window.append(pl.col(T) >= pl.lit(opts.start).cast(TIME_DTYPE))
    if opts.end is not None:
        window.append(pl.col(T) < pl.lit(opts.end).cast(TIME_DTYPE))
    if window:
        lf = lf.filter(*window)
    if opts.limit is not None:
        lf = lf.head(opts.limit)

    skip = {roles.label, roles.label_time, *roles.ignore}
    payload = [c for c in schema.names() if c not in skip]
    keep = [EVENT_ID, T, *([L] if lexpr is not None else []), *payload]
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
        narrow = [T, *([roles.label] if roles.label else [])]
        c = {"events": 0, "labels": 0, "first": None, "last": None}
        for b in parquet_reader(narrow, window, opts.limit)(DEFAULT_CHUNK_ROWS):
            c["events"] += b.height
            c["labels"] += int(b[roles.label].is_not_null().sum()) if roles.label else 0
            c["first"] = b[T][0] if c["first"] is None else c["first"]
            c["last"] = b[T][-1]
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


# --------------------------------------------------------------------------------------------
# The ordered message stream
# --------------------------------------------------------------------------------------------

#: Column of each row's label arrival time inside the replay loop.
_ARRIVAL = "rtml_label_arrival"


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Give ``frame`` exactly the message schema (missing fields become typed nulls)."""
    return frame.select(
        [
            pl.col(c) if c in frame.columns else pl.lit(None, dtype=d).alias(c)
            for c, d in schema.items()
        ]
    )


def _micros(frame: pl.DataFrame) -> np.ndarray:
    """The :data:`TIME` column of ``frame`` as int64 µs (its physical values, no copy)."""
    return frame[TIME].to_physical().to_numpy()


def merge_order(ev_times: np.ndarray, lab_times: np.ndarray) -> np.ndarray:
    """Arrival order of events followed by labels, each already in (time, event id) order.

    Returns the permutation that gathers ``[events..., labels...]`` into arrival order: by
    time, events before labels at the same time, each kind keeping its own order. A stable
    sort of one int64 key per message, ``time * 2 + kind`` (timsort: two sorted runs, a
    linear merge).

    Examples
    --------
    >>> merge_order(np.array([0, 5, 5]), np.array([0, 5, 9])).tolist()
    [0, 3, 1, 2, 4, 5]
    """
    key = np.concatenate([ev_times * 2, lab_times * 2 + 1])
    return np.argsort(key, kind="stable")


def _split_due(
    part: pl.DataFrame | None, watermark_us: int, *, inclusive: bool
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Put ``part`` in (time, event id) order and split it into (due, pending) at the watermark.

    Due are messages before the watermark (``inclusive``: at it too). Ordered, the due ones are
    a prefix, so the split is two zero-copy slices.
    """
    if part is None or part.height == 0:
        return part, None
    if not part[TIME].is_sorted():
        part = part.sort([TIME, EVENT_ID])
    k = int(np.searchsorted(_micros(part), watermark_us, side="right" if inclusive else "left"))
    return part.slice(0, k), part.slice(k)


def iter_messages(
    src: ReplaySource,
    *,
    encode: bool = False,
    narrow: bool = False,
    chunk_rows: int | None = None,
    parallel: bool = True,
) -> Iterator[pl.DataFrame]:
    """Yield the message stream as frames in arrival order (schema ``src.schema``).

    ``options.start_position`` messages are dropped from the front. Memory holds one record
    batch (two when encoding runs ahead in its own thread: ``encode`` and ``parallel``) plus
    the messages not yet due. With ``encode``, each frame has one more column,
    :data:`JSON`: the message as a flat JSON object, encoded per kind before events and labels
    are merged (so no message is encoded twice and no frame is split again by kind). With
    ``narrow`` too, frames hold only kind, event id, time and :data:`JSON` (for sinks that only
    write JSON: ordering narrow frames is much cheaper).
    """
    opts = src.options
    label = src.roles.label
    disorder = opts.disorder_us
    pending_ev: pl.DataFrame | None = None
    pending_lab: pl.DataFrame | None = None
    to_skip = opts.start_position
    out_schema = pl.Schema([*src.schema.items(), (JSON, pl.String())]) if encode else src.schema
    narrow = narrow and encode
    if narrow:
        out_schema = pl.Schema([(c, out_schema[c]) for c in (KIND, EVENT_ID, TIME, JSON)])
    ev_cols = [pl.lit("event").alias(KIND), pl.col(EVENT_ID), pl.col(TIME)]
    lab_cols = [pl.lit("label").alias(KIND), pl.col(EVENT_ID), pl.col(_ARRIVAL).alias(TIME)]
    if not narrow:
        ev_cols += map(pl.col, src.payload)
        lab_cols += [pl.col(label)] if label else []
    encoder = MessageEncoder(src.schema, src.payload, label, time_col=src.roles.time)
    parts = max(1, pl.thread_pool_size()) if parallel else 1

    def emit(due_ev: pl.DataFrame | None, due_lab: pl.DataFrame | None) -> pl.DataFrame | None:
        nonlocal to_skip
        kinds = [p for p in (due_ev, due_lab) if p is not None and p.height]
        if not kinds:
            return None
        if not narrow:
            kinds = [_conform(p, out_schema) for p in kinds]
        if len(kinds) == 1:
            out = kinds[0]
        else:
            order = merge_order(_micros(kinds[0]), _micros(kinds[1]))
            # one chunk first: gathering from two chunks is twice as slow
            out = pl.concat(kinds, rechunk=True)[order]
        if to_skip:
            n = min(to_skip, out.height)
            to_skip -= n
            out = out.slice(n)
        return out if out.height else None

    def prepared() -> Generator[tuple[int, pl.DataFrame, pl.DataFrame | None], None, None]:
        """Each record batch as (watermark, its events, its labels), encoded when asked."""
        for batch in src.batches(chunk_rows or opts.chunk_rows):
            if batch.height == 0:
                continue
            # batches are in time order: later events are at or after the watermark
            watermark = int(batch[T].to_physical()[-1])
            arrival = pl.col(T)
            if disorder:
                delays = disorder_delays(
                    batch[EVENT_ID].to_numpy(), disorder_us=disorder, seed=opts.seed
                )
                arrival = arrival + pl.Series(delays).cast(pl.Duration("us"))
            frame = batch.with_columns(arrival.alias(TIME))
            if label is not None:
                # A label never arrives before its event message (disorder may delay the event).
                lab_at = pl.max_horizontal(pl.col(L), pl.col(TIME)) if disorder else pl.col(L)
                frame = frame.with_columns(lab_at.alias(_ARRIVAL))
            ev_json, lab_json = encoder.encode(frame, parts=parts) if encode else (None, None)
            ev = frame.select(ev_cols)
            if ev_json is not None:
                ev = ev.with_columns(ev_json)
            lab = None
            if label is not None:
                lab = frame.select(lab_cols)
                if lab_json is not None:
                    lab = lab.with_columns(lab_json)
                if frame[label].null_count():  # a null label sends no label message
                    lab = lab.filter(frame[label].is_not_null())
            yield watermark, ev, lab

    # Encoding in a thread of its own overlaps it with ordering this batch and with whatever
    # the consumer does (writing): polars releases the GIL while it works.
    source = _prefetch(prepared(), depth=1) if encode and parallel else prepared()
    try:
        for watermark, ev, lab in source:
            due_lab = None
            if lab is not None:
                if pending_lab is not None and pending_lab.height:
                    lab = pl.concat([pending_lab, lab])
                # a label at the watermark waits for the events at the watermark
                due_lab, pending_lab = _split_due(lab, watermark, inclusive=False)
            if disorder:
                if pending_ev is not None and pending_ev.height:
                    ev = pl.concat([pending_ev, ev])
                due_ev, pending_ev = _split_due(ev, watermark, inclusive=True)
            else:
                due_ev = ev
            out = emit(due_ev, due_lab)
            if out is not None:
                yield out
        out = emit(pending_ev, pending_lab)
        if out is not None:
            yield out
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"cannot read table '{src.source}' while replaying: {first}. The file may be corrupt."
        ) from None
    finally:
        source.close()


# --------------------------------------------------------------------------------------------
# JSON encoding
# --------------------------------------------------------------------------------------------

#: Characters that polars' JSON writer escapes in a string: control characters, quote, backslash.
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
#: Text columns computed once per batch and shared by both kinds of message.
_ID_TEXT = "rtml_id_text"
_TIME_TEXT = "rtml_time_text"
#: Replay's working columns: a table column may not have these names either (unless ignored).
_INTERNAL = (JSON, _ARRIVAL, _ID_TEXT, _TIME_TEXT)


def check_reserved_columns(columns: list[str], *, ignore: list[str], source: str) -> None:
    """Raise :class:`InputError` for a table column named like a message field or one of
    replay's working columns (unless ignored)."""
    io_check_reserved(columns, ignore=ignore, source=source, also=_INTERNAL)


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
            checks.append(pl.col(c).str.contains(_NEEDS_ESCAPE).any().not_().alias(c))
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
) -> pl.Expr:
    """One flat JSON object per row over ``fields``, in that order (String, named :data:`JSON`).

    One ``concat_str`` over literal names and value texts, so that most fields skip a JSON
    encoder: datetimes as ISO-8601, integers, booleans, finite floats and strings without
    escapes (``plain``) as their text, the message kind as a literal when ``kind`` is given.
    Runs of other fields (escaped strings, dates, nested values) go through
    ``struct.json_encode``, braces dropped. A field reads the frame column ``source[field]``
    (default: its own name); ``text`` maps a field to a column already holding its text.
    Only ``nullable`` columns pay for writing ``null``.
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
    literal("}")
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
    schema : the message schema (:attr:`ReplaySource.schema`).
    payload : the columns of an event message after kind, id and time.
    label : the label column, or None (events only).
    time_col : the table's time column (a payload column too, unless ignored).
    """

    def __init__(
        self, schema: pl.Schema, payload: list[str], label: str | None, *, time_col: str | None
    ) -> None:
        self.schema = schema
        self.payload = payload
        self.label = label
        # The table's time column holds the instant of T when it is already in T's type.
        self.same_as_t = time_col if time_col and schema.get(time_col) == TIME_DTYPE else None

    def encode(self, frame: pl.DataFrame, *, parts: int = 1) -> tuple[pl.Series, pl.Series | None]:
        """JSON of every row's event message, and of its label message (null for a null label).

        ``frame`` holds :data:`EVENT_ID`, :data:`T` (event time), :data:`TIME` (the event's
        arrival), the payload, and with a label the label and its arrival (``_ARRIVAL``).
        Encoded in ``parts`` slices run in parallel (one polars expression uses one core).
        """
        label = self.label
        cols = [*self.payload, *([label] if label else [])]
        nullable = {c for c in cols if frame[c].null_count()}
        plain = _plain_columns(frame, cols)
        shared = [pl.col(EVENT_ID).cast(pl.String).alias(_ID_TEXT)]
        ev_text = {EVENT_ID: _ID_TEXT}
        t_used = False
        if frame[TIME].equals(frame[T]):  # no disorder: the event arrives at its own time
            ev_text[TIME] = _TIME_TEXT
            t_used = True
        if self.same_as_t is not None and self.same_as_t in self.payload:
            ev_text[self.same_as_t] = _TIME_TEXT
            t_used = True
        ev_expr = _json_expr(
            [KIND, EVENT_ID, TIME, *self.payload],
            self.schema,
            kind="event",
            text=ev_text,
            nullable=nullable,
            plain=plain,
        )
        exprs = [ev_expr]
        if label is not None:
            lab_text = {EVENT_ID: _ID_TEXT}
            if frame[_ARRIVAL].equals(frame[T]):  # e.g. no label delay: the time is shared
                lab_text[TIME] = _TIME_TEXT
                t_used = True
            lab_expr = _json_expr(
                [KIND, EVENT_ID, label, TIME],
                self.schema,
                kind="label",
                source={TIME: _ARRIVAL},
                text=lab_text,
                nullable=nullable - {label},  # null labels send no message: left null
                plain=plain,
            )
            exprs.append(lab_expr.alias(JSON + "_label"))
        if t_used:
            shared.append(_iso(T, TIME_DTYPE).alias(_TIME_TEXT))
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


def ndjson_buffers(json: pl.Series) -> list[bytes | memoryview]:
    """Encoded messages as NDJSON bytes (each line ends in a newline), in a few large buffers.

    polars joins a slice of messages into one string, whose Arrow data buffer is handed on as
    is: one copy, no Python object per message. Slices of a few MB keep the bytes in cache for
    the kernel's copy into the page cache.
    """
    n = len(json)
    if n < 256:
        return [("\n".join(json.to_list()) + "\n").encode()] if n else []
    import pyarrow as pa

    out: list[bytes | memoryview] = []
    for i in range(0, n, _WRITE_SLICE):
        text = json.slice(i, _WRITE_SLICE).str.join("\n").to_arrow()
        if text.type != pa.large_string():
            text = text.cast(pa.large_string())
        _validity, offsets, data = text.buffers()
        start, end = np.frombuffer(offsets, dtype=np.int64, count=2, offset=8 * text.offset)
        out += [memoryview(data)[start:end], b"\n"]
    return out


class ReplayBatch(MessageBatch):
    """A :class:`MessageBatch` that carries its messages already encoded (``json``, a Series).

    Sinks that only know the protocol call :meth:`json_lines`; file sinks call
    :meth:`write_ndjson`, which writes the encoded column without a Python object per message.
    ``ndjson``: the same as NDJSON bytes when they were made ahead (:func:`ndjson_buffers`).
    """

    __slots__ = ("json", "label", "ndjson")

    def __init__(
        self,
        frame: pl.DataFrame,
        label: str | None,
        *,
        json: pl.Series | None = None,
        scheduled_ns: np.ndarray | None = None,
        ndjson: list[bytes | memoryview] | None = None,
    ) -> None:
        if json is None:
            json = encode_messages(frame, label)
        super().__init__(frame, scheduled_ns=scheduled_ns, encoder=lambda _f: json.to_list())
        self.json = json
        self.label = label
        self.ndjson = ndjson

    def write_ndjson(self, fh: IO[bytes]) -> None:
        """Write the batch as NDJSON lines to a binary file."""
        for buf in self.ndjson if self.ndjson is not None else ndjson_buffers(self.json):
            fh.write(buf)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _prefetch(it: Iterator[_Item], depth: int = 2) -> Generator[_Item, None, None]:
    """Run ``it`` in a background thread, ``depth`` items ahead.

    Reading and ordering the next record batch overlaps with sending the current one, so a paced
    replay is not late at batch boundaries (polars releases the GIL while it works).
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    thread = threading.Thread(target=work, name="rtml-replay-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def plan_replay(
    path: str | Path,
    roles: Roles,
    opts: ReplayOptions,
    *,
    to: str = "-",
    sink_options: dict[str, Any] | None = None,
    force: bool = False,
) -> ReplayPlan:
    """``--dry-run``: validate and describe the replay; nothing is sent or written.

    The target and a resume checkpoint are checked as :func:`replay` would. The expected wall
    time is exact: the message stream is built (not encoded, not sent) and run through the
    pacing :class:`Schedule`.
    """
    check_output(path, to, force=force)
    src = prepare_replay(path, roles, opts)
    src = resolve_start_position(src, to, dict(sink_options or {}))
    opts = src.options
    assert opts.start_position is not None
    expected: float | None = None
    last_msg: dt.datetime | None = None
    sent = 0
    sched = (
        Schedule(speed=opts.speed, rate=opts.rate, max_gap_us=opts.max_gap_us)
        if opts.paced
        else None
    )
    last_off = 0
    for frame in iter_messages(src):
        sent += frame.height
        last_msg = frame[TIME][-1]
        if sched is not None:
            last_off = int(sched.offsets_ns(frame[TIME].cast(pl.Int64).to_numpy())[-1])
    if sched is not None:
        expected = last_off / 1e9
    return ReplayPlan(
        source=src.source,
        notes=src.notes,
        rows=src.events,
        events=src.events,
        labels=src.labels,
        messages=src.messages,
        skipped=min(opts.start_position, src.messages),
        first_time=src.first_time,
        last_time=src.last_time,
        last_message_time=last_msg,
        pace=opts.pace_text(),
        expected_wall_s=expected,
    )


def _account(summary: ReplaySummary, frame: pl.DataFrame, kinds: np.ndarray, sent: int) -> None:
    """Count the first ``sent`` messages of ``frame`` as sent."""
    if sent:
        n_ev = int(kinds[:sent].sum())
        summary.events += n_ev
        summary.labels += sent - n_ev
        summary.last_time = frame[TIME][sent - 1]


def run_replay(
    src: ReplaySource, sink: Sink, *, target: str = "", progress: Progress | None = None
) -> ReplaySummary:
    """Send the stream of ``src`` to ``sink`` (opened here, always closed).

    A Ctrl-C (``KeyboardInterrupt``) stops the replay cleanly: the sink is flushed and closed and
    the summary comes back with ``interrupted=True`` and how far it got. A file sink then
    discards its output (the target keeps its previous content), as it does when the replay
    fails. ``progress`` is updated as messages go out (rate-limited by itself).
    """
    opts = src.options
    assert opts.start_position is not None, "resolve the start position first"
    label = src.roles.label
    summary = ReplaySummary(
        source=src.source,
        target=target,
        sink_name=getattr(sink, "name", type(sink).__name__),
        notes=list(src.notes),
        skipped=min(opts.start_position, src.messages),
        planned=src.messages,
        pace=opts.pace_text(),
    )
    sched = (
        Schedule(speed=opts.speed, rate=opts.rate, max_gap_us=opts.max_gap_us)
        if opts.paced
        else None
    )
    hist = LatencyHistogram() if sched is not None else None
    summary.lateness = hist
    clock = time.perf_counter_ns
    t_start = clock()
    start_ns: int | None = None
    # A sink that only writes JSON lines says so (needs_frame = False): it gets frames of
    # kind, event id and time only, which keeps ordering cheap.
    narrow = not getattr(sink, "needs_frame", True)
    # Paced: small record batches, so that reading and encoding ahead come in small slices of
    # CPU that do not delay the sends competing with them for the cores.
    chunk = min(opts.chunk_rows, _PACED_CHUNK_ROWS) if sched is not None else None
    # --max-speed to an NDJSON file or stdout: the NDJSON bytes are made ahead too.
    ahead = sched is None and getattr(sink, "writes_ndjson", False)

    def staged() -> Iterator[tuple[pl.DataFrame, pl.Series, np.ndarray, list[Any] | None]]:
        # Runs in the reading thread, so that the sending thread only sends (at --max-speed to
        # a file: only write system calls) while polars' pool works on the next batch.
        # Paced, encoding uses one core and leaves the other to the send loop.
        messages = iter_messages(
            src, encode=True, narrow=narrow, chunk_rows=chunk, parallel=sched is None
        )
        for frame in messages:
            json = frame[JSON]
            frame = frame.drop(JSON)
            kinds = (frame[KIND] == "event").to_numpy()
            yield frame, json, kinds, ndjson_buffers(json) if ahead else None

    stream = _prefetch(staged(), depth=2 if sched is not None else 1)
    import sys

    switch = sys.getswitchinterval()
    if sched is not None:
        # The reader thread must hand the GIL back to the send loop within ~0.5 ms, not the
        # default 5 ms, or sends are late by that much whenever it holds it.
        sys.setswitchinterval(0.0005)
    try:
        sink.open()
        t_start = clock()
        for frame, json, kinds, ndjson in stream:
            if getattr(sink, "closed_by_reader", False):  # e.g. `rtml replay t | head`
                break
            if summary.first_time is None:
                summary.first_time = frame[TIME][0]
            if sched is None:
                sink.write(ReplayBatch(frame, label, json=json, ndjson=ndjson))
                if getattr(sink, "closed_by_reader", False):
                    break
                _account(summary, frame, kinds, frame.height)
                if progress is not None and progress.due(clock()):
                    progress.update(summary.messages, summary.last_time, None)
                continue
            assert hist is not None
            times = frame[TIME].cast(pl.Int64).to_numpy()
            if start_ns is None:
                start_ns = clock()
            due = start_ns + sched.offsets_ns(times)
            i, n = 0, frame.height
            sent_at = np.empty(n, dtype=np.int64)
            closed = False
            try:
                while i < n:
                    now = clock()
                    if due[i] > now:
                        time.sleep((due[i] - now) / 1e9)
                        now = clock()
                    # everything due by now goes out as one batch
                    j = max(i + 1, int(np.searchsorted(due, now, side="right")))
                    sink.write(
                        ReplayBatch(
                            frame.slice(i, j - i),
                            label,
                            json=json.slice(i, j - i),
                            scheduled_ns=due[i:j],
                        )
                    )
                    if getattr(sink, "closed_by_reader", False):
                        closed = True
                        break
                    sent_at[i:j] = now
                    i = j
                    if progress is not None and progress.due(now):
                        progress.update(
                            summary.messages + i, frame[TIME][i - 1], now - due[i - 1], now_ns=now
                        )
            finally:
                # Bookkeeping once per chunk, not per send (also after Ctrl-C): the send loop
                # does as little as possible between sleeps.
                _account(summary, frame, kinds, i)
                hist.record(sent_at[:i] - due[:i])
            if closed:
                break
        if getattr(sink, "closed_by_reader", False):
            summary.notes.append("stopped early: the reader closed the output (e.g. `| head`)")
    except KeyboardInterrupt:
        summary.interrupted = True
        sink.interrupted = True
    except BaseException:
        sink.aborted = True  # a file sink leaves its target as it was
        raise
    finally:
        sys.setswitchinterval(switch)
        stream.close()
        if progress is not None:
            progress.finish()
        try:
            sink.close()
        finally:
            summary.wall_s = (clock() - t_start) / 1e9
            summary.sink_stats = dict(sink.stats())
            summary.discarded = bool(getattr(sink, "discarded", False))
    return summary


def replay(
    path: str | Path,
    roles: Roles,
    opts: ReplayOptions,
    *,
    to: str | Sink = "-",
    sink_options: dict[str, Any] | None = None,
    force: bool = False,
    on_start: Callable[[ReplaySource], None] | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> ReplaySummary:
    """Replay a table to a target: ``-`` (stdout), a file by suffix, a URL, or a :class:`Sink`.

    A file target that is the input (same file on disk) or lies inside a folder or glob read as
    input is refused before anything is read; an existing one is refused unless ``force``.
    The table is validated before the sink is opened, so bad input writes nothing.
    ``on_start(src)`` runs once the table is validated, before the first message (the CLI
    prints its notes there); ``progress(total)`` makes the progress reporter.
    """
    if isinstance(to, str):
        check_output(path, to, force=force)
    src = prepare_replay(path, roles, opts)
    target = getattr(to, "target", type(to).__name__) if isinstance(to, Sink) else to
    options = dict(sink_options or {})
    src = resolve_start_position(src, target, options)
    if isinstance(to, Sink):
        sink = to
    else:
        if "://" not in to and to != "-":
            options["force"] = force
        sink = open_sink(to, **options)
    if on_start is not None:
        on_start(src)
    skip = src.options.start_position or 0
    reporter = progress(src.messages - min(skip, src.messages)) if progress else None
    return run_replay(src, sink, target=target, progress=reporter)
