"""Parsing of durations ("30m", "1d", "1h30m") and timestamps given on the command line."""

from __future__ import annotations

import datetime as dt
import re

from rtml_cli.errors import UsageError

_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 7 * 86_400_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)")


def parse_duration(text: str | int | float, *, what: str = "duration") -> int:
    """Parse a duration into whole microseconds.

    Accepts ``"90s"``, ``"30m"``, ``"1h30m"``, ``"1d"``, ``"2w"``, ``"250ms"``, ``"0"``; a bare
    number is taken as seconds.

    Parameters
    ----------
    text : the duration.
    what : the name of the option, for the error message.

    Returns
    -------
    int
        The duration in microseconds (>= 0).

    Examples
    --------
    >>> parse_duration("1h30m")
    5400000000
    """
    if isinstance(text, bool):
        raise UsageError(f"The {what} must be a duration such as '30m' or '1d'. Got {text!r}.")
    if isinstance(text, (int, float)):
        if not text >= 0:  # also NaN (TOML allows nan and inf)
            raise UsageError(f"The {what} must be >= 0. Got {text!r}.")
        return _bounded(float(text) * 1_000_000, text, what)
    s = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return _bounded(float(s) * 1_000_000, text, what)
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS_US[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise UsageError(
            f"The {what} must be a duration such as '90s', '30m', '1h30m', '1d' or '2w' "
            f"(units: us, ms, s, m, h, d, w). Got {text!r} instead."
        )
    return _bounded(total, text, what)


#: The longest duration rtml takes (10,000 years, the whole datetime range): any event time
#: plus it stays far inside int64 microseconds.
MAX_DURATION_US = 10_000 * 366 * 86_400 * 1_000_000


def _bounded(us: float, text: object, what: str) -> int:
    if not us <= MAX_DURATION_US:  # also inf
        raise UsageError(
            f"The {what} is too long: {text!r} is more than 10,000 years. Give a shorter duration."
        )
    return int(round(us))


def format_duration(us: int | float) -> str:
    """Format microseconds compactly for humans ("1d2h", "30m", "1.5s", "250ms").

    Examples
    --------
    >>> format_duration(5_400_000_000)
    '1h30m'
    """
    us = float(us)
    if us < 0:
        return "-" + format_duration(-us)
    if us < 1_000:
        return f"{us:.0f}us"
    if us < 1_000_000:
        return f"{us / 1_000:.3g}ms"
    if us < 60_000_000:
        return f"{us / 1_000_000:.3g}s"
    out = []
    rest = int(round(us / 1_000_000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n:
            out.append(f"{n}{unit}")
        if len(out) == 2:
            break
    return "".join(out) or "0s"


def parse_timestamp(text: str, *, what: str = "timestamp") -> dt.datetime:
    """Parse an ISO-8601 date or datetime given on the command line (naive, as in the table).

    A time zone offset, if given, is converted to UTC and dropped.
    """
    s = str(text).strip()
    try:
        value = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"The {what} must be an ISO-8601 date or datetime such as '2013-03-01' or "
            f"'2013-03-01T06:00:00'. Got {text!r} instead."
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value
