"""``rtml sweep``: the freshness curve, one ordinary ``compare`` run per cell of a grid.

:func:`run_sweep` turns ``--grid`` options into cells (:mod:`rtml_cli.sweep_grid`), writes each
cell's configuration to ``SWEEP_DIR/cells/<cell-id>.toml`` and runs it with
:func:`rtml_cli.compare.run_compare` into the run directory ``SWEEP_DIR/cells/<cell-id>/``
(serially, in ``jobs`` local processes, or as tasks of a Dask scheduler: :mod:`rtml_cli.sweep_run`),
then writes

- ``SWEEP_DIR/sweep.json``: the arguments, the grid and every cell (parameters, status ``ok`` /
  ``failed`` / ``pending``, error message, run directory), rewritten as each cell ends;
- ``SWEEP_DIR/curve.parquet``: one row per finished cell and strategy (:mod:`rtml_cli.sweep_curve`).

A rerun with the same arguments keeps every cell whose run directory is complete and was made
from that cell's configuration (its manifest says so) and runs the rest; other arguments on an
existing sweep directory are refused unless ``force``, which replaces only what rtml wrote. A
failed cell is recorded with its error and does not stop the others.

Examples
--------
>>> res = run_sweep("t.parquet", grid=["retrain_every=1d,1h"], out="sw")  # doctest: +SKIP
>>> [c["status"] for c in res.cells]  # doctest: +SKIP
['ok', 'ok']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rtml_cli import __version__
from rtml_cli.compare import DEFAULT_TIMING_BUDGET_S, DEFAULT_TIMING_SAMPLE
from rtml_cli.config import build_config, find_config, load_toml
from rtml_cli.errors import RtmlError, RtmlWarning, UsageError
from rtml_cli.runs import FILES, recover, refuse_run_dir_over_input, run_dir_problem
from rtml_cli.safe_write import atomic_output
from rtml_cli.sweep_grid import (
    SWEEP_DEFAULT_BASELINE,
    Cell,
    base_strategies,
    cell_config,
    check_grid_fits,
    make_cells,
    parse_grid,
    toml_text,
)
from rtml_cli.sweep_run import DASK_ENV, dask_cells, dask_client, local_cells

SWEEP_FILE = "sweep.json"
CURVE_FILE = "curve.parquet"
CELLS_DIR = "cells"
SWEEP_FORMAT = 1
#: Exit code of a sweep in which a cell failed: its outputs are written, like a failed check.
EXIT_CELL_FAILED = 1


@dataclasses.dataclass
class SweepPlan:
    """Everything a sweep runs, resolved before any cell does."""

    table: str
    cells: list[Cell]
    configs: dict[str, dict[str, Any]]  # cell id → parsed-TOML configuration
    grid: dict[str, list[str]]
    arguments: dict[str, Any]
    strategies: list[str]
    baseline: str | None
    notes: list[str]
    seed: int
    timing_sample: int | None
    timing_budget_s: float | None


@dataclasses.dataclass
class SweepResult:
    """What :func:`run_sweep` did."""

    out: Path
    cells: list[dict[str, Any]]
    kept: int
    ran: int
    wall_s: float
    notes: list[str]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["status"] != "ok"]

    @property
    def exit_code(self) -> int:
        return EXIT_CELL_FAILED if self.failed else 0


def _table_identity(table: str) -> dict[str, Any]:
    """The table as the sweep's arguments see it: its path and, for a file, size and mtime."""
    ident: dict[str, Any] = {"path": table}
    try:
        st = os.stat(table)
        if os.path.isfile(table):
            ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    except OSError:
        pass  # a glob or a missing path: compare reports it when the first cell runs
    return ident


