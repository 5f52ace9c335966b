"""The --check grammar: parsing, precedence, errors naming unknown metrics, evaluation status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rtml_cli.checks import (
    MAX_CHECK_CHARS,
    MAX_CHECK_DEPTH,
    MAX_CHECK_TOKENS,
    evaluate_checks,
    exit_code,
    named_metrics,
    parse_check,
)
from rtml_cli.cli import app
from rtml_cli.errors import UsageError

RUN = Path(__file__).parent / "data" / "run_small"
ENV = {"a.x": 2.0, "b.y": 3.0, "c.z": 0.5, "a.none": None}


@pytest.fixture
def runner():
    return CliRunner()


def one(expr: str, env=ENV, reasons=None):
    return evaluate_checks([expr], env, reasons or {"a.none": "only one class"})[0]


@pytest.mark.parametrize(
    "expr, status",
    [
        ("a.x >= 2", "pass"),
        ("a.x > 2", "fail"),
        ("a.x + b.y * c.z == 3.5", "pass"),  # * before +
        ("(a.x + b.y) * c.z == 2.5", "pass"),
        ("a.x - b.y - c.z == -1.5", "pass"),  # left-associative
        ("b.y / a.x / c.z == 3", "pass"),
        ("-a.x < 0", "pass"),
        ("a.x - -1 == 3", "pass"),
        ("c.z == 50%", "pass"),
        ("a.x <= 1e1 and b.y != 3", "fail"),
        ("a.x <= 1e1 AND b.y < 4", "pass"),
        ("1 < a.x", "pass"),
    ],
)
def test_valid_checks_evaluate(expr, status):
    assert one(expr).status == status


def test_parse_reports_names_in_order():
    assert parse_check("online.auc - batch_daily.auc >= 0.01").names() == [
        "online.auc",
        "batch_daily.auc",
    ]


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("a.x >", "at the end"),
        ("a.x 2", "expected a comparison"),
        ("a.x >= 1 b.y", "'and' or the end"),
        ("(a.x >= 1)", "expected ')' at '>='"),
        ("(a.x + 1 >= 1", "')'"),
        ("a.x >= 1 $", "unexpected character '$'"),
        ("auc >= 1", "'auc' is not a metric name"),
        ("", "empty"),
        ("a.x >= 1 and", "at the end"),
    ],
)
def test_invalid_checks_say_where(expr, fragment):
    with pytest.raises(UsageError) as e:
        one(expr)
    assert fragment in str(e.value)
    if expr:
        assert "e.g." in str(e.value)  # the grammar hint comes with every syntax error


def test_unknown_metric_names_it_and_lists_the_known_ones():
    with pytest.raises(UsageError) as e:
        one("a.xx > 1")
    msg = str(e.value)
    assert "unknown metric 'a.xx'" in msg and "Did you mean 'x'?" in msg
    assert "Known metrics for 'a': none, x" in msg


def test_unknown_strategy_lists_strategies():
    with pytest.raises(
        UsageError, match=r"unknown strategy 'd' in 'd.x'.*Strategies in this run: a, b, c"
    ):
        one("d.x > 1")


def test_unknown_name_fails_before_any_check_is_evaluated():
    with pytest.raises(UsageError):
        evaluate_checks(["a.x > 1", "a.nope > 1"], ENV)


def test_missing_value_is_an_error_status_with_the_reason():
    r = one("a.none > 0.5")
    assert r.status == "error" and "only one class" in r.detail
    assert one("a.x / (b.y - 3) > 1").status == "error"  # division by zero is no crash


def test_exit_code_precedence():
    p, f, e = one("a.x > 1"), one("a.x > 5"), one("a.none > 1")
    assert exit_code([]) == 0 and exit_code([p]) == 0
    assert exit_code([p, f]) == 1
    assert exit_code([f, e]) == 3


@settings(max_examples=80, deadline=None)
@given(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(0.5, 1e3, allow_nan=False),  # divisors stay away from zero
    st.floats(0.5, 1e3, allow_nan=False),
    st.sampled_from(["+", "-", "*", "/"]),
    st.sampled_from(["+", "-", "*", "/"]),
)
def test_arithmetic_matches_python_precedence(x, y, z, op1, op2):
    env = {"s.x": x, "s.y": y, "s.z": z}
    expected = eval(f"x {op1} y {op2} z", {}, {"x": x, "y": y, "z": z})  # reference only
    r = evaluate_checks([f"s.x {op1} s.y {op2} s.z <= {expected!r}"], env)[0]
    assert r.status == "pass", r.detail


def test_named_metrics_of_a_real_run_cover_quality_diff_latency_freshness():
    m = json.loads((RUN / "metrics.json").read_text())
    values, reasons = named_metrics(m)
    assert values["stream.auc"] == m["quality"]["stream"]["auc"]
    assert values["online.auc_diff_low"] == m["diff_to_baseline"]["online"]["auc"]["low"]
    assert "batch_daily.auc_diff" not in values  # the baseline has no difference to itself
    single = m["compute"]["stream"]["predict_single_row"]["wall_ms"]
    assert values["stream.predict_p99_ms"] == single["p99"]
    assert values["stream.predict_p999_ms"] == single["p99.9"]
    assert (
        values["online.update_p99_ms"]
        == m["compute"]["online"]["kinds"]["update"]["wall_ms"]["p99"]
    )
    assert (
        values["stream.update_p99_ms"] is None
        and "no timed update" in reasons["stream.update_p99_ms"]
    )
    assert (
        values["batch_daily.staleness_mean_s"]
        == m["freshness"]["batch_daily"]["staleness_s"]["mean"]
    )


# --------------------------------------------------------------------------- bounded parsing

LIMIT_CASES = [
    ("(" * 5000 + "1" + ")" * 5000 + " > 0", "too long"),
    ("-" * 100000 + "1 > 0", "too long"),
    ("+".join(["1"] * 500_000) + " > 0", "too long"),  # a 1 MB sum
    ("(" * (MAX_CHECK_DEPTH + 1) + "1" + ")" * (MAX_CHECK_DEPTH + 1) + " > 0", "too deeply nested"),
    ("-" * (MAX_CHECK_DEPTH + 1) + "1 > 0", "too deeply nested"),
    ("1" + " + 1" * MAX_CHECK_TOKENS + " > 0", "too long"),
]


@pytest.mark.parametrize("expr, fragment", LIMIT_CASES, ids=lambda v: str(v)[:20])
def test_huge_or_deep_checks_are_refused_with_the_limit(expr, fragment):
    with pytest.raises(UsageError) as e:
        one(expr)
    msg = str(e.value)
    assert fragment in msg and "the limit is" in msg
    assert len(msg) < 400  # the expression is quoted cut, not in full


@pytest.mark.parametrize("expr, fragment", LIMIT_CASES[:4], ids=lambda v: str(v)[:20])
def test_huge_checks_exit_2_through_the_cli(runner, expr, fragment):
    r = runner.invoke(app, ["report", str(RUN), "--check", expr])
    assert r.exit_code == 2, r.output
    assert fragment in r.output and "Traceback" not in r.output


def test_checks_at_the_limits_still_evaluate():
    deep = "(" * (MAX_CHECK_DEPTH // 2) + "-" * (MAX_CHECK_DEPTH // 2) + "a.x"
    deep += ")" * (MAX_CHECK_DEPTH // 2) + " == 2"
    assert one(deep).status == "pass"
    terms = (MAX_CHECK_TOKENS - 2) // 2  # "a.x + a.x + ... > 0"
    assert one(" + ".join(["a.x"] * terms) + " > 0").status == "pass"
    assert len("1" * MAX_CHECK_CHARS) == MAX_CHECK_CHARS
    assert one("1" * (MAX_CHECK_CHARS - 4) + " > 0").status == "pass"


_ALPHABET = st.sampled_from(
    list("()-+*/%.<>=! 0123456789eEa_xyz")
    + ["and", "a.x", "b.y", "\x00", "é", "min(", "max(x)", "mean(a.x)"]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_ALPHABET, max_size=400).map("".join)))
@example("(" * 40 + "1" + ")" * 40 + " > 0")
@example("1e999999 * 0 > 1")
@example("a.x / (a.x - a.x) > 0")
@example("min(")
@example("max(x) > min(a.x)")
def test_arbitrary_text_raises_only_usage_errors(src):
    try:
        results = evaluate_checks([src], ENV, {"a.none": "only one class"})
    except UsageError:
        return
    assert results[0].status in ("pass", "fail", "error")


# --------------------------------------------------------------------------- aggregates

SWEEP_ENV = {"c000.batch.auc": 0.70, "c001.batch.auc": 0.80, "c001.online.auc": 0.60,
             "c001.online.n": 10.0, "c002.online.auc": None}  # fmt: skip


@pytest.mark.parametrize(
    "expr, status, value",
    [
        ("min(batch.auc) >= 0.7", "pass", 0.7),
        ("max(batch.auc) > 0.8", "fail", 0.8),
        ("mean(batch.auc) == 0.75", "pass", 0.75),
        ("max(c001.batch.auc) - min(c001.batch.auc) == 0", "pass", None),
        ("min(n) > 5", "pass", 10.0),
    ],
)
def test_aggregates_cover_every_name_ending_with_the_reference(expr, status, value):
    r = evaluate_checks([expr], SWEEP_ENV)[0]
    assert r.status == status, r.detail
    if value is not None:
        assert list(r.values.values())[0] == pytest.approx(value)


def test_an_aggregate_over_a_missing_value_is_an_error_with_its_reason():
    r = evaluate_checks(["min(auc) > 0.5"], SWEEP_ENV, {"c002.online.auc": "cell c002 failed"})[0]
    assert r.status == "error" and "cell c002 failed" in r.detail
    assert exit_code([r]) == 3
    assert evaluate_checks(["min(batch.auc) > 0.5"], SWEEP_ENV)[0].status == "pass"


def test_aggregates_in_a_single_run_range_over_strategies():
    r = evaluate_checks(["max(x) < min(y)"], {"a.x": 1.0, "b.x": 2.0, "b.y": 3.0})[0]
    assert r.status == "pass" and r.values == {"max(x)": 2.0, "min(y)": 3.0}


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("min(aucc) > 0", "covers no metric. Did you mean 'auc'?"),
        ("min(auc > 0", "expected ')' closing min("),
        ("max(1) > 0", "a metric name inside max(...)"),
        ("mean > 0", "'mean' is not a metric name"),
    ],
)
def test_bad_aggregates_are_usage_errors_that_say_what(expr, fragment):
    with pytest.raises(UsageError, match=re.escape(fragment)):
        evaluate_checks([expr], SWEEP_ENV)


def test_cost_section_becomes_named_metrics():
    metrics = json.loads((RUN / "metrics.json").read_text())
    s = metrics["strategies"][0]
    metrics["cost"] = {s: {"retrain_cpu_s_per_day": 1.5, "batch_job": {"predictions": 10}}}
    values, _ = named_metrics(metrics)
    assert values[f"{s}.cost_retrain_cpu_s_per_day"] == 1.5
    assert values[f"{s}.cost_batch_job_predictions"] == 10.0
