"""--github-summary appends to $GITHUB_STEP_SUMMARY, but never into the run it reports and
never to something that is not a regular file (a FIFO would block the job forever)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gh")
    table, run = base / "c.parquet", base / "run"
    runner = CliRunner()
    assert (
        runner.invoke(app, ["sample", "clickstream", "--rows", "300", "-o", str(table)]).exit_code
        == 0
    )
    res = runner.invoke(
        app, ["compare", str(table), "-s", "stream:1d", "--timing-sample", "10", "-o", str(run)]
    )
    assert res.exit_code == 0, res.output
    return run


def test_summary_path_inside_the_run_is_refused(run_dir: Path, monkeypatch) -> None:
    target = run_dir / "metrics.json"
    before = target.read_bytes()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    res = CliRunner().invoke(app, ["report", str(run_dir), "--github-summary"])
    assert res.exit_code == 2, res.output
    assert "GITHUB_STEP_SUMMARY" in res.output
    assert target.read_bytes() == before
    assert sorted(os.listdir(run_dir)) == sorted(
        ["manifest.json", "metrics.json", "predictions.parquet", "timings.parquet"]
    )


def test_summary_path_that_is_a_fifo_is_refused(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "summary"
    os.mkfifo(fifo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifo))
    res = CliRunner().invoke(app, ["report", str(run_dir), "--github-summary"])
    assert res.exit_code == 2, res.output
    assert "regular file" in res.output


def test_summary_is_appended_to_a_regular_file(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = CliRunner().invoke(app, ["report", str(run_dir), "--github-summary"])
    assert res.exit_code == 0, res.output
    text = summary.read_text()
    assert text.startswith("earlier step\n") and len(text) > len("earlier step\n") + 100
