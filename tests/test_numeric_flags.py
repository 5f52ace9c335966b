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
