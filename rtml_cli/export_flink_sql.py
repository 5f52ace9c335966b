"""The Flink SQL job that computes ``rtml features`` from replayed messages (``rtml export flink``).

The job reads the messages ``rtml replay`` sends (one JSON object per message: events at their
event time, label messages at their label's arrival, possibly in bounded disorder) and writes,
for every event, the same values as ``rtml features``: one row per ``rtml_event_id`` with one
column per ``[[feature]]`` and calendar part. Its test runs it on a local Flink and compares the
two event by event (``tests/test_export_flink.py``).

Exactness. For event *a* at time ``t`` a feature aggregates the rows *b* of the same key with
``t - w <= b.t < t`` whose value was known before ``t`` (the label: its label message's time
``l < t``). The SQL states exactly that: each event is joined with the rows of its key inside
its window and grouped by the event. An ``OVER (... RANGE BETWEEN INTERVAL w PRECEDING AND
CURRENT ROW)`` window is not used because it includes the current row and every row tied with
it (its peers) and cannot hold a label back until it arrived. Times are compared as exact
epoch microseconds (``BIGINT``): Flink's timestamp arithmetic and watermarks work in
milliseconds, which would merge distinct instants into ties.

Every aggregation of :data:`rtml_cli.features.AGGS` is exported; what cannot be written exactly
is refused by :func:`check_exportable` with a message naming it (never approximated).

Examples
--------
>>> parse_endpoint("kafka://localhost:9092/events", what="--source").topic
'events'
>>> parse_endpoint("ndjson:out/features", what="--sink").path
'out/features'
"""

from __future__ import annotations

import dataclasses
import re

import polars as pl

from rtml_cli.errors import ConfigError, UsageError
from rtml_cli.features_cli import CALENDAR_PREFIX, FeatureJob
from rtml_cli.features_spec import FeatureSpec
from rtml_cli.io import EVENT_ID

#: Message fields written by ``rtml replay`` (rtml_cli.replay_columns.KIND, TIME).
KIND = "rtml_kind"
TIME = "rtml_time"
_US_PER_DAY = 86_400_000_000
#: The longest window the interval-join hint can state (Flink's DAY(2) TO SECOND(3) literal).
_MAX_HINT_DAYS = 99
_KAFKA_RE = re.compile(r"^kafka://(?P<servers>[^/]+)/(?P<topic>[^/]+)$")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A message source or feature sink: ``kafka://HOST:PORT/TOPIC`` or ``ndjson:PATH``."""

    kind: str
    path: str = ""
    servers: str = ""
    topic: str = ""

    def text(self) -> str:
        """The endpoint as the user writes it."""
        if self.kind == "kafka":
            return f"kafka://{self.servers}/{self.topic}"
        return f"ndjson:{self.path}"


def parse_endpoint(text: str, *, what: str) -> Endpoint:
    """Parse ``kafka://HOST:PORT/TOPIC`` or ``ndjson:PATH``; :class:`UsageError` otherwise."""
    m = _KAFKA_RE.match(text)
    if m:
        return Endpoint("kafka", servers=m["servers"], topic=m["topic"])
    if text.startswith("ndjson:") and len(text) > len("ndjson:"):
        return Endpoint("ndjson", path=text[len("ndjson:") :])
    raise UsageError(
        f"{what} {text!r} is not an endpoint. Use kafka://HOST:PORT/TOPIC or ndjson:PATH "
        "(a file or folder of NDJSON messages as `rtml replay -o FILE.ndjson` writes them)."
    )


# ---------------------------------------------------------------------------------------------
# SQL text helpers


def _ident(name: str) -> str:
    """A Flink SQL identifier (backquoted; a backquote inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    """A Flink SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _comment(text: str) -> str:
    """User text made safe inside a ``--`` comment (no line break can end the comment)."""
    return "".join(ch if ch >= " " and ch != "\x7f" else "?" for ch in text)


def _duration(us: int) -> str:
    from rtml_cli.durations import format_duration

    return format_duration(us)


def _flink_type(dtype: pl.DataType, *, what: str) -> str:
    """The Flink type a replayed JSON field of table type ``dtype`` is read as."""
    if dtype.is_integer():
        if dtype == pl.UInt64:
            raise ConfigError(
                f"{what} is UInt64, which Flink's BIGINT cannot hold whole. Cast it to Int64."
            )
        return "BIGINT"
    if dtype.is_float():
        return "DOUBLE"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "STRING"
    raise ConfigError(
        f"{what} has type {dtype}, which the Flink export does not read exactly from JSON. "
        "Use an integer, float, boolean or string column."
    )


