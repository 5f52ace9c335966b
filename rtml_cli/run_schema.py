"""The schema of a run directory's files, checked whenever a run is read (``rtml report``).

A run directory is an interface: ``rtml report`` (and the checks) index into ``manifest.json``
and ``metrics.json`` and filter the two Parquet tables. A file that was edited, truncated or
written by something else must be refused with the file and the field named (a
:class:`~rtml_cli.errors.RunDirError`, exit 2), never reach the report as a ``KeyError`` or a
``float("abc")`` deep in the rendering.

The schemas are written once, declaratively, below (``MANIFEST``, ``METRICS``; the Parquet
tables' in :mod:`rtml_cli.run_tables`), from what :func:`rtml_cli.compare.run_compare` and the HTTP
recorder write and what the report reads. A field the report reads is checked for its type;
fields the report does not read are free (a newer rtml may add some). On top of the types:

- every metric section keyed by strategy (``quality``, ``freshness``, ``compute``,
  ``quality_by_staleness``, ``quality_over_time.strategies``; ``diff_to_baseline`` without the
  baseline) holds exactly the strategies of ``metrics.json``'s ``strategies``, which are the
  manifest's strategies;
- numbers beyond ±:data:`MAX_ABS` are refused (the report's arithmetic would overflow);
- a number that is not finite (``NaN``, ``Infinity``, ``1e400``) where a metric may be missing
  is read as ``null`` (what rtml writes for a missing value); where a value is required it is an
  error; non-finite numbers in free fields are read as ``null`` too, so every report format,
  JSON included, gets finite numbers only;
- JSON nesting deeper than :data:`MAX_JSON_DEPTH` is refused (rtml writes at most 6 levels;
  very deep nesting would otherwise overflow the stack in the parser or the renderers).

Examples
--------
>>> validate_manifest({"format": 1, "complete": True, "strategies": []}, where="m")["format"]
1
>>> bad = {"format": "abc", "complete": True, "strategies": []}
>>> validate_manifest(bad, where="m")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rtml_cli.errors.RunDirError: m: field 'format' is a string ('abc'); expected an integer. ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rtml_cli.errors import RunDirError

#: Largest magnitude of a number in a run's JSON: far beyond any metric, duration or count, and
#: far from float overflow, so arithmetic and formatting in the report stay finite.
MAX_ABS = 1e100
#: Deepest JSON nesting accepted in ``manifest.json`` and ``metrics.json``.
MAX_JSON_DEPTH = 64
#: The fix named by every error about a damaged run file.
FIX_DAMAGED = (
    "The file is damaged or was not written by rtml: rerun `rtml compare` to write the run again."
)


class SchemaError(Exception):
    """A value does not match the schema: ``path`` names the field, ``problem`` says why."""

    def __init__(self, path: str, problem: str, *, missing: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.missing = missing


#: A validator takes a value and its path and returns the value as the report may use it.
Validator = Callable[[Any, str], Any]


# --------------------------------------------------------------------------- describing values


def describe(v: Any) -> str:
    """A short, bounded description of a JSON value for an error message."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else "an infinite number"
    if isinstance(v, float):
        return f"the number {v:g}"
    if isinstance(v, int):
        return f"the number {v}" if abs(v) < 10**30 else f"a {len(str(abs(v)))}-digit number"
    if isinstance(v, str):
        shown = v if len(v) <= 40 else v[:40] + "…"
        return f"a string ({shown!r})"
    if isinstance(v, list):
        return f"a list of {len(v)} item(s)"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _key(path: str, key: Any) -> str:
    k = str(key)
    k = k if len(k) <= 60 else k[:60] + "…"
    return f"{path}.{k}" if path else k


