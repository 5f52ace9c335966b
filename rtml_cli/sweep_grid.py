"""The grid of ``rtml sweep``: ``--grid KEY=V1,V2`` options → cells → one ``rtml.toml`` per cell.

A grid key applies to every strategy it fits (:data:`APPLIES`): ``retrain_every`` to ``batch``
and ``stream``, ``update_every`` to ``online``, ``train_window`` to every kind, ``label_delay``
and ``model`` to the whole run. A cell is one combination of the grid's values (the product of
the keys, in the order given); its configuration is the base configuration (``--config``, the
``rtml.toml`` beside the table, or zero config) with the cell's values applied, written as a
TOML file that ``rtml compare --config`` reads, so every cell is an ordinary compare run.

Examples
--------
>>> axes = parse_grid(["retrain_every=1d,1h", "update_every=1,64"])
>>> [c.id for c in make_cells(axes)]
['c000-retrain_every_1d-update_every_1', 'c001-retrain_every_1d-update_every_64', \
'c002-retrain_every_1h-update_every_1', 'c003-retrain_every_1h-update_every_64']
>>> toml_text({"a": {"b": [1, "x"]}})
'"a" = {"b" = [1, "x"]}\\n'
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtml_cli.config import KINDS, parse_strategies
from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import RtmlError, UsageError, suggest
from rtml_cli.models import CLASSIFIER_PRESETS, REGRESSOR_PRESETS
from rtml_cli.river_models import CLASSIFIER_PRESETS as RIVER_CLASSIFIERS
from rtml_cli.river_models import REGRESSOR_PRESETS as RIVER_REGRESSORS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10 only
    import tomli as tomllib

#: What each grid key changes: the strategy kinds it applies to (``None``: the whole run).
APPLIES: dict[str, tuple[str, ...] | None] = {
    "retrain_every": ("batch", "stream"),
    "update_every": ("online",),
    "train_window": KINDS,
    "label_delay": None,
    "model": None,
}
GRID_KEYS = tuple(APPLIES)
#: The strategies of a sweep whose configuration names none: every kind, the static one the
#: baseline that no cadence changes (the reference every freshness gain is measured against).
SWEEP_DEFAULT_STRATEGIES = "batch:1d,stream:1d,online:1,static"
SWEEP_DEFAULT_BASELINE = "static"
#: More cells than this is almost surely a mistake (each is a full compare run).
MAX_CELLS = 1000
_GRID_HELP = (
    "Give --grid KEY=V1,V2,... with KEY one of "
    + ", ".join(GRID_KEYS)
    + ", e.g. --grid retrain_every=7d,1d,1h --grid update_every=1,64."
)


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` key and its values (as written, blanks stripped)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One combination of grid values; ``id`` names its run directory (``c003-...``)."""

    index: int
    params: dict[str, str]

    @property
    def alias(self) -> str:
        """``c003``: the name of the cell in check expressions and report tables."""
        return f"c{self.index:03d}"

    @property
    def id(self) -> str:
        slug = "-".join(f"{k}_{_slug(v)}" for k, v in self.params.items())
        return f"{self.alias}-{slug}"[:120]

    def describe(self) -> str:
        """``retrain_every=1h update_every=64``."""
        return " ".join(f"{k}={v}" for k, v in self.params.items())


def _slug(value: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.]+", "_", value).strip("_.")
    return s[:40] or "x"


def _check_value(key: str, value: str) -> Any:
    """The value's canonical form (for duplicates); UsageError naming the key if it is bad."""
    try:
        if key in ("retrain_every", "train_window", "label_delay"):
            if key == "train_window" and value == "all":
                return "all"
            us = parse_duration(value, what=f"--grid {key}")
            if us < 0 or (us == 0 and key != "label_delay"):
                raise UsageError(
                    f"--grid {key}={value}: must be {'>= 0' if key == 'label_delay' else '> 0'}."
                )
            return us
        if key == "update_every":
            n = int(value)
            if n < 1 or str(n) != value.lstrip("+"):
                raise ValueError
            return n
    except RtmlError as exc:
        raise UsageError(f"--grid {key}={value}: {exc}") from None
    except ValueError:
        raise UsageError(
            f"--grid update_every={value}: update_every must be an integer >= 1 (labels per "
            "online update), e.g. --grid update_every=1,64."
        ) from None
    # model: a preset name, or an import path / factory file (checked when the cell runs)
    every = {*CLASSIFIER_PRESETS, *REGRESSOR_PRESETS, *RIVER_CLASSIFIERS, *RIVER_REGRESSORS}
    if ":" not in value and value not in every:
        presets = sorted(every)
        raise UsageError(
            f"--grid model={value}: unknown preset.{suggest(value, presets)} Presets: "
            f"{', '.join(presets)}; or an import path 'package.module:Class' or a factory file "
            "'model.py:make_model'."
        )
    return value


