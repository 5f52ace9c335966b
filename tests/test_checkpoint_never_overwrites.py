"""A --checkpoint path that exists is rewritten only if it holds an rtml checkpoint.

A replay rewrites its checkpoint as it goes, also with --resume-from; naming the input table,
a report or any other file there destroyed it without --force.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app

URL = "http://127.0.0.1:9/events"  # never contacted: the checks come first


def _replay(table: Path, ck: Path, *extra: str) -> object:
    return CliRunner().invoke(
        app,
        ["replay", str(table), "--label-time-col", "click_time", "--limit", "5"]
        + ["--to", URL, "--retries", "0", "--checkpoint", str(ck), *extra],
    )


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    path = tmp_path / "c.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "50", "-o", str(path)])
    assert ok.exit_code == 0, ok.output
    return path


@pytest.mark.parametrize("extra", [(), ("--resume-from", "0")])
def test_the_input_table_as_checkpoint_is_refused(table: Path, extra: tuple[str, ...]) -> None:
    before = table.read_bytes()
    res = _replay(table, table, *extra)
    assert res.exit_code == 2, res.output
    assert "not a valid rtml checkpoint" in res.output
    assert table.read_bytes() == before


@pytest.mark.parametrize("content", ['{"a": 1}\n{"b": 2}\n', "notes\n", '{"target": "x"}'])
def test_a_foreign_file_is_never_rewritten(table: Path, tmp_path: Path, content: str) -> None:
    ck = tmp_path / "mine.json"
    ck.write_text(content)
    res = _replay(table, ck, "--resume-from", "0")
    assert res.exit_code == 2, res.output
    assert ck.read_text() == content


def test_a_link_or_fifo_is_refused(table: Path, tmp_path: Path) -> None:
    link, fifo = tmp_path / "link.json", tmp_path / "fifo.json"
    link.symlink_to(table)
    os.mkfifo(fifo)
    for ck in (link, fifo):
        res = _replay(table, ck, "--resume-from", "0")
        assert res.exit_code == 2, res.output
    assert link.is_symlink() and fifo.is_fifo()
