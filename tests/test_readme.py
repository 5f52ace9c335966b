"""The README is tested: its main command runs as written, and every other `rtml ...` line in it
runs, in order, on small versions of the tables it names."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from rtml_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SHARED = ROOT.parent / "shared" / "data"
runner = CliRunner()


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def _rtml_lines() -> list[str]:
    """Every `rtml ...` command in the README's bash blocks (continuations joined), in order."""
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
    assert "-e '.[test]'" in ci and "python3 -m pytest" in ci


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


# ---- every command, on small inputs -----------------------------------------------------------

SMALL_ROWS = "1500"
#: Shared tables whose span is cut to its first days: the README retrains on elec2 daily
#: (zero config, stream:1d), and a day per retrain over its 2.5 years is ~940 fits whatever
#: the row count; 60 days still hold every kind's warm-up and many retrains.
SPAN_DAYS = {"elec2.parquet": 60}


def _every_kth(src: Path, dst: Path, rows: int, days: int | None = None) -> None:
    """A small table with the same columns and the same span (or its first ``days``): every
    k-th row of ``src``."""
    df = pl.read_parquet(src)
    if days is not None:
        time_col = df.columns[0]  # the shared tables' first column is their time
        df = df.filter(pl.col(time_col) < pl.col(time_col).min() + pl.duration(days=days))
    k = max(1, df.height // rows)
    dst.parent.mkdir(parents=True, exist_ok=True)
    df.gather_every(k).write_parquet(dst)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory laid out like the repository, with small tables of the same shape.

    ``sample_data/`` holds a thinned copy of the shipped sample (and its rtml.toml),
    ``../shared/data/`` thinned copies of the real tables (elec2 also cut to its first days),
    ``examples/`` the repo's examples.
    """
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    (work / "sample_data").mkdir(parents=True)
    _every_kth(
        ROOT / "sample_data" / "clickstream.parquet",
        work / "sample_data" / "clickstream.parquet",
        2000,
    )
    shutil.copy(ROOT / "sample_data" / "rtml.toml", work / "sample_data" / "rtml.toml")
    for table in sorted(SHARED.glob("*.parquet")):
        _every_kth(table, root / "shared" / "data" / table.name, 2000, SPAN_DAYS.get(table.name))
    if (ROOT / "examples").is_dir():
        shutil.copytree(ROOT / "examples", work / "examples")
    return work


def _small(args: list[str]) -> list[str]:
    """The README's arguments with the work made small: fewer generated rows, a faster pace
    (the tables keep their week-long span), fewer single-row latency calls."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--rows":
            out[i + 1] = SMALL_ROWS
        elif a == "--speed":
            out[i + 1] = str(float(out[i + 1]) * 1000)
        elif a == "--rate":
            out[i + 1] = str(float(out[i + 1]) * 10)
        elif a == "--timing-sample":
            out[i + 1] = "20"
    if out[0] in ("compare", "sweep") and "--timing-sample" not in out:
        out += ["--timing-sample", "20"]
    return out


def _outputs(args: list[str]) -> list[str]:
    """Paths a command says it writes: -o/--out/--output, and replay's file --to."""
    paths = []
    for i, a in enumerate(args[:-1]):
        if a in ("-o", "--out", "--output") or (a == "--to" and "://" not in args[i + 1]):
            if args[i + 1] != "-":
                paths.append(args[i + 1])
    return paths


# The commands run models as a user runs them: a model's numeric RuntimeWarning (an unscaled
# SGDClassifier overflowing exp on the thinned table) is shown, not raised as the suite's
# "error" filter would make it (rtml would then report the model as failing).
@pytest.mark.filterwarnings("default::RuntimeWarning")
def test_every_readme_command_runs_on_small_inputs(sandbox: Path, monkeypatch: pytest.MonkeyPatch):
    """Each `rtml` line of the README, in order (a line may use what an earlier one wrote):
    exit 0 (or 1 for a line with a --check: a gate may fail on small data), no traceback, and
    every file it says it writes exists afterwards."""
    monkeypatch.chdir(sandbox)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    failures = []
    for line in _rtml_lines():
        args = _small(shlex.split(line)[1:])
        if "--force" not in args and args[0] in ("compare",):
            for p in _outputs(args):
                if os.path.exists(p):  # the main line ran already (README order)
                    args.append("--force")
        r = runner.invoke(app, args, catch_exceptions=False)
        allowed = {0, 1} if ("-c" in args or "--check" in args) else {0}
        problems = []
        if r.exit_code not in allowed:
            problems.append(f"exit {r.exit_code}")
        if "Traceback" in r.output:
            problems.append("traceback")
        missing = [p for p in _outputs(args) if not os.path.exists(p)]
        if missing:
            problems.append(f"did not write {missing}")
        if problems:
            failures.append(f"{line}\n  -> {', '.join(problems)}\n{r.output[-1500:]}")
    assert not failures, "\n\n".join(failures)