def parse_grid(items: Sequence[str]) -> list[GridAxis]:
    """Parse repeated ``KEY=V1,V2`` options.

    Raises
    ------
    UsageError
        No option, an unknown or repeated key, an empty or bad value, a repeated value, more
        than :data:`MAX_CELLS` cells. Each message names the key and the accepted keys.
    """
    if not items:
        raise UsageError(f"rtml sweep needs a grid. {_GRID_HELP}")
    axes: list[GridAxis] = []
    for item in items:
        key, eq, rest = item.partition("=")
        key = key.strip()
        if not eq:
            raise UsageError(f"--grid {item!r} is not KEY=V1,V2,... {_GRID_HELP}")
        if key not in APPLIES:
            raise UsageError(
                f"--grid: unknown key {key!r}.{suggest(key, GRID_KEYS)} Accepted keys: "
                f"{', '.join(GRID_KEYS)}."
            )
        if any(a.key == key for a in axes):
            raise UsageError(
                f"--grid {key} is given twice; put all its values in one option: {key}=V1,V2."
            )
        values = [v.strip() for v in rest.split(",")]
        if rest.strip() and not all(values):
            # '1d,,6h' or a trailing comma: a value was lost on the way, say so rather than guess
            raise UsageError(
                f"--grid {key}={rest.strip()} has an empty value between commas; write "
                f"{key}={','.join(v for v in values if v)}."
            )
        values = [v for v in values if v]
        bad = next(
            (v for v in values if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in v)), None
        )
        if bad is not None:
            raise UsageError(
                f"--grid {key}: value {bad!r} holds a control character; no {key} has one."
            )
        if not values:
            raise UsageError(f"--grid {key}= has no value. {_GRID_HELP}")
        seen: dict[Any, str] = {}
        for v in values:
            canon = _check_value(key, v)
            if canon in seen:
                raise UsageError(
                    f"--grid {key}: {v!r} repeats {seen[canon]!r} (the same value). Remove one."
                )
            seen[canon] = v
        axes.append(GridAxis(key, tuple(values)))
    n = math.prod(len(a.values) for a in axes)
    if n > MAX_CELLS:
        raise UsageError(
            f"the grid has {n:,} cells (at most {MAX_CELLS:,}); each cell is a full compare run. "
            "Use fewer values."
        )
    return axes


def make_cells(axes: Sequence[GridAxis]) -> list[Cell]:
    """Every combination, the first key varying slowest."""
    keys = [a.key for a in axes]
    return [
        Cell(i, dict(zip(keys, combo, strict=True)))
        for i, combo in enumerate(itertools.product(*(a.values for a in axes)))
    ]


