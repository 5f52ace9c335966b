"""The command line as a whole: version, `python -m rtml_cli`, the installed `rtml`, help texts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtml_cli import __version__
from rtml_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_version(runner) -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"rtml {__version__}"


def test_python_dash_m(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "rtml_cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"rtml {__version__}"


def test_installed_rtml_replays_the_sample(tmp_path: Path) -> None:
    exe = shutil.which("rtml")
    assert exe, "the console script `rtml` is not installed (pip install -e .)"
    r = subprocess.run(
        [
            exe,
            "replay",
            str(ROOT / "sample_data" / "clickstream.parquet"),
            "--label-time-col",
            "click_time",
            "--limit",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(x) for x in r.stdout.splitlines()]
    assert sum(m["rtml_kind"] == "event" for m in msgs) == 20
    assert (
        "replay done" in r.stderr and "messages:" in r.stderr
    )  # summary on stderr, plain when piped
    r = subprocess.run(
        [exe, "replay", "missing.parquet"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_there_are_commands() -> None:
    assert {"replay", "sample"} <= set(_commands())


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help(runner, name: str) -> None:
    import typer.main

    cmd = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    assert (cmd.help or "").strip(), f"`rtml {name}` has no help text"
    r = runner.invoke(app, [name, "--help"])
    assert r.exit_code == 0, r.output
    assert f"rtml {name}" in r.output
    for param in cmd.params:
        hidden = getattr(param, "hidden", False)  # an older spelling, never listed
        if param.param_type_name == "option" and param.name != "help" and not hidden:
            assert (getattr(param, "help", None) or "").strip(), (
                f"`rtml {name} {param.opts[0]}` has no help"
            )


def test_reader_closing_the_pipe_stops_quietly() -> None:
    """`rtml replay t | head -1`: exit 0, no traceback, the summary says it stopped early."""
    exe = shutil.which("rtml")
    assert exe
    table = str(ROOT / "sample_data" / "clickstream.parquet")
    proc = subprocess.Popen(
        [exe, "replay", table, "--label-time-col", "click_time"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert json.loads(first)["rtml_kind"] == "event"
    assert "Traceback" not in err and "stopped early" in err