def plan_sweep(
    table: str | Path,
    *,
    grid: Sequence[str],
    config: str | Path | None = None,
    strategies: str | None = None,
    baseline: str | None = None,
    warmup: str | None = None,
    seed: int = 0,
    timing_sample: int | None = DEFAULT_TIMING_SAMPLE,
    timing_budget_s: float | None = DEFAULT_TIMING_BUDGET_S,
) -> SweepPlan:
    """Validate the grid against the base configuration and build every cell's configuration.

    Raises
    ------
    UsageError, ConfigError
        A bad grid (the message names the key and the accepted ones), a key that fits no
        strategy, a configuration that does not validate for some cell.
    """
    axes = parse_grid(grid)
    notes: list[str] = []
    source: str | None = None
    if config is not None:
        raw, source = load_toml(config), os.path.abspath(config)
    else:
        found = find_config(table)
        raw = load_toml(found) if found is not None else {}
        if found is not None:
            source = os.path.abspath(found)
            notes.append(f"config: {found} (found beside the table; pass --config to use another)")
    entries, default = base_strategies(raw, strategies)
    if default:
        if baseline is None and not (raw.get("report") or {}).get("baseline"):
            baseline = SWEEP_DEFAULT_BASELINE
        notes.append(
            "strategies: batch, stream, online and static (the sweep's default; baseline "
            f"{baseline!r}; pass --strategies to change)"
        )
    check_grid_fits(axes, entries, raw)
    cells = make_cells(axes)
    configs: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    resolved_baseline: str | None = None
    for cell in cells:
        cfg_raw = cell_config(raw, entries, cell, baseline=baseline, warmup=warmup)
        try:
            cfg = build_config(cfg_raw, source=f"sweep cell {cell.alias} ({cell.describe()})")
        except RtmlError as exc:
            raise UsageError(f"sweep cell {cell.alias} ({cell.describe()}): {exc}") from None
        configs[cell.id] = cfg_raw
        names = [s.name for s in cfg.strategies]
        resolved_baseline = cfg.baseline
    table_s = os.path.abspath(str(table)) if not any(c in str(table) for c in "*?[") else str(table)
    cfg_hash = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    arguments = {
        "table": _table_identity(table_s),
        "config": {"path": source, "sha256": cfg_hash[:16]},
        "grid": {a.key: list(a.values) for a in axes},
        "strategies": strategies,
        "baseline": baseline,
        "warmup": warmup,
        "seed": seed,
        "timing_sample": "all" if timing_sample is None else timing_sample,
        "timing_budget_s": timing_budget_s,
    }
    return SweepPlan(
        table_s,
        cells,
        configs,
        {a.key: list(a.values) for a in axes},
        arguments,
        names,
        resolved_baseline,
        notes,
        seed,
        timing_sample,
        timing_budget_s,
    )


# --------------------------------------------------------------------------- the sweep folder


def sweep_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a sweep directory rtml wrote (what ``--force`` may replace), or None."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return "it is not a folder"
    sweep = _read_json(p / SWEEP_FILE)
    if not (
        isinstance(sweep, dict) and sweep.get("tool") == "rtml" and sweep.get("kind") == "sweep"
    ):
        return f"it has no {SWEEP_FILE} written by rtml sweep"
    for e in _entries(p):
        if e.name in (SWEEP_FILE, CURVE_FILE) and e.is_file(follow_symlinks=False):
            continue
        if e.name == CELLS_DIR and e.is_dir(follow_symlinks=False):
            continue
        if e.name.startswith(".") and ".tmp-" in e.name and e.is_file(follow_symlinks=False):
            continue  # a temporary file of a killed sweep
        return f"it holds '{e.name}', which rtml sweep does not write"
    cells = p / CELLS_DIR
    for e in _entries(cells) if cells.is_dir() else []:
        if e.name.endswith(".toml") and e.is_file(follow_symlinks=False):
            continue
        if e.name.startswith("."):
            continue  # leftovers of a killed run: recover() deals with them
        problem = run_dir_problem(cells / e.name)
        if problem is not None:
            return f"its '{CELLS_DIR}/{e.name}' is not a run directory rtml wrote ({problem})"
    return None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """A folder's entries, read whole so the directory handle is closed at once."""
    with os.scandir(folder) as it:
        return list(it)


def _read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > 64 * 2**20:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def _remove_sweep(p: Path) -> None:
    """Delete what a sweep wrote (checked by :func:`sweep_dir_problem` first)."""
    from rtml_cli.runs import remove_run_files

    cells = p / CELLS_DIR
    if cells.is_dir():
        for e in _entries(cells):
            entry = cells / e.name
            if e.is_dir(follow_symlinks=False) and run_dir_problem(entry) is None:
                remove_run_files(entry)
            elif e.is_file(follow_symlinks=False) and e.name.endswith(".toml"):
                entry.unlink()
        recover(cells)
        shutil.rmtree(cells, ignore_errors=True)
    for name in (CURVE_FILE, SWEEP_FILE):
        (p / name).unlink(missing_ok=True)


