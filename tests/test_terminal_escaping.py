"""User text reaching a terminal is escaped: no live control sequence, no Rich markup crash."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli import cli_replay
from rtml_cli.cli import app


class _TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("value", ["out[/bold].ndjson", "e\x1b[2Jz.ndjson", "a\x9b31mb"])
def test_summary_table_on_a_terminal_escapes_user_paths(monkeypatch, value: str) -> None:
    err = _TtyStringIO()
    monkeypatch.setattr("sys.stderr", err)
    cli_replay._render_pairs("replay done", [("sink", f"ndjson -> {value}")])
    text = err.getvalue()
    assert "\x1b[2J" not in text and "\x9b" not in text
    assert "[/bold]" in text or "\\x1b[2J" in text or "\\x9b" in text


def test_sample_success_line_escapes_the_path(tmp_path: Path) -> None:
    target = tmp_path / "y\x1b[31mred.csv"
    res = CliRunner().invoke(
        app, ["sample", "clickstream", "--rows", "50", "-o", str(target)], color=True
    )
    assert res.exit_code == 0, res.output
    assert target.exists()
    assert "\x1b" not in res.output
    assert "\\x1b[31mred.csv" in res.output


def test_compare_summary_escapes_strategy_names_and_run_path(tmp_path: Path) -> None:
    table = tmp_path / "c.parquet"
    ok = CliRunner().invoke(app, ["sample", "clickstream", "--rows", "300", "-o", str(table)])
    assert ok.exit_code == 0, ok.output
    run = tmp_path / "run[/i]"
    res = CliRunner().invoke(
        app,
        ["compare", str(table), "-s", "x[/b]=stream:1d", "--timing-sample", "10", "-o", str(run)],
        color=True,
    )
    assert res.exit_code == 0, res.output
    assert "x[/b]" in res.stdout


def test_progress_bar_on_a_terminal_escapes_strategy_names() -> None:
    from rtml_cli.progress import StrategyProgress

    with StrategyProgress(True, ["x[/b]", "e\x1b[2J"], 10, tty=True) as bars:
        tick = bars.callback("x[/b]")
        assert tick is not None
        tick(5)
        bars.finished("x[/b]")


class _TtyBytesOut:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        pass


def test_replay_ndjson_on_a_terminal_escapes_c1_and_bidi(tmp_path: Path, monkeypatch) -> None:
    import datetime as dt
    import json

    import polars as pl

    from rtml_cli.io import Roles
    from rtml_cli.replay import ReplayOptions, replay

    table = tmp_path / "t.parquet"
    value = "a\x1b[2J\x9bb\u202ec\x7f"
    pl.DataFrame(
        {"ts": [dt.datetime(2024, 1, 1)] * 2, "s": [value, "ok"], "label": [0, 1]}
    ).write_parquet(table)
    out = _TtyBytesOut()
    monkeypatch.setattr("sys.stdout", out)
    replay(str(table), Roles(time="ts", label="label"), ReplayOptions(), to="-")
    raw = out.buffer.getvalue()
    for bad in (b"\x1b", b"\xc2\x9b", b"\xe2\x80\xae", b"\x7f"):
        assert bad not in raw
    events = [json.loads(line) for line in raw.decode().splitlines()]
    assert value in [e.get("s") for e in events]  # the same string to a JSON reader
