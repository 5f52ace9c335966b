"""Reading run directories: every damaged file is exit 2 naming the file and the field, in every
report format, never a traceback; non-finite numbers never reach the JSON output."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rtml_cli.cli import app
from rtml_cli.errors import RunDirError
from rtml_cli.run_schema import MAX_JSON_DEPTH, validate_manifest, validate_metrics
from rtml_cli.runs import read_run_dir

RUN = Path(__file__).parent / "data" / "run_small"
FORMATS = ["terminal", "markdown", "html", "json", "junit"]


def _json(name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    """Damage a JSON file: ``change`` edits the parsed value in place."""

    def damage(run: Path) -> None:
        value = json.loads((run / name).read_text())
        change(value)
        (run / name).write_text(json.dumps(value))

    return damage


def _raw(name: str, text: str | bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return damage


def _replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        text = (run / name).read_text()
        assert old in text
        (run / name).write_text(text.replace(old, new, 1))

    return damage


def _parquet(name: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        change(pl.read_parquet(run / name)).write_parquet(run / name)

    return damage


def _set(*path: Any, value: Any) -> Callable[[Any], None]:
    def change(d: Any) -> None:
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return change


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


M, X = "manifest.json", "metrics.json"
P, T = "predictions.parquet", "timings.parquet"

#: id: (damage, file named, fragment naming the field)
DAMAGE: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # manifest.json
    "format abc": (_json(M, _set("format", value="abc")), M, "'format' is a string ('abc')"),
    "format list": (_json(M, _set("format", value=[])), M, "'format' is a list"),
    "format null": (_json(M, _set("format", value=None)), M, "'format' is null"),
    "format 1e400": (_replace(M, '"format": 1', '"format": 1e400'), M, "'format' is an infinite"),
    "format 0": (_json(M, _set("format", value=0)), M, "'format' is 0"),
    "format 1.5": (_json(M, _set("format", value=1.5)), M, "'format' is the number 1.5"),
    "complete yes": (_json(M, _set("complete", value="yes")), M, "'complete' is a string"),
    "config string": (_json(M, _set("config", value="x")), M, "'config' is a string"),
    "config.report list": (_json(M, _set("config", value={"report": []})), M, "'config.report'"),
    "config checks number": (
        _json(M, _set("config", value={"checks": 5})),
        M,
        "'config.checks' is the number 5",
    ),
    "table list": (_json(M, _set("table", value=[1])), M, "'table' is a list"),
    "strategies object": (_json(M, _set("strategies", value={})), M, "'strategies' is an object"),
    "strategy without name": (
        _json(M, _set("strategies", 0, value={"kind": "batch"})),
        M,
        "lacks 'strategies[0].name'",
    ),
    "strategy name number": (
        _json(M, _set("strategies", 1, "name", value=7)),
        M,
        "'strategies[1].name' is the number 7",
    ),
    "no strategies": (_json(M, lambda m: m.pop("strategies")), M, "lacks 'strategies'"),
    "timings string": (_json(M, _set("timings", "load", value="fast")), M, "'timings.load'"),
    "manifest a list": (_raw(M, "[1, 2, 3]"), M, "is a list of 3 item(s), not a JSON object"),
    "manifest a string": (_raw(M, '"run"'), M, "not a JSON object"),
    "manifest empty": (_raw(M, ""), M, "is empty"),
    "manifest not json": (_raw(M, "{format: 1"), M, "is not valid JSON"),
    "manifest not utf-8": (_raw(M, b'{"format": "\xff"}'), M, "is not valid JSON"),
    "manifest 100000 deep": (_raw(M, _nested(100_000)), M, "nested deeper"),
    "manifest just too deep": (
        _json(M, _set("config", "x", value=json.loads(_nested(MAX_JSON_DEPTH)))),
        M,
        "nested deeper",
    ),
    # metrics.json
    "metric a string": (
        _json(X, _set("quality", "stream", "auc", value="high")),
        X,
        "'quality.stream.auc' is a string",
    ),  # fmt: skip
    "metric a list": (
        _json(X, _set("quality", "stream", "n", value=[880])),
        X,
        "'quality.stream.n' is a list",
    ),  # fmt: skip
    "quality a list": (_json(X, _set("quality", value=[])), X, "'quality' is a list"),
    "percentiles a list": (
        _json(X, _set("compute", "stream", "predict_single_row", "wall_ms", value=[1, 2])),
        X,
        "'compute.stream.predict_single_row.wall_ms' is a list",
    ),
    "wall total NaN": (
        _json(X, _set("compute", "stream", "kinds", "predict", "wall_total_s", value=float("nan"))),
        X,
        "'compute.stream.kinds.predict.wall_total_s' is NaN",
    ),
    "diff estimate string": (
        _json(X, _set("diff_to_baseline", "stream", "auc", "estimate", value="+0.1")),
        X,
        "'diff_to_baseline.stream.auc.estimate'",
    ),
    "significant a number": (
        _json(X, _set("pairs", 0, "metrics", "auc", "significant", value=1)),
        X,
        "'pairs[0].metrics.auc.significant'",
    ),
    "reasons a list": (
        _json(X, _set("quality", "online", "reasons", value=["x"])),
        X,
        "'quality.online.reasons'",
    ),  # fmt: skip
    "staleness label missing": (
        _json(X, lambda m: m["quality_by_staleness"]["stream"][0].pop("label")),
        X,
        "lacks 'quality_by_staleness.stream[0].label'",
    ),
    "bootstrap level null": (
        _json(X, _set("bootstrap", "level", value=None)),
        X,
        "'bootstrap.level' is null",
    ),  # fmt: skip
    "staleness 1e308 s": (
        _json(X, _set("freshness", "batch_daily", "staleness_s", "mean", value=1.7e308)),
        X,
        "'freshness.batch_daily.staleness_s.mean' is the number 1.7e+308, beyond ±1e+100",
    ),
    "n with 400 digits": (
        _json(X, _set("quality", "stream", "n", value=10**400)),
        X,
        "'quality.stream.n' is a 401-digit number",
    ),
    "cold start string": (
        _json(X, _set("freshness", "batch_daily", "cold_start", value="22")),
        X,
        "'freshness.batch_daily.cold_start'",
    ),  # fmt: skip
    "task unknown": (_json(X, _set("task", value="ranking")), X, "'task' is a string ('ranking')"),
    "metric names empty": (
        _json(X, _set("metric_names", value=[])),
        X,
        "'metric_names' is an empty list",
    ),  # fmt: skip
    "baseline unknown": (_json(X, _set("baseline", value="ghost")), X, "'baseline' is 'ghost'"),
    "strategy missing from quality": (
        _json(X, lambda m: m["quality"].pop("online")),
        X,
        "'quality' lacks strategy 'online'",
    ),
    "strategy extra in freshness": (
        _json(X, lambda m: m["freshness"].update(ghost=m["freshness"]["stream"])),
        X,
        "'freshness' has strategy 'ghost'",
    ),
    "strategy missing from compute": (
        _json(X, lambda m: m["compute"].pop("static")),
        X,
        "'compute' lacks strategy 'static'",
    ),
    "baseline in diff_to_baseline": (
        _json(
            X, lambda m: m["diff_to_baseline"].update(batch_daily=m["diff_to_baseline"]["stream"])
        ),  # fmt: skip
        X,
        "'diff_to_baseline' has strategy 'batch_daily'",
    ),
    "strategy missing over time": (
        _json(X, lambda m: m["quality_over_time"]["strategies"].pop("stream")),
        X,
        "'quality_over_time.strategies' lacks strategy 'stream'",
    ),
    "pair of unknown strategy": (
        _json(X, _set("pairs", 2, "strategy", value="ghost")),
        X,
        "'pairs[2].strategy' is 'ghost'",
    ),  # fmt: skip
    "series of the wrong length": (
        _json(X, lambda m: m["quality_over_time"]["strategies"]["online"]["auc"].pop()),
        X,
        "'quality_over_time.strategies.online.auc' has",
    ),
    "strategy duplicated": (
        _json(X, lambda m: m["strategies"].append("stream")),
        X,
        "'strategies' lists 'stream' twice",
    ),
    "manifest has a strategy the metrics lack": (
        _json(M, lambda m: m["strategies"].append({"name": "extra", "kind": "batch"})),
        X,
        "'strategies' lacks strategy 'extra'",
    ),
    "metrics not an object": (_raw(X, "42"), X, "is the number 42, not a JSON object"),
    "metrics empty": (_raw(X, "  \n"), X, "is empty"),
    "metrics 100000 deep": (_raw(X, _nested(100_000)), X, "nested deeper"),
    "metrics without strategies": (_raw(X, '{"schema_version": 0}'), X, "lacks 'strategies'"),
    "metrics huge integer": (_raw(X, "1" * 5000), X, "is not valid JSON"),
    # Parquet tables
    "predictions without t": (_parquet(P, lambda d: d.drop("t")), P, "lacks column 't'"),
    "predictions without strategy": (
        _parquet(P, lambda d: d.drop("strategy")),
        P,
        "lacks column 'strategy'",
    ),  # fmt: skip
    "predictions t as text": (
        _parquet(P, lambda d: d.with_columns(pl.col("t").cast(pl.String))),
        P,
        "column 't' has type String; expected datetime",
    ),
    "predictions score as text": (
        _parquet(P, lambda d: d.with_columns(pl.col("score").cast(pl.String))),
        P,
        "column 'score' has type String; expected number",
    ),
    "timings without wall_ns": (
        _parquet(T, lambda d: d.drop("wall_ns")),
        T,
        "lacks column 'wall_ns'",
    ),  # fmt: skip
    "timings rows as float": (
        _parquet(T, lambda d: d.with_columns(pl.col("rows").cast(pl.Float64))),
        T,
        "column 'rows' has type Float64; expected integer",
    ),
    "timings kind as int": (
        _parquet(T, lambda d: d.with_columns(pl.lit(1).alias("kind"))),
        T,
        "column 'kind' has type Int32; expected string",
    ),
    "predictions empty file": (_raw(P, ""), P, "is not a readable Parquet file"),
    "timings garbage": (_raw(T, "PAR1 not really"), T, "is not a readable Parquet file"),
}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    """One damaged copy of run_small per case (made once for the five formats)."""
    root = tmp_path_factory.mktemp("damaged")
    out = {}
    for i, (case, (damage, _, _)) in enumerate(DAMAGE.items()):
        run = root / f"case{i}"
        shutil.copytree(RUN, run)
        damage(run)
        out[case] = run
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", DAMAGE.keys())
def test_damaged_run_is_exit_2_naming_file_and_field(runner, damaged, case, fmt):
    _, file, fragment = DAMAGE[case]
    run = damaged[case]
    r = runner.invoke(app, ["report", str(run), "-f", fmt])
    assert r.exit_code == 2, r.output
    assert file in r.output and str(run) in r.output, r.output
    assert fragment in r.output, r.output
    assert "Traceback" not in r.output and "internal error" not in r.output


@pytest.mark.parametrize(
    "case", ["metric a string", "predictions without t", "manifest 100000 deep"]
)
def test_second_run_of_a_comparison_is_validated_too(runner, damaged, case):
    _, file, fragment = DAMAGE[case]
    r = runner.invoke(app, ["report", str(RUN), str(damaged[case]), "-f", "markdown"])
    assert r.exit_code == 2, r.output
    assert file in r.output and str(damaged[case]) in r.output and fragment in r.output


def test_a_newer_format_says_upgrade_before_checking_fields(tmp_path):
    run = tmp_path / "r"
    shutil.copytree(RUN, run)
    _json(M, lambda m: m.update(format=2, strategies="a new layout"))(run)
    with pytest.raises(RunDirError, match="newer than this rtml understands"):
        read_run_dir(run)


# --------------------------------------------------------------------------- non-finite numbers


def _strict_json(text: str) -> Any:
    def refuse(c: str) -> Any:
        raise AssertionError(f"{c} in the JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def nan_run(tmp_path) -> Path:
    run = tmp_path / "nan"
    shutil.copytree(RUN, run)
    nan, inf = float("nan"), float("inf")  # json.dumps writes them as NaN and Infinity
    _json(X, _set("quality", "batch_daily", "brier", value=nan))(run)
    _json(X, _set("diff_to_baseline", "stream", "auc", "estimate", value=nan))(run)
    _json(X, _set("compute", "stream", "predict_single_row", "wall_ms", "p99", value=inf))(run)
    _json(M, _set("timings", "load", value=-inf))(run)
    assert "NaN" in (run / X).read_text() and "-Infinity" in (run / M).read_text()
    return run


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_in_metrics_is_read_as_null_and_every_format_renders(runner, nan_run, fmt):
    r = runner.invoke(app, ["report", str(nan_run), "-f", fmt])
    assert r.exit_code in (0, 1, 3), r.output
    assert "Traceback" not in r.output and "internal error" not in r.output
    if fmt == "json":
        rep = _strict_json(r.stdout)
        assert rep["metrics"]["quality"]["batch_daily"]["brier"] is None
        assert rep["manifest"]["timings"]["load"] is None


def test_reading_turns_non_finite_numbers_into_null(nan_run):
    run = read_run_dir(nan_run)
    assert run.metrics["quality"]["batch_daily"]["brier"] is None
    assert _strict_json(json.dumps(run.metrics)) and _strict_json(json.dumps(run.manifest))


def test_a_large_manifest_is_fine(runner, tmp_path):
    run = tmp_path / "big"
    shutil.copytree(RUN, run)
    _json(M, _set("warnings", value=["w" * 1000] * 20_000))(run)  # ~20 MB
    r = runner.invoke(app, ["report", str(run), "-f", "json"])
    assert r.exit_code == 0, r.output[-500:]


# --------------------------------------------------------------------------- properties

_GOOD_MANIFEST = json.loads((RUN / M).read_text())
_GOOD_METRICS = json.loads((RUN / X).read_text())
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, (*prefix, i))
    return out


_MANIFEST_PATHS = _paths(_GOOD_MANIFEST)[1:]
_METRICS_PATHS = _paths(_GOOD_METRICS)[1:]


def _put(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["manifest", "metrics"]), st.integers(min_value=0), _JSON)
@example("metrics", _METRICS_PATHS.index(("quality", "stream", "n")), float("nan"))
@example("manifest", _MANIFEST_PATHS.index(("format",)), 1e400)
@example("manifest", _MANIFEST_PATHS.index(("strategies", 0)), [])
@example("metrics", _METRICS_PATHS.index(("quality", "stream", "auc")), -1.7e308)
def test_any_value_anywhere_is_accepted_or_a_run_dir_error(which, index, value):
    paths = _MANIFEST_PATHS if which == "manifest" else _METRICS_PATHS
    path = paths[index % len(paths)]
    doc = _put(_GOOD_MANIFEST if which == "manifest" else _GOOD_METRICS, path, value)
    try:
        if which == "manifest":
            out = validate_manifest(doc, where="m")
        else:
            names = [s["name"] for s in _GOOD_MANIFEST["strategies"]]
            out = validate_metrics(doc, where="x", strategies=names)
    except RunDirError:
        return
    _strict_json(json.dumps(out))  # what passes is clean: finite numbers only
