"""How the report writes numbers and metric names: one function per kind of value.

Every function takes whatever the report dict holds (a number, ``None`` for a missing value, or
anything else a damaged file may carry) and never raises: a value that is missing or not a
finite number is written ``n/a``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from rtml_cli.durations import format_duration
from rtml_cli.report_svg import finite

#: The display name of each metric (``metrics.json`` uses the keys).
METRIC_LABEL = {
    "auc": "AUC",
    "accuracy": "accuracy",
    "log_loss": "log loss",
    "f1": "F1",
    "macro_f1": "macro-F1",
    "brier": "Brier score",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
}


def metric_label(metric: str) -> str:
    """The display name of a metric (the key itself for a metric without one)."""
    return METRIC_LABEL.get(metric, metric)


def format_metric(x: Any, digits: int = 3) -> str:
    """A metric value: fixed decimals, ``n/a`` when missing (None, NaN, not a number)."""
    return f"{x:.{digits}f}" if finite(x) else "n/a"


def format_signed(x: Any, digits: int = 3) -> str:
    """A signed difference (``+0.021``), ``n/a`` when missing."""
    return f"{x:+.{digits}f}" if finite(x) else "n/a"


def format_ms(x: Any) -> str:
    """Milliseconds with 3 significant digits (whole milliseconds from 1000 on)."""
    if not finite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def format_seconds(x: Any) -> str:
    """Seconds as a compact duration ("6h", "1d2h"); exactly zero is "0"."""
    if not finite(x):
        return "n/a"
    if x == 0:
        return "0"
    return format_duration(x * 1e6)


def format_count(x: Any) -> str:
    """A count, ``n/a`` when missing."""
    return str(int(x)) if finite(x) else "n/a"


def format_percent(share: Any) -> str:
    """A share of 1 as a whole percentage; a share too small to show is ``<1%``."""
    if not finite(share):
        return "n/a"
    return "<1%" if 0 < share < 0.01 else f"{share:.0%}"


def format_times_mean(ratio: Any) -> str:
    """How many times the mean rate a peak is (``3.2x``)."""
    return f"{ratio:.1f}x" if finite(ratio) else "n/a"


def format_epoch_minute(us: Any) -> str:
    """Microseconds since 1970 on the data's own (naive) clock, to the minute."""
    if not finite(us):
        return "n/a"
    try:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))
    except OverflowError:
        return "n/a"
    return when.isoformat(timespec="minutes")


def format_field(x: Any) -> str:
    """A manifest value as text; missing (None, NaN) is ``n/a``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return str(x)


def format_value_of(metric: str, value: Any) -> str:
    """A value of ``metric``: milliseconds for a ``*_ms`` name, else a metric value."""
    return format_ms(value) if metric.endswith("_ms") else format_metric(value)


def format_difference_of(metric: str, diff: Any) -> str:
    """A difference of ``metric``: milliseconds for a ``*_ms`` name, else signed."""
    return format_ms(diff) if metric.endswith("_ms") else format_signed(diff)


def workers_phrase(n: Any) -> str:
    """``1 worker``, ``3 workers``."""
    return f"{format_count(n)} worker" + ("" if n == 1 else "s")
