"""The smallest difference that matters: turning a paired interval into a decision.

A bootstrap interval that excludes zero says a difference is *real*; it does not say it is *worth
anything*. On a long stationary stream a strategy that sees a few more labels is "significantly"
better by 0.0004 AUC: true, and irrelevant to a decision. So every difference is read against the
smallest effect that matters for its metric, ``δ`` (an equivalence test, as in TOST):

* **no practical difference** — the whole interval lies within ``[-δ, +δ]``;
* **gain** / **loss** — the interval excludes 0 *and* the estimate is larger than ``δ`` in size
  (the direction says which, given whether higher is better for the metric);
* **inconclusive** — anything else (the interval is too wide to tell).

``δ`` is set per metric (``[report] min_effect`` in ``rtml.toml``, ``--min-effect`` on the command
line), either absolute (``auc=0.005``) or relative to the reference strategy's value
(``mae=1%``). The defaults are in :data:`DEFAULT_MIN_EFFECT` and in docs/semantics.md.

>>> classify(0.0004, 0.0001, 0.0007, 0.005, higher_is_better=True)
'no practical difference'
>>> classify(0.03, 0.02, 0.04, 0.005, higher_is_better=True)
'gain'
>>> classify(0.03, 0.02, 0.04, 0.005, higher_is_better=False)
'loss'
>>> classify(0.004, -0.01, 0.02, 0.005, higher_is_better=True)
'inconclusive'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from rtml_cli.errors import UsageError

GAIN, LOSS, EQUIVALENT, INCONCLUSIVE = "gain", "loss", "no practical difference", "inconclusive"

#: the naive references every run scores (rtml_cli/baselines.py); no strategy may take these names
REFERENCE_NAMES = ("persistence", "prior")

#: The defaults, chosen as what moves a decision: half an accuracy point, 0.005 AUC, one percent
#: of the reference's error for scale-dependent regression errors.
DEFAULT_MIN_EFFECT: dict[str, str] = {
    "accuracy": "0.005",
    "auc": "0.005",
    "f1": "0.01",
    "macro_f1": "0.01",
    "log_loss": "0.005",
    "brier": "0.002",
    "r2": "0.005",
    "mae": "1%",
    "rmse": "1%",
}


def parse_min_effect(
    entries: Iterable[str] | Mapping[str, object] | None,
    *,
    source: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Merge ``metric=value`` entries (flag) or a mapping (``rtml.toml``) over ``base`` (default:
    the defaults).

    A value is a non-negative number (absolute, in the metric's unit) or a percentage of the
    reference strategy's value (``1%``).

    >>> parse_min_effect(["auc=0.01", "mae=2%"], source="--min-effect")["auc"]
    '0.01'
    """
    out = dict(DEFAULT_MIN_EFFECT if base is None else base)
    if entries is None:
        return out
    pairs: list[tuple[str, object]]
    if isinstance(entries, Mapping):
        pairs = [(str(k), v) for k, v in entries.items()]
    else:
        pairs = []
        for text in entries:
            for part in str(text).split(","):
                if not part.strip():
                    continue
                name, sep, value = part.partition("=")
                if not sep:
                    raise UsageError(
                        f"{source}: '{part.strip()}' is not metric=value; write e.g. auc=0.005 "
                        "or mae=1%"
                    )
                pairs.append((name.strip(), value.strip()))
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"{source}: '{twice[0]}' is given more than once; give each metric one value"
        )
    for name, raw in pairs:
        if name not in DEFAULT_MIN_EFFECT:
            known = ", ".join(DEFAULT_MIN_EFFECT)
            raise UsageError(f"{source}: unknown metric '{name}'; the metrics are {known}")
        if isinstance(raw, bool):
            raise UsageError(f"{source}: {name} = {raw} is not a number; write e.g. {name} = 0.005")
        text = str(raw).strip()
        _check_value(text, name, source)
        out[name] = text
    return out


def _check_value(text: str, name: str, source: str) -> None:
    number = text[:-1] if text.endswith("%") else text
    try:
        x = float(number)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x >= 0):
        raise UsageError(
            f"{source}: {name}={text} is not a non-negative number or percentage; write e.g. "
            f"{name}=0.005 or {name}=1%"
        )


def threshold(text: str, reference_value: float | None) -> float | None:
    """``δ`` in the metric's unit; a percentage needs the reference's value (None if unknown).

    >>> threshold("1%", 200.0)
    2.0
    >>> threshold("0.005", None)
    0.005
    """
    if text.endswith("%"):
        if reference_value is None or not math.isfinite(reference_value):
            return None
        return abs(reference_value) * float(text[:-1]) / 100.0
    return float(text)


def classify(
    estimate: float | None,
    low: float | None,
    high: float | None,
    min_effect: float | None,
    *,
    higher_is_better: bool,
) -> str:
    """The decision for one paired difference (see the module docstring)."""
    if estimate is None or low is None or high is None or min_effect is None:
        return INCONCLUSIVE
    if -min_effect <= low and high <= min_effect:
        return EQUIVALENT
    excludes_zero = low > 0 or high < 0
    if excludes_zero and abs(estimate) > min_effect:
        return GAIN if (estimate > 0) == higher_is_better else LOSS
    return INCONCLUSIVE
