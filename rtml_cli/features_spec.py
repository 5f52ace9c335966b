"""What a feature is: windowed aggregates per key and request-time calendar parts.

A windowed feature (:class:`FeatureSpec`) comes from a ``[[feature]]`` table of ``rtml.toml``
(:meth:`FeatureSpec.from_config`) or a ``--feature KEY:COLUMN:AGG:WINDOW[:NAME]`` flag
(:meth:`FeatureSpec.parse`); both build the same class, which :mod:`rtml_cli.config` keeps and
:mod:`rtml_cli.features` computes. Calendar parts (:class:`CalendarSpec`) are derived from the
event time. "Features" in rtml means these derived columns; the model's input columns are
"inputs".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import ConfigError, UsageError, suggest

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

_AGG_ALIASES = {
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
#: Keys of a ``[[feature]]`` table.
FEATURE_TABLE_KEYS = ("name", "key", "column", "agg", "window")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


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
    key_from_table : the ``[[feature]]`` table named no ``key``: it is the table's entity key
        (``[data] key``), known once the table's roles are; :meth:`with_table_key` resolves it
        (``key`` is ``None`` until then).
    as_written : the ``[[feature]]`` table or ``--feature`` parts as the user wrote them (for
        the run's manifest); not part of equality.

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
    key_from_table: bool = False
    as_written: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def with_table_key(self, table_key: str | Sequence[str] | None) -> FeatureSpec:
        """This spec with an omitted key replaced by the table's entity key (``None``: global)."""
        if not self.key_from_table:
            return self
        if isinstance(table_key, str):
            key: tuple[str, ...] | None = (table_key,)
        else:
            key = tuple(table_key) if table_key else None
        return dataclasses.replace(self, key=key, key_from_table=False)

    def manifest_entry(self) -> dict[str, Any]:
        """The entry as written (or, for a spec built in code, its parts) for ``manifest.json``."""
        if self.as_written:
            return dict(self.as_written)
        return {
            "name": self.name,
            "key": list(self.key or ()),
            "column": self.column,
            "agg": self.agg,
            "window": format_duration(self.window_us),
        }

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
        key_from_table: bool = False,
        as_written: Mapping[str, Any] | None = None,
    ) -> FeatureSpec:
        """Validate the parts of a feature and build it; ``where`` names it in error messages.

        ``key_from_table`` (``key`` must then be ``None``) and ``as_written`` are stored as given.
        """
        if key is None or key == "" or key == []:
            keys: tuple[str, ...] | None = None
        elif isinstance(key, str):
            keys = (key,)
        elif isinstance(key, (list, tuple)) and all(isinstance(k, str) and k for k in key):
            keys = tuple(key)
        else:
            raise ConfigError(
                f"{where}: 'key' must be a column name or a list of column names (an empty list "
                f"aggregates over the whole table). Got {key!r}."
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
                f" Did you mean '{_AGG_ALIASES[agg_norm]}'?"
                if agg_norm in _AGG_ALIASES
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
        return cls(
            name=name,
            key=keys,
            column=column,
            agg=agg_norm,
            window_us=window_us,
            key_from_table=key_from_table and keys is None,
            as_written=dict(as_written or {}),
        )

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], *, where: str = "[[feature]]") -> FeatureSpec:
        """Build from one ``[[feature]]`` table of ``rtml.toml``.

        A table without ``key`` is keyed by the table's entity key (``[data] key``):
        ``key_from_table`` is set and :meth:`with_table_key` resolves it. An empty ``key``
        (``""`` or ``[]``) aggregates over the whole table.

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
        >>> FeatureSpec.from_config({"column": "x", "agg": "sum", "window": "1h", "name": "s"}
        ...                         ).with_table_key("user").key
        ('user',)
        """
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{where} must be a table of keys ({', '.join(FEATURE_TABLE_KEYS)}). Got {entry!r}."
            )
        for k in entry:
            if k not in FEATURE_TABLE_KEYS:
                raise ConfigError(
                    f"{where}: unknown key '{k}'.{suggest(str(k), FEATURE_TABLE_KEYS)} "
                    f"Allowed keys: {', '.join(FEATURE_TABLE_KEYS)}."
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
            key_from_table="key" not in entry,
            as_written=entry,
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
        spec = cls.build(
            key=keys, column=column, agg=agg, window=window, name=name, where=f"feature {text!r}"
        )
        written = {
            "name": spec.name,
            "key": list(spec.key or ()),
            "column": spec.column,
            "agg": spec.agg,
            "window": parts[3],
        }
        return dataclasses.replace(spec, as_written=written)

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
