"""What a replay would do and how it went.

:class:`ReplayPlan` (``--dry-run``) and :class:`ReplaySummary` (the end of a run, also after a
Ctrl-C) render as the text the CLI prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from rtml_cli.replay_options import format_us
from rtml_cli.replay_schedule import LatencyHistogram


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
            else format_us(self.expected_wall_s * 1e6)
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
    return f"{first.isoformat()} -> {last.isoformat()} ({format_us(span_us)})"


def _fmt_ns(ns: float) -> str:
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}us"
    return f"{ns / 1_000_000:.2f}ms"
