"""``rtml features``: every event's windowed and calendar feature values, as rtml computes them.

The table is read with the roles a replay of it uses (``[data]`` of ``rtml.toml``, flags
overriding, :func:`rtml_cli.replay_guard.roles_from_config`), so the values are those a
streaming job fed by ``rtml replay`` must produce: :mod:`rtml_cli.export_flink` generates such a
job and its test compares it with this output, event by event.

The output has ``rtml_event_id`` (the id replayed messages carry), then one column per
``[[feature]]`` (named by the feature) and one per calendar part (``event_hour``,
``event_dow``), in the fresh view (as of each event's own time) or, with ``as_of_cutoff``, the
batch view (as of the cutoff ``floor(t / R) * R`` since the Unix epoch, UTC).

Examples
--------
>>> output_format("out/features.parquet")
'parquet'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli.errors import ConfigError, UsageError
from rtml_cli.features_spec import FeatureSpec
from rtml_cli.io import EVENT_ID, EVENT_TIME, LABEL_TIME, Roles, load_events
from rtml_cli.safe_write import atomic_output, refuse_existing, refuse_table_as_output

#: Output formats by file extension.
_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}
#: Prefix of calendar feature columns in the output (the names ``rtml compare`` uses too).
CALENDAR_PREFIX = "event_"


@dataclasses.dataclass
class FeatureJob:
    """What ``rtml features`` and ``rtml export flink`` compute, resolved from config and flags.

    Attributes
    ----------
    source : the table path.
    roles : the resolved roles (as a replay of the table resolves them).
    label_delay_us : the fixed label delay, when labels arrive after a delay rather than at a
        label-time column.
    windowed : the windowed features, keys resolved (none is ``key_from_table``).
    calendar : calendar parts (``hour``, ``dow``).
    schema : the table's schema (before rtml adds its columns).
    notes : what was read from where.
    """

    source: str
    roles: Roles
    label_delay_us: int | None
    windowed: list[FeatureSpec]
    calendar: list[str]
    schema: pl.Schema
    notes: list[str]

    def columns(self) -> list[str]:
        """Output columns: the event id, each windowed feature, each calendar part."""
        return [
            EVENT_ID,
            *(s.name for s in self.windowed),
            *(CALENDAR_PREFIX + p for p in self.calendar),
        ]


def output_format(path: str | Path) -> str:
    """The format of an output path by its extension; :class:`UsageError` for others."""
    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(
            f"output '{path}' has an extension rtml cannot write features to. Use one of "
            f"{', '.join(sorted(_FORMATS))}."
        )
    return fmt


def resolve_job(
    table: str | Path,
    *,
    config: str | Path | None = None,
    roles: Roles | None = None,
    label_delay: str | None = None,
    feature: Sequence[str] = (),
    calendar: Sequence[str] | None = None,
) -> FeatureJob:
    """Resolve roles, ``[[feature]]`` entries, ``--feature`` flags and calendar parts.

    Roles and the label delay are read exactly as ``rtml replay`` reads them (``[data]`` of
    ``--config`` or of the ``rtml.toml`` beside the table; flags override; ``--label-delay``
    replaces the file's label-time column). Features come from ``[[feature]]`` (a missing
    ``key`` means ``[data] key``) plus ``feature`` flags; calendar parts from ``calendar`` or
    ``[data] calendar``.

    Raises
    ------
    ConfigError, UsageError
        Invalid config, no feature at all, or a feature over the label-time column or an
        ignored column (their values are not known when each event happens, and a replay does
        not send ignored columns).
    """
    from rtml_cli.config import build_config, find_config, load_toml
    from rtml_cli.features_spec import check_unique_names
    from rtml_cli.io import resolve_roles, scan_table
    from rtml_cli.replay_guard import roles_from_config

    source = str(table)
    path = Path(config) if config is not None else find_config(table)
    raw = load_toml(path) if path is not None else {}
    merged, delay_us, note = roles_from_config(
        table, roles or Roles(), config=config, label_delay=label_delay
    )
    notes = [note] if note else []
    cfg = build_config(
        raw,
        source=str(path) if path else None,
        features=list(feature),
        calendar=list(calendar) if calendar is not None else None,
    )
    schema = scan_table(source).collect_schema()
    resolved, inferred = resolve_roles(schema, merged, source=source)
    notes.extend(inferred)
    windowed = [f.with_table_key(resolved.key) for f in cfg.features]
    check_unique_names(windowed)
    if not windowed and not cfg.calendar:
        raise UsageError(
            f"no feature to compute for {source}: add [[feature]] entries to rtml.toml, or pass "
            "--feature KEY:COLUMN:AGG:WINDOW (e.g. 'user_id:*:count:1h') or --calendar hour,dow."
        )
    hidden = {c for c in (resolved.label_time, *resolved.ignore) if c}
    for s in windowed:
        used = [c for c in (s.column, *(s.key or ())) if c in hidden]
        if used:
            raise UsageError(
                f"feature '{s.name}' uses '{used[0]}', the label-time column or an ignored "
                "column: its values are not known when each event happens (and a replay does not "
                "send an ignored column). Use another column (the label itself is allowed: it "
                "counts from its arrival)."
            )
        if resolved.label is not None and resolved.label in (s.key or ()):
            raise ConfigError(
                f"feature '{s.name}' is keyed by the label '{resolved.label}', which is not known "
                "when the event happens. Key it by an entity column."
            )
    return FeatureJob(
        source=source,
        roles=resolved,
        label_delay_us=delay_us,
        windowed=windowed,
        calendar=list(cfg.calendar),
        schema=schema,
        notes=notes,
    )


def compute_features(
    job: FeatureJob, *, as_of_cutoff_us: int | None = None, drop_null_time: bool = False
) -> pl.DataFrame:
    """Every event's feature values (columns :meth:`FeatureJob.columns`), in event-id order.

    ``as_of_cutoff_us``: ``None`` for the fresh view (as of each event's time); the retrain
    period ``R`` for the batch view (as of ``floor(t / R) * R`` since the epoch, UTC).
    """
    from rtml_cli.features import calendar_features, derived_columns

    ev = load_events(
        job.source, job.roles, label_delay_us=job.label_delay_us, drop_null_time=drop_null_time
    )
    frame = ev.frame
    out = frame.select(pl.col(EVENT_ID).cast(pl.Int64))
    if job.windowed:
        label = job.roles.label if LABEL_TIME in frame.columns else None
        vals = derived_columns(
            frame, job.windowed, key=job.roles.key, every_us=as_of_cutoff_us, label=label
        )
        out = out.hstack(vals.select([s.name for s in job.windowed]))
    if job.calendar:
        cal = calendar_features(frame, job.calendar, time_col=EVENT_TIME)
        out = out.hstack(
            cal.rename(
                {c: CALENDAR_PREFIX + p for c, p in zip(cal.columns, job.calendar, strict=True)}
            )
        )
    return out


def write_features(
    table: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    as_of_cutoff: str | None = None,
    drop_null_time: bool = False,
    **resolve: Any,
) -> tuple[Path, FeatureJob, int]:
    """``rtml features``: compute and write the features of ``table`` to ``out``.

    The output is refused when it is the input (or inside/matching it) and, without
    ``force``, when it exists; it is written to a temporary file beside it and renamed only
    when complete. Returns ``(out, job, rows)``.
    """
    from rtml_cli.durations import parse_duration

    fmt = output_format(out)
    refuse_table_as_output(out, table)
    refuse_existing(out, force=force, what="features output")
    every = parse_duration(as_of_cutoff, what="--as-of-cutoff") if as_of_cutoff else None
    if every is not None and every <= 0:
        raise UsageError(
            f"--as-of-cutoff must be a positive duration such as '1d'. Got {as_of_cutoff!r}."
        )
    job = resolve_job(table, **resolve)
    frame = compute_features(job, as_of_cutoff_us=every, drop_null_time=drop_null_time)
    target = Path(out)
    with atomic_output(target) as tmp:
        if fmt == "parquet":
            frame.write_parquet(tmp)
        elif fmt == "csv":
            frame.write_csv(tmp)
        elif fmt == "ndjson":
            frame.write_ndjson(tmp)
        else:
            frame.write_ipc(tmp)
    return target, job, frame.height
