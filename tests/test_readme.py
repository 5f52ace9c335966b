"""The README is tested: its main command runs, and every `rtml ...` line in it parses."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from rtml_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def _rtml_lines() -> list[str]:
    """Every `rtml ...` command in the README's bash blocks (continuations joined)."""
    out = []
    for block in _blocks():
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            for part in re.split(r"\s*&&\s*", line):
                if part.startswith("rtml "):
                    out.append(part)
    return out


def test_readme_starts_with_the_two_commands():
    first = _blocks()[0]
    cmds = [ln for ln in first.splitlines() if ln and not ln.startswith("#")]
    assert cmds[0].startswith("pip install . && rtml compare sample_data/clickstream.parquet")
    assert cmds[1] == "pip install -e '.[test]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pip install" in ci and "-e '.[test]'" in ci and "python3 -m pytest" in ci


@pytest.mark.parametrize("line", _rtml_lines())
def test_every_readme_command_parses(line):
    """Options and arguments of each documented command exist (parsed, not run)."""
    args = shlex.split(line)[1:]
    cmd = typer.main.get_command(app)
    sub = cmd.get_command(None, args[0])  # type: ignore[attr-defined]
    assert sub is not None, f"README uses unknown command {args[0]!r}"
    sub.make_context(args[0], args[1:], resilient_parsing=False)


@pytest.mark.slow
def test_readme_main_command_runs(tmp_path):
    """The first README command (minus the install) on the shipped sample, via the real `rtml`."""
    first = [ln for ln in _blocks()[0].splitlines() if ln.startswith("pip install . &&")][0]
    steps = [s for s in re.split(r"\s*&&\s*", first) if s.startswith("rtml ")]
    assert [s.split()[1] for s in steps] == ["compare", "report"]
    run_dir = tmp_path / "demo"
    rtml = Path(sys.executable).with_name("rtml")
    for step in steps:
        argv = [str(rtml) if rtml.exists() else "rtml"] + [
            str(run_dir) if a == "runs/demo" else a for a in shlex.split(step)[1:]
        ]
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    assert "Verdict" in r.stdout and "Fresh features" in r.stdout
    assert (run_dir / "metrics.json").exists()
