"""A retrain_every so short that its cutoff grid cannot be held is a usage error, exit 2 (it
was a MemoryError, exit 70)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_microsecond_retrain_grid_is_a_usage_error(tmp_path: Path, jobs: str) -> None:
    table = tmp_path / "c.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "300", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    run = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["compare", str(table), "-s", "batch:1us,stream:1d", "--jobs", jobs, "-o", str(run)],
    )
    assert res.exit_code == 2, res.output
    assert "retrain_every 1us" in res.output and "batch" in res.output
    assert not run.exists()