def _epoch_us(col: str, dtype: pl.DataType) -> str:
    """SQL for the exact epoch microseconds of an ISO-8601 text field written by rtml replay.

    Replay writes ``YYYY-MM-DDTHH:MM:SS`` plus 0, 3, 6 or 9 fraction digits, and ``+HH:MM``
    for a zoned column; whole seconds come from ``UNIX_TIMESTAMP`` (session zone UTC), the
    fraction from the digits themselves, so no instant is rounded.
    """
    c = _ident(col)
    secs = f"UNIX_TIMESTAMP(SUBSTRING({c} FROM 1 FOR 19), 'yyyy-MM-dd''T''HH:mm:ss')"
    zoned = isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    if not zoned:
        frac = f"SUBSTRING({c} FROM 21 FOR 6)"
        return f"({secs} * 1000000 + CAST(RPAD({frac}, 6, '0') AS BIGINT))"
    n = f"CHAR_LENGTH({c})"
    frac = f"SUBSTRING({c} FROM 21 FOR LEAST(6, GREATEST({n} - 26, 0)))"
    sign = f"(CASE WHEN SUBSTRING({c} FROM {n} - 5 FOR 1) = '-' THEN -1 ELSE 1 END)"
    hh = f"CAST(SUBSTRING({c} FROM {n} - 4 FOR 2) AS BIGINT)"
    mm = f"CAST(SUBSTRING({c} FROM {n} - 1 FOR 2) AS BIGINT)"
    offset = f"{sign} * ({hh} * 3600 + {mm} * 60)"
    return f"(({secs} - {offset}) * 1000000 + CAST(RPAD({frac}, 6, '0') AS BIGINT))"


