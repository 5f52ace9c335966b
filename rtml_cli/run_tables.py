"""The two Parquet tables of a run directory: ``predictions.parquet`` and ``timings.parquet``.

Their columns and types are defined here once. The writers (``rtml compare``'s
:func:`~rtml_cli.compare.predictions_frame` and :func:`~rtml_cli.compare.timings_frame`, the
recorder of a deployed endpoint's answers, :mod:`rtml_cli.run_record`) build their frames with
:func:`conform`; reading a run (:func:`rtml_cli.runs.read_run_dir`) checks each column's kind
with :func:`validate_frame`, so a table edited or written by something else is refused with the
file and the column named (a :class:`~rtml_cli.errors.RunDirError`, exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import polars as pl

from rtml_cli.errors import RunDirError
from rtml_cli.run_schema import FIX_DAMAGED

#: The columns of ``predictions.parquet``, in order, with the types rtml writes: one row per
#: scored event and strategy (docs/ARCHITECTURE.md). ``compare`` and the HTTP recorder build
#: their frames with :func:`conform`; reading checks each column's kind (:data:`PREDICTIONS`).
PREDICTIONS_SCHEMA = pl.Schema(
    {
        "event_id": pl.Int64(),
        "strategy": pl.String(),
        "t": pl.Datetime("us"),
        "label_time": pl.Datetime("us"),
        "y": pl.Float64(),
        "score": pl.Float64(),
        "pred": pl.Float64(),
        "model_version": pl.Int32(),
        "model_time": pl.Datetime("us"),
        "features_time": pl.Datetime("us"),
        "staleness_us": pl.Int64(),
        "feature_age_us": pl.Int64(),
        "model_age_us": pl.Int64(),
        "cold_start": pl.Boolean(),
    }
)
#: The columns of ``timings.parquet``: one row per timed call (fit, predict, feature build).
TIMINGS_SCHEMA = pl.Schema(
    {
        "strategy": pl.String(),
        "kind": pl.String(),
        "wall_ns": pl.Int64(),
        "cpu_ns": pl.Int64(),
        "rows": pl.Int64(),
        "t": pl.Datetime("us"),
    }
)


def conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` with exactly the columns of ``schema``, in its order and of its types.

    Examples
    --------
    >>> conform(pl.DataFrame({"rows": [1], "kind": ["fit"], "strategy": ["batch"],
    ...     "wall_ns": [5], "cpu_ns": [None], "t": [None]}), TIMINGS_SCHEMA).schema["t"]
    Datetime(time_unit='us', time_zone=None)
    """
    if frame.width == 0:
        return pl.DataFrame(schema=schema)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return "string"


def _columns(schema: pl.Schema, required: Iterable[str]) -> dict[str, tuple[str, bool]]:
    need = set(required)
    return {name: (_kind(dtype), name in need) for name, dtype in schema.items()}


#: Column kinds checked when a run is read, derived from the schemas above. ``required``
#: columns are the ones the report reads; the others are checked for their kind when present,
#: and any numeric type is accepted where rtml writes a float.
PREDICTIONS: dict[str, tuple[str, bool]] = _columns(PREDICTIONS_SCHEMA, ("strategy", "t"))
TIMINGS: dict[str, tuple[str, bool]] = _columns(
    TIMINGS_SCHEMA, ("strategy", "kind", "wall_ns", "rows")
)


_KIND_OK: dict[str, Callable[[pl.DataType], bool]] = {
    "integer": lambda d: d.is_integer(),
    "number": lambda d: d.is_numeric(),
    "string": lambda d: d in (pl.String, pl.Categorical) or isinstance(d, pl.Enum),
    "datetime": lambda d: isinstance(d, pl.Datetime),
    "boolean": lambda d: d == pl.Boolean,
    "list of numbers": lambda d: isinstance(d, pl.List) and d.inner.is_numeric(),
}
#: multiclass runs add the class probabilities (class code c at position c), after the schema's
#: columns: not in :data:`PREDICTIONS_SCHEMA`, which every writer conforms to
PREDICTIONS["proba"] = ("list of numbers", False)


def validate_frame(
    frame: pl.DataFrame, columns: Mapping[str, tuple[str, bool]], *, where: str
) -> None:
    """Check a Parquet table's columns: required ones present, known ones of their kind.

    Raises
    ------
    RunDirError
        Naming ``where`` and the column.
    """
    schema = frame.schema
    for name, (kind, required) in columns.items():
        if name not in schema:
            if required:
                raise RunDirError(f"{where} lacks column '{name}' ({kind}). {FIX_DAMAGED}")
            continue
        dtype = schema[name]
        if dtype == pl.Null and not required:
            continue  # an all-null optional column
        if not _KIND_OK[kind](dtype):
            raise RunDirError(
                f"{where}: column '{name}' has type {dtype}; expected {kind}. {FIX_DAMAGED}"
            )
