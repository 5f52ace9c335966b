"""`rtml compare` flags that shape the run: --force, --inputs, --feature (windowed form), --calendar."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl

from rtml_cli.cli import app
from rtml_cli.compare import prepare
from rtml_cli.config import build_config
from rtml_cli.io import EVENT_TIME
from tests.test_compare_engine import small_table

FAST = ["--strategies", "batch:1d,static", "--timing-sample", "5", "--warmup", "1d"]


def test_force_replaces_a_run_dir_but_never_other_data(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "run"
    args = ["compare", str(table), "--out", str(out), "--key-col", "user", *FAST]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["options"]["timing_sample"] == 5

    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "already exists" in r.output and "--force" in r.output

    r = runner.invoke(app, [*args, "--force", "--timing-sample", "7"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "manifest.json").read_text())["options"]["timing_sample"] == 7
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")]

    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    r = runner.invoke(app, ["compare", str(table), "--out", str(other), "--force", *FAST])
    assert r.exit_code == 2
    assert "not an rtml run directory" in r.output
    assert (other / "keep.txt").read_text() == "precious"


def test_feature_flag_adds_a_windowed_aggregate(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--out",
            str(out),
            "--key-col",
            "user",
            "--feature",
            "user:*:count:2h",
            "--feature",
            ":x1:mean:1d:global_x1",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    feats = json.loads((out / "manifest.json").read_text())["config"]["features"]
    assert [f["name"] for f in feats] == ["user_count_2h", "global_x1"]
    assert feats[1]["key"] == []  # empty KEY: one global entity, not the table's key


def test_feature_flag_errors_name_the_fix(runner, tmp_path):
    table = small_table(tmp_path)
    r = runner.invoke(app, ["compare", str(table), "--feature", "user:x1:avg:1h", *FAST])
    assert r.exit_code == 2
    assert "Did you mean 'mean'?" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["compare", str(table), "--feature", "hour", *FAST])
    assert r.exit_code == 2 and "--calendar" in r.output
    r = runner.invoke(app, ["compare", str(table), "--calendar", "weekdays", *FAST])
    assert r.exit_code == 2 and "Allowed: hour, dow" in r.output


def test_calendar_features_are_request_time_in_every_view(tmp_path):
    table = small_table(tmp_path)
    cfg = build_config({}, strategies="batch:1d,stream:1d", warmup="1d", calendar=["hour", "dow"])
    cfg.roles.key = "user"
    prep = prepare(table, cfg)
    frame = prep.table.frame
    assert frame["event_hour"].to_list() == frame[EVENT_TIME].dt.hour().to_list()
    assert frame["event_dow"].to_list() == frame[EVENT_TIME].dt.weekday().to_list()
    assert "event_hour" in prep.features and "event_dow" in prep.features
    col = prep.features.index("event_hour")
    hours = frame[EVENT_TIME].dt.hour().to_numpy().astype(float)
    # batch serves a snapshot as of the cutoff, but the hour is the event's own (request time)
    for view in prep.views.values():
        np.testing.assert_array_equal(view.X[:, col], hours)


def test_calendar_from_config_and_clash_with_a_column(runner, tmp_path):
    path = tmp_path / "t.parquet"
    n = 200
    t0 = dt.datetime(2024, 1, 1)
    pl.DataFrame(
        {
            "ts": [t0 + dt.timedelta(hours=i) for i in range(n)],
            "event_hour": np.arange(n) % 7,
            "x": np.arange(n, dtype=float),
            "label": (np.arange(n) % 3 == 0),
        }
    ).write_parquet(path)
    (tmp_path / "rtml.toml").write_text('[data]\ncalendar = ["hour"]\nwarmup = "1d"\n')
    r = runner.invoke(app, ["compare", str(path), "-s", "static", "--timing-sample", "5"])
    assert r.exit_code == 2
    assert "'event_hour' is already a column" in r.output


def test_inputs_names_the_model_columns_and_the_old_flags_still_work(runner, tmp_path):
    table = small_table(tmp_path)
    roles = {}
    for name, flags in {
        "new": ["--inputs", "x1", "--request-inputs", "x1", "--timing-sample", "all"],
        "old": ["--features", "x1", "--request-features", "x1", "--timing", "all"],
    }.items():
        out = tmp_path / name
        args = ["compare", str(table), "--key-col", "user", "-o", str(out), *FAST[:2], *flags]
        r = runner.invoke(app, [*args, "--warmup", "1d"])
        assert r.exit_code == 0, r.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["options"]["timing_sample"] == "all"
        roles[name] = manifest["config"]["roles"]
    assert roles["new"] == roles["old"]
    assert roles["new"]["features"] == ["x1"] and roles["new"]["request_features"] == ["x1"]


def test_an_input_flag_and_its_old_spelling_together_are_refused(runner, tmp_path):
    table = small_table(tmp_path)
    out = tmp_path / "run"
    args = ["compare", str(table), "-o", str(out), "--inputs", "x1", "--features", "x2", *FAST]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--features is the older name of --inputs" in r.output
    assert not out.exists()


def test_help_lists_inputs_and_hides_the_old_spellings(runner):
    r = runner.invoke(app, ["compare", "--help"], terminal_width=200)
    assert r.exit_code == 0
    assert "--inputs" in r.output and "--request-inputs" in r.output
    for old in ("--features ", "--request-features", "--timing "):
        assert old not in r.output
