"""The run directory: the interface between ``compare`` and ``report`` (docs/semantics.md, The run directory).

A run is written into a hidden temporary directory beside the target and renamed into place
only when every file is complete, so a crashed or interrupted run never leaves a directory that
looks finished. :func:`read_run_dir` is what ``rtml report`` uses; it refuses anything incomplete.

Layout (schemas in ``docs/ARCHITECTURE.md``): ``manifest.json``, ``predictions.parquet``,
``timings.parquet``, ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from rtml_cli import run_schema, run_tables
from rtml_cli.errors import RtmlWarning, RunDirError, UsageError
from rtml_cli.run_schema import finite_or_null
from rtml_cli.safe_write import pid_alive

FILES = ("manifest.json", "predictions.parquet", "timings.parquet", "metrics.json")
#: Every name rtml writes into a run directory: the four files, and the HTTP recorder's
#: ``responses.parquet`` (with its temporary name while it is written).
RUN_DIR_NAMES = frozenset(FILES) | {"responses.parquet", ".responses.parquet.tmp"}
#: Marks a temporary run directory while it is written (removed before the rename).
WRITING_MARKER = ".rtml-writing"
#: ``"tool"`` in every manifest rtml writes: what ``--force`` looks for before replacing.
TOOL = "rtml"
#: ``.NAME.tmp-PID`` and ``.NAME.old-PID``: the names write_run_dir uses beside the target.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>[0-9]{1,10})$", re.DOTALL)
_MAX_PID = 2**31 - 1
#: A manifest larger than this is not rtml's (rtml's are a few kB).
_MAX_MANIFEST_BYTES = 16 * 2**20
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
    """Fail early (before simulating) when ``out`` cannot become the run directory.

    Refused (:class:`~rtml_cli.errors.UsageError`, exit 2), with or without ``force``:

    - the working directory, one of its ancestors, ``/`` or the home directory;
    - an ``out`` whose parent cannot be created or is not writable (probed by creating and
      removing a temporary entry in the nearest existing folder), so a read-only target fails
      before minutes of simulation;
    - an existing ``out``, unless ``force`` and it is recognizably an rtml run directory
      (:func:`run_dir_problem`): ``--force`` never deletes anything rtml did not write.

    Before deciding, the leftovers of killed runs in the parent are recovered
    (:func:`recover`), so a run directory whose ``--force`` replacement was killed half-way is
    back in place.
    """
    p = Path(out)
    _refuse_dangerous(p, out)
    _check_writable(p)
    recover(p.parent)
    if os.path.lexists(p):
        if not force:
            raise UsageError(
                f"run directory '{p}' already exists. Pass another --out, remove it, or pass "
                "--force to replace it."
            )
        problem = run_dir_problem(p)
        if problem is not None:
            raise UsageError(
                f"'{p}' exists and is not an rtml run directory: {problem}. --force only "
                "replaces run directories written by rtml. Pass another --out."
            )
    return p


def refuse_run_dir_over_input(out: str | Path, table: str | Path) -> None:
    """The run directory may neither lie in the input table nor hold one of its files.

    Inside a table folder (or matching its glob) the run's files would join the table and make
    it unreadable; a table file inside an existing run directory would be deleted by
    ``--force``. Raises :class:`~rtml_cli.errors.UsageError` (exit 2).
    """
    from rtml_cli.safe_write import refuse_table_as_output

    inputs = refuse_table_as_output(out, table)
    real_out = os.path.realpath(out)
    for item in inputs:
        if Path(os.path.realpath(item)).is_relative_to(real_out):
            raise UsageError(
                f"the input '{item}' is inside the run directory '{out}', which the run would "
                "replace. Copy the table elsewhere, or pass another --out."
            )


def _refuse_dangerous(p: Path, given: str | Path) -> None:
    """The working directory, its ancestors, ``/`` and home are never a run directory."""
    real = Path(os.path.realpath(p))
    cwd = Path(os.path.realpath(os.getcwd()))
    try:
        home: Path | None = Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError, OSError):
        home = None
    what = None
    if real == Path(real.anchor):
        what = "the root folder"
    elif real == cwd:
        what = "the working directory"
    elif cwd.is_relative_to(real):
        what = "an ancestor of the working directory"
    elif home is not None and real == home:
        what = "your home directory"
    elif p.name in ("", ".", ".."):
        what = "not a folder name"
    if what is not None:
        raise UsageError(
            f"--out '{given}' is {what}; a run is written into a folder of its own, which "
            "--force may replace. Pass a new folder name such as runs/my-run (even with --force)."
        )


def _check_writable(p: Path) -> None:
    """The nearest existing folder above ``p`` must be a folder where rtml may create entries."""
    folder = p.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(
            f"cannot create run directory '{p}': '{folder}' is not a folder. "
            "Pass an --out inside a folder."
        )
    try:
        probe = tempfile.mkdtemp(prefix=".rtml-probe-", dir=folder)
        os.rmdir(probe)
    except OSError as exc:
        raise UsageError(
            f"cannot write run directory '{p}': folder '{folder}' is not writable "
            f"({exc.strerror or exc}). Pass an --out in a writable folder."
        ) from None


def _read_manifest_quietly(path: Path) -> Any:
    """The parsed manifest, or None when it cannot be rtml's (too large, not JSON)."""
    try:
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def run_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a run directory rtml wrote, or None if it is one.

    A run directory is a real folder (not a symbolic link) holding only the files rtml writes
    into one (:data:`RUN_DIR_NAMES`), with a ``manifest.json`` that parses and is rtml's: it
    says ``"tool": "rtml"``, or (written before that marker) has the ``format``, ``complete``
    and ``versions`` keys with an ``rtml`` version. This is what ``--force`` may replace.
    """
    p = Path(path)
    if p.is_symlink():
        return "it is a symbolic link"
    if not p.is_dir():
        return "it is not a folder"
    try:
        entries = list(os.scandir(p))
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror or exc})"
    foreign = [e.name for e in entries if e.name not in RUN_DIR_NAMES]
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        return f"it holds '{sorted(foreign)[0]}'{more}, which rtml does not write"
    folders = [e.name for e in entries if not e.is_file(follow_symlinks=False)]
    if folders:
        return f"its '{folders[0]}' is not a regular file"
    if not any(e.name == "manifest.json" for e in entries):
        return "it has no manifest.json"
    manifest = _read_manifest_quietly(p / "manifest.json")
    if not isinstance(manifest, dict):
        return "its manifest.json is not a JSON object"
    if manifest.get("tool") == TOOL:
        return None
    versions_ = manifest.get("versions")
    if (
        "format" in manifest
        and "complete" in manifest
        and isinstance(versions_, dict)
        and "rtml" in versions_
    ):
        return None  # written before the "tool" marker
    return "its manifest.json was not written by rtml"


def _is_temp_run_dir(path: Path) -> bool:
    """A temporary run directory in the making: only run files (with the writing marker, or a
    finished run directory), or empty (killed right after creating it)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    if not entries:
        return True
    names = {e.name for e in entries}
    if not names <= RUN_DIR_NAMES | {WRITING_MARKER}:
        return False
    if any(not e.is_file(follow_symlinks=False) for e in entries):
        return False
    return WRITING_MARKER in names or run_dir_problem(path) is None


