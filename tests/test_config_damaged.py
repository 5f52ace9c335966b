"""A damaged rtml.toml (too deeply nested, not UTF-8) is a config error, exit 2, never exit 70."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtml_cli.config import load_toml
from rtml_cli.errors import ConfigError


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests"),
        (b'[data]\ntime = "\xff"\n', "UTF-8"),
    ],
)
def test_damaged_config_is_a_config_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "rtml.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_toml(path)


def test_report_checks_of_the_wrong_type_say_check_expressions(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rtml_cli.cli import app

    table = tmp_path / "c.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "100", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    (tmp_path / "rtml.toml").write_text("[report]\nchecks = [1]\n")
    res = CliRunner().invoke(app, ["compare", str(table), "-o", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert "check expressions" in res.output
