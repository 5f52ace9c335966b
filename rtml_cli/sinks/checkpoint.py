"""Where a replay got to, and resuming from there.

- :class:`PositionTracker`: the *confirmed position* of a replay — the number of messages of
  the stream, counted from its start, whose delivery the server has acknowledged without a
  gap. Messages can be confirmed out of order (HTTP with ``--concurrency``, Kafka partitions);
  the position only moves over a contiguous prefix, so resuming from it never skips a message.
- :class:`Checkpoint`: a small JSON file holding the confirmed position, rewritten atomically
  as the replay goes, read back by ``--checkpoint PATH`` to resume (at-least-once: messages
  after the position may have been delivered already and are sent again).
- :func:`verify_resume`: a checkpoint is applied only to the target, table and message stream
  it was written for; :func:`resolve_start` picks the start from ``--resume-from`` or it.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rtml_cli.errors import SinkError, UsageError


class PositionTracker:
    """Confirmed position over messages (or runs of messages) that may complete out of order.

    Messages are numbered from ``start`` (the replay's ``--resume-from``) in arrival order.
    :meth:`done` marks one as delivered, :meth:`done_range` a run of them; :attr:`position` is
    one past the longest delivered prefix, i.e. the ``--resume-from`` value that loses nothing.

    Examples
    --------
    >>> p = PositionTracker(start=10)
    >>> p.done(11); p.position
    10
    >>> p.done(10); p.position
    12
    """

    __slots__ = ("position", "_ahead", "_starts")

    def __init__(self, start: int = 0) -> None:
        self.position = start
        # Confirmed runs beyond the first gap, first -> stop, and a min-heap of their firsts:
        # with --concurrency many runs wait beyond the gap, and finding the next one must not
        # scan them all on every confirmation (a min() over the dict cost ~10 % of the
        # HTTP sink's time at 4 connections).
        self._ahead: dict[int, int] = {}
        self._starts: list[int] = []

    def done(self, index: int) -> None:
        """Mark message ``index`` (absolute stream position) as delivered."""
        self.done_range(index, index + 1)

    def done_range(self, first: int, stop: int) -> None:
        """Mark messages ``first .. stop-1`` delivered."""
        if stop <= self.position:
            return
        ahead = self._ahead
        if first > self.position:
            prev = ahead.get(first)
            if prev is None:
                ahead[first] = stop
                heapq.heappush(self._starts, first)
            elif stop > prev:
                ahead[first] = stop
            return
        self.position = stop
        starts = self._starts
        # Fold in every run that starts inside the prefix (the next one, or a repeat).
        while starts and starts[0] <= self.position:
            end = ahead.pop(heapq.heappop(starts))
            if end > self.position:
                self.position = end


#: Format of the checkpoint file: version 2 names its target, table and stream options.
CHECKPOINT_VERSION = 2
#: The largest position a checkpoint may hold (a message count fits in an int64).
MAX_POSITION = 2**63 - 1


def _checkpoint_error(path: Path, problem: str) -> UsageError:
    return UsageError(
        f"checkpoint file {path}: {problem}. It is not a valid rtml checkpoint, and rtml never "
        "overwrites it (not even with --resume-from): if it is a damaged checkpoint of yours, "
        "delete it to start from the beginning; otherwise pass another --checkpoint path."
    )


def refuse_foreign_checkpoint(path: str | Path) -> None:
    """A ``--checkpoint`` path that exists must hold an rtml checkpoint, since a replay rewrites
    it (also with ``--resume-from``): any other file (the input table, a report, a device, a
    FIFO, a link) is refused with :class:`UsageError` before anything is sent."""
    p = Path(path)
    if not os.path.lexists(p):
        return
    if p.is_symlink():
        raise _checkpoint_error(p, "it is a symbolic link")
    Checkpoint.load(p)  # a regular file holding a JSON object with a valid position


def _valid_position(path: Path, value: Any, field: str = "position") -> int:
    """``value`` as a stream position, or a :class:`UsageError` naming the file and field."""
    if type(value) is not int:  # not bool, float or str: JSON true and 3.0 are not positions
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        raise _checkpoint_error(
            path, f"field '{field}' must be a whole number >= 0 (a message count), not {shown}"
        )
    if value < 0 or value > MAX_POSITION:
        raise _checkpoint_error(
            path, f"field '{field}' is {value}, outside 0 .. {MAX_POSITION} (a message count)"
        )
    return value


class Checkpoint:
    """The confirmed position of a replay, kept in a JSON file rewritten atomically.

    The file names what the position counts messages of: the ``target``, and in ``identity``
    the table (``"table"``, a fingerprint of its content) and the replay options that shape the
    message stream (``"stream"``). Resuming checks them (:func:`verify_resume`), so a checkpoint
    is never applied to another target's, table's or stream's messages.

    Parameters
    ----------
    path : the file (``--checkpoint PATH``); ``None`` disables checkpointing.
    target : the replay target, stored and checked on resume.
    every_s : write at most this often while running (the final position is always written
        by :meth:`save` with ``force=True`` at close).
    identity : ``{"table": ..., "stream": ...}`` stored with every position (JSON values).
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        target: str,
        every_s: float = 0.2,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.target = target
        self.every_s = every_s
        self.identity = dict(identity or {})
        self._last_write: float | None = None
        self._last_position: int | None = None

    @staticmethod
    def load(path: str | Path) -> dict[str, Any] | None:
        """The checkpoint's content with its position validated; ``None`` when no file exists.

        Raises :class:`UsageError` naming the file and field for anything that is not a
        checkpoint: unreadable JSON, no object, a position that is not a whole number in range
        (``true``, ``-1``, ``3.5``, ``"7"``, ``10**30``).
        """
        p = Path(path)
        if not p.exists():
            return None
        if not p.is_file():  # reading a FIFO would block forever, a device is no checkpoint
            raise _checkpoint_error(p, "it is not a regular file")
        try:
            data = json.loads(p.read_text())
        except RecursionError:
            raise _checkpoint_error(p, "its JSON is nested too deeply") from None
        except (OSError, ValueError) as exc:
            raise _checkpoint_error(p, f"cannot read it as JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _checkpoint_error(p, "it holds no JSON object")
        if "position" not in data:
            raise _checkpoint_error(p, "field 'position' is missing")
        _valid_position(p, data["position"])
        return data

    @staticmethod
    def read(path: str | Path) -> int | None:
        """The position stored in ``path``, or ``None`` when the file does not exist yet."""
        data = Checkpoint.load(path)
        return None if data is None else int(data["position"])

    def save(self, position: int, *, force: bool = False, **extra: Any) -> None:
        """Write ``position`` (atomically: temp file + rename) if due or ``force``."""
        if self.path is None or position == self._last_position:
            return
        now = time.monotonic()
        if not force and self._last_write is not None and now - self._last_write < self.every_s:
            return
        data = {
            "version": CHECKPOINT_VERSION,
            "target": self.target,
            "position": position,
            "updated": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **self.identity,
            **extra,
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SinkError(
                f"cannot write checkpoint file {self.path}: {exc.strerror or exc}. "
                "Pass a writable --checkpoint path."
            ) from None
        self._last_write = now
        self._last_position = position


def _differences(stored: Any, current: Mapping[str, Any]) -> list[str]:
    if not isinstance(stored, dict):
        return [f"(stored {json.dumps(stored)})"]
    keys = sorted(set(stored) | set(current), key=str)
    return [
        f"{k}: checkpoint {json.dumps(stored.get(k))}, this replay {json.dumps(current.get(k))}"
        for k in keys
        if stored.get(k) != current.get(k)
    ]


def verify_resume(
    path: str | Path,
    *,
    target: str,
    identity: Mapping[str, Any],
    messages: int,
    compare: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> int | None:
    """The position to resume from in checkpoint ``path``, checked against this replay.

    ``identity`` holds ``"table"`` and ``"stream"`` as :class:`Checkpoint` stores them;
    ``compare(stored_table, table)`` says whether two table fingerprints are the same table
    (default: equal). ``messages`` is the length of the stream. Returns ``None`` when the file
    does not exist.

    Raises
    ------
    UsageError
        The checkpoint predates these checks, names another target, table or stream, or holds
        a position beyond the stream's end. The message says which and how to fix it.
    """
    p = Path(path)
    data = Checkpoint.load(p)
    if data is None:
        return None
    position = int(data["position"])
    fix = (
        f"Pass another --checkpoint path for this replay, or --resume-from 0 to start over "
        f"(which rewrites {p})."
    )
    if data.get("version") != CHECKPOINT_VERSION or "table" not in data or "stream" not in data:
        raise UsageError(
            f"checkpoint file {p} predates target checks: it does not say which target, table "
            f"and replay options its position {position} counts messages of, so resuming "
            f"could skip another stream's events. {fix} If you know it belongs to this "
            f"replay, pass --resume-from {position}."
        )
    if not isinstance(data.get("target"), str):
        raise _checkpoint_error(p, "field 'target' must be a string")
    if data["target"] != target:
        raise UsageError(
            f"checkpoint file {p} belongs to target '{data['target']}', not '{target}': its "
            f"position would skip events this target never got. {fix}"
        )
    table = identity.get("table", {})
    stored_table = data["table"]
    same = isinstance(stored_table, dict) and (compare or (lambda a, b: dict(a) == dict(b)))(
        stored_table, table
    )
    if not same:
        was = stored_table.get("path") if isinstance(stored_table, dict) else None
        raise UsageError(
            f"checkpoint file {p} belongs to another table"
            + (f" ('{was}' as it was then)" if was else "")
            + f": the content of '{table.get('path', '?')}' differs from the one it was written "
            f"for ({'; '.join(_differences(stored_table, table)[:3])}). {fix}"
        )
    stream = identity.get("stream", {})
    diff = _differences(data["stream"], stream)
    if diff:
        raise UsageError(
            f"checkpoint file {p} was written for another message stream of this table: "
            f"{'; '.join(diff)}. Pass the options it was written with to resume, or: {fix}"
        )
    if position > messages:
        raise UsageError(
            f"checkpoint file {p}: field 'position' is {position}, beyond the end of this "
            f"stream ({messages} messages). {fix}"
        )
    return position


def resolve_start(resume_from: int | None, checkpoint: str | Path | None) -> int:
    """The replay start position from ``--resume-from`` and/or ``--checkpoint``.

    An explicit ``--resume-from`` wins; otherwise an existing checkpoint file gives the
    position; otherwise the replay starts at 0.
    """
    if resume_from is not None:
        if resume_from < 0:
            raise UsageError(f"--resume-from must be >= 0. Got {resume_from} instead.")
        return resume_from
    if checkpoint is not None:
        stored = Checkpoint.read(checkpoint)
        if stored is not None:
            return stored
    return 0
