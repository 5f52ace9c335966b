"""Reading and validating event tables (docs/semantics.md, The event table; the first stage of the pipeline).

A table is read lazily with polars (only the needed columns are materialised). Column roles
(time, label, key, label time, features) come from flags/config or are inferred from the
schema; :func:`resolve_roles` says what it inferred.

The normalised event time is always ``Datetime("us")`` without a time zone; the internal
columns rtml adds start with ``rtml_`` (:data:`EVENT_TIME`, :data:`LABEL_TIME`, :data:`EVENT_ID`).
"""

from __future__ import annotations

import dataclasses
import glob as _glob
import warnings
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from rtml_cli.errors import (
    DroppedRowsWarning,
    InputError,
    UnsortedInputWarning,
    UsageError,
    column_not_found,
)

#: Internal column: normalised event time, Datetime("us").
EVENT_TIME = "rtml_t"
#: Internal column: when the row's label becomes known, Datetime("us") (the label-time column,
#: or the event time plus the label delay; null when the label is null).
LABEL_TIME = "rtml_l"
#: Internal column: the row's position in stable time order (0-based).
EVENT_ID = "rtml_event_id"

TIME_DTYPE = pl.Datetime("us")

#: Column names rtml itself adds to a table or to replayed messages: a table column of one of
#: these names would be silently overwritten or clash, so :func:`check_reserved_columns` refuses it.
RESERVED_COLUMNS = (
    "rtml_kind",
    "rtml_time",
    EVENT_ID,
    "rtml_row",
    EVENT_TIME,
    LABEL_TIME,
)

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}
_LABEL_NAMES = ("label", "target", "y", "class", "click", "clicked", "is_click", "outcome")
_TIME_NAMES = ("timestamp", "ts", "time", "event_time", "datetime", "date", "t")
SUPPORTED = "Parquet (.parquet, folder or glob), CSV (.csv/.tsv), NDJSON (.ndjson/.jsonl), Arrow IPC (.arrow/.ipc/.feather)"


@dataclasses.dataclass
class Roles:
    """Which column plays which part (docs/semantics.md, The event table). ``None`` means "infer" (or "absent")."""

    time: str | None = None
    label: str | None = None
    key: str | None = None
    label_time: str | None = None
    features: list[str] | None = None
    request_features: list[str] = dataclasses.field(default_factory=list)
    ignore: list[str] = dataclasses.field(default_factory=list)
    time_unit: str | None = None
    time_format: str | None = None

    def feature_columns(self, columns: Sequence[str]) -> list[str]:
        """The feature columns: as configured, or every column that has no other role."""
        if self.features is not None:
            return list(self.features)
        taken = {self.time, self.label, self.key, self.label_time, *self.ignore}
        return [c for c in columns if c not in taken and not c.startswith("rtml_")]


def _format_of(path: str) -> str | None:
    suffixes = Path(path).suffixes
    for suf in reversed(suffixes):
        if suf.lower() in _FORMATS:
            return _FORMATS[suf.lower()]
    return None


def _expand(path: str) -> tuple[list[str], str]:
    """Files behind ``path`` (a file, a folder of files, or a glob) and their common format."""
    p = Path(path)
    if any(ch in path for ch in "*?["):
        files = sorted(_glob.glob(path, recursive=True))
        if not files:
            raise InputError(
                f"no file matches the glob '{path}'. Check the pattern and the folder."
            )
    elif p.is_dir():
        files = sorted(str(f) for f in p.rglob("*") if f.is_file() and _format_of(str(f)))
        if not files:
            raise InputError(
                f"folder '{path}' holds no table file. Expected files of: {SUPPORTED}."
            )
    elif p.exists():
        files = [path]
    else:
        raise InputError(f"table '{path}' not found. Check the path (cwd is {Path.cwd()}).")
    formats = {_format_of(f) for f in files}
    if None in formats:
        bad = next(f for f in files if _format_of(f) is None)
        raise InputError(f"unknown table format for '{bad}'. Supported: {SUPPORTED}.")
    if len(formats) > 1:
        raise InputError(
            f"'{path}' mixes table formats ({', '.join(sorted(map(str, formats)))}); "
            "point rtml at files of one format."
        )
    return files, formats.pop()  # type: ignore[return-value]


