"""The run directory: the interface between ``compare`` and ``report`` (DESIGN §3).

A run is written into a hidden temporary directory beside the target and renamed into place
only when every file is complete, so a crashed or interrupted run never leaves a directory that
looks finished. :func:`read_run` is what ``rtml report`` uses; it refuses anything incomplete.

Layout (schemas in ``docs/ARCHITECTURE.md``): ``manifest.json``, ``predictions.parquet``,
``timings.parquet``, ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli.errors import RunDirError, UsageError

FILES = ("manifest.json", "predictions.parquet", "timings.parquet", "metrics.json")
#: Bumped when a file's schema changes incompatibly.
RUN_FORMAT = 1


def versions() -> dict[str, str]:
    """Versions of what produced a run (for ``manifest.json``)."""
    import platform

    import numpy as np
    import sklearn

    from rtml_cli import __version__

    return {
        "python": platform.python_version(),
        "rtml": __version__,
        "sklearn": sklearn.__version__,
        "polars": pl.__version__,
        "numpy": np.__version__,
    }


def default_out(table: str | Path, *, root: str | Path = "runs") -> Path:
    """``runs/<table-stem>-<UTC timestamp>`` (a glob or folder uses its last name part)."""
    name = Path(str(table).rstrip("/*")).name or "table"
    stem = name.split(".")[0] or "table"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return Path(root) / f"{stem}-{stamp}"


def check_out(out: str | Path, *, force: bool = False) -> Path:
    """Fail early (before simulating) when ``out`` already exists.

    With ``force`` an existing *run directory* (one holding a ``manifest.json``) may be replaced;
    any other existing path is still refused, so ``--force`` never deletes unrelated data.
    """
    p = Path(out)
    if p.exists():
        if not force:
            raise UsageError(
                f"run directory '{p}' already exists. Pass another --out, remove it, or pass "
                "--force to replace it."
            )
        if not (p.is_dir() and (p / "manifest.json").exists()):
            raise UsageError(
                f"'{p}' exists and is not an rtml run directory (no manifest.json); --force only "
                "replaces run directories. Pass another --out."
            )
    return p


def write_run(
    out: str | Path,
    *,
    manifest: dict[str, Any],
    predictions: pl.DataFrame,
    timings: pl.DataFrame,
    metrics: dict[str, Any],
    force: bool = False,
) -> Path:
    """Write the four files atomically (temp dir + rename).

    With ``force`` an existing run directory at ``out`` is replaced, only once the new one is
    complete (the old one stays untouched if writing fails).

    Raises
    ------
    UsageError
        ``out`` already exists (and ``force`` is off or it is not a run directory).
    """
    target = check_out(out, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        predictions.write_parquet(tmp / "predictions.parquet")
        timings.write_parquet(tmp / "timings.parquet")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default))
        # the manifest goes last: its presence with "complete" marks a finished run
        manifest = {**manifest, "format": RUN_FORMAT, "complete": True}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=_json_default))
        if target.exists():  # --force: swap only now that the new run is complete
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


@dataclasses.dataclass
class Run:
    """A complete run directory, loaded.

    Attributes
    ----------
    path : the directory.
    manifest, metrics : the parsed JSON files.
    predictions, timings : the Parquet tables.
    """

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pl.DataFrame
    timings: pl.DataFrame


def read_run(path: str | Path) -> Run:
    """Load and validate a run directory written by :func:`write_run`.

    Raises
    ------
    RunDirError
        Missing directory or file, unreadable file, incomplete or newer-format run.
    """
    p = Path(path)
    if not p.is_dir():
        raise RunDirError(
            f"run directory '{path}' not found. Pass the --out of an `rtml compare` run."
        )
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise RunDirError(
            f"'{path}' is not a complete run directory: missing {', '.join(missing)}. "
            "Re-run `rtml compare` (an interrupted run leaves no directory)."
        )
    try:
        manifest = json.loads((p / "manifest.json").read_text())
        metrics = json.loads((p / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise RunDirError(
            f"run directory '{path}' has an unreadable JSON file: {exc}. Re-run `rtml compare`."
        ) from None
    if not isinstance(manifest, dict) or not manifest.get("complete"):
        raise RunDirError(
            f"run directory '{path}' is incomplete (manifest not marked complete). Re-run `rtml compare`."
        )
    if int(manifest.get("format", 0)) > RUN_FORMAT:
        raise RunDirError(
            f"run directory '{path}' has format {manifest.get('format')}, newer than this rtml "
            f"understands ({RUN_FORMAT}). Upgrade rtml."
        )
    try:
        predictions = pl.read_parquet(p / "predictions.parquet")
        timings = pl.read_parquet(p / "timings.parquet")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RunDirError(
            f"run directory '{path}' has an unreadable Parquet file: {exc}. Re-run `rtml compare`."
        ) from None
    return Run(p, manifest, metrics, predictions, timings)
