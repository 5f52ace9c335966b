"""compare refuses a run directory that lies in its input table or holds one of its files."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from rtml_cli.cli import app


def _table(path: Path) -> Path:
    res = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "300", "-o", str(path)])
    assert res.exit_code == 0, res.output
    return path


def test_run_dir_inside_the_table_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    _table(folder / "part.parquet")
    for table in (str(folder), str(folder / "*.parquet")):
        res = CliRunner().invoke(app, ["compare", table, "-o", str(folder / "run.parquet")])
        assert res.exit_code == 2, res.output
        assert "input" in res.output
        assert sorted(p.name for p in folder.iterdir()) == ["part.parquet"]


def test_table_inside_the_run_dir_is_not_replaced_by_force(tmp_path: Path) -> None:
    table = _table(tmp_path / "c.parquet")
    run = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["compare", str(table), "-s", "stream:1d", "--timing-sample", "10", "-o", str(run)]
    )
    assert res.exit_code == 0, res.output
    inner = run / "predictions.parquet"
    before = inner.read_bytes()
    res = CliRunner().invoke(
        app, ["compare", str(inner), "--time-col", "t", "-o", str(run), "--force"]
    )
    assert res.exit_code == 2, res.output
    assert "inside the run directory" in res.output
    assert inner.read_bytes() == before
    shutil.rmtree(run)
