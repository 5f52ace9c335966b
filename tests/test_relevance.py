"""Practical relevance: a difference is a gain or a loss only when it is real and big enough."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtml_cli.errors import UsageError
from rtml_cli.relevance import (
    DEFAULT_MIN_EFFECT,
    EQUIVALENT,
    GAIN,
    INCONCLUSIVE,
    LOSS,
    classify,
    parse_min_effect,
    threshold,
)

_x = st.floats(-1, 1, allow_nan=False)


@given(_x, _x, _x, st.floats(0, 0.5), st.booleans())
def test_a_call_is_only_made_when_the_interval_supports_it(a, b, est, delta, hib):
    low, high = min(a, b), max(a, b)
    call = classify(est, low, high, delta, higher_is_better=hib)
    if call == EQUIVALENT:
        assert -delta <= low and high <= delta
    elif call in (GAIN, LOSS):
        assert (low > 0 or high < 0) and abs(est) > delta
        assert (call == GAIN) == ((est > 0) == hib)
    else:
        assert call == INCONCLUSIVE
        assert not (-delta <= low and high <= delta)


def test_the_stationary_example_of_the_issue_is_no_practical_difference():
    # a significant but tiny AUC loss (interval excludes 0) is not a loss worth a decision
    assert classify(-0.0004, -0.0007, -0.0001, 0.005, higher_is_better=True) == EQUIVALENT
    assert classify(-0.0004, -0.0007, -0.0001, 0.0, higher_is_better=True) == LOSS


def test_no_interval_is_inconclusive():
    assert classify(0.2, None, None, 0.005, higher_is_better=True) == INCONCLUSIVE
    assert classify(None, None, None, 0.005, higher_is_better=True) == INCONCLUSIVE


def test_relative_thresholds_need_the_reference_value():
    assert threshold("1%", -50.0) == 0.5
    assert threshold("1%", None) is None
    assert threshold("0.01", None) == 0.01


def test_min_effect_entries_override_the_defaults():
    got = parse_min_effect(["auc=0.01,mae=2%", "accuracy=0"], source="--min-effect")
    assert got["auc"] == "0.01" and got["mae"] == "2%" and got["accuracy"] == "0"
    assert got["rmse"] == DEFAULT_MIN_EFFECT["rmse"]
    assert parse_min_effect({"r2": 0.02}, source="rtml.toml [report] min_effect")["r2"] == "0.02"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("auc", "is not metric=value"),
        ("auroc=0.01", "unknown metric 'auroc'"),
        ("auc=-0.1", "not a non-negative number"),
        ("auc=nan", "not a non-negative number"),
        ("auc=x%", "not a non-negative number"),
        ("auc=0.1,auc=0.2", "'auc' is given more than once"),
    ],
)
def test_bad_min_effect_entries_name_the_entry_and_the_fix(entry, fragment):
    with pytest.raises(UsageError, match=fragment) as err:
        parse_min_effect([entry], source="--min-effect")
    assert "--min-effect" in str(err.value)