def _finite(v: Any) -> bool:
    return not (isinstance(v, float) and not math.isfinite(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- validators


def num(*, null: bool = False, integer: bool = False) -> Validator:
    """A number (an integer with ``integer``); with ``null`` also null, and NaN/inf read as null."""
    expected = "an integer" if integer else "a number"
    if null:
        expected += " or null"

    def check(v: Any, path: str) -> Any:
        if v is None and null:
            return None
        if _is_number(v) and not _finite(v):
            if null:
                return None  # what rtml writes for a value it could not compute
            raise SchemaError(path, f"is {describe(v)}; expected a finite {expected[2:]}")
        if integer and not isinstance(v, int) or not _is_number(v):
            raise SchemaError(path, f"is {describe(v)}; expected {expected}")
        if abs(v) > MAX_ABS:
            raise SchemaError(path, f"is {describe(v)}, beyond ±{MAX_ABS:g}; expected {expected}")
        return v

    return check


def text(*, null: bool = False, choices: Iterable[str] | None = None) -> Validator:
    """A string (one of ``choices`` if given)."""
    allowed = tuple(choices) if choices is not None else None

    def check(v: Any, path: str) -> Any:
        if v is None and null:
            return None
        if not isinstance(v, str):
            return _bad(path, v, "a string" + (" or null" if null else ""))
        if allowed is not None and v not in allowed:
            raise SchemaError(
                path, f"is {describe(v)}; expected one of {', '.join(map(repr, allowed))}"
            )
        return v

    return check


def boolean(*, null: bool = False) -> Validator:
    """``true`` or ``false`` (or null)."""

    def check(v: Any, path: str) -> Any:
        if (v is None and null) or isinstance(v, bool):
            return v
        return _bad(path, v, "true or false" + (" or null" if null else ""))

    return check


def scalar() -> Validator:
    """A string, number, boolean or null: a value the report only prints."""

    def check(v: Any, path: str) -> Any:
        if v is None or isinstance(v, (str, bool)) or _is_number(v):
            return v if _finite(v) else None
        return _bad(path, v, "a string, a number or null")

    return check


def anything() -> Validator:
    """Any JSON value (non-finite numbers inside read as null)."""

    def check(v: Any, path: str) -> Any:
        return finite_or_null(v)

    return check


def list_of(item: Validator, *, null: bool = False, nonempty: bool = False) -> Validator:
    """A list whose every item passes ``item``."""

    def check(v: Any, path: str) -> Any:
        if v is None and null:
            return None
        if not isinstance(v, list):
            return _bad(path, v, "a list" + (" or null" if null else ""))
        if nonempty and not v:
            raise SchemaError(path, "is an empty list; expected at least one item")
        return [item(x, f"{path}[{i}]") for i, x in enumerate(v)]

    return check


def mapping(value: Validator, *, null: bool = False) -> Validator:
    """An object with any keys, every value passing ``value``."""

    def check(v: Any, path: str) -> Any:
        if v is None and null:
            return None
        if not isinstance(v, dict):
            return _bad(path, v, "an object" + (" or null" if null else ""))
        return {k: value(x, _key(path, k)) for k, x in v.items()}

    return check


def obj(
    fields: Mapping[str, Validator],
    *,
    required: Iterable[str] = (),
    null: bool = False,
    extra: Validator | None = None,
) -> Validator:
    """An object: named ``fields`` (``required`` ones must be present); other keys pass ``extra``
    (free, as any JSON value, when ``extra`` is None)."""
    req = tuple(required)
    other = extra or anything()

    def check(v: Any, path: str) -> Any:
        if v is None and null:
            return None
        if not isinstance(v, dict):
            return _bad(path, v, "an object" + (" or null" if null else ""))
        for k in req:
            if k not in v:
                raise SchemaError(_key(path, k), "is missing", missing=True)
        return {k: (fields[k] if k in fields else other)(x, _key(path, k)) for k, x in v.items()}

    return check


def one_of(*validators: Validator, expected: str) -> Validator:
    """The first of ``validators`` that accepts the value."""

    def check(v: Any, path: str) -> Any:
        for val in validators:
            try:
                return val(v, path)
            except SchemaError:
                continue
        return _bad(path, v, expected)

    return check


def _bad(path: str, v: Any, expected: str) -> Any:
    raise SchemaError(path, f"is {describe(v)}; expected {expected}")


def finite_or_null(v: Any) -> Any:
    """``v`` with every non-finite float replaced by None (depth already bounded)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [finite_or_null(x) for x in v]
    if isinstance(v, dict):
        return {k: finite_or_null(x) for k, x in v.items()}
    return v


# --------------------------------------------------------------------------- the schemas

_int = num(integer=True)
_int_n = num(integer=True, null=True)
_num_n = num(null=True)
_CHECK_SOURCES = one_of(
    text(null=True), list_of(scalar()), mapping(scalar()),
    expected="a check (string), a list of checks or a table of name = check",
)  # fmt: skip

MANIFEST = obj(
    {
        "format": _int,
        "complete": boolean(),
        "tool": text(),
        "strategies": list_of(obj({"name": text(), "kind": text(null=True)}, required=("name",))),
        "baseline": text(null=True),
        "task": text(null=True),
        "config": obj(
            {
                "report": obj({"checks": _CHECK_SOURCES}, null=True),
                "checks": _CHECK_SOURCES,
            },
            null=True,
        ),
        "table": obj({"source": scalar(), "rows": scalar(), "fingerprint": scalar()}, null=True),
        "model": obj({"repr": scalar()}, null=True),
        "versions": mapping(scalar(), null=True),
        "timings": mapping(_num_n, null=True),
        "warnings": list_of(scalar(), null=True),
        "peak_memory_mb": _num_n,
        "created": scalar(),
        "warmup_end": scalar(),
        "scored_events": scalar(),
        "rtml_version": scalar(),
    },
    required=("format", "complete", "strategies"),
)

_PCT = mapping(_num_n)


def _calls(*, null: bool = False) -> Validator:
    return obj(
        {
            "count": _int,
            "rows": _int_n,
            "wall_ms": _PCT,
            "cpu_ms": _PCT,
            "wall_total_s": num(),
            "cpu_total_s": _num_n,
        },
        required=("count", "wall_ms", "cpu_ms", "wall_total_s"),
        null=null,
    )


_DIFF = obj(
    {
        "estimate": _num_n,
        "low": _num_n,
        "high": _num_n,
        "significant": boolean(null=True),
        "better": boolean(null=True),
        "reason": text(null=True),
    }
)
_SUMMARY = obj({"mean": _num_n, "p50": _num_n, "p90": _num_n, "max": _num_n, "count": _int_n})

METRICS = obj(
    {
        "schema_version": _int_n,
        "task": text(choices=("binary", "multiclass", "regression")),
        "baseline": text(),
        "strategies": list_of(text(), nonempty=True),
        "references": list_of(text()),
        "metric_names": list_of(text(), nonempty=True),
        "higher_is_better": mapping(boolean()),
        "span": obj({"start": scalar(), "end": scalar(), "events": _int_n}),
        "bucket": obj({"text": scalar()}),
        "bootstrap": obj({"resamples": _int_n, "seed": _int_n, "level": num(), "blocks": _int_n}),
        "quality": mapping(
            obj({"n": _int_n, "reasons": mapping(text(null=True), null=True)}, extra=_num_n)
        ),
        "quality_over_time": obj(
            {
                "start": list_of(scalar()),
                "n": list_of(_int_n),
                "strategies": mapping(mapping(list_of(_num_n))),
            }
        ),
        "diff_to_baseline": mapping(mapping(_DIFF)),
        "pairs": list_of(
            obj(
                {"strategy": text(), "reference": text(), "metrics": mapping(_DIFF)},
                required=("strategy", "reference", "metrics"),
            )
        ),
        "freshness": mapping(
            obj(
                {
                    "staleness_s": _SUMMARY,
                    "feature_age_s": _SUMMARY,
                    "model_age_s": _SUMMARY,
                    "cold_start": _int_n,
                    "events": _int_n,
                }
            )
        ),
        "quality_by_staleness": mapping(
            list_of(
                obj(
                    {"label": scalar(), "lo_s": _num_n, "hi_s": _num_n, "n": _int},
                    required=("label", "n"),
                    extra=_num_n,
                )
            )
        ),
        "compute": mapping(
            obj(
                {
                    "kinds": mapping(_calls()),
                    "predict_single_row": _calls(null=True),
                    "events": _int_n,
                    "busy_s": _num_n,
                    "events_per_s": _num_n,
                }
            )
        ),
    },
    required=("strategies", "quality", "metric_names", "baseline"),
)

# --------------------------------------------------------------------------- entry points


def _fail(where: str, exc: SchemaError) -> RunDirError:
    if exc.missing:
        return RunDirError(f"{where} lacks '{exc.path}'. {FIX_DAMAGED}")
    return RunDirError(f"{where}: field '{exc.path}' {exc.problem}. {FIX_DAMAGED}")


def load_json(path: Path, *, where: str) -> Any:
    """Parse a JSON file of a run; any unreadable or too deeply nested content is a RunDirError.

    ``where`` names the file for messages, e.g. ``"manifest.json in run directory 'r'"``.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"{where} cannot be read: {exc.strerror or exc}.") from None
    if not raw.strip():
        raise RunDirError(f"{where} is empty. {FIX_DAMAGED}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise RunDirError(
            f"{where} is nested deeper than rtml reads (at most {MAX_JSON_DEPTH} levels). {FIX_DAMAGED}"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many int digits
        raise RunDirError(
            f"{where} is not valid JSON ({_short(str(exc))}). {FIX_DAMAGED}"
        ) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise RunDirError(
            f"{where} is nested deeper than rtml reads (at most {MAX_JSON_DEPTH} levels). {FIX_DAMAGED}"
        )
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            d += 1
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                return d
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _short(s: str) -> str:
    return s if len(s) <= 200 else s[:200] + "…"


def validate_manifest(manifest: Any, *, where: str) -> dict[str, Any]:
    """Check ``manifest.json``'s content against :data:`MANIFEST`; return it cleaned.

    Raises
    ------
    RunDirError
        Naming ``where`` and the field.
    """
    if not isinstance(manifest, dict):
        raise RunDirError(f"{where} is {describe(manifest)}, not a JSON object. {FIX_DAMAGED}")
    try:
        out: dict[str, Any] = MANIFEST(manifest, "")
    except SchemaError as exc:
        raise _fail(where, exc) from None
    if out["format"] < 1:
        raise RunDirError(
            f"{where}: field 'format' is {out['format']}; expected 1 or more. {FIX_DAMAGED}"
        )
    return out


def validate_metrics(
    metrics: Any, *, where: str, strategies: list[str] | None = None
) -> dict[str, Any]:
    """Check ``metrics.json``'s content against :data:`METRICS` and its strategies; return it
    cleaned. ``strategies``: the manifest's strategy names, which the metrics must cover exactly.

    Raises
    ------
    RunDirError
        Naming ``where`` and the field (a type, or a strategy missing from or extra in a section).
    """
    if not isinstance(metrics, dict):
        raise RunDirError(f"{where} is {describe(metrics)}, not a JSON object. {FIX_DAMAGED}")
    try:
        m: dict[str, Any] = METRICS(metrics, "")
    except SchemaError as exc:
        raise _fail(where, exc) from None
    names: list[str] = m["strategies"]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise RunDirError(f"{where}: field 'strategies' lists '{dup}' twice. {FIX_DAMAGED}")
    if m["baseline"] not in names:
        raise RunDirError(
            f"{where}: field 'baseline' is '{m['baseline']}', which is not among its "
            f"'strategies' ({', '.join(names)}). {FIX_DAMAGED}"
        )
    if strategies is not None:
        _same(where, "strategies", names, strategies, "the manifest's strategies")
    # naive references (persistence, prior) are scored like strategies but are not deployments
    refs = m.get("references")
    scored = names + [r for r in refs if r not in names] if isinstance(refs, list) else names
    sections: list[tuple[str, Any, list[str]]] = [
        ("quality", m["quality"], scored),
        ("diff_to_baseline", m.get("diff_to_baseline"), [n for n in scored if n != m["baseline"]]),
        ("freshness", m.get("freshness"), names),
        ("quality_by_staleness", m.get("quality_by_staleness"), names),
        ("compute", m.get("compute"), names),
        ("quality_over_time.strategies", (m.get("quality_over_time") or {}).get("strategies"), scored),
    ]  # fmt: skip
    for section, value, want in sections:
        if value is not None:
            _same(where, section, list(value), want, "'strategies'")
    for i, p in enumerate(m.get("pairs") or []):
        for role in ("strategy", "reference"):
            if p[role] not in names:
                raise RunDirError(
                    f"{where}: field 'pairs[{i}].{role}' is '{p[role]}', which is not among "
                    f"'strategies' ({', '.join(names)}). {FIX_DAMAGED}"
                )
    qot = m.get("quality_over_time") or {}
    buckets = len(qot.get("start") or [])
    for s, per in (qot.get("strategies") or {}).items():
        for metric, line in per.items():
            if len(line) != buckets:
                raise RunDirError(
                    f"{where}: field 'quality_over_time.strategies.{s}.{metric}' has "
                    f"{len(line)} values for {buckets} bucket start(s). {FIX_DAMAGED}"
                )
    return m


def _same(where: str, field: str, have: list[str], want: list[str], against: str) -> None:
    missing = [s for s in want if s not in have]
    extra = [s for s in have if s not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks strategy {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"has strategy {', '.join(map(repr, extra))} not in {against}")
        raise RunDirError(f"{where}: field '{field}' {' and '.join(parts)}. {FIX_DAMAGED}")