def recover(parent: str | Path) -> list[str]:
    """Undo what killed rtml processes left in ``parent``; return what was done (also warned).

    :func:`write_run_dir` writes into ``.NAME.tmp-PID`` and, to replace an existing run
    (``--force``), renames the old one to ``.NAME.old-PID``, the new one to ``NAME``, then
    deletes the old one. A process killed between those steps leaves, and this repairs (only
    for a PID that is no longer alive, so a run in progress is never touched):

    - ``.NAME.old-PID`` without ``NAME`` (killed between the two renames): the old run is
      renamed back to ``NAME``. The command never reported success, so the user's view is that
      nothing was replaced; the finished new run in ``.NAME.tmp-PID`` is discarded below.
    - ``.NAME.old-PID`` beside ``NAME`` (killed before deleting it): deleted, the replacement
      was complete.
    - ``.NAME.tmp-PID`` (killed while writing, or before the rename): deleted.

    Only recognizable rtml directories are touched: an old one must be a run directory
    (:func:`run_dir_problem`), a temporary one must hold nothing but run files
    (:func:`_is_temp_run_dir`). Anything else with such a name is left alone.
    """
    folder = Path(parent)
    done: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return done
    found = []
    for e in entries:
        m = _LEFTOVER.match(e.name)
        if m is None or not e.is_dir(follow_symlinks=False):
            continue
        pid = int(m["pid"])
        if pid <= 0 or pid > _MAX_PID or pid_alive(pid):
            continue
        found.append((m["kind"], m["name"], folder / e.name))
    # old runs first (newest first), so that a temporary one is only discarded afterwards
    found.sort(key=lambda f: (f[0] != "old", -_mtime(f[2])))
    for kind, name, path in found:
        target = folder / name
        try:
            if kind == "old":
                if run_dir_problem(path) is not None:
                    continue
                if not os.path.lexists(target):
                    os.rename(path, target)
                    done.append(
                        f"restored run directory '{target}' from an interrupted --force "
                        f"replacement ('{path.name}')"
                    )
                else:
                    remove_run_files(path)
                    done.append(f"removed '{path}', left by an interrupted --force replacement")
            elif _is_temp_run_dir(path):
                remove_run_files(path)
                done.append(f"removed '{path}', left by an interrupted run")
        except OSError:
            continue  # best effort: what could not be repaired stays as it was
    for note in done:
        warnings.warn(note, RtmlWarning, stacklevel=2)
    return done


