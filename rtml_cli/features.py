"""Point-in-time windowed aggregates per key, and request-time calendar features (docs/semantics.md: Feature views, Windowed aggregates).

A windowed feature ("mean click of this user in the last 1h") is evaluated for each event *i*
at a query time ``q_i``:

* ``stream`` / ``online`` / ``static`` use ``q_i = t_i`` (:func:`fresh_features`);
* ``batch`` uses ``q_i = c_i``, the cutoff of the snapshot that served event *i*
  (:func:`asof_features`; training rows use their own preceding cutoff, so there is no
  train/serve skew).

The value aggregates the rows *j* of the same key whose event time lies in ``[q_i - window, q_i)``
and whose value was known before ``q_i``: a plain column is known at ``t_j``; the label column is
known at its arrival ``l_j`` (so a row counts iff ``t_j >= q_i - window`` and ``l_j < q_i``).
Nothing at or after ``q_i`` is ever used: the current event is excluded, and so are ties at
``q_i``. Nulls (in values, or labels not known) never contribute. Over an empty window,
``count``/``sum``/``count_distinct`` are 0 and the other aggregates null. Rows whose key is null
get null features and contribute to no other row.

How it is computed (linear after sorting, no per-row Python): a row *j* contributes to the query
times in the half-open interval ``(a_j, e_j]`` where ``a_j`` is when it became known (``t_j`` or
``l_j``) and ``e_j = t_j + window``. Every decomposable aggregate (count, sum, sum of squares,
per-value counts) is then ``prefix(a < q) - prefix(e < q)``: cumulative sums over the rows
ordered by ``a`` and by ``e``, read with strict backward as-of joins by key. ``last`` and the
feature age come from the largest row position among rows known before ``q`` (rows are in time
order, so that is the newest row; if it is outside the window, so is every other known row).
``count_distinct`` on a plain column uses the interval ``(t_j, min(next occurrence, t_j + window)]``
of each (key, value, time), which is active for exactly one occurrence per distinct value. ``min``
and ``max`` on a plain column use polars' ``rolling_min_by(..., closed="left")``; on the label
column (delayed, so not a contiguous window) they and ``count_distinct`` use per-value counts,
which needs few distinct label values (a classification label).

Layout: :mod:`rtml_cli.features_spec` says what a feature is, :mod:`rtml_cli.features_window_index`
locates every query in the rows of its key, :mod:`rtml_cli.features_aggregates` turns that into
each aggregation's values; this module evaluates a list of specs over a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import polars as pl

from rtml_cli.errors import ConfigError, UsageError
from rtml_cli.features_aggregates import compute_windowed_feature
from rtml_cli.features_spec import (
    AGE_PREFIX,
    AGGS,
    CALENDAR_PARTS,
    FEATURE_AGE,
    FEATURE_PREFIX,
    MAX_LABEL_VALUES,
    NUMERIC_AGGS,
    CalendarSpec,
    FeatureSpec,
    check_unique_names,
    feature_columns,
    parse_features,
)
from rtml_cli.features_window_index import (
    GLOBAL_KEY,
    KeyCodes,
    WindowIndex,
    index_signature,
    time_bounds,
)
from rtml_cli.io import EVENT_TIME, LABEL_TIME

__all__ = [
    "AGE_PREFIX",
    "AGGS",
    "CALENDAR_PARTS",
    "FEATURE_AGE",
    "FEATURE_PREFIX",
    "MAX_LABEL_VALUES",
    "NUMERIC_AGGS",
    "CalendarSpec",
    "FeatureSpec",
    "asof_features",
    "calendar_features",
    "check_unique_names",
    "cutoff_grid",
    "derived_columns",
    "feature_columns",
    "fresh_features",
    "parse_features",
]


def calendar_features(
    frame: pl.DataFrame, parts: Sequence[CalendarSpec | str], *, time_col: str = EVENT_TIME
) -> pl.DataFrame:
    """Request-time calendar features of each event (``rtml_f_hour``, ``rtml_f_dow``), Int8."""
    exprs = []
    for p in parts:
        spec = p if isinstance(p, CalendarSpec) else CalendarSpec.parse(p)
        t = pl.col(time_col)
        expr = t.dt.hour() if spec.part == "hour" else t.dt.weekday()
        exprs.append(expr.cast(pl.Int8).alias(spec.value_col))
    return frame.select(exprs)


@overload
def cutoff_grid(times: pl.Series, every_us: int) -> pl.Series: ...
@overload
def cutoff_grid(times: pl.Expr, every_us: int) -> pl.Expr: ...
def cutoff_grid(times: pl.Series | pl.Expr, every_us: int) -> pl.Series | pl.Expr:
    """The batch cutoff of each time: the latest multiple of ``every_us`` since the epoch ``<= t``.

    An event exactly on the grid is served by the snapshot taken at that instant (which itself
    sees only what happened strictly before it).
    """
    if every_us <= 0:
        raise UsageError(f"The cutoff period must be a positive duration. Got {every_us} us.")
    us = times.cast(pl.Datetime("us")).cast(pl.Int64)
    return ((us // every_us) * every_us).cast(pl.Datetime("us"))


def fresh_features(
    frame: pl.DataFrame,
    specs: Sequence[FeatureSpec | CalendarSpec],
    *,
    label_col: str | None = None,
    time_col: str = EVENT_TIME,
    label_arrival_col: str = LABEL_TIME,
) -> pl.DataFrame:
    """Features as ``stream``/``online``/``static`` see them: as of each event's own time.

    Parameters
    ----------
    frame : the events (any order); needs ``time_col``, the key and source columns, and
        ``label_arrival_col`` when a feature aggregates ``label_col``.
    specs : windowed (:class:`FeatureSpec`) and calendar (:class:`CalendarSpec`) features.
    label_col : the label column; aggregates over it use only labels arrived strictly before
        the query time. ``None``: no column is delayed.
    time_col, label_arrival_col : internal time columns (``rtml_t``, ``rtml_l``).

    Returns
    -------
    polars.DataFrame
        One row per row of ``frame`` (same order): ``rtml_f_<name>`` for each spec,
        ``rtml_age_<name>`` for each windowed spec, and :data:`FEATURE_AGE` (the smallest age).

    Examples
    --------
    >>> import datetime as dt
    >>> df = pl.DataFrame({"rtml_t": [dt.datetime(2024, 1, 1, h) for h in (0, 1, 1, 3)],
    ...                    "u": ["a", "a", "a", "a"], "x": [1.0, 2.0, 4.0, 8.0]})
    >>> fresh_features(df, [FeatureSpec.parse("u:x:sum:2h")])["rtml_f_u_x_sum_2h"].to_list()
    [0.0, 1.0, 1.0, 6.0]
    """
    return _compute_features(
        frame,
        specs,
        None,
        label_col=label_col,
        time_col=time_col,
        label_arrival_col=label_arrival_col,
    )


def asof_features(
    frame: pl.DataFrame,
    specs: Sequence[FeatureSpec | CalendarSpec],
    cutoffs: pl.Series | str,
    *,
    label_col: str | None = None,
    time_col: str = EVENT_TIME,
    label_arrival_col: str = LABEL_TIME,
) -> pl.DataFrame:
    """Features as the ``batch`` snapshot at each event's cutoff ``c_i`` served them.

    Same as :func:`fresh_features` with the window ``[c_i - window, c_i)`` and labels arrived
    strictly before ``c_i``; ages stay relative to the event time ``t_i`` (how old the freshest
    information used for event *i* is). Calendar features use the event time (request time).

    Parameters
    ----------
    cutoffs : one cutoff per row of ``frame`` (a Series or the name of a column), e.g.
        :func:`cutoff_grid` of the event times.
    """
    if isinstance(cutoffs, str):
        if cutoffs not in frame.columns:
            raise UsageError(
                f"cutoff column '{cutoffs}' not found; columns are {', '.join(frame.columns)}."
            )
        cut = frame[cutoffs]
    else:
        cut = cutoffs
    if len(cut) != frame.height:
        raise UsageError(
            f"asof_features needs one cutoff per event: got {len(cut)} for {frame.height} events."
        )
    return _compute_features(
        frame,
        specs,
        cut.cast(pl.Datetime("us")),
        label_col=label_col,
        time_col=time_col,
        label_arrival_col=label_arrival_col,
    )


_ROW_POSITION = "rtml_fr_row"  # position in time order (newest row = largest)
_QUERY_TIME = "rtml_fr_q"


def _compute_features(
    frame: pl.DataFrame,
    specs: Sequence[FeatureSpec | CalendarSpec],
    cutoffs: pl.Series | None,
    *,
    label_col: str | None,
    time_col: str,
    label_arrival_col: str,
) -> pl.DataFrame:
    check_unique_names(specs)
    windowed = [s for s in specs if isinstance(s, FeatureSpec)]
    for s in windowed:
        s.check_columns(frame.schema)
        if s.column == label_col and label_arrival_col not in frame.columns:
            raise UsageError(
                f"feature '{s.name}' aggregates the label '{label_col}', so the frame needs the "
                f"label arrival column '{label_arrival_col}'."
            )
    if time_col not in frame.columns:
        raise UsageError(
            f"time column '{time_col}' not found; columns are {', '.join(frame.columns)}."
        )
    base = frame.with_columns(pl.col(time_col).cast(pl.Datetime("us")))
    if cutoffs is not None:
        base = base.with_columns(cutoffs.alias(_QUERY_TIME))
    else:
        base = base.with_columns(pl.col(time_col).alias(_QUERY_TIME))
    # Work in stable time order so that a larger row position always means a newer event.
    already_sorted = bool(base[time_col].is_sorted())
    base = base.with_row_index("rtml_fr_orig")
    if not already_sorted:
        base = base.sort(time_col, maintain_order=True)
    base = base.with_row_index(_ROW_POSITION).with_columns(pl.lit(0, pl.Int8).alias(GLOBAL_KEY))

    t_us = base[time_col].dt.epoch("us").to_numpy()
    q_us = t_us if cutoffs is None else base[_QUERY_TIME].dt.epoch("us").to_numpy()
    codes_by_key: dict[tuple[str, ...], KeyCodes] = {}
    indexes_by_signature: dict[tuple[Any, ...], WindowIndex] = {}
    bounds = time_bounds(base, windowed, t_us, q_us, label_col, label_arrival_col)
    out: dict[str, pl.Series] = {}
    ages: list[str] = []
    # Release each shared index after its last feature: they hold several arrays of n each.
    uses: dict[tuple[Any, ...], int] = {}
    for wspec in windowed:
        sig = index_signature(base, wspec, wspec.column == label_col)
        uses[sig] = uses.get(sig, 0) + 1
    for spec in specs:
        if isinstance(spec, CalendarSpec):
            out[spec.value_col] = calendar_features(base, [spec], time_col=time_col)[spec.value_col]
            continue
        sig = index_signature(base, spec, spec.column == label_col)
        uses[sig] -= 1
        value, age = compute_windowed_feature(
            base,
            spec,
            label=(spec.column == label_col),
            arrival_col=label_arrival_col,
            codes_by_key=codes_by_key,
            indexes_by_signature=indexes_by_signature,
            bounds=bounds,
            t_us=t_us,
            q_us=q_us,
        )
        if not uses[sig]:
            indexes_by_signature.pop(sig, None)
        out[spec.value_col] = value
        out[spec.age_col] = age
        ages.append(spec.age_col)
    res = pl.DataFrame(out)
    if ages:
        res = res.with_columns(pl.min_horizontal(ages).alias(FEATURE_AGE))
    if not already_sorted:
        res = res.with_columns(base["rtml_fr_orig"]).sort("rtml_fr_orig").drop("rtml_fr_orig")
    return res


def derived_columns(
    frame: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    *,
    key: str | Sequence[str] | None,
    every_us: int | None,
    label: str | None = None,
) -> pl.DataFrame:
    """The ``[[feature]]`` columns of one strategy view (the hook ``rtml_cli.strategies`` calls).

    Parameters
    ----------
    frame : the event table (:data:`~rtml_cli.io.EVENT_TIME`, :data:`~rtml_cli.io.LABEL_TIME` and the columns).
    specs : the windowed features (``[[feature]]`` entries and ``--feature`` flags).
    key : the table's entity key, used by ``[[feature]]`` entries that name none
        (:attr:`FeatureSpec.key_from_table`).
    every_us : ``None`` for the fresh view (as of ``t_i``); the retrain period for the batch
        view (as of the cutoff ``floor(t_i / R) * R``, the same grid the batch snapshot uses).
    label : the label column: aggregates over it only see labels arrived before the query
        time. Must be given whenever the frame has a label (:data:`~rtml_cli.io.LABEL_TIME`), since a
        label aggregated as a plain column would leak labels not yet known.

    Returns
    -------
    polars.DataFrame
        One column per spec, named ``spec.name``, in ``frame`` order, followed by one
        ``rtml_age_<name>`` column per spec and :data:`FEATURE_AGE`.
    """
    if label is None and LABEL_TIME in frame.columns and any(s.column != "*" for s in specs):
        raise UsageError(
            "derived_columns needs label= (the label column) when the table has labels, so that "
            "aggregates over the label respect label arrival."
        )
    built = [s.with_table_key(key) for s in specs]
    for s in built:
        if s.name in frame.columns:
            raise ConfigError(
                f"[[feature]] name '{s.name}' is already a column of the table. Give the feature "
                "another 'name'."
            )
    if every_us is None:
        out = fresh_features(frame, built, label_col=label)
    else:
        cut = cutoff_grid(frame[EVENT_TIME], every_us)
        out = asof_features(frame, built, cut, label_col=label)
    return out.rename({s.value_col: s.name for s in built})
