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
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import ConfigError, UsageError, suggest
from rtml_cli.io import L, T

#: Prefix of every feature column this module produces (value columns).
FEATURE_PREFIX = "rtml_f_"
#: Prefix of the per-feature age columns (Int64 microseconds, null when nothing contributed).
AGE_PREFIX = "rtml_age_"
#: Column with the age of the freshest information over all windowed features of an event.
FEATURE_AGE = "rtml_feature_age_us"

#: Aggregations a windowed feature may use.
AGGS = ("count", "sum", "mean", "min", "max", "std", "last", "count_distinct")
#: Aggregations that need a numeric (or boolean) column.
NUMERIC_AGGS = ("sum", "mean", "min", "max", "std")
#: Request-time calendar parts derived from the event time.
CALENDAR_PARTS = ("hour", "dow")
#: Most distinct label values for min/max/count_distinct over the (delayed) label column.
MAX_LABEL_VALUES = 64

_ALIASES = {
    "avg": "mean",
    "average": "mean",
    "total": "sum",
    "n": "count",
    "cnt": "count",
    "size": "count",
    "nunique": "count_distinct",
    "n_unique": "count_distinct",
    "distinct": "count_distinct",
    "stddev": "std",
    "stdev": "std",
    "latest": "last",
    "minimum": "min",
    "maximum": "max",
}
_FEATURE_KEYS = ("name", "key", "column", "agg", "window")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_GLOBAL_KEY = "rtml_global_key"