def prepare_out(out: str | Path, plan: SweepPlan, *, force: bool) -> dict[str, Any] | None:
    """Make ``out`` ready; return the previous ``sweep.json`` to resume from (same arguments).

    Refused (UsageError): an existing folder that is not an (empty or) rtml sweep directory,
    even with ``force``; a sweep directory of other arguments without ``force``; an ``out`` in
    or over the table.
    """
    p = Path(out)
    refuse_run_dir_over_input(p, plan.table)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--out '{p}' exists and is not a folder. Pass another --out.")
    if not p.exists():
        p.mkdir(parents=True)
        return None
    if not _entries(p):
        return None
    problem = sweep_dir_problem(p)
    if problem is not None:
        raise UsageError(
            f"'{p}' exists and is not an rtml sweep directory: {problem}. --force only replaces "
            "sweep directories written by rtml. Pass another --out."
        )
    previous = _read_json(p / SWEEP_FILE)
    if previous.get("arguments") == _jsonable(plan.arguments) and not force:
        return dict(previous)
    if not force:
        differs = [
            k
            for k, v in _jsonable(plan.arguments).items()
            if previous.get("arguments", {}).get(k) != v
        ]
        raise UsageError(
            f"'{p}' holds a sweep made with other arguments (different "
            f"{', '.join(differs) or 'format'}). Pass another --out, the same arguments to resume it, or --force to replace it."
        )
    _remove_sweep(p)
    return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def cell_done(run_dir: Path, config_path: Path, raw: dict[str, Any]) -> bool:
    """The cell's run directory is complete and was made from exactly this configuration."""
    if run_dir_problem(run_dir) is not None or not all((run_dir / f).is_file() for f in FILES):
        return False
    manifest = _read_json(run_dir / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        return False
    try:
        expected = build_config(raw, source=str(config_path)).to_json()
    except RtmlError:
        return False
    got = dict(manifest.get("config") or {})
    want = dict(_jsonable(expected))
    # the path of the cell's rtml.toml: a sweep directory moved elsewhere keeps its cells
    got.pop("source", None)
    want.pop("source", None)
    return got == want


# --------------------------------------------------------------------------- the command


def _write_sweep_json(out: Path, doc: dict[str, Any]) -> None:
    doc["updated"] = dt.datetime.now(dt.timezone.utc).isoformat()
    with atomic_output(out / SWEEP_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")


def run_sweep(
    table: str | Path,
    *,
    grid: Sequence[str],
    out: str | Path,
    config: str | Path | None = None,
    strategies: str | None = None,
    baseline: str | None = None,
    warmup: str | None = None,
    seed: int = 0,
    timing_sample: int | None = DEFAULT_TIMING_SAMPLE,
    timing_budget_s: float | None = DEFAULT_TIMING_BUDGET_S,
    jobs: int = 1,
    dask: str | None = None,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every cell of the grid that is not finished yet; write sweep.json and curve.parquet.

    ``jobs`` > 1 runs cells in local processes; ``dask`` (an address, or the environment
    variable :data:`DASK_ENV`) submits each cell as a task to that Dask scheduler, whose workers
    must see the table and ``out`` at the same (absolute) paths. Results do not depend on how
    cells were run. ``echo`` gets one line per note and per finished cell.

    Raises
    ------
    UsageError
        A bad grid or arguments, an ``out`` that cannot hold this sweep, an unreachable scheduler.
    """
    t0 = time.perf_counter()
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1. Got {jobs}.")
    dask = dask if dask is not None else (os.environ.get(DASK_ENV) or None)
    if dask is not None and jobs > 1:
        raise UsageError(
            "pass --jobs or --dask, not both: with --dask the scheduler's workers run the cells."
        )
    plan = plan_sweep(
        table,
        grid=grid,
        config=config,
        strategies=strategies,
        baseline=baseline,
        warmup=warmup,
        seed=seed,
        timing_sample=timing_sample,
        timing_budget_s=timing_budget_s,
    )
    say = echo or (lambda _text: None)
    for note in plan.notes:
        say(f"note: {note}")
    outp = Path(out)
    # connected before anything is written: an unreachable scheduler leaves no sweep behind
    client = dask_client(dask) if dask is not None else None
    try:
        return _sweep(plan, outp, client=client, dask=dask, jobs=jobs, force=force, say=say, t0=t0)
    finally:
        if client is not None:
            client.close()


def _sweep(
    plan: SweepPlan,
    outp: Path,
    *,
    client: Any,
    dask: str | None,
    jobs: int,
    force: bool,
    say: Callable[[str], None],
    t0: float,
) -> SweepResult:
    """Run the cells of ``plan`` into ``outp`` (client: a Dask client, or None)."""
    from rtml_cli.sweep_curve import write_curve

    previous = prepare_out(outp, plan, force=force)
    out_abs = outp.resolve()
    cells_dir = out_abs / CELLS_DIR
    cells_dir.mkdir(exist_ok=True)
    recover(cells_dir)
    old = {c.get("id"): c for c in (previous or {}).get("cells", []) if isinstance(c, dict)}
    records: list[dict[str, Any]] = []
    tasks: list[tuple[str, dict[str, Any]]] = []
    for cell in plan.cells:
        cfg_path = cells_dir / f"{cell.id}.toml"
        raw = plan.configs[cell.id]
        text = toml_text(
            raw,
            f"rtml sweep cell {cell.alias}: {cell.describe()}\n"
            f"Rerun it alone: rtml compare {plan.table} --config {cfg_path}",
        )
        if not cfg_path.is_file() or cfg_path.read_text(encoding="utf-8") != text:
            with atomic_output(cfg_path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        run_dir = cells_dir / cell.id
        rec: dict[str, Any] = {
            "id": cell.id,
            "alias": cell.alias,
            "params": cell.params,
            "status": "pending",
            "error": None,
            "run_dir": f"{CELLS_DIR}/{cell.id}",
            "config": f"{CELLS_DIR}/{cell.id}.toml",
            "wall_s": None,
            "warnings": [],
        }
        if cell_done(run_dir, cfg_path, raw):
            prev = old.get(cell.id) or {}
            rec.update(status="ok", wall_s=prev.get("wall_s"), warnings=prev.get("warnings", []))
        else:
            if os.path.lexists(run_dir) and run_dir_problem(run_dir) is not None:
                rec.update(
                    status="failed",
                    error=f"'{run_dir}' exists and is not a run directory rtml wrote; remove it",
                )
            else:
                tasks.append((cell.id, {
                    "table": plan.table, "config": str(cfg_path), "out": str(run_dir),
                    "seed": plan.seed, "timing_sample": plan.timing_sample,
                    "timing_budget_s": plan.timing_budget_s,
                }))  # fmt: skip
        records.append(rec)
    kept = sum(r["status"] == "ok" for r in records)
    doc: dict[str, Any] = {
        "tool": "rtml",
        "kind": "sweep",
        "format": SWEEP_FORMAT,
        "rtml_version": __version__,
        "created": (previous or {}).get("created") or dt.datetime.now(dt.timezone.utc).isoformat(),
        "table": plan.table,
        "arguments": _jsonable(plan.arguments),
        "grid": plan.grid,
        "strategies": plan.strategies,
        "baseline": plan.baseline,
        "runner": {"jobs": jobs, "dask": dask},
        "cells": records,
        "curve": CURVE_FILE,
    }
    _write_sweep_json(out_abs, doc)
    if kept:
        say(f"keeping {kept} finished cell{'s' * (kept != 1)} of {len(records)}")
    by_id = {r["id"]: r for r in records}
    runner = dask_cells(tasks, client) if client is not None and tasks else local_cells(tasks, jobs)
    finished = 0
    for cid, res in runner:
        finished += 1
        rec = by_id[cid]
        rec.update(res)
        _write_sweep_json(out_abs, doc)
        wall = f" in {res['wall_s']:.1f} s" if res.get("wall_s") is not None else ""
        what = "ok" if res["status"] == "ok" else f"FAILED: {res['error']}"
        params = " ".join(f"{k}={v}" for k, v in rec["params"].items())
        say(f"cell {finished}/{len(tasks)} {rec['alias']} ({params}): {what}{wall}")
    texts: dict[str, list[str]] = {}
    for rec in records:
        for w in rec.get("warnings") or []:
            texts.setdefault(w, []).append(rec["alias"])
    for w, aliases in texts.items():
        warnings.warn(f"{w} (cells {', '.join(aliases)})", RtmlWarning, stacklevel=2)
    write_curve(out_abs, doc)
    doc["wall_s"] = time.perf_counter() - t0
    _write_sweep_json(out_abs, doc)
    return SweepResult(outp, records, kept, len(tasks), doc["wall_s"], plan.notes)