def scan_table(path: str | Path) -> pl.LazyFrame:
    """Open a table lazily.

    Parameters
    ----------
    path : a Parquet/CSV/NDJSON/Arrow IPC file, a folder of such files, or a glob.

    Returns
    -------
    polars.LazyFrame
        Nothing is read but the schema; callers select the columns they need.

    Raises
    ------
    InputError
        Missing path, unknown format, unreadable or corrupt file, empty table schema.

    Examples
    --------
    >>> lf = scan_table("sample_data/clickstream.parquet")  # doctest: +SKIP
    """
    path = str(path)
    files, fmt = _expand(path)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(files)
        elif fmt == "csv":
            sep = "\t" if files[0].lower().endswith(".tsv") else ","
            lf = pl.concat(
                [
                    pl.scan_csv(f, separator=sep, try_parse_dates=True, infer_schema_length=10_000)
                    for f in files
                ]
            )
        elif fmt == "ndjson":
            lf = pl.scan_ndjson(files, infer_schema_length=10_000)
        else:
            lf = pl.concat([pl.scan_ipc(f) for f in files])
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot read table '{path}' as {fmt}: {_first_line(exc)}. "
            "Check that the file is complete and of the format its name says."
        ) from None
    if len(schema) == 0:
        raise InputError(f"table '{path}' has no columns. Is it empty?")
    return lf


def check_reserved_columns(
    columns: Sequence[str],
    *,
    source: str,
    ignore: Sequence[str] = (),
    also: Sequence[str] = (),
) -> None:
    """Refuse a table with a column named like one rtml adds (:data:`RESERVED_COLUMNS`, and a
    command's own working columns ``also``).

    A reserved column listed in ``ignore`` is allowed: the caller drops it before any use
    (``compare --ignore rtml_row`` reads the table without it).

    Raises
    ------
    InputError
        Names the column(s), the table and the fixes.
    """
    reserved = (*RESERVED_COLUMNS, *also)
    bad = [c for c in columns if c in reserved and c not in ignore]
    if bad:
        names = ", ".join(f"'{c}'" for c in bad)
        raise InputError(
            f"{source} has column(s) {names}, a name rtml reserves for the columns it adds "
            f"({', '.join(reserved)}): rename it in the table, or leave it out with "
            f"--ignore {','.join(bad)}."
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def collect(lf: pl.LazyFrame, *, source: str, what: str = "reading") -> pl.DataFrame:
    """``lf.collect()`` with polars' errors turned into an :class:`InputError` naming ``source``."""
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"cannot read table '{source}' while {what}: {_first_line(exc)}. "
            "The file may be corrupt or not of the format its name says."
        ) from None


def resolve_roles(
    schema: pl.Schema, roles: Roles, *, source: str, need_label: bool = False
) -> tuple[Roles, list[str]]:
    """Check the given roles against ``schema`` and infer the missing ones.

    Returns the completed roles and a list of human-readable notes on what was inferred.

    Raises
    ------
    ColumnNotFoundError
        A named column does not exist (the message lists the columns and the closest name).
    InputError
        The time (or, with ``need_label``, the label) column cannot be inferred.
    """
    cols = list(schema.names())
    resolved = dataclasses.replace(roles)
    notes: list[str] = []
    checks = [
        (resolved.time, "time column", "--time-col"),
        (resolved.label, "label column", "--label-col"),
        (resolved.key, "key column", "--key-col"),
        (resolved.label_time, "label-time column", "--label-time-col"),
    ]
    for name, role, flag in checks:
        if name is not None and name not in schema:
            raise column_not_found(name, cols, role=role, flag=flag, source=source)
    for lst, role, flag in (
        (resolved.features or [], "input column", "--inputs"),
        (resolved.request_features, "request input column", "--request-inputs"),
        (resolved.ignore, "ignored column", "--ignore"),
    ):
        for name in lst:
            if name not in schema:
                raise column_not_found(name, cols, role=role, flag=flag, source=source)

    if resolved.time is None:
        temporal = [c for c, d in schema.items() if d.is_temporal() and d != pl.Duration]
        named = [c for c in cols if c.lower() in _TIME_NAMES]
        if len(temporal) == 1:
            resolved.time = temporal[0]
        elif len(temporal) > 1:
            preferred = [c for c in temporal if c.lower() in _TIME_NAMES]
            if len(preferred) == 1:
                resolved.time = preferred[0]
            else:
                raise InputError(
                    f"{source} has several datetime columns ({', '.join(temporal)}); "
                    "say which is the event time with --time-col."
                )
        elif len(named) == 1:
            resolved.time = named[0]
        else:
            raise InputError(
                f"cannot infer the time column of {source}: no datetime column. Columns are: "
                f"{', '.join(cols[:30])}. Pass --time-col (with --time-unit for epoch numbers "
                "or --time-format for strings)."
            )
        notes.append(f"time column: '{resolved.time}' (inferred; pass --time-col to change)")

    if resolved.label is None:
        by_name = [c for c in cols if c.lower() in _LABEL_NAMES and c != resolved.time]
        bools = [c for c, d in schema.items() if d == pl.Boolean and c not in resolved.ignore]
        if len(by_name) == 1:
            resolved.label = by_name[0]
        elif not by_name and len(bools) == 1:
            resolved.label = bools[0]
        if resolved.label is not None:
            notes.append(f"label column: '{resolved.label}' (inferred; pass --label-col to change)")
        elif need_label:
            hint = f" Candidates: {', '.join(by_name)}." if by_name else ""
            raise InputError(
                f"cannot infer the label column of {source}.{hint} Columns are: "
                f"{', '.join(cols[:30])}. Pass --label-col."
            )
    if resolved.time in (resolved.label, resolved.key) or (
        resolved.label is not None and resolved.label == resolved.key
    ):
        raise UsageError(
            f"one column plays two roles in {source}: time='{resolved.time}', "
            f"label='{resolved.label}', key='{resolved.key}'. Give each role its own column."
        )
    return resolved, notes


