"""Progress of a running replay, on stderr (never stdout, which may be the data sink).

On a terminal: one status line (messages, rate, event-time position, lateness) redrawn in place
at most :data:`TTY_INTERVAL_S` apart. Elsewhere (CI logs, files): a plain line at most every
:data:`LOG_INTERVAL_S`, so a long paced replay shows it is alive without flooding the log.

The replay loop calls :meth:`Progress.due` (one integer comparison) as often as it likes and
:meth:`Progress.update` only when that says so.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> p = Progress(out, total=10, tty=False, interval_s=0.0)
>>> p.update(5, None, None, now_ns=1_000_000_000)
>>> "5 of 10 messages" in out.getvalue()
True
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import IO

from rtml_cli.escape import for_terminal

#: Seconds between plain progress lines when stderr is not a terminal (a test lowers it).
LOG_INTERVAL_S = 10.0
#: Seconds between redraws of the status line on a terminal (at most ~4 per second).
TTY_INTERVAL_S = 0.25


class Progress:
    """Rate-limited progress lines for one replay.

    Parameters
    ----------
    stream : where to write (stderr).
    total : messages the replay will send (after a resume's skip).
    tty : redraw one line in place (a terminal) rather than print plain lines.
    interval_s : seconds between updates (default by ``tty``: :data:`TTY_INTERVAL_S` or
        :data:`LOG_INTERVAL_S`, read when the replay starts).
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        total: int,
        tty: bool | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty() if tty is None else tty
        if interval_s is None:
            interval_s = TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self.interval_ns = int(interval_s * 1e9)
        self.start_ns = time.perf_counter_ns()
        self.next_ns = self.start_ns + self.interval_ns
        self.lines = 0
        self._width = 0

    def due(self, now_ns: int) -> bool:
        """Whether an update is due at ``now_ns`` (``time.perf_counter_ns``)."""
        return now_ns >= self.next_ns

    def update(
        self,
        messages: int,
        event_time: dt.datetime | None,
        lateness_ns: float | None,
        *,
        now_ns: int | None = None,
    ) -> None:
        """Show how far the replay got (``lateness_ns``: of the last send, None unpaced)."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        self.next_ns = now + self.interval_ns
        wall = max(1e-9, (now - self.start_ns) / 1e9)
        pct = f" ({100.0 * messages / self.total:.0f}%)" if self.total else ""
        parts = [
            f"{messages:,} of {self.total:,} messages{pct}",
            f"{messages / wall:,.0f} messages/s",
        ]
        if event_time is not None:
            parts.append(f"event time {event_time.isoformat(timespec='seconds')}")
        if lateness_ns is not None:
            parts.append(f"late {max(0.0, lateness_ns) / 1e6:.1f}ms")
        text = for_terminal("replay: " + ", ".join(parts))
        self.lines += 1
        if self.tty:
            # a line longer than the terminal wraps, and "\r" would then redraw only its end
            text = text[: max(20, shutil.get_terminal_size((100, 24)).columns - 1)]
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + pad)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the status line on a terminal, so the summary starts on a line of its own."""
        if self.tty and self.lines:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
