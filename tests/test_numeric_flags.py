"""Out-of-range numeric flags are usage errors (exit 2), never an internal error (exit 70)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app


@pytest.mark.parametrize("command", ["sample", "compare"])
def test_a_negative_seed_is_a_usage_error(tmp_path: Path, command: str) -> None:
    if command == "sample":
        args = ["sample", "clickstream", "--rows", "20", "--seed", "-1"]
        args += ["-o", str(tmp_path / "s.parquet")]
    else:
        table = tmp_path / "t.parquet"
        ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "200", "-o", str(table)])
        assert ok.exit_code == 0, ok.output
        args = ["compare", str(table), "--seed", "-1", "-o", str(tmp_path / "run")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "--seed" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["t.parquet"] if command == "compare" else []
    )


@pytest.mark.parametrize("value", ["99999999w", "99999999999d", float("inf"), float("nan")])
def test_an_endless_or_undefined_duration_is_a_usage_error(value: object) -> None:
    from rtml_cli.durations import parse_duration
    from rtml_cli.errors import UsageError

    with pytest.raises(UsageError, match="window"):
        parse_duration(value, what="window")  # type: ignore[arg-type]


def test_a_feature_window_beyond_10000_years_is_exit_2(tmp_path: Path) -> None:
    table = tmp_path / "t.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "50", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    out = tmp_path / "f.parquet"
    args = ["features", str(table), "-o", str(out), "--feature", "user_id:click:mean:99999999w"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "10,000 years" in res.output
    assert not out.exists()


def test_features_success_line_escapes_the_path(tmp_path: Path) -> None:
    table = tmp_path / "t.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "50", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    out = tmp_path / "e\x1b[2J.parquet"
    args = ["features", str(table), "-o", str(out), "--feature", "user_id:click:mean:1h"]
    res = CliRunner().invoke(app, args, color=True)
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\\x1b[2J" in res.stdout


@pytest.mark.parametrize("seconds, duration", [("300", "5m"), ("90", "1m30s")])
def test_a_plain_number_given_for_a_duration_is_seconds(seconds: str, duration: str) -> None:
    table = str(Path(__file__).resolve().parent.parent / "sample_data" / "clickstream.parquet")
    base = ["replay", table, "--label-time-col", "click_time", "--speed", "36000", "--dry-run"]
    plans = [CliRunner().invoke(app, [*base, "--max-gap", v]) for v in (seconds, duration)]
    assert [p.exit_code for p in plans] == [0, 0], plans[0].output
    assert plans[0].stdout == plans[1].stdout
    assert f"idle gaps > {duration}" in plans[0].stdout
