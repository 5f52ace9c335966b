"""File sinks for ``rtml replay``: stdout (``-``), NDJSON, Arrow IPC stream and Parquet.

They write batch-wise and column-wise (no per-message Python work on the fast path), so a
``--max-speed`` replay to a file runs at close to polars' own NDJSON writing speed.

A file target is written whole or not at all: the bytes go to ``.NAME.tmp-PID`` beside it and
are renamed over it when the replay completes. A failed or interrupted (Ctrl-C) replay removes
the temporary file and leaves the target as it was. To watch messages arrive as they are due,
replay to stdout (``--to -``), which a paced replay flushes after every batch.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import polars as pl

from rtml_cli.errors import SinkError
from rtml_cli.safe_write import AtomicFile
from rtml_cli.sinks.base import MessageBatch, Sink, register


class _FileSink(Sink):
    """Common part: the target path, opened only in :meth:`open` (bad input writes nothing).

    The bytes go to a temporary file beside the target, renamed over it by :meth:`close`
    once complete (:class:`~rtml_cli.safe_write.AtomicFile`). A replay that fails
    (:attr:`aborted`) or is interrupted (:attr:`interrupted`) removes the temporary file and
    leaves the target as it was: an existing file is never replaced by a partial one. An
    existing target is refused unless ``force``, and even then only a regular file is replaced.
    """

    def __init__(self, target: str, *, force: bool = False, **_options: Any) -> None:
        self.target = target
        self.path = Path(target)
        self.force = force
        self.messages = 0
        #: the target was left as it was (failed or interrupted run)
        self.discarded = False
        self._fh: IO[bytes] | None = None
        self._atomic: AtomicFile | None = None

    def _open_file(self) -> IO[bytes]:
        from rtml_cli.safe_write import refuse_existing

        refuse_existing(self.target, force=self.force, what="replay output")
        try:
            if self.path.parent and not self.path.parent.exists():
                raise FileNotFoundError(f"folder '{self.path.parent}' does not exist")
            self._atomic = AtomicFile(self.path)
            return open(self._atomic.open(), "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise SinkError(
                f"cannot write replay output '{self.target}': {exc.strerror or exc}. "
                "Check that the folder exists and is writable."
            ) from None

    def _finish(self, close: Callable[[], None]) -> None:
        """Run ``close`` (flush and close the writer), then put the file in place or discard it."""
        atomic, self._atomic = self._atomic, None
        ok = False
        try:
            close()
            ok = not (self.aborted or self.interrupted)
        finally:
            if atomic is not None:
                if ok:
                    try:
                        atomic.commit()
                    except OSError as exc:
                        atomic.discard()
                        raise SinkError(
                            f"cannot put replay output '{self.target}' in place: "
                            f"{exc.strerror or exc}. The previous file is unchanged."
                        ) from None
                else:
                    self.discarded = True
                atomic.discard()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": self.messages}
        if self.discarded:
            out["written"] = "no (left as it was)"
        elif self.path.is_file():
            out["bytes"] = self.path.stat().st_size
        return out


@register(".ndjson", ".jsonl")
class NdjsonSink(_FileSink):
    """One JSON object per line, in arrival order."""

    name = "ndjson"
    #: Writes JSON lines only: batch frames may hold just rtml_kind, rtml_event_id, rtml_time.
    needs_frame = False
    #: Writes NDJSON bytes: a replay may render them ahead, off the writing thread.
    writes_ndjson = True

    def open(self) -> None:
        self._fh = self._open_file()

    def write(self, batch: MessageBatch) -> None:
        assert self._fh is not None, "open() first"
        batch.write_ndjson(self._fh)
        self.messages += len(batch)
        if batch.scheduled_ns is not None:
            self._fh.flush()

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        def close_file() -> None:
            if self._fh is not None:
                fh, self._fh = self._fh, None
                fh.close()

        self._finish(close_file)


@register("-")
class StdoutSink(Sink):
    """NDJSON on standard output (the default target)."""

    name = "stdout"
    needs_frame = False
    writes_ndjson = True

    def __init__(self, target: str = "-", **_options: Any) -> None:
        self.target = target
        self.messages = 0
        self.closed_by_reader = False
        self._fh: Any = None  # sys.stdout.buffer, or a text stdout wrapped as bytes

    def open(self) -> None:
        # Resolved at open time, not import time: test runners swap sys.stdout.
        self._fh = getattr(sys.stdout, "buffer", None) or _TextAsBytes(sys.stdout)
        try:
            tty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:  # a terminal would act on C1 controls and bidi overrides inside strings
            self._fh = _TerminalSafe(self._fh)

    def write(self, batch: MessageBatch) -> None:
        assert self._fh is not None, "open() first"
        if self.closed_by_reader:
            return
        try:
            batch.write_ndjson(self._fh)
            self.messages += len(batch)
            if batch.scheduled_ns is not None:
                self._fh.flush()
        except OSError as exc:  # polars reports a closed pipe as a plain OSError
            if not _is_broken_pipe(exc):
                raise
            self._reader_gone()

    def flush(self) -> None:
        if self._fh is not None and not self.closed_by_reader:
            try:
                self._fh.flush()
            except OSError as exc:
                if not _is_broken_pipe(exc):
                    raise
                self._reader_gone()

    def close(self) -> None:
        self.flush()
        self._fh = None

    def stats(self) -> dict[str, Any]:
        return {"messages": self.messages}

    def _reader_gone(self) -> None:
        # `rtml replay t | head`: the reader has what it wanted. Stop quietly (run_replay sees
        # the flag), and point stdout at /dev/null so Python's final flush does not fail too.
        self.closed_by_reader = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
            pass


def _is_broken_pipe(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE or "Broken pipe" in str(exc)


# UTF-8 of DEL, C1 controls (U+0080-009F: U+009B is CSI), bidi overrides and line separators:
# JSON encoders leave them raw, and in JSON they can only occur inside strings.
_TERMINAL_UNSAFE = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


class _TerminalSafe:
    """Bytes writer that writes those characters as ``\\uXXXX`` (the same JSON string)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, data: bytes) -> int:
        safe = _TERMINAL_UNSAFE.sub(
            lambda m: f"\\u{ord(m.group(0).decode('utf-8')):04x}".encode(), bytes(data)
        )
        self._fh.write(safe)
        return len(data)

    def flush(self) -> None:
        self._fh.flush()


