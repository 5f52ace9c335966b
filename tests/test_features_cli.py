"""`rtml features`: every event's point-in-time feature values, written safely.

The values themselves are pinned by tests/test_features.py; these tests pin what the command
adds: roles read as a replay reads them, event ids, column names, the batch view, calendar
parts and the file-safety rules.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app
from rtml_cli.features_cli import compute_features, resolve_job

T0 = dt.datetime(2024, 1, 1)
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

runner = CliRunner()


def _table(tmp_path: Path) -> Path:
    """Five events of user a (two tied at 00:30) and one of user b (tied with a at 01:00)."""
    minutes = [0, 30, 30, 60, 60, 130]
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(minutes=m) for m in minutes],
            "user": ["a", "a", "a", "a", "b", "a"],
            "x": [1.0, 2.0, 4.0, 8.0, 32.0, 16.0],
            "y": [1, 0, 1, 1, 1, 0],
        }
    )
    path = tmp_path / "events.parquet"
    df.write_parquet(path)
    return path


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_fresh_values_exclude_ties_and_wait_for_labels(tmp_path: Path) -> None:
    table = _table(tmp_path)
    out = tmp_path / "f.parquet"
    code, text = _run(
        "features",
        str(table),
        "-o",
        str(out),
        "--time-col",
        "ts",
        "--label-col",
        "y",
        "--key-col",
        "user",
        "--label-delay",
        "45m",
        "--feature",
        "user:x:sum:1h",
        "--feature",
        "user:y:sum:2h:labels",
        "--feature",
        ":*:count:1h:everyone",
        "--calendar",
        "hour,dow",
    )
    assert code == 0, text
    assert "wrote" in text and "6 events" in text
    got = pl.read_parquet(out)
    assert got.columns == [
        "rtml_event_id",
        "user_x_sum_1h",
        "labels",
        "everyone",
        "event_hour",
        "event_dow",
    ]
    assert got["rtml_event_id"].to_list() == [0, 1, 2, 3, 4, 5]
    assert got["user_x_sum_1h"].to_list() == [0.0, 1.0, 1.0, 7.0, 0.0, 0.0]
    # only event 0's label (arrived 00:45) is known before 01:00; at 02:10 labels of events
    # 0..3 have arrived (00:45, 01:15, 01:15, 01:45) but event 0 is out of [00:10, 02:10)
    assert got["labels"].to_list() == [0.0, 0.0, 0.0, 1.0, 0.0, 2.0]
    assert got["everyone"].to_list() == [0, 1, 1, 3, 3, 0]
    assert got["event_hour"].to_list() == [0, 0, 0, 1, 1, 2]
    assert got["event_dow"].to_list() == [1] * 6  # 2024-01-01 was a Monday


def test_batch_view_as_of_the_cutoff(tmp_path: Path) -> None:
    table = _table(tmp_path)
    out = tmp_path / "f.csv"
    code, text = _run(
        "features",
        str(table),
        "-o",
        str(out),
        "--time-col",
        "ts",
        "--label-col",
        "y",
        "--key-col",
        "user",
        "--feature",
        "user:x:sum:2h",
        "--as-of-cutoff",
        "1h",
    )
    assert code == 0, text
    got = pl.read_csv(out)
    # cutoffs 00:00, 00:00, 00:00, 01:00, 01:00 (b), 02:00
    assert got["user_x_sum_2h"].to_list() == [0.0, 0.0, 0.0, 7.0, 0.0, 15.0]


def test_sample_config_features_are_the_configs_three(tmp_path: Path) -> None:
    job = resolve_job(SAMPLE / "clickstream.parquet", config=SAMPLE / "rtml.toml")
    assert [s.name for s in job.windowed] == ["user_ctr_2h", "user_cat_clicks_3h", "user_views_1h"]
    assert job.roles.label_time == "click_time"
    frame = compute_features(job)
    assert frame.columns == job.columns()
    assert frame["rtml_event_id"].dtype == pl.Int64
    assert frame.height == 50_000
    assert frame["user_views_1h"].min() == 0 and frame["user_views_1h"].max() > 0


def test_file_safety(tmp_path: Path) -> None:
    table = _table(tmp_path)
    out = tmp_path / "f.parquet"
    out.write_text("precious")
    args = ["features", str(table), "--time-col", "ts", "--feature", "user:x:sum:1h"]
    code, text = _run(*args, "-o", str(out))
    assert code == 2 and "already exists" in text and "--force" in text
    assert out.read_text() == "precious"
    code, text = _run(*args, "-o", str(out), "--force")
    assert code == 0, text
    assert pl.read_parquet(out).height == 6
    assert not list(tmp_path.glob(".f.parquet.tmp-*"))
    # the input itself, even with --force
    code, text = _run(*args, "-o", str(table), "--force")
    assert code == 2 and "is the input file" in text
    assert pl.read_parquet(table).height == 6
    code, text = _run(*args, "-o", str(tmp_path / "f.xlsx"))
    assert code == 2 and ".parquet" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no feature to compute"),
        (["--feature", "user:nope:sum:1h"], "'nope' not found"),
        (["--feature", "user:x:avg:1h"], "Did you mean 'mean'"),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, extra: list[str], message: str) -> None:
    table = _table(tmp_path)
    code, text = _run(
        "features", str(table), "--time-col", "ts", "-o", str(tmp_path / "o.parquet"), *extra
    )
    assert code == 2
    assert message in " ".join(text.split())
    assert not (tmp_path / "o.parquet").exists()


def test_a_feature_over_an_ignored_column_is_refused(tmp_path: Path) -> None:
    table = _table(tmp_path)
    (tmp_path / "rtml.toml").write_text(
        '[data]\ntime = "ts"\nkey = "user"\nignore = ["x"]\n\n'
        '[[feature]]\nname = "leaky"\ncolumn = "x"\nagg = "sum"\nwindow = "1h"\n'
    )
    code, text = _run("features", str(table), "-o", str(tmp_path / "o.parquet"))
    assert code == 2
    assert "feature 'leaky'" in text and "ignored" in text
