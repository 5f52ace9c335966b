"""One small exception tree; turned into exit codes only at the CLI edge.

Every error a user can cause is an :class:`RtmlError` whose message says what was wrong,
where, and how to fix it. Non-fatal surprises are :class:`RtmlWarning` subclasses, counted in
run summaries.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Exit codes, documented in the README: each means one thing, so a CI job can tell a failed
#: check (1) from bad input (2), an uncomputable metric (3) and a bug in rtml (70).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_METRIC = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130


class RtmlError(Exception):
    """Base of every error a user can cause. ``exit_code`` is used by the CLI."""

    exit_code: int = EXIT_BAD_INPUT


class UsageError(RtmlError):
    """Contradictory or invalid flags or parameters."""


class InputError(RtmlError):
    """A table (or other input file) is missing, unreadable, corrupt or invalid."""


class ColumnNotFoundError(InputError):
    """A named column does not exist in the table."""


class ConfigError(RtmlError):
    """``rtml.toml`` (or an equivalent flag) has an invalid key or value."""


class ModelError(RtmlError):
    """The model cannot be built, or raised while fitting or predicting."""


class SinkError(RtmlError):
    """A replay sink could not be opened or failed beyond its retries."""


class RunDirError(RtmlError):
    """A run directory is missing, incomplete or from an incompatible version."""


class MetricError(RtmlError):
    """A metric could not be computed (e.g. AUC with one class in the scored events)."""

    exit_code = EXIT_METRIC


class RtmlWarning(UserWarning):
    """Base of rtml's non-fatal warnings."""


class UnsortedInputWarning(RtmlWarning):
    """The table was not sorted by time and was sorted (stable) by rtml."""


class DroppedRowsWarning(RtmlWarning):
    """Rows were dropped (null times, outside --start/--end, ...)."""


class ClassImbalanceWarning(RtmlWarning):
    """A training window held one class only; the fit was skipped or fell back."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest of ``choices``, or ``""``.

    Examples
    --------
    >>> suggest("tme", ["time", "label"])
    " Did you mean 'time'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" Did you mean '{close[0]}'?" if close else ""


def column_not_found(
    name: str, columns: Iterable[str], *, role: str, flag: str, source: str
) -> ColumnNotFoundError:
    """Build the standard error for a missing column.

    Parameters
    ----------
    name : the column asked for.
    columns : the columns that exist.
    role : what the column was meant to be ("time column", "label column", ...).
    flag : the flag or config key that names it, e.g. ``--time-col``.
    source : the table's path, for the message.
    """
    cols = list(columns)
    shown = ", ".join(cols[:30]) + (" …" if len(cols) > 30 else "")
    return ColumnNotFoundError(
        f"{role} '{name}' not found in {source}.{suggest(name, cols)} "
        f"Columns are: {shown}. Pass the right name with {flag}."
    )