class _TextAsBytes:
    """Adapter for a text-only stdout (no ``.buffer``)."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text

    def write(self, data: bytes) -> int:
        return self.text.write(data.decode())

    def flush(self) -> None:
        self.text.flush()


@register(".arrow", ".ipc", ".arrows")
class ArrowSink(_FileSink):
    """Arrow IPC stream: one record batch per message batch, the message schema throughout."""

    name = "arrow"

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, **options)
        self._writer: Any = None

    def open(self) -> None:
        self._fh = self._open_file()

    def write(self, batch: MessageBatch) -> None:
        import pyarrow as pa

        assert self._fh is not None, "open() first"
        table = batch.frame.to_arrow()
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._fh, table.schema)
        self._writer.write_table(table)
        self.messages += len(batch)
        if batch.scheduled_ns is not None:
            self._fh.flush()

    def close(self) -> None:
        def close_file() -> None:
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                self._writer = None
                if self._fh is not None:
                    fh, self._fh = self._fh, None
                    fh.close()

        self._finish(close_file)


@register(".parquet")
class ParquetSink(_FileSink):
    """Parquet: batches are buffered into row groups of ``row_group_rows`` messages."""

    name = "parquet"

    def __init__(self, target: str, *, row_group_rows: int = 250_000, **options: Any) -> None:
        super().__init__(target, **options)
        self.row_group_rows = row_group_rows
        self._writer: Any = None
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0

    def open(self) -> None:
        self._fh = self._open_file()

    def write(self, batch: MessageBatch) -> None:
        assert self._fh is not None, "open() first"
        # Paced replays send tiny batches; tiny row groups would make a poor Parquet file.
        self._buffer.append(batch.frame)
        self._buffered += len(batch)
        self.messages += len(batch)
        if self._buffered >= self.row_group_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow.parquet as pq

        if not self._buffer or self._fh is None:
            return
        table = pl.concat(self._buffer, rechunk=True).to_arrow()
        self._buffer, self._buffered = [], 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._fh, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        def close_file() -> None:
            try:
                if not (self.aborted or self.interrupted):  # a discarded file needs no rest
                    self.flush()
                if self._writer is not None:
                    self._writer.close()
            finally:
                self._writer = None
                self._buffer, self._buffered = [], 0
                if self._fh is not None:
                    fh, self._fh = self._fh, None
                    fh.close()

        self._finish(close_file)