def time_expr(schema: pl.Schema, roles: Roles, *, column: str | None = None) -> pl.Expr:
    """An expression that turns the time column (or ``column``) into ``Datetime("us")``.

    Datetimes are cast (a time zone is converted to UTC and dropped), dates become midnight,
    integers are epochs in ``roles.time_unit`` (s, ms, us, ns; default s), strings are parsed
    with ``roles.time_format`` (strftime) or ISO-8601. Unparseable strings become null, which
    :func:`check_time_column` reports.
    """
    name = column or roles.time
    assert name is not None
    dtype = schema[name]
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(TIME_DTYPE)
    if dtype == pl.Date:
        return col.cast(TIME_DTYPE)
    if dtype.is_integer() or dtype.is_float():
        unit = roles.time_unit or "s"
        if unit not in ("s", "ms", "us", "ns"):
            raise UsageError(f"--time-unit must be one of s, ms, us, ns. Got {unit!r} instead.")
        factor = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit]
        return (col.cast(pl.Float64) * factor).round(0).cast(pl.Int64).cast(TIME_DTYPE)
    if dtype == pl.String:
        if roles.time_format:
            return col.str.to_datetime(roles.time_format, time_unit="us", strict=False).cast(
                TIME_DTYPE
            )
        return (
            col.str.to_datetime(time_unit="us", strict=False, time_zone="UTC")
            .dt.replace_time_zone(None)
            .cast(TIME_DTYPE)
        )
    raise InputError(
        f"column '{name}' has type {dtype}, which cannot be an event time. Use a datetime, date, "
        "integer epoch (with --time-unit) or string (with --time-format) column."
    )


def check_time_column(
    lf: pl.LazyFrame, schema: pl.Schema, roles: Roles, *, source: str, drop_null_time: bool
) -> tuple[pl.LazyFrame, int]:
    """Validate the time column and return ``(lf with EVENT_TIME added, null rows dropped)``.

    Raises :class:`InputError` for unparseable values (one is shown) and for null times
    (counted) unless ``drop_null_time``.
    """
    assert roles.time is not None
    lf = lf.with_columns(time_expr(schema, roles).alias(EVENT_TIME))
    stats = collect(
        lf.select(
            pl.col(roles.time).is_null().sum().alias("raw_null"),
            (pl.col(EVENT_TIME).is_null() & pl.col(roles.time).is_not_null()).sum().alias("bad"),
            pl.col(roles.time)
            .filter(pl.col(EVENT_TIME).is_null() & pl.col(roles.time).is_not_null())
            .first()
            .alias("bad_value"),
            pl.len().alias("rows"),
        ),
        source=source,
        what="checking the time column",
    ).row(0, named=True)
    if stats["rows"] == 0:
        raise InputError(f"table '{source}' is empty (0 rows); nothing to replay or compare.")
    if stats["bad"]:
        fmt = f"--time-format '{roles.time_format}'" if roles.time_format else "ISO-8601"
        raise InputError(
            f"time column '{roles.time}' of {source} has {stats['bad']} value(s) that do not parse "
            f"as {fmt}, e.g. {stats['bad_value']!r}. Pass --time-format (strftime, e.g. "
            "'%d/%m/%Y %H:%M') or fix the data."
        )
    nulls = int(stats["raw_null"])
    if nulls:
        if not drop_null_time:
            raise InputError(
                f"time column '{roles.time}' of {source} has {nulls} null value(s) out of "
                f"{stats['rows']}. Pass --drop-null-time to drop those rows, or fix the data."
            )
        warnings.warn(
            f"dropped {nulls} row(s) of {source} whose time '{roles.time}' is null",
            DroppedRowsWarning,
            stacklevel=2,
        )
        lf = lf.filter(pl.col(EVENT_TIME).is_not_null())
        if nulls == stats["rows"]:
            raise InputError(f"every row of {source} has a null time; nothing is left.")
    return lf, nulls


