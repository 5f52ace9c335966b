"""The sink protocol shared by every replay target (files, stdout, HTTP, Kafka, Redis).

Messages travel in batches, never one Python dict at a time, so that a file sink can write
millions of rows at polars speed while a network sink can still send one request per event.

A :class:`MessageBatch` holds a contiguous run of messages in arrival order:

- ``frame``: a polars DataFrame with ``rtml_kind`` ("event" | "label"), ``rtml_event_id``
  (Int64), ``rtml_time`` (Datetime("us"), the message's event-time arrival) followed by the
  table's columns; fields a message does not carry are null (the label in an event message,
  the features in a label message).
- :meth:`MessageBatch.json_lines`: the messages as flat JSON objects (one str each, no
  newline), holding only the fields of their kind, as docs/semantics.md (Replay messages) specifies. Computed once,
  on first use.
- ``scheduled_ns``: for paced replays, each message's scheduled send time on the
  ``time.perf_counter_ns`` clock (None under ``--max-speed``), so that a sink can measure
  latency from the schedule, not from when it got around to sending (coordinated omission).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import polars as pl

from rtml_cli.errors import UsageError


class MessageBatch:
    """A run of replay messages in arrival order (see module docstring)."""

    __slots__ = ("frame", "scheduled_ns", "_json", "_encoder")

    def __init__(
        self,
        frame: pl.DataFrame,
        *,
        scheduled_ns: np.ndarray | None = None,
        encoder: Callable[[pl.DataFrame], list[str]] | None = None,
    ) -> None:
        self.frame = frame
        self.scheduled_ns = scheduled_ns
        self._encoder = encoder
        self._json: list[str] | None = None

    def __len__(self) -> int:
        return self.frame.height

    def json_lines(self) -> list[str]:
        """The messages as flat JSON objects, one string per message (cached)."""
        if self._json is None:
            if self._encoder is None:
                raise RuntimeError("this MessageBatch was built without a JSON encoder")
            self._json = self._encoder(self.frame)
        return self._json

    def write_ndjson(self, fh: IO[bytes]) -> None:
        """Write the messages as NDJSON lines to a binary file (a replay batch does it
        column-wise, without a Python string per message)."""
        lines = self.json_lines()
        if lines:
            fh.write(("\n".join(lines) + "\n").encode())


class Sink(abc.ABC):
    """A replay target. Lifecycle: ``open()``, ``write()`` many times, ``close()``.

    ``close()`` must flush and release everything, and be safe to call after an error or a
    Ctrl-C (the replay loop calls it in a ``finally``). Errors a user can cause (unreachable
    server, unwritable path) are raised as :class:`~rtml_cli.errors.SinkError` with a message
    that names the target and the fix.
    """

    #: Short name for summaries ("ndjson", "kafka", ...).
    name: str = "sink"
    #: Whether :meth:`write` reads the batch's ``frame`` beyond kind, event id and time. A sink
    #: that only writes the JSON lines says False: the replay then orders narrow frames, which
    #: is much cheaper.
    needs_frame: bool = True
    #: Whether the sink writes NDJSON bytes (:meth:`MessageBatch.write_ndjson`): at ``--max-speed``
    #: the replay then makes those bytes ahead, in its reading thread.
    writes_ndjson: bool = False
    #: Set by the sink when the reader of its output went away (``rtml replay t | head``): the
    #: replay stops early instead of failing.
    closed_by_reader: bool = False
    #: Set by the sink at ``close()`` when it left its target as it was (a file sink after a
    #: failed or interrupted replay), so that the summary says nothing was written.
    discarded: bool = False
    #: Set by the replay loop before ``close()`` when the replay was interrupted (Ctrl-C), so
    #: a sink that writes a result (``--record``) can say it covers only part of the stream.
    interrupted: bool = False
    #: Set by the replay loop before ``close()`` when the replay failed (an exception): a sink
    #: that writes a file discards it instead of putting a partial one in place.
    aborted: bool = False

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or create the target. Fail fast (bounded time) when it is unreachable."""

    @abc.abstractmethod
    def write(self, batch: MessageBatch) -> None:
        """Send or write one batch of messages, in order."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything written so far durable/delivered."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the target."""

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary (e.g. ``{"delivered": n, "failed": m}``)."""
        return {}


SinkFactory = Callable[..., Sink]

#: scheme (``"kafka"``, ``"http"``) or file suffix (``".ndjson"``) or ``"-"`` -> factory.
#: A factory is called as ``factory(target, **options)``.
REGISTRY: dict[str, SinkFactory] = {}


def register(*names: str) -> Callable[[SinkFactory], SinkFactory]:
    """Class decorator registering a sink under URL schemes, file suffixes or ``"-"``."""

    def deco(factory: SinkFactory) -> SinkFactory:
        for n in names:
            REGISTRY[n] = factory
        return factory

    return deco


def _load_builtin() -> None:
    # Importing the modules registers their sinks; transports import their client lazily.
    import importlib

    for mod in ("files", "http", "kafka", "redis"):
        try:
            importlib.import_module(f"rtml_cli.sinks.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rtml_cli.sinks.{mod}":
                raise


def open_sink(target: str, **options: Any) -> Sink:
    """The sink for ``target``: ``-`` (stdout), a file path by suffix, or a URL by scheme."""
    _load_builtin()
    if target == "-":
        key = "-"
    elif "://" in target:
        key = target.split("://", 1)[0].lower()
    else:
        from pathlib import Path

        key = Path(target).suffix.lower()
    factory = REGISTRY.get(key)
    if factory is None:
        known = ", ".join(sorted(k for k in REGISTRY))
        raise UsageError(
            f"unknown replay target '{target}'. Known targets: {known} "
            "(a file name by its suffix, or a URL by its scheme)."
        )
    return factory(target, **options)
