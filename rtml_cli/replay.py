"""Replay: a historical table becomes an ordered, paced stream of event and label messages.

:func:`replay` is the entry point: it checks the target, prepares the table
(:mod:`rtml_cli.replay_source`), builds the ordered message stream (:mod:`rtml_cli.replay_order`),
encodes it (:mod:`rtml_cli.replay_encode`) and sends it to a sink (:func:`run_replay`), paced by a
:class:`~rtml_cli.replay_schedule.Schedule`. :func:`plan_replay` describes the same replay
without sending anything (``--dry-run``).

Pacing is scheduled against the start: the loop sleeps until the next message is due and then
sends every message that is due as one batch. Lateness (actual send - scheduled) is recorded
per message in a :class:`~rtml_cli.replay_schedule.LatencyHistogram`.

Examples
--------
>>> from rtml_cli.io import Roles
>>> opts = ReplayOptions(label_delay_us=60_000_000, limit=100)
>>> path = "sample_data/clickstream.parquet"
>>> summary = replay(path, Roles(), opts, to="o.ndjson")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.io import Roles
from rtml_cli.replay_columns import JSON, KIND, TIME
from rtml_cli.replay_encode import ReplayBatch, ndjson_buffers
from rtml_cli.replay_guard import check_output, resolve_start_position
from rtml_cli.replay_options import ReplayOptions
from rtml_cli.replay_order import iter_messages
from rtml_cli.replay_prefetch import prefetch
from rtml_cli.replay_progress import Progress
from rtml_cli.replay_schedule import LatencyHistogram, Schedule
from rtml_cli.replay_source import ReplaySource, prepare_replay
from rtml_cli.replay_summary import ReplayPlan, ReplaySummary
from rtml_cli.sinks.base import Sink, open_sink

__all__ = ["ReplayOptions", "ReplaySource", "plan_replay", "replay", "run_replay"]

#: Rows per record batch of a paced replay (see :func:`run_replay`).
_PACED_CHUNK_ROWS = 5_000


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
        sink_name=sink.name,
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
    # A sink that only writes JSON lines gets frames of kind, event id and time only, which
    # keeps ordering cheap.
    narrow = not sink.needs_frame
    # Paced: small record batches, so that reading and encoding ahead come in small slices of
    # CPU that do not delay the sends competing with them for the cores.
    chunk = min(opts.chunk_rows, _PACED_CHUNK_ROWS) if sched is not None else None
    # --max-speed to an NDJSON file or stdout: the NDJSON bytes are made ahead too.
    ahead = sched is None and sink.writes_ndjson
    # An NDJSON sink gets messages that end in their newline: the encoded column is the bytes.
    newline = sink.writes_ndjson

    def staged() -> Iterator[tuple[pl.DataFrame, pl.Series, np.ndarray, list[Any] | None]]:
        # Runs in the reading thread, so that the sending thread only sends (at --max-speed to
        # a file: only write system calls) while polars' pool works on the next batch.
        # Paced, encoding uses one core and leaves the other to the send loop.
        messages = iter_messages(
            src,
            encode=True,
            narrow=narrow,
            chunk_rows=chunk,
            parallel=sched is None,
            newline=newline,
        )
        for frame in messages:
            json = frame[JSON]
            frame = frame.drop(JSON)
            kinds = (frame[KIND] == "event").to_numpy()
            yield frame, json, kinds, ndjson_buffers(json, terminated=newline) if ahead else None

    stream = prefetch(staged(), depth=2 if sched is not None else 1)
    switch = sys.getswitchinterval()
    if sched is not None:
        # The reader thread must hand the GIL back to the send loop within ~0.5 ms, not the
        # default 5 ms, or sends are late by that much whenever it holds it.
        sys.setswitchinterval(0.0005)
    try:
        sink.open()
        t_start = clock()
        for frame, json, kinds, ndjson in stream:
            if sink.closed_by_reader:  # e.g. `rtml replay t | head`
                break
            if summary.first_time is None:
                summary.first_time = frame[TIME][0]
            if sched is None:
                sink.write(ReplayBatch(frame, label, json=json, ndjson=ndjson, terminated=newline))
                if sink.closed_by_reader:
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
                            terminated=newline,
                        )
                    )
                    if sink.closed_by_reader:
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
        if sink.closed_by_reader:
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
            summary.discarded = sink.discarded
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
