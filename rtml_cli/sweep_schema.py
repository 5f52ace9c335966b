"""The shape of a sweep directory's ``sweep.json`` and ``curve.parquet``, checked when it is read.

``rtml report SWEEP_DIR`` indexes into both files (a cell's ``alias``, ``params``, ``status``,
``run_dir``; the curve's ``cell``, ``strategy`` and numeric columns). A file that was edited,
truncated or written by something else is refused with the file and the field named (a
:class:`~rtml_cli.errors.RunDirError`, exit 2), as :mod:`rtml_cli.run_schema` does for a run,
instead of reaching the report as a ``KeyError`` or an overflow in the chart (exit 70).
Numbers in the curve follow the run's rule: a non-finite number is a missing value (null), a
magnitude beyond :data:`rtml_cli.run_schema.MAX_ABS` is refused.

>>> validate_sweep_doc({"kind": "sweep", "cells": [{"id": "c0", "alias": 1}]}, where="s.json")
Traceback (most recent call last):
...
rtml_cli.errors.RunDirError: s.json: field 'cells[0].alias' is not a string. ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from rtml_cli.errors import RunDirError
from rtml_cli.run_schema import MAX_ABS

FIX = "Rerun `rtml sweep` to write the sweep again."
#: Text fields every cell of ``sweep.json`` has (the report shows and indexes them).
_CELL_TEXT = ("id", "alias", "status", "run_dir")
#: Curve columns the report indexes by name; each is text.
CURVE_TEXT_REQUIRED = ("cell", "strategy")


def _bad(where: str, field: str, problem: str) -> RunDirError:
    return RunDirError(f"{where}: field '{field}' {problem}. {FIX}")


def validate_sweep_doc(doc: Mapping[str, Any], *, where: str) -> None:
    """Raise :class:`RunDirError` naming the field when ``sweep.json`` lacks what the report reads."""
    for i, cell in enumerate(doc.get("cells") or []):
        if not isinstance(cell, Mapping):
            raise _bad(where, f"cells[{i}]", "is not an object")
        for key in _CELL_TEXT:
            if not isinstance(cell.get(key), str):
                raise _bad(where, f"cells[{i}].{key}", "is not a string")
        if not isinstance(cell.get("params", {}), Mapping):
            raise _bad(where, f"cells[{i}].params", "is not an object")
        if cell.get("error") is not None and not isinstance(cell["error"], str):
            raise _bad(where, f"cells[{i}].error", "is neither a string nor null")
    strategies = doc.get("strategies")
    if strategies is not None and not (
        isinstance(strategies, list) and all(isinstance(s, str) for s in strategies)
    ):
        raise _bad(where, "strategies", "is not a list of strategy names")
    if doc.get("baseline") is not None and not isinstance(doc["baseline"], str):
        raise _bad(where, "baseline", "is neither a strategy name nor null")
    grid = doc.get("grid")
    if grid is not None and not (
        isinstance(grid, Mapping) and all(isinstance(v, list) for v in grid.values())
    ):
        raise _bad(where, "grid", "is not an object of value lists")


def validate_curve(curve: pl.DataFrame, *, where: str) -> pl.DataFrame:
    """The curve with non-finite numbers as null; RunDirError for a missing or huge column."""
    if curve.height == 0:
        return curve
    for col in CURVE_TEXT_REQUIRED:
        if col not in curve.columns:
            raise RunDirError(f"{where}: column '{col}' is missing. {FIX}")
        if curve.schema[col] != pl.String:
            raise RunDirError(
                f"{where}: column '{col}' is {curve.schema[col]}, expected text. {FIX}"
            )
    fixes = []
    for col, dtype in curve.schema.items():
        if not dtype.is_float():  # an integer column cannot reach MAX_ABS
            continue
        values = curve[col].drop_nulls()
        big = [v for v in values if math.isfinite(v) and abs(v) > MAX_ABS]
        if big:
            raise RunDirError(
                f"{where}: column '{col}' holds {big[0]:g}, beyond ±{MAX_ABS:g}. {FIX}"
            )
        fixes.append(pl.when(pl.col(col).is_finite()).then(pl.col(col)).otherwise(None).alias(col))
    return curve.with_columns(fixes) if fixes else curve