def label_time_expr(
    schema: pl.Schema, roles: Roles, *, label_delay_us: int | None
) -> pl.Expr | None:
    """Expression for :data:`LABEL_TIME`: when the label becomes known (null for a null label).

    ``None`` when the table has no label. With neither a label-time column nor a delay, the
    label arrives with its event (delay 0).
    """
    if roles.label is None:
        return None
    known = has_label(schema, roles.label)
    if roles.label_time is not None:
        if label_delay_us:
            raise UsageError("pass either --label-time-col or --label-delay, not both.")
        arrival = time_expr(schema, roles, column=roles.label_time)
    else:
        arrival = pl.col(EVENT_TIME) + pl.duration(microseconds=label_delay_us or 0)
    return pl.when(known).then(arrival).otherwise(None).cast(TIME_DTYPE)


def has_label(schema: pl.Schema, label: str) -> pl.Expr:
    """True where the label is known: not null, and not NaN in a float label (a NaN label is a
    missing label: it is never scored and trains nothing)."""
    known = pl.col(label).is_not_null()
    if schema[label].is_float():
        known = known & pl.col(label).is_not_nan()
    return known


def check_label_times(df: pl.DataFrame, roles: Roles, *, source: str) -> None:
    """Raise :class:`InputError` if a label arrives before its event or its time is unparseable."""
    if roles.label is None or LABEL_TIME not in df.columns:
        return
    bad = df.filter(pl.col(LABEL_TIME) < pl.col(EVENT_TIME))
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(
            f"label-time column '{roles.label_time}' of {source} is before the event time in "
            f"{bad.height} row(s), e.g. event {row[EVENT_ID]} at {row[EVENT_TIME]} has its label "
            f"at {row[LABEL_TIME]}. A label cannot be known before its event: fix the column or "
            "use --label-delay."
        )
    if roles.label_time is not None:
        missing = df.filter(has_label(df.schema, roles.label) & pl.col(LABEL_TIME).is_null())
        if missing.height:
            raise InputError(
                f"label-time column '{roles.label_time}' of {source} is null or unparseable in "
                f"{missing.height} row(s) that have a label, e.g. event "
                f"{missing.row(0, named=True)[EVENT_ID]}. Fill it, or pass --time-format."
            )


def find_label_time(
    lf: pl.LazyFrame, schema: pl.Schema, roles: Roles, *, source: str
) -> tuple[str | None, list[str]]:
    """The label-time column of a table that names none, and notes saying why.

    A candidate is a datetime (or date) column that has no other role, is not a listed feature
    and is not ignored. It is the label-time column when, over the whole table, it is never
    before the event time (nulls aside) and it is set wherever the label is: a label's arrival
    time (``click_time``). With several such columns none is chosen and the notes say so.
    ``lf`` must hold :data:`EVENT_TIME`.
    """
    if roles.label is None:
        return None, []
    taken = {roles.time, roles.label, roles.key, *roles.ignore, *(roles.features or [])}
    cands = [
        c
        for c, d in schema.items()
        if c not in taken and (isinstance(d, pl.Datetime) or d == pl.Date)
    ]
    if not cands:
        return None, []
    known = has_label(schema, roles.label)
    exprs = []
    for i, c in enumerate(cands):
        cand_time = time_expr(schema, roles, column=c)
        exprs += [
            (cand_time < pl.col(EVENT_TIME)).sum().alias(f"before{i}"),
            (known & cand_time.is_null()).sum().alias(f"missing{i}"),
            cand_time.is_not_null().sum().alias(f"present{i}"),
        ]
    stats = collect(lf.select(exprs), source=source, what="looking for a label-time column").row(
        0, named=True
    )
    fit = [
        c
        for i, c in enumerate(cands)
        if stats[f"before{i}"] == 0 and stats[f"missing{i}"] == 0 and stats[f"present{i}"] > 0
    ]
    if len(fit) == 1:
        return fit[0], [
            f"label-time column: '{fit[0]}' (inferred: a datetime never before the event time, "
            "set wherever the label is, so the label's arrival; pass --label-time-col or "
            "--label-delay to change)"
        ]
    if len(fit) > 1:
        return None, [
            f"label time: several datetime columns are never before the event time "
            f"({', '.join(fit)}), so none was taken as the label's arrival: labels arrive with "
            "their events. Pass --label-time-col or --label-delay."
        ]
    return None, []