# ---------------------------------------------------------------------------------------------
# specs


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A windowed aggregate per key, evaluated point-in-time.

    Parameters
    ----------
    name : feature name; the value column is ``rtml_f_<name>``, its age ``rtml_age_<name>``.
    key : the entity column(s); ``None`` aggregates over the whole table (one global entity).
    column : the source column, or ``"*"`` to count events.
    agg : one of :data:`AGGS`.
    window_us : window length in microseconds (> 0).

    Examples
    --------
    >>> s = FeatureSpec.parse("user_id:click:mean:1h")
    >>> s.name, s.key, s.column, s.agg, s.window_us
    ('user_id_click_mean_1h', ('user_id',), 'click', 'mean', 3600000000)
    """

    name: str
    key: tuple[str, ...] | None
    column: str
    agg: str
    window_us: int

    @property
    def value_col(self) -> str:
        """Name of the output column holding the feature value."""
        return FEATURE_PREFIX + self.name

    @property
    def age_col(self) -> str:
        """Name of the output column holding the feature's age in microseconds."""
        return AGE_PREFIX + self.name

    @staticmethod
    def default_name(key: Sequence[str] | None, column: str, agg: str, window_us: int) -> str:
        """``<key>_<column>_<agg>_<window>``, e.g. ``user_id_click_mean_1h`` (``*`` is dropped)."""
        parts = ["_".join(key) if key else "all"]
        if column != "*":
            parts.append(column)
        parts += [agg, format_duration(window_us)]
        return "_".join(parts)

    @classmethod
    def build(
        cls,
        *,
        key: str | Sequence[str] | None,
        column: str,
        agg: str,
        window: str | int | float,
        name: str | None = None,
        where: str = "feature",
    ) -> FeatureSpec:
        """Validate the parts of a feature and build it; ``where`` names it in error messages."""
        if key is None or key == "" or key == []:
            keys: tuple[str, ...] | None = None
        elif isinstance(key, str):
            keys = (key,)
        elif isinstance(key, (list, tuple)) and all(isinstance(k, str) and k for k in key):
            keys = tuple(key)
        else:
            raise ConfigError(
                f"{where}: 'key' must be a column name or a list of column names (omit it for one "
                f"global entity). Got {key!r}."
            )
        if not isinstance(column, str) or not column:
            raise ConfigError(
                f"{where}: 'column' must be a column name, or \"*\" to count events. Got {column!r}."
            )
        if not isinstance(agg, str):
            raise ConfigError(f"{where}: 'agg' must be one of {', '.join(AGGS)}. Got {agg!r}.")
        agg_norm = agg.strip().lower()
        if agg_norm not in AGGS:
            hint = (
                f" Did you mean '{_ALIASES[agg_norm]}'?"
                if agg_norm in _ALIASES
                else suggest(agg_norm, AGGS)
            )
            raise ConfigError(
                f"{where}: 'agg' = {agg!r} is not an aggregation.{hint} Allowed: {', '.join(AGGS)}."
            )
        if column == "*" and agg_norm != "count":
            raise ConfigError(
                f"{where}: column \"*\" counts events, so 'agg' must be 'count'. Got {agg!r}; name a "
                "column to aggregate instead."
            )
        try:
            window_us = parse_duration(window, what=f"{where} 'window'")
        except UsageError as exc:
            raise ConfigError(str(exc)) from None
        if window_us <= 0:
            raise ConfigError(
                f"{where}: 'window' must be a positive duration such as '5m', '1h' or '1d'. "
                f"Got {window!r}."
            )
        if name is None:
            name = cls.default_name(keys, column, agg_norm, window_us)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"{where}: 'name' must start with a letter or '_' and hold only letters, digits, "
                f"'_', '.', '-'. Got {name!r}."
            )
        return cls(name=name, key=keys, column=column, agg=agg_norm, window_us=window_us)

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], *, where: str = "[[feature]]") -> FeatureSpec:
        """Build from one ``[[feature]]`` table of ``rtml.toml``.

        Raises
        ------
        ConfigError
            Unknown key, missing ``column``/``agg``/``window``, or an invalid value; the message
            names the key, the value and what is allowed.

        Examples
        --------
        >>> entry = {"key": "u", "column": "*", "agg": "count", "window": "5m"}
        >>> FeatureSpec.from_config(entry).name
        'u_count_5m'
        """
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{where} must be a table of keys ({', '.join(_FEATURE_KEYS)}). Got {entry!r}."
            )
        for k in entry:
            if k not in _FEATURE_KEYS:
                raise ConfigError(
                    f"{where}: unknown key '{k}'.{suggest(str(k), _FEATURE_KEYS)} "
                    f"Allowed keys: {', '.join(_FEATURE_KEYS)}."
                )
        for req in ("column", "agg", "window"):
            if req not in entry:
                raise ConfigError(
                    f"{where}: missing '{req}'. A windowed feature needs column (or \"*\"), agg "
                    f"({', '.join(AGGS)}) and window (e.g. '1h'); key and name are optional."
                )
        name = entry.get("name")
        label = f"{where} '{name}'" if isinstance(name, str) else where
        return cls.build(
            key=entry.get("key"),
            column=entry["column"],
            agg=entry["agg"],
            window=entry["window"],
            name=name,
            where=label,
        )

    @classmethod
    def parse(cls, text: str) -> FeatureSpec:
        """Parse the compact CLI form ``KEY:COLUMN:AGG:WINDOW[:NAME]``.

        ``KEY`` is a column, several joined with ``+`` (``user+item``), or empty for one global
        entity; ``COLUMN`` is ``*`` to count events.

        Examples
        --------
        >>> FeatureSpec.parse("user_id:*:count:5m:recent_views").name
        'recent_views'
        >>> FeatureSpec.parse(":price:max:1d").key is None
        True
        """
        parts = str(text).split(":")
        if len(parts) not in (4, 5):
            raise ConfigError(
                f"feature {text!r} must have the form KEY:COLUMN:AGG:WINDOW[:NAME], e.g. "
                "'user_id:click:mean:1h' or 'user_id:*:count:5m' (empty KEY = one global entity)."
            )
        key_text, column, agg, window = (p.strip() for p in parts[:4])
        keys = [k for k in key_text.split("+") if k] if key_text else None
        name = parts[4].strip() if len(parts) == 5 else None
        return cls.build(
            key=keys, column=column, agg=agg, window=window, name=name, where=f"feature {text!r}"
        )

    def check_columns(
        self, schema: Mapping[str, pl.DataType] | pl.Schema, *, source: str = "the table"
    ) -> None:
        """Raise :class:`ConfigError` if a column is missing or has a type ``agg`` cannot use."""
        cols = list(schema.keys()) if isinstance(schema, Mapping) else list(schema.names())
        needed = [*(self.key or ()), *(() if self.column == "*" else (self.column,))]
        for c in needed:
            if c not in cols:
                shown = ", ".join(cols[:30])
                raise ConfigError(
                    f"feature '{self.name}': column '{c}' not found in {source}."
                    f"{suggest(c, cols)} Columns are: {shown}."
                )
        if self.agg in NUMERIC_AGGS:
            dtype = schema[self.column]
            if not (dtype.is_numeric() or dtype == pl.Boolean):
                raise ConfigError(
                    f"feature '{self.name}': agg '{self.agg}' needs a numeric or boolean column, "
                    f"but '{self.column}' is {dtype}. Use count, count_distinct or last."
                )


@dataclasses.dataclass(frozen=True)
class CalendarSpec:
    """A request-time feature derived from the event time, known to every strategy.

    ``part`` is ``hour`` (0-23) or ``dow`` (day of week, 1 = Monday ... 7 = Sunday).
    """

    part: str

    @property
    def name(self) -> str:
        """Feature name (the part itself)."""
        return self.part

    @property
    def value_col(self) -> str:
        """Name of the output column."""
        return FEATURE_PREFIX + self.part

    @classmethod
    def parse(cls, text: str) -> CalendarSpec:
        """Validate a calendar part name (``hour`` or ``dow``)."""
        part = str(text).strip().lower()
        aliases = {"hour_of_day": "hour", "day_of_week": "dow", "weekday": "dow"}
        part = aliases.get(part, part)
        if part not in CALENDAR_PARTS:
            raise ConfigError(
                f"calendar feature {text!r} is unknown.{suggest(part, CALENDAR_PARTS)} "
                f"Allowed: {', '.join(CALENDAR_PARTS)}."
            )
        return cls(part)


