"""``rtml export flink``: write the Flink SQL job that computes ``rtml features`` and, with
``--run``, run it on a local Flink.

:mod:`rtml_cli.export_flink_sql` generates the job (and explains why its values equal
``rtml features`` exactly); :mod:`rtml_cli.export_flink_run` runs it through PyFlink.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rtml_cli.errors import UsageError
from rtml_cli.export_flink_run import read_sink, run_on_local_flink
from rtml_cli.export_flink_sql import FlinkExport, build_export, parse_endpoint
from rtml_cli.features_cli import FeatureJob

__all__ = ["ExportResult", "build_export", "export_flink", "parse_endpoint", "read_sink"]


@dataclasses.dataclass
class ExportResult:
    """What ``rtml export flink`` did: the SQL file, and with ``--run`` the job's time and rows."""

    sql_path: Path
    export: FlinkExport
    job: FeatureJob
    seconds: float | None = None
    rows: int | None = None


def export_flink(
    table: str | Path,
    *,
    out: str | Path,
    source: str,
    sink: str,
    disorder: str | None = None,
    mode: str | None = None,
    parallelism: int = 1,
    run: bool = False,
    force: bool = False,
    **resolve: Any,
) -> ExportResult:
    """``rtml export flink``: write the job's SQL to ``out`` and, with ``run``, run it locally.

    ``resolve`` goes to :func:`rtml_cli.features_cli.resolve_job` (config, roles, label delay,
    feature flags, calendar). ``out`` follows the file rules (never the input, never an
    existing file without ``force``, written under a temporary name and renamed).
    """
    from rtml_cli.durations import parse_duration
    from rtml_cli.features_cli import resolve_job
    from rtml_cli.safe_write import atomic_output, refuse_existing, refuse_table_as_output

    src = parse_endpoint(source, what="--source")
    snk = parse_endpoint(sink, what="--sink")
    if parallelism < 1:
        raise UsageError(f"--parallelism must be at least 1. Got {parallelism}.")
    disorder_us = parse_duration(disorder, what="--disorder") if disorder else 0
    refuse_table_as_output(out, table)
    refuse_existing(out, force=force, what="SQL output")
    job = resolve_job(table, **resolve)
    export = build_export(
        job, source=src, sink=snk, disorder_us=disorder_us, mode=mode, parallelism=parallelism
    )
    target = Path(out)
    with atomic_output(target) as tmp:
        tmp.write_text(export.sql(), encoding="utf-8")
    result = ExportResult(sql_path=target, export=export, job=job)
    if run:
        result.seconds = run_on_local_flink(export, source=src, sink=snk, force=force)
        result.rows = read_sink(snk.path).height
    return result
