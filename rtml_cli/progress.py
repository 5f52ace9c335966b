"""Progress of ``rtml compare``'s strategies: bars in a terminal, log lines anywhere else.

In a terminal (stderr is a tty) each strategy has a rich progress bar. Elsewhere — a CI log, a
file — a bar would be noise or nothing, so each strategy prints a line at most every
:data:`PROGRESS_INTERVAL_S` seconds (events done, rate, ETA) and one when it ends. Strategies
run in worker processes (``--jobs`` > 1) report only when they end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rtml_cli.escape import for_rich, for_terminal

#: Seconds between two progress lines of one strategy outside a terminal (tests lower it).
PROGRESS_INTERVAL_S = 10.0


def _stderr_line(text: str) -> None:
    print(for_terminal(text), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StrategyProgress:
    """Progress of a set of strategies, each over ``total`` scored events.

    Use as a context manager; :meth:`callback` gives the ``progress`` callable of one strategy
    (``None`` when disabled) and :meth:`finished` is called once it has ended.

    Parameters
    ----------
    enabled : show anything at all.
    names : the strategies, in order.
    total : scored events per strategy.
    echo : where log lines go (default: stderr, escaped for the terminal).
    tty : force the terminal (``True``) or log-line (``False``) form; default: stderr's kind.
    """

    def __init__(
        self,
        enabled: bool,
        names: Sequence[str],
        total: int,
        *,
        echo: Callable[[str], None] | None = None,
        tty: bool | None = None,
    ) -> None:
        self.enabled = enabled
        self.names, self.total = list(names), total
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.echo = echo or _stderr_line
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.done: dict[str, int] = {}
        self.bar: Any = None

    def __enter__(self) -> StrategyProgress:
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description:>14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            # a strategy name is user text, and a task description is Rich markup
            self.ids = {n: self.bar.add_task(for_rich(n), total=self.total) for n in self.names}
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, name: str) -> None:
        """The strategy ``name`` starts now (its rate and ETA count from here)."""
        now = time.monotonic()
        self.started.setdefault(name, now)
        self.last.setdefault(name, now)

    def callback(self, name: str) -> Callable[[int], None] | None:
        """The ``progress(done)`` callable of strategy ``name`` (``None`` when disabled)."""
        if not self.enabled:
            return None
        self.start(name)
        if self.bar is not None:
            return lambda done: self.bar.update(self.ids[name], completed=done)
        return lambda done: self._tick(name, done)

    def _tick(self, name: str, done: int) -> None:
        self.done[name] = done
        now = time.monotonic()
        if now - self.last[name] < PROGRESS_INTERVAL_S or done >= self.total:
            return
        self.last[name] = now
        elapsed = now - self.started[name]
        rate = done / elapsed if elapsed > 0 else 0.0
        share = 100.0 * done / self.total if self.total else 100.0
        eta = f", ETA {_duration((self.total - done) / rate)}" if rate > 0 else ""
        self.echo(
            f"progress: strategy '{for_terminal(name, inline=True)}' {done:,}/{self.total:,} "
            f"events ({share:.0f}%), "
            f"{rate:,.0f} events/s{eta}"
        )

    def finished(self, name: str, wall_s: float | None = None) -> None:
        """Strategy ``name`` has ended (``wall_s``: its own time, when it ran elsewhere)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.ids[name], completed=self.total)
            return
        if wall_s is None:
            now = time.monotonic()
            wall_s = now - self.started.get(name, now)
        rate = f", {self.total / wall_s:,.0f} events/s" if wall_s > 0 else ""
        self.echo(
            f"progress: strategy '{for_terminal(name, inline=True)}' done: {self.total:,} events "
            f"in {_duration(wall_s)}{rate}"
        )
