"""Reading ahead in a background thread, in bounded memory.

Both readers hand items to the consumer through a small queue: the producer blocks when the
consumer falls behind (memory holds a couple of items at most) and stops when the consumer goes
away. An exception in the producer is re-raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import polars as pl

from rtml_cli.errors import InputError

#: End-of-stream marker between a reading thread and its consumer.
_DONE = object()
_Item = TypeVar("_Item")


def stream_batches(
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


def prefetch(it: Iterator[_Item], depth: int = 2) -> Generator[_Item, None, None]:
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