def _interval(us: int) -> str | None:
    """A ``DAY TO SECOND(3)`` literal of at least ``us`` (whole ms), or None beyond 99 days."""
    ms = -(-us // 1000)
    days, rest = divmod(ms, 86_400_000)
    if days > _MAX_HINT_DAYS:
        return None
    h, rest = divmod(rest, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms_ = divmod(rest, 1000)
    return f"INTERVAL '{days} {h:02d}:{m:02d}:{s:02d}.{ms_:03d}' DAY TO SECOND(3)"


# ---------------------------------------------------------------------------------------------
# the export


@dataclasses.dataclass
class FlinkExport:
    """A generated job: ``settings`` (``SET`` statements), DDL/view ``statements``, one insert."""

    settings: dict[str, str]
    statements: list[str]
    insert: str
    header: str
    mode: str
    columns: list[str]

    def sql(self) -> str:
        """The whole job as one SQL script (for Flink's SQL client, or ``-o job.sql``)."""
        parts = [self.header]
        parts += [f"SET {_lit(k)} = {_lit(v)};" for k, v in self.settings.items()]
        parts += [s + ";" for s in self.statements]
        parts.append(self.insert + ";")
        return "\n\n".join(parts) + "\n"


def check_exportable(job: FeatureJob) -> None:
    """Raise :class:`ConfigError` for a feature or table the Flink job cannot compute exactly.

    Refused: an event time that is not a datetime column (replay sends other types as they
    are, and their parsing rules would have to be repeated in SQL), a feature over a column of
    a type JSON does not carry exactly (dates, datetimes, nested values), a feature keyed by
    the label or over a column a replay does not send.
    """
    roles, schema = job.roles, job.schema
    assert roles.time is not None
    if roles.time in roles.ignore:
        raise ConfigError(
            f"the time column '{roles.time}' is ignored, so replayed events do not carry their "
            "event time. Remove it from [data] ignore / --ignore."
        )
    tdtype = schema[roles.time]
    if not isinstance(tdtype, pl.Datetime):
        raise ConfigError(
            f"the time column '{roles.time}' is {tdtype}; the Flink export reads event times "
            "from the ISO-8601 text replay writes for datetime columns only. Convert the column "
            "to a datetime (e.g. polars .str.to_datetime() or .cast(pl.Datetime)) and export "
            "again."
        )
    for s in job.windowed:
        for k in s.key or ():
            _flink_type(schema[k], what=f"feature '{s.name}': key column '{k}'")
        if s.column != "*":
            _flink_type(schema[s.column], what=f"feature '{s.name}': column '{s.column}'")


def _message_fields(job: FeatureJob) -> list[tuple[str, str]]:
    """The (field, Flink type) pairs of the message table, in first-use order."""
    roles, schema = job.roles, job.schema
    fields: dict[str, str] = {KIND: "STRING", EVENT_ID: "BIGINT", TIME: "STRING"}
    assert roles.time is not None
    fields[roles.time] = "STRING"
    for s in job.windowed:
        for c in [*(s.key or ()), *(() if s.column == "*" else (s.column,))]:
            if c not in fields and c != roles.label:  # the label comes in label messages
                fields[c] = _flink_type(schema[c], what=f"column '{c}'")
    return list(fields.items())


def _event_columns(job: FeatureJob) -> list[str]:
    """Table columns the events view carries (keys and plain aggregated columns)."""
    out: list[str] = []
    for s in job.windowed:
        for c in [*(s.key or ()), *(() if s.column == "*" else (s.column,))]:
            if c != job.roles.label and c not in out:
                out.append(c)
    return out


def _label_used(job: FeatureJob) -> bool:
    return job.roles.label is not None and any(s.column == job.roles.label for s in job.windowed)


def _connector(ep: Endpoint, *, role: str) -> str:
    if ep.kind == "ndjson":
        opts = {"connector": "filesystem", "path": ep.path, "format": "json"}
        if role == "source":
            opts["json.fail-on-missing-field"] = "false"
            opts["json.ignore-parse-errors"] = "false"
    elif role == "source":
        opts = {
            "connector": "kafka",
            "topic": ep.topic,
            "properties.bootstrap.servers": ep.servers,
            "properties.group.id": "rtml-features",
            "scan.startup.mode": "earliest-offset",
            "format": "json",
            "json.fail-on-missing-field": "false",
            "json.ignore-parse-errors": "false",
        }
    else:
        opts = {
            "connector": "upsert-kafka",
            "topic": ep.topic,
            "properties.bootstrap.servers": ep.servers,
            "key.format": "json",
            "value.format": "json",
        }
    body = ",\n".join(f"  {_lit(k)} = {_lit(v)}" for k, v in opts.items())
    return f"WITH (\n{body}\n)"


def _value_type(job: FeatureJob, spec: FeatureSpec) -> str:
    """Flink type of a feature's value column (the dtype ``rtml features`` gives it)."""
    if spec.agg in ("count", "count_distinct"):
        return "BIGINT"
    if spec.agg == "last":
        t = _flink_type(job.schema[spec.column], what=f"column '{spec.column}'")
        return "DOUBLE" if t == "BOOLEAN" else t
    return "DOUBLE"


def _feature_view(job: FeatureJob, spec: FeatureSpec, i: int, n: int) -> str:
    """One commented ``CREATE TEMPORARY VIEW`` computing one feature for every event."""
    label = job.roles.label
    on_label = label is not None and spec.column == label
    src = "rtml_labeled" if on_label else "rtml_events"
    keys = list(spec.key or ())
    col = spec.column
    key_text = ", ".join(f"`{_comment(k)}`" for k in keys) if keys else "the whole table"
    what = "events" if col == "*" else f"`{_comment(col)}`"
    w = spec.window_us
    lines = [
        f"-- [{i}/{n}] feature `{_comment(spec.name)}`: {spec.agg} of {what} per {key_text} over "
        f"[t - {_duration(w)}, t).",
    ]
    if on_label:
        lines.append(
            "--   the label counts only once its label message arrived strictly before t "
            "(b.l_us < a.t_us)."
        )
    # the value each joined row contributes
    if col == "*":
        x = "b.rtml_event_id"
    elif spec.agg in ("sum", "mean", "std", "min", "max"):
        ftype = _flink_type(job.schema[col], what=f"column '{col}'")
        if ftype == "BOOLEAN":
            x = f"CASE WHEN b.{_ident(col)} THEN 1.0E0 WHEN NOT b.{_ident(col)} THEN 0.0E0 END"
        else:
            x = f"CAST(b.{_ident(col)} AS DOUBLE)"
    else:
        x = f"b.{_ident(col)}"
    null_key = " OR ".join(f"a.{_ident(k)} IS NULL" for k in keys) if keys else "FALSE"
    on = (
        [f"b.{_ident(k)} = a.{_ident(k)}" for k in keys]
        if keys
        else ["b.rtml_global = a.rtml_global"]
    )
    on.append("b.bk = a.bk  -- b's time bucket is one of the two a probes")
    on += [
        f"b.t_us >= a.t_us - {w}  -- from t - {_duration(w)}, inclusive",
        "b.t_us < a.t_us  -- strictly before t: the event itself and every event tied with it excluded",
    ]
    if on_label:
        on.append("b.l_us < a.t_us  -- the label message arrived before t")
    else:
        hint = _interval(w + 2000)
        if hint is not None:
            on.append(
                f"b.rt BETWEEN a.rt - {hint} AND a.rt  -- the same bounds, looser, in whole ms on "
                "the event-time attribute: streaming runs this as an interval join"
            )
    on_sql = "\n    AND ".join(on)
    bucket = f"(t_us - MOD(MOD(t_us, {w}) + {w}, {w})) / {w}"
    pairs = (
        "  SELECT a.rtml_event_id, "
        f"({null_key}) AS null_key, b.rtml_event_id AS b_id, {x} AS x\n"
        f"  -- time buckets of width {_duration(w)}: [t - w, t) lies in t's bucket and the one "
        "before, so each\n"
        "  -- event probes those two (an equi-join, not every pair of rows of its key); every "
        "row b\n"
        "  -- matches one probe at most, so none is counted twice.\n"
        "  FROM (\n"
        f"    SELECT e.*, u.bk FROM rtml_events AS e\n"
        f"    CROSS JOIN UNNEST(ARRAY[{bucket.replace('t_us', 'e.t_us')}, "
        f"{bucket.replace('t_us', 'e.t_us')} - 1]) AS u (bk)\n"
        "  ) AS a\n"
        f"  LEFT JOIN (SELECT s.*, {bucket.replace('t_us', 's.t_us')} AS bk FROM {src} AS s) AS b\n"
        f"    ON {on_sql}"
    )
    agg = spec.agg
    if agg == "count":
        v = "COUNT(b_id)" if col == "*" else "COUNT(x)"
    elif agg == "count_distinct":
        v = "COUNT(DISTINCT x)"
    elif agg == "sum":
        v = "COALESCE(SUM(x), 0.0E0)"
    elif agg == "mean":
        v = "AVG(x)"
    elif agg in ("min", "max"):
        v = f"{agg.upper()}(x)"
    elif agg == "std":
        v = ""
    else:  # last: the newest row with a value; event ids follow (time, table order)
        v = "MAX(CASE WHEN x IS NOT NULL THEN b_id END)"
    name = _ident("rtml_f_" + spec.name)
    if agg == "std":
        lines.append(
            "--   sample std in two passes (the window mean first, then squared deviations), "
            "exactly 0 when all values are equal."
        )
        body = (
            f"WITH pairs AS (\n{pairs}\n), means AS (\n"
            "  SELECT rtml_event_id, AVG(x) AS m FROM pairs GROUP BY rtml_event_id\n)\n"
            "SELECT p.rtml_event_id,\n"
            "  CASE WHEN p.null_key OR COUNT(p.x) < 2 THEN CAST(NULL AS DOUBLE)\n"
            "       WHEN MIN(p.x) = MAX(p.x) THEN 0.0E0\n"
            "       ELSE SQRT(SUM((p.x - mm.m) * (p.x - mm.m)) / (COUNT(p.x) - 1)) END AS v\n"
            "FROM pairs AS p JOIN means AS mm ON mm.rtml_event_id = p.rtml_event_id\n"
            "GROUP BY p.rtml_event_id, p.null_key"
        )
    elif agg == "last":
        lines.append(
            "--   last = the value of the newest row with a value (largest event id: ids follow "
            "time, then table order)."
        )
        lookup = "rtml_labels" if on_label else "rtml_events"
        vt = _value_type(job, spec)
        value = f"lv.{_ident(col)}"
        if vt == "DOUBLE" and _flink_type(job.schema[col], what=col) == "BOOLEAN":
            value = (
                f"CASE WHEN lv.{_ident(col)} THEN 1.0E0 WHEN NOT lv.{_ident(col)} THEN 0.0E0 END"
            )
        body = (
            f"WITH pairs AS (\n{pairs}\n), newest AS (\n"
            f"  SELECT rtml_event_id, CASE WHEN null_key THEN NULL ELSE {v} END AS last_id\n"
            "  FROM pairs GROUP BY rtml_event_id, null_key\n)\n"
            f"SELECT n.rtml_event_id, {value} AS v\n"
            f"FROM newest AS n LEFT JOIN {lookup} AS lv ON lv.rtml_event_id = n.last_id"
        )
    else:
        body = (
            f"WITH pairs AS (\n{pairs}\n)\n"
            f"SELECT rtml_event_id, CASE WHEN null_key THEN NULL ELSE {v} END AS v\n"
            "FROM pairs GROUP BY rtml_event_id, null_key"
        )
    return "\n".join(lines) + f"\nCREATE TEMPORARY VIEW {name} AS\n{body}"


def build_export(
    job: FeatureJob,
    *,
    source: Endpoint,
    sink: Endpoint,
    disorder_us: int = 0,
    mode: str | None = None,
    parallelism: int = 1,
) -> FlinkExport:
    """Generate the Flink SQL job for ``job`` (see the module docstring for its semantics).

    ``mode``: ``batch`` (bounded files: the default for an ``ndjson:`` source) or
    ``streaming`` (the default for Kafka; the feature rows are then an updating stream whose
    final value per event is exact, hence the upsert sink). ``disorder_us``: how late an event
    message may arrive after its event time (``rtml replay --disorder``); the watermark waits
    that long.
    """
    check_exportable(job)
    if disorder_us < 0:
        raise UsageError(f"--disorder must be a duration >= 0. Got {disorder_us} us.")
    mode = mode or ("streaming" if source.kind == "kafka" else "batch")
    if mode not in ("batch", "streaming"):
        raise UsageError(f"--mode must be 'batch' or 'streaming'. Got {mode!r}.")
    if mode == "batch" and source.kind == "kafka":
        raise UsageError(
            "--mode batch needs a bounded source; a Kafka topic is read in streaming mode. Drop "
            "--mode, or export from ndjson:PATH."
        )
    if mode == "streaming" and sink.kind == "ndjson":
        raise UsageError(
            "a streaming job updates each event's features as earlier rows and labels arrive, "
            "which a file sink cannot take. Use a kafka:// sink (upsert by rtml_event_id), or "
            "--mode batch over an ndjson: source."
        )
    roles = job.roles
    assert roles.time is not None
    label = roles.label if _label_used(job) else None
    fields = _message_fields(job)
    if label is not None:
        fields.append((label, _flink_type(job.schema[label], what=f"label '{label}'")))
    tdtype = job.schema[roles.time]
    ev_t = _epoch_us(roles.time, tdtype)
    msg_t = _epoch_us(TIME, pl.Datetime("us"))
    t_us = f"CASE WHEN {KIND} = 'event' THEN {ev_t}\n    ELSE {msg_t} END"
    dis = _interval(disorder_us) or f"INTERVAL '{-(-disorder_us // 1000)}' SECOND(3)"
    cols = ",\n".join(f"  {_ident(f)} {t}" for f, t in fields)
    src_ddl = (
        "-- The messages of `rtml replay`: events (kind 'event', at their event time, the table's\n"
        f"-- time column `{_comment(roles.time)}`) and label messages (kind 'label', at the label's "
        "arrival, rtml_time).\n"
        "-- t_us: exact epoch microseconds of the message's time; rt: the same in ms, the\n"
        f"-- event-time attribute, whose watermark allows {_duration(disorder_us)} of disorder.\n"
        "CREATE TABLE rtml_messages (\n"
        f"{cols},\n"
        f"  t_us AS {t_us},\n"
        f"  rt AS TO_TIMESTAMP_LTZ(({t_us}) / 1000, 3),\n"
        f"  WATERMARK FOR rt AS rt - {dis}\n"
        f") {_connector(source, role='source')}"
    )
    ev_cols = _event_columns(job)
    ev_select = ", ".join(
        ["rtml_event_id", "t_us", "rt", "0 AS rtml_global", *(_ident(c) for c in ev_cols)]
    )
    statements = [
        src_ddl,
        "-- Events (every column but the label), with a constant key for whole-table features.\n"
        f"CREATE TEMPORARY VIEW rtml_events AS\nSELECT {ev_select}\n"
        f"FROM rtml_messages WHERE {KIND} = 'event'",
    ]
    if label is not None:
        keys = [c for c in ev_cols if c != label]
        statements += [
            "-- Label messages: l_us is when the label became known to the stream.\n"
            "CREATE TEMPORARY VIEW rtml_labels AS\n"
            f"SELECT rtml_event_id, t_us AS l_us, {_ident(label)}\n"
            f"FROM rtml_messages WHERE {KIND} = 'label'",
            "-- Each label with its event's key and event time (its window position).\n"
            "CREATE TEMPORARY VIEW rtml_labeled AS\n"
            "SELECT e.rtml_event_id, e.t_us, e.rt, e.rtml_global, "
            + "".join(f"e.{_ident(c)}, " for c in keys)
            + f"lab.l_us, lab.{_ident(label)}\n"
            "FROM rtml_events AS e JOIN rtml_labels AS lab ON lab.rtml_event_id = e.rtml_event_id",
        ]
    n = len(job.windowed)
    for i, spec in enumerate(job.windowed, 1):
        statements.append(_feature_view(job, spec, i, n))
    out_cols = [(EVENT_ID, "BIGINT")]
    out_cols += [(s.name, _value_type(job, s)) for s in job.windowed]
    out_cols += [(CALENDAR_PREFIX + p, "INT") for p in job.calendar]
    pk = ",\n  PRIMARY KEY (rtml_event_id) NOT ENFORCED" if sink.kind == "kafka" else ""
    sink_cols = ",\n".join(f"  {_ident(c)} {t}" for c, t in out_cols)
    statements.append(
        "-- One row per event: its id and every feature (the columns of `rtml features`).\n"
        f"CREATE TABLE rtml_sink (\n{sink_cols}{pk}\n) {_connector(sink, role='sink')}"
    )
    select = ["e.rtml_event_id"]
    joins = []
    for i, s in enumerate(job.windowed, 1):
        select.append(f"f{i}.v AS {_ident(s.name)}")
        joins.append(
            f"JOIN {_ident('rtml_f_' + s.name)} AS f{i} ON f{i}.rtml_event_id = e.rtml_event_id"
        )
    day = f"MOD(MOD(e.t_us, {_US_PER_DAY}) + {_US_PER_DAY}, {_US_PER_DAY})"
    for p in job.calendar:
        if p == "hour":
            expr = f"CAST({day} / 3600000000 AS INT)"
        else:  # 1 = Monday ... 7 = Sunday; day 0 of the epoch was a Thursday
            days = f"((e.t_us - {day}) / {_US_PER_DAY})"
            expr = f"CAST(MOD(MOD({days}, 7) + 10, 7) + 1 AS INT)"
        select.append(f"{expr} AS {_ident(CALENDAR_PREFIX + p)}")
    cal_note = (
        "\n-- Calendar parts of the event time (UTC): hour 0-23, dow 1 = Monday ... 7 = Sunday."
        if job.calendar
        else ""
    )
    insert = (
        f"-- The features of every event, written to the sink.{cal_note}\n"
        "INSERT INTO rtml_sink\nSELECT\n  "
        + ",\n  ".join(select)
        + "\nFROM rtml_events AS e"
        + "".join(f"\n{j}" for j in joins)
    )
    from rtml_cli import __version__

    header = "\n".join(
        [
            f"-- Generated by rtml {__version__} (`rtml export flink`) for {_comment(job.source)}.",
            "-- Computes the point-in-time features of `rtml features` from the messages of",
            "-- `rtml replay` (docs/semantics.md, windowed aggregates). For event a at time t, a",
            "-- feature aggregates the rows b of a's key with  t - w <= b.t < t  (the event itself",
            "-- and every event tied with it at t excluded) whose value was known before t: a",
            "-- plain column at b.t, the label when its label message arrived (l < t). Nulls never",
            "-- contribute; over an empty window count, sum and count_distinct are 0, the others",
            "-- null; an event whose key is null gets null features.",
            "-- Why joins: each event joined with the rows of its key inside its window and",
            "-- grouped by the event states these bounds exactly. An OVER window with RANGE",
            "-- includes the current row and its peers (ties at t) and cannot hold a label back",
            "-- until it arrived, so it is not used. Times are compared as exact epoch",
            "-- microseconds (t_us): Flink timestamps and watermarks work in milliseconds.",
            "-- In streaming mode (Kafka) each event's row is updated as rows join it; its final",
            "-- value is exact. Kafka needs the flink-sql-connector-kafka jar on the classpath.",
        ]
    )
    settings = {
        "execution.runtime-mode": mode,
        "table.local-time-zone": "UTC",
        "parallelism.default": str(parallelism),
    }
    return FlinkExport(
        settings=settings,
        statements=statements,
        insert=insert,
        header=header,
        mode=mode,
        columns=[c for c, _ in out_cols],
    )