@dataclasses.dataclass
class EventTable:
    """A validated, time-sorted table in memory, ready for simulation.

    Attributes
    ----------
    frame : the needed columns plus :data:`EVENT_ID`, :data:`EVENT_TIME` and (with a label)
        :data:`LABEL_TIME`, sorted stably by :data:`EVENT_TIME`.
    roles : the resolved roles.
    source : the path it came from.
    notes : what was inferred or fixed (printed by the CLI).
    was_sorted : whether the input was already in time order.
    dropped_null_time : rows dropped for a null time.
    """

    frame: pl.DataFrame
    roles: Roles
    source: str
    notes: list[str]
    was_sorted: bool
    dropped_null_time: int = 0


def load_events(
    path: str | Path,
    roles: Roles,
    *,
    label_delay_us: int | None = None,
    drop_null_time: bool = False,
    need_label: bool = False,
    columns: Sequence[str] | None = None,
    infer_label_time: bool = False,
) -> EventTable:
    """Read, validate and sort a table into an :class:`EventTable`.

    Parameters
    ----------
    path : table path (file, folder or glob).
    roles : roles given by flags/config; missing ones are inferred.
    label_delay_us : fixed label delay (when there is no label-time column).
    drop_null_time : drop rows with a null time instead of failing.
    need_label : fail if no label column can be found (``compare``).
    columns : extra columns to keep; default every column.
    infer_label_time : with no label-time column and no ``label_delay_us``, take as the
        label-time column the one datetime column that is never before the event time and is
        set wherever the label is (:func:`find_label_time`); said in the notes.

    Columns named like rtml's own (:data:`RESERVED_COLUMNS`) are refused unless ignored
    (``roles.ignore``), in which case they are dropped before anything reads them.

    Examples
    --------
    >>> table = load_events("sample_data/clickstream.parquet", Roles())  # doctest: +SKIP
    >>> table.frame.columns[:3]  # doctest: +SKIP
    """
    source = str(path)
    lf = scan_table(source)
    schema = lf.collect_schema()
    check_reserved_columns(schema.names(), source=source, ignore=roles.ignore)
    roles, notes = resolve_roles(schema, roles, source=source, need_label=need_label)
    reserved = [c for c in schema.names() if c in RESERVED_COLUMNS]
    if reserved:  # ignored (else refused above): dropped before rtml adds its own columns
        lf = lf.drop(reserved)
        schema = lf.collect_schema()
    lf, dropped = check_time_column(lf, schema, roles, source=source, drop_null_time=drop_null_time)
    if infer_label_time and label_delay_us is None and roles.label_time is None:
        found, found_notes = find_label_time(lf, schema, roles, source=source)
        notes.extend(found_notes)
        if found is not None:
            roles = dataclasses.replace(roles, label_time=found)
    if columns is not None:
        keep = list(
            dict.fromkeys(
                [
                    *columns,
                    *(c for c in (roles.time, roles.label, roles.key, roles.label_time) if c),
                ]
            )
        )
        lf = lf.select([*keep, EVENT_TIME])
    lf = lf.with_row_index("rtml_row")
    df = collect(lf, source=source)
    was_sorted = bool(df[EVENT_TIME].is_sorted())
    if not was_sorted:
        warnings.warn(
            f"{source} is not sorted by '{roles.time}'; rtml sorted it (stable: ties keep table order)",
            UnsortedInputWarning,
            stacklevel=2,
        )
        notes.append(f"table was not sorted by '{roles.time}': sorted it (stable)")
        df = df.sort(EVENT_TIME, maintain_order=True)
    df = df.drop("rtml_row").with_row_index(EVENT_ID)
    lexpr = label_time_expr(schema, roles, label_delay_us=label_delay_us)
    if lexpr is not None:
        df = df.with_columns(lexpr.alias(LABEL_TIME))
        check_label_times(df, roles, source=source)
    return EventTable(
        frame=df,
        roles=roles,
        source=source,
        notes=notes,
        was_sorted=was_sorted,
        dropped_null_time=dropped,
    )