def parse_features(items: Sequence[str]) -> list[FeatureSpec | CalendarSpec]:
    """Parse CLI feature strings: ``hour``/``dow`` or ``KEY:COLUMN:AGG:WINDOW[:NAME]``."""
    out: list[FeatureSpec | CalendarSpec] = []
    for item in items:
        out.append(FeatureSpec.parse(item) if ":" in item else CalendarSpec.parse(item))
    check_unique_names(out)
    return out


def check_unique_names(specs: Sequence[FeatureSpec | CalendarSpec]) -> None:
    """Raise :class:`ConfigError` when two features would produce the same column."""
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ConfigError(
                f"two features are named '{s.name}'. Give each [[feature]] its own 'name'."
            )
        seen.add(s.name)


def feature_columns(specs: Sequence[FeatureSpec | CalendarSpec]) -> list[str]:
    """The value columns the specs produce, in order (what a model is fed)."""
    return [s.value_col for s in specs]


# ---------------------------------------------------------------------------------------------
# computation


def calendar_features(
    frame: pl.DataFrame, parts: Sequence[CalendarSpec | str], *, time_col: str = T
) -> pl.DataFrame:
    """Request-time calendar features of each event (``rtml_f_hour``, ``rtml_f_dow``), Int8."""
    exprs = []
    for p in parts:
        spec = p if isinstance(p, CalendarSpec) else CalendarSpec.parse(p)
        t = pl.col(time_col)
        expr = t.dt.hour() if spec.part == "hour" else t.dt.weekday()
        exprs.append(expr.cast(pl.Int8).alias(spec.value_col))
    return frame.select(exprs)


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
    time_col: str = T,
    label_arrival_col: str = L,
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
    return _features(
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
    time_col: str = T,
    label_arrival_col: str = L,
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
    return _features(
        frame,
        specs,
        cut.cast(pl.Datetime("us")),
        label_col=label_col,
        time_col=time_col,
        label_arrival_col=label_arrival_col,
    )


_R = "rtml_fr_row"  # position in time order (newest row = largest)
_Q = "rtml_fr_q"  # query time
_A = "rtml_fr_a"  # when a row's value became known
_E = "rtml_fr_e"  # when it leaves the window
_X = "rtml_fr_x"  # value


def _features(
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
        base = base.with_columns(cutoffs.alias(_Q))
    else:
        base = base.with_columns(pl.col(time_col).alias(_Q))
    # Work in stable time order so that a larger row position always means a newer event.
    already_sorted = bool(base[time_col].is_sorted())
    base = base.with_row_index("rtml_fr_orig")
    if not already_sorted:
        base = base.sort(time_col, maintain_order=True)
    base = base.with_row_index(_R).with_columns(pl.lit(0, pl.Int8).alias(_GLOBAL_KEY))

    t_us = base[time_col].dt.epoch("us").to_numpy()
    q_us = t_us if cutoffs is None else base[_Q].dt.epoch("us").to_numpy()
    keys_of: dict[tuple[str, ...], _Keys] = {}
    wins: dict[tuple[Any, ...], _Win] = {}
    bounds = _time_bounds(base, windowed, t_us, q_us, label_col, label_arrival_col)
    out: dict[str, pl.Series] = {}
    ages: list[str] = []
    # Release each shared index after its last feature: they hold several arrays of n each.
    uses: dict[tuple[Any, ...], int] = {}
    for wspec in windowed:
        sig = _signature(base, wspec, wspec.column == label_col)
        uses[sig] = uses.get(sig, 0) + 1
    for spec in specs:
        if isinstance(spec, CalendarSpec):
            out[spec.value_col] = calendar_features(base, [spec], time_col=time_col)[spec.value_col]
            continue
        sig = _signature(base, spec, spec.column == label_col)
        uses[sig] -= 1
        value, age = _one(
            base,
            spec,
            label=(spec.column == label_col),
            time_col=time_col,
            arrival_col=label_arrival_col,
            keys_of=keys_of,
            wins=wins,
            bounds=bounds,
            t_us=t_us,
            q_us=q_us,
        )
        if not uses[sig]:
            wins.pop(sig, None)
        out[spec.value_col] = value
        out[spec.age_col] = age
        ages.append(spec.age_col)
    res = pl.DataFrame(out)
    if ages:
        res = res.with_columns(pl.min_horizontal(ages).alias(FEATURE_AGE))
    if not already_sorted:
        res = res.with_columns(base["rtml_fr_orig"]).sort("rtml_fr_orig").drop("rtml_fr_orig")
    return res


@dataclasses.dataclass
class _Keys:
    """Dense integer codes of one key tuple over the time-sorted rows (-1 where a key is null)."""

    code: np.ndarray
    ok: np.ndarray
    ncodes: int
    #: ``code * span + (time - lo)`` orders (key, time) for every time in [lo, lo + span); None
    #: when that could overflow int64 (then :func:`_composite` ranks the times instead).
    span: int | None = None
    lo: int = 0
    _orders: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    _sorted: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def comp(self, code: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The (key, time) code of each pair (needs ``span``)."""
        assert self.span is not None
        return code * self.span + (times - self.lo)

    def sorted_code(self, name: str, order: np.ndarray) -> np.ndarray:
        """``code`` in ``order`` (by "t" or "q"); cached."""
        if "code_" + name not in self._sorted:
            self._sorted["code_" + name] = self.code[order]
        return self._sorted["code_" + name]

    def sorted_comp(self, name: str, times: np.ndarray, order: np.ndarray) -> np.ndarray:
        """``comp`` of every row, in ``order``; cached per time column."""
        if name not in self._sorted:
            self._sorted[name] = self.comp(self.code[order], times[order])
        return self._sorted[name]

    def order(self, name: str, times: np.ndarray) -> np.ndarray:
        """Row positions sorted by (code, times), stable; computed once per key and time column."""
        if name not in self._orders:
            (c,) = _composite([(self.code, times)])
            self._orders[name] = np.argsort(c, kind="stable")
        return self._orders[name]


def _key_codes(base: pl.DataFrame, keys: list[str], bounds: tuple[int, int]) -> _Keys:
    kc = _key_codes_only(base, keys)
    lo, hi = bounds
    span = hi - lo + 1
    if kc.ncodes * span < 2**62:
        kc.span, kc.lo = span, lo
    return kc


def _key_codes_only(base: pl.DataFrame, keys: list[str]) -> _Keys:
    n = base.height
    if keys == [_GLOBAL_KEY]:
        return _Keys(np.zeros(n, np.int64), np.ones(n, bool), 1)
    ok = (
        base.select(pl.all_horizontal([pl.col(k).is_not_null() for k in keys]))
        .to_series()
        .to_numpy()
    )
    expr = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    code = base.select(expr.rank("dense")).to_series().fill_null(1).cast(pl.Int64).to_numpy() - 1
    code = np.where(ok, code, -1)
    return _Keys(code, ok, int(code.max()) + 1 if n else 0)


def _time_bounds(
    base: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    t_us: np.ndarray,
    q_us: np.ndarray,
    label_col: str | None,
    arrival_col: str,
) -> tuple[int, int]:
    """Smallest and largest time any stream or query can hold (for the (key, time) codes)."""
    if not len(t_us):
        return 0, 0
    lo = min(int(t_us.min()), int(q_us.min()))
    hi = max(int(t_us.max()) + max((s.window_us for s in specs), default=0), int(q_us.max()))
    if any(s.column == label_col for s in specs):
        arr = base[arrival_col].cast(pl.Datetime("us")).dt.epoch("us")
        if arr.null_count() < len(arr):
            lo = min(lo, int(arr.min()))  # type: ignore[arg-type]
            hi = max(hi, int(arr.max()))  # type: ignore[arg-type]
    return lo, hi


def _composite(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Order-preserving int64 codes of (key code, time) pairs: ``code * span + time``.

    When that could overflow, times are first replaced by their rank among all times given.
    """
    times = [t for _, t in pairs if t.size]
    if not times:
        return [np.zeros(0, np.int64) for _ in pairs]
    lo = min(int(t.min()) for t in times)
    hi = max(int(t.max()) for t in times)
    ncodes = max((int(c.max()) for c, _ in pairs if c.size), default=0) + 1
    span = hi - lo + 1
    if ncodes * span < 2**62:
        return [c * span + (t - lo) for c, t in pairs]
    allt = np.unique(np.concatenate(times))
    span = len(allt)
    return [c * span + np.searchsorted(allt, t) for c, t in pairs]


def _prefix(weights: np.ndarray, order: np.ndarray, dtype: Any) -> np.ndarray:
    """Cumulative sums of ``weights`` in ``order`` with a leading 0 (``out[k]`` = first k)."""
    out = np.zeros(len(order) + 1, dtype=dtype)
    np.cumsum(weights[order], dtype=dtype, out=out[1:])
    return out


def _window_sum(
    weights: np.ndarray,
    oa: np.ndarray,
    oe: np.ndarray,
    ia: np.ndarray,
    ie: np.ndarray,
    dtype: Any,
) -> np.ndarray:
    """Sum of ``weights`` over the rows active at each query: prefix(a < q) - prefix(e < q)."""
    total, _ = _window_sum_raw(weights, oa, oe, ia, ie, dtype)
    return total.astype(np.float64 if dtype is not np.int64 else np.int64)


def _window_sum_raw(
    weights: np.ndarray,
    oa: np.ndarray,
    oe: np.ndarray,
    ia: np.ndarray,
    ie: np.ndarray,
    dtype: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_window_sum` in ``dtype``, with the magnitude of the two prefixes it subtracts.

    The magnitude bounds the rounding error of the difference (about eps x magnitude), which
    a caller needs to tell a true small result from cancellation noise.
    """
    za = _prefix(weights, oa, dtype)
    ze = za if oe is oa else _prefix(weights, oe, dtype)
    a, e = za[ia], ze[ie]
    return a - e, np.abs(a) + np.abs(e)


@dataclasses.dataclass
class _Win:
    """Where each query falls in the known/expired streams of one (key, rows, window)."""

    rows: np.ndarray  # contributing row positions (time order)
    code_r: np.ndarray  # their key codes
    oa: np.ndarray  # rows (as indexes into ``rows``) by (key, known time)
    oe: np.ndarray  # rows by (key, end of window)
    code_a: np.ndarray  # code_r in ``oa`` order
    ia: np.ndarray  # per query: rows of keys before it, or of its key known before q
    ie: np.ndarray  # per query: same, with the window ended before q
    cnt: np.ndarray  # ia - ie: rows in the window
    newest: np.ndarray  # per query: position of the newest known row of its key
    in_window: np.ndarray  # that row is in the window (else nothing contributes)
    age: pl.Series  # t - time of that row, null when nothing contributes


def _window_index(
    base: pl.DataFrame,
    kc: _Keys,
    src: pl.Series | None,
    *,
    label: bool,
    arrival_col: str,
    t_us: np.ndarray,
    q_us: np.ndarray,
    w: int,
) -> _Win:
    n = base.height
    ok = kc.ok.copy()
    if src is not None:
        ok &= src.is_not_null().to_numpy()
    if label:
        arr = base[arrival_col].cast(pl.Datetime("us")).dt.epoch("us")
        ok &= arr.is_not_null().to_numpy()
        a_full = arr.fill_null(0).to_numpy()
    else:
        a_full = t_us
    e_full = t_us + w
    # A label arriving after its window closed never counts anywhere.
    if label:
        ok &= a_full < e_full
    rows = np.flatnonzero(ok)
    every = rows.size == n
    code_r = kc.code if every else kc.code[rows]
    # Orders by (key, time) are shared by every feature of the same key: e = t + w sorts like t,
    # and so does a = t for a plain column; only a delayed label needs its own sort.
    by_t = kc.order("t", t_us)
    oe = by_t if every else np.searchsorted(rows, by_t[ok[by_t]])
    by_q = by_t if q_us is t_us else kc.order("q", q_us)
    if kc.span is not None:
        cq_s = kc.sorted_comp("q", q_us, by_q)
        if not label and every:
            a_s = kc.sorted_comp("t", t_us, by_t)
            e_s = a_s + w
            oa = oe
        else:
            ca = kc.comp(code_r, a_full[rows])
            oa = np.argsort(ca, kind="stable") if label else oe
            a_s = ca[oa]
            e_s = kc.comp(code_r, e_full[rows])[oe]
    else:
        ca, ce, cq = _composite([(code_r, a_full[rows]), (code_r, e_full[rows]), (kc.code, q_us)])
        oa = np.argsort(ca, kind="stable") if label else oe
        a_s, e_s, cq_s = ca[oa], ce[oe], cq[by_q]
    # Rows of other keys fall on both sides of the subtraction and cancel; within the key this
    # counts rows known before q (a < q) minus rows whose window ended before q (e < q).
    ia = np.empty(n, np.int64)
    ie = np.empty(n, np.int64)
    ia_s = np.searchsorted(a_s, cq_s, "left")
    ia[by_q] = ia_s
    ie[by_q] = np.searchsorted(e_s, cq_s, "left")

    # The newest row known before q: per-key running max of the row position, made global by
    # adding code * n (codes are non-decreasing in this order). Looked up in query order, where
    # the positions are monotone (cache-friendly), then scattered back.
    code_a = kc.sorted_code("t", by_t) if (every and oa is by_t) else code_r[oa]
    newest = np.zeros(n, np.int64)
    valid = np.zeros(n, bool)
    if rows.size:
        cm = np.maximum.accumulate(code_a * n + (oa if every else rows[oa]))
        j = ia_s - 1
        jj = np.clip(j, 0, None)
        code_q = kc.sorted_code("q", by_q)
        v_s = (j >= 0) & (code_a[jj] == code_q)
        valid[by_q] = v_s
        newest[by_q] = np.where(v_s, cm[jj] - code_q * n, 0)
    in_window = valid & (t_us[newest] >= q_us - w) & kc.ok
    age = pl.Series(np.where(in_window, t_us - t_us[newest], 0)).set(pl.Series(~in_window), None)
    return _Win(rows, code_r, oa, oe, code_a, ia, ie, ia - ie, newest, in_window, age)


def _signature(base: pl.DataFrame, spec: FeatureSpec, label: bool) -> tuple[Any, ...]:
    """Features with equal signatures have the same rows, key and window (so the same index)."""
    keys = tuple(spec.key) if spec.key else (_GLOBAL_KEY,)
    plain = spec.column == "*" or (not label and base[spec.column].null_count() == 0)
    return (keys, "*" if plain else spec.column, label, spec.window_us)


def _one(
    base: pl.DataFrame,
    spec: FeatureSpec,
    *,
    label: bool,
    time_col: str,
    arrival_col: str,
    keys_of: dict[tuple[str, ...], _Keys],
    wins: dict[tuple[Any, ...], _Win],
    bounds: tuple[int, int],
    t_us: np.ndarray,
    q_us: np.ndarray,
) -> tuple[pl.Series, pl.Series]:
    """Value and age of one windowed feature for every row of ``base`` (time-sorted)."""
    keys = list(spec.key) if spec.key else [_GLOBAL_KEY]
    kc = keys_of.get(tuple(keys))
    if kc is None:
        kc = keys_of[tuple(keys)] = _key_codes(base, keys, bounds)
    n = base.height
    w = spec.window_us
    agg = spec.agg

    if spec.column == "*":
        src = pl.Series(np.ones(n))
    else:
        src = base[spec.column]
        if src.dtype == pl.Boolean:
            src = src.cast(pl.Float64)
    # Features over the same rows, key and window share their index work (a column without
    # nulls has the same rows as "*").
    has_nulls = spec.column != "*" and src.null_count() > 0
    sig = _signature(base, spec, label)
    win = wins.get(sig)
    if win is None:
        win = wins[sig] = _window_index(
            base,
            kc,
            src if has_nulls else None,
            label=label,
            arrival_col=arrival_col,
            t_us=t_us,
            q_us=q_us,
            w=w,
        )
    rows, oa, oe, ia, ie, cnt = win.rows, win.oa, win.oe, win.ia, win.ie, win.cnt
    newest, in_window, age, code_a, code_r = (
        win.newest,
        win.in_window,
        win.age,
        win.code_a,
        win.code_r,
    )

    x = src.to_numpy()[rows] if agg in ("sum", "mean", "std") else None
    if agg == "count":
        value = pl.Series(cnt, dtype=pl.Int64)
    elif agg in ("sum", "mean", "std"):
        assert x is not None
        x = x.astype(np.float64)
        # Shift by the key's first known value so that sums of squares do not cancel badly.
        shift_code = np.zeros(max(kc.ncodes, 1))
        if rows.size:
            starts = np.flatnonzero(np.r_[True, code_a[1:] != code_a[:-1]])
            shift_code[code_a[starts]] = x[oa][starts]
        sx = x - shift_code[code_r]
        # std needs the extra digits of long double (it subtracts large sums of squares).
        prec = np.longdouble if agg == "std" else np.float64
        s1, m1 = _window_sum_raw(sx, oa, oe, ia, ie, prec)
        shift_q = shift_code[np.clip(kc.code, 0, None)]
        with np.errstate(divide="ignore", invalid="ignore"):
            if agg == "sum":
                v = np.where(cnt > 0, s1 + cnt * shift_q, 0.0)
                null = np.zeros(n, bool)
            elif agg == "mean":
                v = shift_q + s1 / cnt
                null = cnt == 0
            else:
                v = _window_std(x, sx, win, kc, q_us=q_us, t_us=t_us, w=w, s1=s1, m1=m1)
                null = cnt < 2
        value = pl.Series(v).set(pl.Series(null), None)
    elif agg == "last":
        idx = pl.Series(newest, dtype=pl.UInt32).set(pl.Series(~in_window), None)
        value = src.gather(idx)
    elif label and agg in ("min", "max", "count_distinct"):
        xv = src.to_numpy()[rows]
        values = np.unique(xv)
        if len(values) > MAX_LABEL_VALUES:
            raise ConfigError(
                f"feature '{spec.name}': agg '{agg}' over the delayed label '{spec.column}' "
                f"supports at most {MAX_LABEL_VALUES} distinct label values; it has "
                f"{len(values)}. Use mean, sum, std, count or last for a regression label."
            )
        # Per-value counts decompose like count; min/max/distinct follow from which are > 0.
        present = np.zeros((len(values), n), bool)
        for i, val in enumerate(values):
            ind = (xv == val).astype(np.int64)
            present[i] = _window_sum(ind, oa, oe, ia, ie, np.int64) > 0
        if agg == "count_distinct":
            value = pl.Series(present.sum(axis=0), dtype=pl.Int64)
        else:
            any_ = present.any(axis=0)
            if len(values):
                pos = (
                    present.argmax(axis=0)
                    if agg == "min"
                    else len(values) - 1 - present[::-1].argmax(axis=0)
                )
                v = values.astype(np.float64)[pos]
            else:
                v = np.zeros(n)
            value = pl.Series(v).set(pl.Series(~any_), None)
    elif agg == "count_distinct":
        value = _count_distinct(src, rows, kc, t_us, q_us, w)
    else:
        value = _rolling_extreme(src, rows, kc, t_us, q_us, w, agg, fresh=q_us is t_us)

    value = value.set(pl.Series(~kc.ok), None) if not kc.ok.all() else value
    if agg in ("count", "count_distinct"):
        value = value.cast(pl.Int64)
    elif agg in NUMERIC_AGGS or value.dtype == pl.Boolean:
        value = value.cast(pl.Float64)
    return value.alias(spec.value_col), age.cast(pl.Int64).alias(spec.age_col)


def _value_hash(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each float's value (splitmix64 of its bits; -0.0 hashes like 0.0)."""
    h = (x + 0.0).view(np.uint64).copy()
    with np.errstate(over="ignore"):
        h += np.uint64(0x9E3779B97F4A7C15)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _window_std(
    x: np.ndarray,
    sx: np.ndarray,
    win: _Win,
    kc: _Keys,
    *,
    q_us: np.ndarray,
    t_us: np.ndarray,
    w: int,
    s1: np.ndarray,
    m1: np.ndarray,
) -> np.ndarray:
    """Sample std of the window of every query: exactly 0 for equal values, never 0 otherwise.

    The fast path subtracts prefix sums of squares (in long double), whose rounding error
    grows with everything summed before the window, other keys included. So a window of
    equal values is recognised exactly instead (the wrapping sum of a hash of its values is
    ``count`` times the hash of one of them), and a window of distinct values whose spread is
    too small for the prefix difference to be trusted is recomputed from its own values.
    """
    prec = np.longdouble
    oa, oe, ia, ie, cnt = win.oa, win.oe, win.ia, win.ie, win.cnt
    s2, m2 = _window_sum_raw(sx * sx, oa, oe, ia, ie, prec)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss = s2 - s1 * s1 / cnt  # sum of squared deviations
        noise = 16 * np.finfo(prec).eps * (m2 + 2 * np.abs(s1) * m1 / cnt)
        v = np.sqrt(np.maximum(ss / (cnt - 1), 0)).astype(np.float64)
    several = win.in_window & (cnt >= 2)
    if not several.any():
        return v
    hx = _value_hash(x)
    hashes, _ = _window_sum_raw(hx, oa, oe, ia, ie, np.uint64)
    one = hx[np.clip(np.searchsorted(win.rows, win.newest), 0, len(x) - 1)]
    with np.errstate(over="ignore"):
        equal = several & (hashes == cnt.astype(np.uint64) * one)
    v[equal] = 0.0
    # Trust the fast path to ~1e-10 relative; below that recompute (rare: a spread that is
    # tiny next to the magnitudes summed before it), and wherever squares underflowed to 0.
    unsure = (noise > 1e-10 * np.abs(ss)) | ~(v > 0) | ~np.isfinite(v)
    redo = np.flatnonzero(several & ~equal & unsure)
    if redo.size:
        t_rows = t_us[win.rows]
        starts = np.searchsorted(win.code_a, kc.code[redo], "left")
        for i, start in zip(redo.tolist(), starts.tolist(), strict=True):
            cand = oa[start : ia[i]]
            v[i] = _exact_std(x[cand[t_rows[cand] >= q_us[i] - w]])
    return v


def _exact_std(values: np.ndarray) -> float:
    """Sample std of ``values`` by two passes of exact sums, scaled so no square underflows."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = math.fsum(values.tolist()) / n
    dev = values - mean
    scale = float(np.max(np.abs(dev)))
    if scale == 0.0 or not math.isfinite(scale):
        return 0.0 if scale == 0.0 else math.nan
    return scale * math.sqrt(math.fsum(((dev / scale) ** 2).tolist()) / (n - 1))


def _count_distinct(
    src: pl.Series, rows: np.ndarray, kc: _Keys, t_us: np.ndarray, q_us: np.ndarray, w: int
) -> pl.Series:
    # Each (key, value, time) is active on (t, min(next time of the value, t + w)]: exactly one
    # occurrence of each distinct value in [q - w, q) is active at q.
    occ = (
        pl.DataFrame(
            {"c": kc.code[rows], "x": src.gather(pl.Series(rows, dtype=pl.UInt32)), "t": t_us[rows]}
        )
        .unique(maintain_order=True)
        .with_columns(pl.col("t").shift(-1).over(["c", "x"]).alias("nxt"))
        .with_columns(pl.min_horizontal(pl.col("nxt"), pl.col("t") + w).alias("e"))
    )
    c = occ["c"].to_numpy()
    ca, ce, cq = _composite([(c, occ["t"].to_numpy()), (c, occ["e"].to_numpy()), (kc.code, q_us)])
    cnt = np.searchsorted(np.sort(ca), cq, "left") - np.searchsorted(np.sort(ce), cq, "left")
    return pl.Series(cnt, dtype=pl.Int64)


def _rolling_extreme(
    src: pl.Series,
    rows: np.ndarray,
    kc: _Keys,
    t_us: np.ndarray,
    q_us: np.ndarray,
    w: int,
    agg: str,
    *,
    fresh: bool,
) -> pl.Series:
    # polars' closed="left" window [q - w, q) over the key's rows. As of cutoffs, one
    # null-valued probe row per query is added at time q.
    keep = np.zeros(len(t_us), bool)
    keep[rows] = True
    data = pl.DataFrame(
        {
            "c": kc.code,
            "t": pl.Series(t_us).cast(pl.Datetime("us")),
            "x": src.cast(pl.Float64).set(pl.Series(~keep), None),
        }
    )
    fn = pl.col("x").rolling_min_by if agg == "min" else pl.col("x").rolling_max_by
    roll = fn("t", window_size=f"{w}us", closed="left").over("c").alias("v")
    if fresh:
        return data.select(roll)["v"]
    probes = pl.DataFrame(
        {
            "c": kc.code,
            "t": pl.Series(q_us).cast(pl.Datetime("us")),
            "x": pl.Series([None] * len(q_us), dtype=pl.Float64),
        }
    ).with_row_index("probe")
    both = pl.concat(
        [data.with_columns(pl.lit(None, pl.UInt32).alias("probe")), probes], how="diagonal"
    )
    both = both.sort("t", maintain_order=True)
    return both.with_columns(roll).filter(pl.col("probe").is_not_null()).sort("probe")["v"]


def spec_from(entry: Any, *, default_key: str | Sequence[str] | None = None) -> FeatureSpec:
    """A :class:`FeatureSpec` from a spec-like object (e.g. ``rtml_cli.config.FeatureSpec``).

    ``entry`` needs ``name``, ``key``, ``column``, ``agg`` and ``window`` (a duration string or
    ``window_us``). A missing key means the table's entity key ``default_key`` (one global
    entity when the table has none).
    """
    if isinstance(entry, FeatureSpec):
        return entry

    def get(k: str, default: Any = None) -> Any:
        if isinstance(entry, Mapping):
            return entry.get(k, default)
        return getattr(entry, k, default)

    window = get("window")
    if window is None and get("window_us") is not None:
        window = f"{int(get('window_us'))}us"
    name = get("name")
    where = f"[[feature]] '{name}'" if name else "[[feature]]"
    key = get("key")
    return FeatureSpec.build(
        key=default_key if key is None else key,
        column=get("column"),
        agg=get("agg"),
        window=window,
        name=name,
        where=where,
    )


def derived_columns(
    frame: pl.DataFrame,
    specs: Sequence[Any],
    *,
    key: str | Sequence[str] | None,
    every_us: int | None,
    label: str | None = None,
) -> pl.DataFrame:
    """The ``[[feature]]`` columns of one strategy view (the hook ``rtml_cli.strategies`` calls).

    Parameters
    ----------
    frame : the event table (:data:`~rtml_cli.io.T`, :data:`~rtml_cli.io.L` and the columns).
    specs : ``[[feature]]`` entries (``rtml_cli.config.FeatureSpec`` or :class:`FeatureSpec`).
    key : the table's entity key, used by entries that name none.
    every_us : ``None`` for the fresh view (as of ``t_i``); the retrain period for the batch
        view (as of the cutoff ``floor(t_i / R) * R``, the same grid the batch snapshot uses).
    label : the label column: aggregates over it only see labels arrived before the query
        time. Must be given whenever the frame has a label (:data:`~rtml_cli.io.L`), since a
        label aggregated as a plain column would leak labels not yet known.

    Returns
    -------
    polars.DataFrame
        One column per spec, named ``spec.name``, in ``frame`` order, followed by one
        ``rtml_age_<name>`` column per spec and :data:`FEATURE_AGE`.
    """
    if (
        label is None
        and L in frame.columns
        and any(getattr(s, "column", None) not in (None, "*") for s in specs)
    ):
        raise UsageError(
            "derived_columns needs label= (the label column) when the table has labels, so that "
            "aggregates over the label respect label arrival."
        )
    built = [spec_from(s, default_key=key) for s in specs]
    for s in built:
        if s.name in frame.columns:
            raise ConfigError(
                f"[[feature]] name '{s.name}' is already a column of the table. Give the feature "
                "another 'name'."
            )
    if every_us is None:
        out = fresh_features(frame, built, label_col=label)
    else:
        cut = cutoff_grid(frame[T], every_us)
        assert isinstance(cut, pl.Series)
        out = asof_features(frame, built, cut, label_col=label)
    return out.rename({s.value_col: s.name for s in built})