def remove_run_files(path: Path, *, missing_ok: bool = False) -> None:
    """Delete a run directory (or a temporary one) that rtml wrote, its markers last.

    ``manifest.json`` and the writing marker go last, so a deletion interrupted half-way
    leaves a folder that :func:`recover` still recognizes as rtml's and finishes deleting.
    Errors are ignored with ``missing_ok`` (cleanup after another failure).
    """
    last = ("manifest.json", WRITING_MARKER)
    try:
        names = sorted(
            os.listdir(path), key=lambda n: (n in last, last.index(n) if n in last else 0)
        )
        for name in names:
            entry = path / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                os.unlink(entry)
        os.rmdir(path)
    except OSError:
        if not missing_ok:
            raise
        shutil.rmtree(path, ignore_errors=True)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _write_file(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Create ``path`` (never an existing one), write it through a handle and flush it to disk.

    A handle, not a path, goes to polars: it would read ``[``, ``*`` and ``?`` in a path as a
    glob. ``fsync`` surfaces a full disk here rather than after the rename.
    """
    with open(path, "xb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported by every file system; the data files are synced already
    finally:
        os.close(fd)


def _json_bytes(value: Any) -> bytes:
    clean = finite_or_null(value)
    return json.dumps(clean, indent=1, default=_json_default, allow_nan=False).encode()


def write_run_dir(
    out: str | Path,
    *,
    manifest: dict[str, Any],
    predictions: pl.DataFrame,
    timings: pl.DataFrame,
    metrics: dict[str, Any],
    force: bool = False,
) -> Path:
    """Write the four files atomically (temp dir + rename).

    The files go into ``.NAME.tmp-PID`` beside the target (with a marker file while writing, so
    a killed write is recognizable and :func:`recover` removes it), the manifest last, marked
    ``"tool": "rtml"`` and ``"complete": true``; then the folder is renamed to ``NAME``. With
    ``force`` an existing run directory at ``out`` is replaced only once the new one is
    complete: renamed to ``.NAME.old-PID``, the new one renamed into place, the old deleted.
    If the second rename fails the old run is renamed back; if the process is killed between
    the two, the next run into the same folder restores it (:func:`recover`). Non-finite
    numbers are written as ``null``.

    Raises
    ------
    UsageError
        ``out`` cannot be a run directory (see :func:`check_out`).
    RunDirError
        Writing failed (disk full, permissions): the message names the path; no half-written
        directory is left and a run being replaced is untouched.
    """
    target = check_out(out, force=force)
    parent = target.parent
    tmp = parent / f".{target.name}.tmp-{os.getpid()}"
    if os.path.lexists(tmp):  # left by an earlier failed write in this very process
        if not _is_temp_run_dir(tmp):
            raise RunDirError(
                f"cannot write run directory '{target}': '{tmp}' is in the way and is not "
                "an rtml temporary folder. Move it away or pass another --out."
            )
        remove_run_files(tmp, missing_ok=True)
    step = "creating the folder"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_file(tmp / WRITING_MARKER, lambda f: f.write(b"rtml run in progress\n"))
        step = "writing predictions.parquet"
        _write_file(tmp / "predictions.parquet", predictions.write_parquet)
        step = "writing timings.parquet"
        _write_file(tmp / "timings.parquet", timings.write_parquet)
        step = "writing metrics.json"
        _write_file(tmp / "metrics.json", lambda f: f.write(_json_bytes(metrics)))
        # the manifest goes last: its presence with "complete" marks a finished run
        step = "writing manifest.json"
        manifest = {**manifest, "tool": TOOL, "format": RUN_FORMAT, "complete": True}
        _write_file(tmp / "manifest.json", lambda f: f.write(_json_bytes(manifest)))
        os.remove(tmp / WRITING_MARKER)
        _fsync_dir(tmp)
        step = "renaming it into place"
        if os.path.lexists(target):  # --force: swap only now that the new run is complete
            old = parent / f".{target.name}.old-{os.getpid()}"
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            remove_run_files(old, missing_ok=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(parent)
    except OSError as exc:
        remove_run_files(tmp, missing_ok=True)
        raise RunDirError(
            f"cannot write run directory '{target}' ({step}): {exc.strerror or exc}. Nothing "
            "was written there (a run it would replace is untouched). Free disk space, fix the "
            "folder's permissions or pass another --out."
        ) from None
    except BaseException:
        remove_run_files(tmp, missing_ok=True)
        raise
    return target


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return finite_or_null(dataclasses.asdict(o))
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if hasattr(o, "item"):  # numpy scalars
        return finite_or_null(o.item())
    if hasattr(o, "tolist"):
        return finite_or_null(o.tolist())
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


def read_run_dir(path: str | Path) -> Run:
    """Load and validate a run directory written by :func:`write_run_dir`.

    Every file is checked against its schema (:mod:`rtml_cli.run_schema`): what the report
    reads has the type it expects, the metrics cover exactly the manifest's strategies, and
    non-finite numbers read as ``null``. Paths with glob characters (``exp[1]``) are read
    literally.

    Raises
    ------
    RunDirError
        Missing directory or file, unreadable or damaged file (the message names the file and
        the field), incomplete or newer-format run.
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

    def where(name: str) -> str:
        return f"{name} in run directory '{path}'"

    raw = run_schema.load_json(p / "manifest.json", where=where("manifest.json"))
    if isinstance(raw, dict):
        fmt = raw.get("format")
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > RUN_FORMAT:
            raise RunDirError(
                f"run directory '{path}' has format {fmt}, newer than this rtml "
                f"understands ({RUN_FORMAT}). Upgrade rtml."
            )
        if raw.get("complete") in (None, False):
            raise RunDirError(
                f"run directory '{path}' is incomplete (manifest not marked complete). "
                "Re-run `rtml compare`."
            )
    manifest = run_schema.validate_manifest(raw, where=where("manifest.json"))
    raw_metrics = run_schema.load_json(p / "metrics.json", where=where("metrics.json"))
    if raw_metrics == {}:
        why = [str(w) for w in manifest.get("warnings") or [] if "metrics not computed" in str(w)]
        raise RunDirError(
            f"metrics.json in run directory '{path}' lacks 'strategies': no metrics were "
            f"computed for this run{' (' + why[0] + ')' if why else ''}. Fix the cause and "
            "record or compare again."
        )
    metrics = run_schema.validate_metrics(
        raw_metrics,
        where=where("metrics.json"),
        strategies=[s["name"] for s in manifest["strategies"]],
    )
    frames = []
    for name, columns in (
        ("predictions.parquet", run_tables.PREDICTIONS),
        ("timings.parquet", run_tables.TIMINGS),
    ):
        try:
            # glob=False: a folder named like exp[1] is a name, not a pattern
            frame = pl.read_parquet(p / name, glob=False)
        except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RunDirError(
                f"{where(name)} is not a readable Parquet file ({first}). Re-run `rtml compare`."
            ) from None
        run_tables.validate_frame(frame, columns, where=where(name))
        frames.append(frame)
    return Run(p, manifest, metrics, frames[0], frames[1])
