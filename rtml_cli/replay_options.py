"""What to replay and how fast: :class:`ReplayOptions` and their validation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from rtml_cli.errors import UsageError

#: Rows read per record batch. Large enough for columnar speed, small enough to bound memory.
DEFAULT_CHUNK_ROWS = 100_000


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
            gap = (
                f", idle gaps > {format_us(self.max_gap_us)} compressed" if self.max_gap_us else ""
            )
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


def format_us(us: float | None) -> str:
    """A duration in µs as text (``-`` when there is none)."""
    from rtml_cli.durations import format_duration

    return "-" if us is None else format_duration(us)