def base_strategies(
    raw: dict[str, Any], strategies: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """The strategy entries every cell starts from, and whether they are the sweep's default."""
    if strategies is not None:
        return [_entry(s.params()) for s in parse_strategies(strategies)], False
    if raw.get("strategy"):
        entries = raw["strategy"]
        if isinstance(entries, list) and all(isinstance(e, dict) for e in entries):
            return [dict(e) for e in entries], False
        return entries, False  # build_config says what is wrong with them
    return [_entry(s.params()) for s in parse_strategies(SWEEP_DEFAULT_STRATEGIES)], True


def _entry(params: dict[str, Any]) -> dict[str, Any]:
    """A StrategySpec's params as a ``[[strategy]]`` table (``train_window = "all"`` dropped)."""
    return {k: v for k, v in params.items() if not (k == "train_window" and v == "all")}


def check_grid_fits(
    axes: Sequence[GridAxis], entries: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    """Every key must change something: a kind it applies to, a run without a label-time column."""
    kinds = [e.get("kind") for e in entries if isinstance(e, dict)]
    for a in axes:
        fits = APPLIES[a.key]
        if fits is not None and not any(k in fits for k in kinds):
            raise UsageError(
                f"--grid {a.key} applies to {' and '.join(fits)} strategies; the sweep's "
                f"strategies are {', '.join(str(k) for k in kinds)}. Add one (--strategies) "
                "or drop the key."
            )
        data = raw.get("data")
        if a.key == "label_delay" and isinstance(data, dict) and data.get("label_time"):
            raise UsageError(
                f"--grid label_delay: the configuration sets a label-time column "
                f"({data['label_time']!r}), which decides when each label arrives. Drop the "
                "key, or the label_time setting."
            )


def cell_config(
    raw: dict[str, Any],
    entries: list[dict[str, Any]],
    cell: Cell,
    *,
    baseline: str | None,
    warmup: str | None,
) -> dict[str, Any]:
    """The base configuration with the cell's values applied (a parsed-TOML dict)."""
    out = copy.deepcopy(raw)
    strategies = []
    for e in entries:
        e = dict(e)
        kind = e.get("kind")
        for key, value in cell.params.items():
            fits = APPLIES[key]
            if fits is None or kind not in fits:
                continue
            e[key] = int(value) if key == "update_every" else value
        strategies.append(e)
    out["strategy"] = strategies
    data = out.setdefault("data", {})
    if isinstance(data, dict):
        if "label_delay" in cell.params:
            data["label_delay"] = cell.params["label_delay"]
        if warmup is not None:
            data["warmup"] = warmup
    if "model" in cell.params:
        out["model"] = _model_table(cell.params["model"])
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("factory"), str):
        # a factory file is found from the working directory: absolute, so that a cell runs
        # the same file in a worker process or on a Dask worker elsewhere
        path, sep, attr = model["factory"].rpartition(":")
        if sep and path and not os.path.isabs(path):
            model["factory"] = f"{os.path.abspath(path)}:{attr}"
    if baseline is not None:
        rep = out.setdefault("report", {})
        if isinstance(rep, dict):
            rep["baseline"] = baseline
    return out


def _model_table(text: str) -> dict[str, Any]:
    from rtml_cli.config import model_spec_from_text

    spec = model_spec_from_text(text)
    return {k: v for k, v in (("preset", spec.preset), ("estimator", spec.estimator),
                              ("factory", spec.factory)) if v}  # fmt: skip


def duration_s(text: str | None) -> float | None:
    """Seconds of a duration text (``None`` for ``all`` or nothing)."""
    if text is None or text == "all":
        return None
    return parse_duration(text, what="duration") / 1e6


def canonical(key: str, value: str) -> str:
    """A grid value as the report shows it (``90m`` → ``1h30m``)."""
    if key in ("retrain_every", "train_window", "label_delay") and value != "all":
        us = parse_duration(value, what=key)
        return "0" if us == 0 else format_duration(us)
    return value


# --------------------------------------------------------------------------- TOML


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        # JSON's escapes (\" \\ \n \uXXXX ...) are TOML's; DEL must be escaped in TOML only
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
        )
    raise TypeError(f"no TOML form for {type(v).__name__}")


def toml_text(raw: dict[str, Any], header: str = "") -> str:
    """A parsed-TOML dict as TOML text (one ``key = inline value`` line per top-level key).

    The text is read back and compared, so a configuration never changes on the way to a cell.
    """
    # a comment may hold no control character: those of user text are shown escaped
    safe = "".join(ch if ch == "\n" or (32 <= ord(ch) and ord(ch) != 127) else repr(ch)[1:-1]
                   for ch in header)  # fmt: skip
    lines = [f"# {line}".rstrip() for line in safe.splitlines()]
    lines += [f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in raw.items()]
    text = "\n".join(lines) + "\n"
    if "nan" not in text and tomllib.loads(text) != raw:  # pragma: no cover - a bug
        raise RuntimeError("the cell configuration does not read back as written")
    return text
