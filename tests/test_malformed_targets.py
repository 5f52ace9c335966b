"""A malformed replay URL (an unclosed or invalid [IPv6] host) is a usage error, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app


@pytest.mark.parametrize(
    "target", ["http://[::1", "https://[x]:80/p", "redis://[::1/s", "redis://[x]/s"]
)
def test_malformed_url_target_is_a_usage_error(tmp_path: Path, target: str) -> None:
    table = tmp_path / "c.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "50", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    res = CliRunner().invoke(
        app,
        ["replay", str(table), "--label-time-col", "click_time", "--to", target, "--limit", "2"],
    )
    assert res.exit_code == 2, res.output
    assert "not a valid" in res.output
