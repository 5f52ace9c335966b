"""Point-in-time windowed features: vectorised code against an obviously-correct reference."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rtml_cli.errors import ConfigError
from rtml_cli.features import (
    AGGS,
    FEATURE_AGE,
    CalendarSpec,
    FeatureSpec,
    asof_features,
    calendar_features,
    cutoff_grid,
    fresh_features,
    parse_features,
)
from rtml_cli.io import EVENT_TIME, LABEL_TIME

EPOCH = dt.datetime(2024, 1, 1)
MIN = 60_000_000  # one minute in microseconds


def at(minutes: int) -> dt.datetime:
    return EPOCH + dt.timedelta(minutes=minutes)


# ---------------------------------------------------------------------------------------------
# the reference: a plain double loop, one row and one candidate at a time


def reference(
    rows: list[dict[str, Any]],
    spec: FeatureSpec,
    *,
    label_col: str | None,
    query: list[dt.datetime] | None = None,
) -> tuple[list[Any], list[int | None]]:
    """Value and age of ``spec`` for each row, straight from the definition."""
    w = dt.timedelta(microseconds=spec.window_us)
    keys = list(spec.key or ())
    values: list[Any] = []
    ages: list[int | None] = []
    for i, ri in enumerate(rows):
        q = query[i] if query is not None else ri[EVENT_TIME]
        if any(ri[k] is None for k in keys):
            values.append(None)
            ages.append(None)
            continue
        picked = []  # (time, position, value)
        for j, rj in enumerate(rows):
            if any(rj[k] != ri[k] for k in keys):
                continue
            if not (q - w <= rj[EVENT_TIME] < q):
                continue
            if spec.column == "*":
                picked.append((rj[EVENT_TIME], j, 1.0))
                continue
            v = rj[spec.column]
            if v is None:
                continue
            if spec.column == label_col and not (rj[LABEL_TIME] is not None and rj[LABEL_TIME] < q):
                continue
            picked.append((rj[EVENT_TIME], j, float(v) if isinstance(v, bool) else v))
        vals = [p[2] for p in picked]
        agg = spec.agg
        if agg == "count":
            value: Any = len(vals)
        elif agg == "sum":
            value = float(sum(vals))
        elif agg == "mean":
            value = statistics.fmean(vals) if vals else None
        elif agg == "min":
            value = float(min(vals)) if vals else None
        elif agg == "max":
            value = float(max(vals)) if vals else None
        elif agg == "std":
            value = statistics.stdev(vals) if len(vals) > 1 else None
        elif agg == "last":
            value = max(picked, key=lambda p: (p[0], p[1]))[2] if picked else None
        else:
            value = len(set(vals))
        values.append(value)
        if picked:
            newest = max(p[0] for p in picked)
            ages.append((ri[EVENT_TIME] - newest) // dt.timedelta(microseconds=1))
        else:
            ages.append(None)
    return values, ages


def assert_same(got: list[Any], want: list[Any], what: str) -> None:
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None or g is None:
            assert g is None and w is None, f"{what} row {i}: got {g!r}, want {w!r}"
        elif isinstance(w, float):
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9), (
                f"{what} row {i}: got {g!r}, want {w!r}"
            )
        else:
            assert g == w, f"{what} row {i}: got {g!r}, want {w!r}"


# ---------------------------------------------------------------------------------------------
# generated tables: ties, gaps, nulls in keys, values and labels, label delays


@st.composite
def tables(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(1, 30))
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 2, 5, 30, 200]), min_size=n, max_size=n))
    times = []
    acc = 0
    for g in gaps:
        acc += g
        times.append(at(acc))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n))
    g2 = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    x = draw(
        st.lists(
            st.one_of(st.none(), st.integers(-3, 3).map(float), st.floats(-1e3, 1e3)),
            min_size=n,
            max_size=n,
        )
    )
    s = draw(
        st.lists(st.one_of(st.none(), st.sampled_from(["p", "q", "r"])), min_size=n, max_size=n)
    )
    y = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
    delay = draw(st.lists(st.sampled_from([0, 0, 1, 3, 10, 60, 500]), min_size=n, max_size=n))
    lab = [
        None if yy is None else t + dt.timedelta(minutes=d)
        for yy, t, d in zip(y, times, delay, strict=True)
    ]
    return pl.DataFrame(
        {EVENT_TIME: times, "k": keys, "g": g2, "x": x, "s": s, "y": y, LABEL_TIME: lab},
        schema={
            EVENT_TIME: pl.Datetime("us"),
            "k": pl.String,
            "g": pl.Int64,
            "x": pl.Float64,
            "s": pl.String,
            "y": pl.Boolean,
            LABEL_TIME: pl.Datetime("us"),
        },
    )


def spec_for(agg: str, column: str, key: Any, window_min: int) -> FeatureSpec:
    return FeatureSpec.build(
        key=key,
        column=column,
        agg=agg,
        window=f"{window_min}m",
        name=f"f_{agg}_{column.strip('*') or 'star'}",
    )


def all_specs(window: int, key: Any) -> list[FeatureSpec]:
    specs = [spec_for("count", "*", key, window)]
    for agg in AGGS:
        specs.append(spec_for(agg, "x", key, window))
        specs.append(spec_for(agg, "y", key, window))  # the delayed label
        if agg in ("count", "last", "count_distinct"):
            specs.append(spec_for(agg, "s", key, window))
    return specs


def check_against_reference(
    df: pl.DataFrame, specs: list[FeatureSpec], query: list[dt.datetime] | None
) -> None:
    if query is None:
        out = fresh_features(df, specs, label_col="y")
    else:
        out = asof_features(df, specs, pl.Series(query, dtype=pl.Datetime("us")), label_col="y")
    rows = df.to_dicts()
    all_ages = []
    for spec in specs:
        want_v, want_a = reference(rows, spec, label_col="y", query=query)
        assert_same(out[spec.value_col].to_list(), want_v, f"{spec.name} value")
        assert_same(out[spec.age_col].to_list(), want_a, f"{spec.name} age")
        all_ages.append(want_a)
    combined = [
        min((a for a in col if a is not None), default=None) for col in zip(*all_ages, strict=True)
    ]
    assert out[FEATURE_AGE].to_list() == combined


KEYS = st.sampled_from(["k", None, ["k", "g"]])
WINDOWS = st.sampled_from([1, 2, 7, 60, 1000])


def small_table(rows: list[tuple[int, str, float | None]]) -> pl.DataFrame:
    """(minute, key, x) rows as a ``tables()``-shaped frame (labels all arrive at once)."""
    return pl.DataFrame(
        {
            EVENT_TIME: [at(m) for m, _, _ in rows],
            "k": [k for _, k, _ in rows],
            "g": [0] * len(rows),
            "x": [x for _, _, x in rows],
            "s": ["p"] * len(rows),
            "y": [True] * len(rows),
            LABEL_TIME: [at(m) for m, _, _ in rows],
        },
        schema={
            EVENT_TIME: pl.Datetime("us"),
            "k": pl.String,
            "g": pl.Int64,
            "x": pl.Float64,
            "s": pl.String,
            "y": pl.Boolean,
            LABEL_TIME: pl.Datetime("us"),
        },
    )


# Found by hypothesis: the std of a window is computed from prefix sums over every earlier row,
# other keys included; a true small spread must survive that noise, and equal values must give 0.
TINY_SPREAD = small_table(
    [(0, "b", 3e7), (0, "b", -2e7), (1, "a", 0.0), (1, "a", 1.1920929e-07), (2, "a", None)]
)
EQUAL_AFTER_BIG = small_table(
    [
        (0, "a", 987.654321),
        (0, "b", 0.3),
        (5, "b", 0.3),
        (5, "b", 0.3),
        (6, "b", 0.3),
        (7, "a", -555.5),
        (8, "b", 1.0),
    ]
)
TINY_GLOBAL = small_table(
    [(0, "a", 1e3), (0, "a", -1e3), (1, "a", 0.0), (1, "a", 1.1920929e-07), (2, "a", 1e-300)]
)


@example(df=TINY_SPREAD, window=60, key="k")
@example(df=TINY_SPREAD, window=60, key=None)
@example(df=EQUAL_AFTER_BIG, window=7, key="k")
@example(df=EQUAL_AFTER_BIG, window=2, key=["k", "g"])
@example(df=TINY_GLOBAL, window=1, key=None)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), window=WINDOWS, key=KEYS)
def test_fresh_matches_reference(df: pl.DataFrame, window: int, key: Any) -> None:
    check_against_reference(df, all_specs(window, key), None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(
            st.floats(-1e3, 1e3),
            st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1.1920929e-07, 3e7, -2e7, 0.1]),
        ),
        min_size=2,
        max_size=25,
    ),
    data=st.data(),
)
@example(values=[3e7, -2e7, 0.0, 1.1920929e-07], data=None)
@example(values=[1e3, 0.1, 0.1, 0.1], data=None)
@example(values=[0.0, -0.0, 5e-324], data=None)
def test_std_is_zero_exactly_when_values_are_equal(
    values: list[float], data: st.DataObject | None
) -> None:
    """Equal values give exactly 0.0; distinct values never do, and match the reference."""
    keys = (
        data.draw(st.lists(st.sampled_from("ab"), min_size=len(values), max_size=len(values)))
        if data
        else ["b", "b"] + ["a"] * (len(values) - 2)
    )
    df = small_table([(i // 3, k, v) for i, (k, v) in enumerate(zip(keys, values, strict=True))])
    spec = spec_for("std", "x", "k", 60)
    out = fresh_features(df, [spec], label_col="y")[spec.value_col].to_list()
    want, _ = reference(df.to_dicts(), spec, label_col="y")
    assert_same(out, want, "std")
    rows = df.to_dicts()
    for i, got in enumerate(out):
        window = [
            r["x"] for r in rows if r["k"] == rows[i]["k"] and r[EVENT_TIME] < rows[i][EVENT_TIME]
        ]
        if got is not None:
            assert (got == 0.0) == (len(set(window)) == 1), (window, got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), window=WINDOWS, key=KEYS, every=st.sampled_from([1, 10, 60, 1440]))
def test_asof_cutoff_matches_reference(df: pl.DataFrame, window: int, key: Any, every: int) -> None:
    cut = cutoff_grid(df[EVENT_TIME], every * MIN)
    check_against_reference(df, all_specs(window, key), cut.to_list())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), window=WINDOWS, key=KEYS, data=st.data())
def test_unsorted_input_keeps_row_order(
    df: pl.DataFrame, window: int, key: Any, data: st.DataObject
) -> None:
    perm = data.draw(st.permutations(list(range(df.height))))
    specs = all_specs(window, key)
    sorted_out = fresh_features(df, specs, label_col="y").with_row_index("i")
    shuffled = df[perm]
    out = fresh_features(shuffled, specs, label_col="y")
    # Ties keep table order, so "last" may legitimately differ among tied rows: compare the rest.
    expected = sorted_out[perm].drop("i")
    stable = [c for c in out.columns if "last" not in c]
    if df[EVENT_TIME].n_unique() == df.height:
        stable = out.columns
    # Sums are shifted by the key's first known value, so tie order may move the last bits.
    assert_frame_equal(
        out.select(stable), expected.select(stable), check_exact=False, rel_tol=1e-9, abs_tol=1e-9
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), window=WINDOWS, key=KEYS, data=st.data())
def test_no_value_depends_on_the_future(
    df: pl.DataFrame, window: int, key: Any, data: st.DataObject
) -> None:
    """Perturb every row at or after t_i and every label not arrived by t_i: row i is unchanged."""
    i = data.draw(st.integers(0, df.height - 1))
    ti = df[EVENT_TIME][i]
    specs = all_specs(window, key)
    base_out = fresh_features(df, specs, label_col="y")
    before = base_out.row(i)
    future = pl.col(EVENT_TIME) >= ti
    unarrived = pl.col(LABEL_TIME).is_null() | (pl.col(LABEL_TIME) >= ti)
    perturbed = df.with_columns(
        pl.when(future).then(pl.col("x") * 7 + 1).otherwise(pl.col("x")).alias("x"),
        pl.when(future).then(pl.lit("zz")).otherwise(pl.col("s")).alias("s"),
        pl.when(future & (pl.int_range(pl.len()) != i))
        .then(pl.lit("b"))
        .otherwise(pl.col("k"))
        .alias("k"),
        pl.when(unarrived).then(~pl.col("y")).otherwise(pl.col("y")).alias("y"),
    )
    # Extra future rows of every key, and a late label that only arrives at t_i.
    extra = perturbed.head(1).with_columns(
        pl.lit(ti).alias(EVENT_TIME),
        pl.lit(99.0).alias("x"),
        pl.lit(True).alias("y"),
        pl.lit(ti).alias(LABEL_TIME),
    )
    grown = pl.concat(
        [
            perturbed,
            extra,
            extra.with_columns(
                pl.col(EVENT_TIME) + pl.duration(minutes=5),
                pl.col(LABEL_TIME) + pl.duration(minutes=5),
            ),
        ]
    )
    after = fresh_features(grown, specs, label_col="y").row(i)
    for name, b, a in zip(base_out.columns, before, after, strict=True):
        if isinstance(b, float):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), name
        else:
            assert a == b, name


# ---------------------------------------------------------------------------------------------
# hand-checked cases: docs/semantics.md's worked example and the batch as-of-cutoff rule


def worked_example() -> pl.DataFrame:
    d = lambda day, h, m=0: dt.datetime(2024, 1, 1 + day, h, m)  # noqa: E731
    df = pl.DataFrame(
        {
            EVENT_TIME: [d(0, 2), d(0, 14), d(1, 0, 30), d(1, 6), d(1, 23, 30), d(2, 9)],
            "u": ["a"] * 6,
            "x": [1.0, 2, 3, 4, 5, 6],
            "y": [0, 1, 1, 0, 1, 0],
        }
    )
    return df.with_columns((pl.col(EVENT_TIME) + pl.duration(hours=1)).alias(LABEL_TIME))


def test_worked_example_batch_snapshot_of_x() -> None:
    """docs/semantics.md, worked example: batch serves e1's x=2 for e2..e4 (day1 snapshot) and e4's x=5 for e5."""
    df = worked_example()
    spec = FeatureSpec.parse("u:x:last:7d:x")
    out = asof_features(df, [spec], cutoff_grid(df[EVENT_TIME], 86_400_000_000), label_col="y")
    assert out["rtml_f_x"].to_list() == [None, None, 2.0, 2.0, 2.0, 5.0]
    # e3 at day1 06:00 uses e1 (day0 14:00): feature age 16h, as in docs/semantics.md's worked example.
    assert out["rtml_age_x"][3] == 16 * 3600 * 1_000_000
    fresh = fresh_features(df, [spec], label_col="y")
    assert fresh["rtml_f_x"].to_list() == [None, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_worked_example_label_rate_respects_delay() -> None:
    df = worked_example()
    spec = FeatureSpec.parse("u:y:mean:1d:ctr")
    fresh = fresh_features(df, [spec], label_col="y")["rtml_f_ctr"].to_list()
    # e5 at day2 09:00: only e4 (label 1, arrived 00:30) is in [day1 09:00, day2 09:00).
    assert fresh == [None, 0.0, 0.5, 1.0, 0.5, 1.0]
    batch = asof_features(df, [spec], cutoff_grid(df[EVENT_TIME], 86_400_000_000), label_col="y")[
        "rtml_f_ctr"
    ].to_list()
    # Snapshot day2 00:00 sees e2, e3 labels in [day1 00:00, day2 00:00); e4's arrives at 00:30.
    assert batch == [None, None, 0.5, 0.5, 0.5, 0.5]


def test_batch_cutoff_tiny_cases() -> None:
    df = pl.DataFrame(
        {
            EVENT_TIME: [at(0), at(59), at(60), at(60), at(61), at(125)],
            "k": ["a", "a", "a", "b", "a", "a"],
            "x": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
        }
    )
    spec = FeatureSpec.parse("k:x:sum:1h:s")
    cut = cutoff_grid(df[EVENT_TIME], 60 * MIN)  # hourly: 0, 0, 60, 60, 60, 120
    assert cut.to_list() == [at(0), at(0), at(60), at(60), at(60), at(120)]
    out = asof_features(df, [spec], cut)
    # An event on the grid is served by the snapshot at that instant, which sees only the past;
    # the snapshot at 120 covers [60, 120): rows at 60 and 61 of key a.
    assert out["rtml_f_s"].to_list() == [0.0, 0.0, 3.0, 0.0, 3.0, 20.0]
    assert fresh_features(df, [spec])["rtml_f_s"].to_list() == [0.0, 1.0, 3.0, 0.0, 6.0, 0.0]


def test_global_key_and_calendar() -> None:
    df = pl.DataFrame(
        {
            EVENT_TIME: [dt.datetime(2024, 1, 6, 23, 30), dt.datetime(2024, 1, 7, 0, 10)],
            "x": [1.0, 2.0],
        }
    )
    specs = parse_features([":*:count:1h", "hour", "dow"])
    out = fresh_features(df, specs)
    assert out["rtml_f_all_count_1h"].to_list() == [0, 1]
    assert out["rtml_f_hour"].to_list() == [23, 0]
    assert out["rtml_f_dow"].to_list() == [6, 7]  # Saturday, Sunday
    assert calendar_features(df, ["hour"]).columns == ["rtml_f_hour"]


# ---------------------------------------------------------------------------------------------
# configuration


def test_compact_form() -> None:
    s = FeatureSpec.parse("user_id:click:mean:1h")
    assert (s.key, s.column, s.agg, s.window_us, s.name) == (
        ("user_id",),
        "click",
        "mean",
        3_600_000_000,
        "user_id_click_mean_1h",
    )
    s = FeatureSpec.parse("user+item:*:count:5m:views")
    assert (s.key, s.column, s.name) == (("user", "item"), "*", "views")
    assert s.value_col == "rtml_f_views" and s.age_col == "rtml_age_views"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"key": "u", "column": "x", "agg": "avg", "window": "1h"},
            "'agg' = 'avg' is not an aggregation. Did you mean 'mean'?",
        ),
        ({"key": "u", "column": "x", "agg": "summ", "window": "1h"}, "Did you mean 'sum'?"),
        (
            {"key": "u", "column": "x", "agg": "sum", "window": "1 hour"},
            "must be a duration such as",
        ),
        (
            {"key": "u", "column": "x", "agg": "sum", "window": "0"},
            "'window' must be a positive duration",
        ),
        ({"key": "u", "column": "*", "agg": "sum", "window": "1h"}, 'column "*" counts events'),
        ({"key": "u", "column": "x", "agg": "sum"}, "missing 'window'"),
        (
            {"key": "u", "column": "x", "agg": "sum", "windw": "1h"},
            "unknown key 'windw'. Did you mean 'window'?",
        ),
        ({"key": 3, "column": "x", "agg": "sum", "window": "1h"}, "'key' must be a column name"),
        (
            {"column": "x", "agg": "sum", "window": "1h", "name": "bad name"},
            "'name' must start with",
        ),
    ],
)
def test_config_errors(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        FeatureSpec.from_config(entry)
    assert fragment in str(exc.value)


def test_cli_form_and_column_errors() -> None:
    with pytest.raises(ConfigError, match="KEY:COLUMN:AGG:WINDOW"):
        FeatureSpec.parse("user_id:click:mean")
    with pytest.raises(ConfigError, match="Did you mean 'hour'"):
        CalendarSpec.parse("houre")
    with pytest.raises(ConfigError, match="two features are named 'a'"):
        parse_features(["u:x:sum:1h:a", "u:x:max:1h:a"])
    df = pl.DataFrame({EVENT_TIME: [at(0)], "u": ["a"], "xs": ["p"]})
    with pytest.raises(ConfigError, match="column 'x' not found in the table. Did you mean 'xs'"):
        fresh_features(df, [FeatureSpec.parse("u:x:sum:1h")])
    with pytest.raises(ConfigError, match="needs a numeric or boolean column, but 'xs' is String"):
        fresh_features(df, [FeatureSpec.parse("u:xs:mean:1h")])


def test_label_min_needs_few_label_values() -> None:
    df = pl.DataFrame(
        {
            EVENT_TIME: [at(i) for i in range(70)],
            "u": ["a"] * 70,
            "y": [float(i) for i in range(70)],
        }
    )
    df = df.with_columns(pl.col(EVENT_TIME).alias(LABEL_TIME))
    with pytest.raises(ConfigError, match="at most 64 distinct label values; it has 70"):
        fresh_features(df, [FeatureSpec.parse("u:y:max:1h")], label_col="y")
    # Aggregates that decompose work for any label.
    assert (
        fresh_features(df, [FeatureSpec.parse("u:y:mean:1h:m")], label_col="y")["rtml_f_m"][2]
        == 0.5
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), window=WINDOWS, key=KEYS, every=st.sampled_from([None, 10]))
def test_overflow_fallback_matches_reference(
    df: pl.DataFrame, window: int, key: Any, every: int | None
) -> None:
    """Keys x time span too large for int64 codes: times are ranked instead; same answers."""
    import rtml_cli.features_aggregates as aggregates
    from rtml_cli.features_window_index import dense_key_codes

    original = aggregates.key_codes
    aggregates.key_codes = lambda base, keys, bounds: dense_key_codes(base, keys)
    try:
        query = None if every is None else cutoff_grid(df[EVENT_TIME], every * MIN).to_list()
        check_against_reference(df, all_specs(window, key), query)
    finally:
        aggregates.key_codes = original


def test_huge_time_span_with_many_keys() -> None:
    times = [dt.datetime(1, 1, 1), dt.datetime(9999, 1, 1)] * 20
    df = pl.DataFrame({EVENT_TIME: times, "k": [f"k{i // 2}" for i in range(40)], "x": [1.0] * 40})
    df = df.sort(EVENT_TIME, maintain_order=True)
    out = fresh_features(df, [FeatureSpec.parse("k:x:sum:100000d:s")])
    # Each key: one row in year 1, one in 9999 (outside a 100000-day window of each other).
    assert out["rtml_f_s"].to_list() == [0.0] * 40


def test_std_of_equal_values_is_exactly_zero_despite_large_prefixes():
    """Regression (found by the property test): prefix sums carry rounding noise from earlier
    rows and keys; a window of equal values must still give 0.0, and a large offset must not
    swallow a small spread."""
    t0 = dt.datetime(2024, 1, 1)
    m = dt.timedelta(minutes=1)
    rows = [
        ("b", t0, 3e7),
        ("b", t0 + m, -2e7),  # another key first: big prefixes
        ("a", t0, 1e-5),
        ("a", t0, 6.0),
        ("a", t0 + 5 * m, 0.0),
        ("a", t0 + 5 * m, 0.0),
        ("a", t0 + 10 * m, None),
        ("c", t0, 1e6 + 1),
        ("c", t0, 1e6 + 2),
        ("c", t0, 1e6 + 3),
        ("c", t0 + 5 * m, None),
    ]
    df = pl.DataFrame(
        {"k": [r[0] for r in rows], EVENT_TIME: [r[1] for r in rows], "x": [r[2] for r in rows]}
    ).sort(EVENT_TIME, maintain_order=True)
    spec = FeatureSpec.parse("k:x:std:5m")
    out = fresh_features(df, [spec]).with_columns(df["k"], df[EVENT_TIME])
    a_at_10 = out.filter((pl.col("k") == "a") & (pl.col(EVENT_TIME) == t0 + 10 * m))
    assert a_at_10[spec.value_col].to_list() == [0.0]
    c_at_5 = out.filter((pl.col("k") == "c") & (pl.col(EVENT_TIME) == t0 + 5 * m))
    assert math.isclose(c_at_5[spec.value_col][0], 1.0, rel_tol=1e-9)
