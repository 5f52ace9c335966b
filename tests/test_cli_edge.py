"""The CLI edge: one exit code per meaning, no traceback for a user's mistake, warnings shown once."""

from __future__ import annotations

import datetime as dt
import errno
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.errors import EXIT_BAD_INPUT, EXIT_INTERNAL


def _boom(exc: BaseException):
    def raiser(*args, **kwargs):
        raise exc

    return raiser


def test_a_bug_exits_70_with_one_line_and_no_traceback(runner, monkeypatch):
    monkeypatch.delenv("RTML_DEBUG", raising=False)
    monkeypatch.setattr("rtml_cli.report.run_report", _boom(ZeroDivisionError("division by zero")))
    r = runner.invoke(app, ["report", "anything"])
    assert r.exit_code == EXIT_INTERNAL == 70
    assert "internal error: ZeroDivisionError: division by zero" in r.output
    assert "--debug" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_prints_the_traceback(runner, monkeypatch, how):
    monkeypatch.setattr("rtml_cli.report.run_report", _boom(KeyError("oops")))
    if how == "env":
        monkeypatch.setenv("RTML_DEBUG", "1")
        args = ["report", "x"]
    else:
        monkeypatch.delenv("RTML_DEBUG", raising=False)
        args = ["--debug", "report", "x"]
    r = runner.invoke(app, args)
    assert r.exit_code == 70
    assert "Traceback (most recent call last)" in r.output and "KeyError" in r.output


def test_a_full_disk_is_bad_input_naming_the_file(runner, monkeypatch):
    err = OSError(errno.ENOSPC, "No space left on device", "/data/out/report.html")
    monkeypatch.setattr("rtml_cli.report.run_report", _boom(err))
    r = runner.invoke(app, ["report", "x"])
    assert r.exit_code == EXIT_BAD_INPUT
    assert "'/data/out/report.html'" in r.output and "No space left on device" in r.output


def test_running_out_of_memory_is_bad_input_not_a_bug(runner, monkeypatch):
    monkeypatch.setattr("rtml_cli.report.run_report", _boom(MemoryError()))
    r = runner.invoke(app, ["report", "x"])
    assert r.exit_code == EXIT_BAD_INPUT and "out of memory" in r.output


def test_user_code_calling_sys_exit_is_not_success(runner, monkeypatch):
    monkeypatch.setattr("rtml_cli.report.run_report", _boom(SystemExit(0)))
    r = runner.invoke(app, ["report", "x"])
    assert r.exit_code == EXIT_BAD_INPUT
    assert "sys.exit(0)" in r.output


def test_control_characters_in_an_error_never_reach_the_terminal(runner):
    r = runner.invoke(app, ["report", "no\x1b[2Jsuch\x07dir"])
    assert r.exit_code == EXIT_BAD_INPUT
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert "no\\x1b[2Jsuch\\x07dir" in r.output


@pytest.mark.slow
def test_a_model_that_warns_finishes_and_shows_its_warning_once(tmp_path):
    """A foreign warning used to be re-shown inside the block recording it: an endless loop."""
    (tmp_path / "noisy.py").write_text(
        textwrap.dedent(
            """
            import warnings
            from sklearn.linear_model import SGDClassifier

            class Noisy(SGDClassifier):
                def fit(self, X, y, **kw):
                    warnings.warn("fitting a noisy model", UserWarning)
                    return super().fit(X, y, **kw)

            def make_model():
                return Noisy(loss="log_loss", random_state=0)
            """
        )
    )
    n = 600
    pl.DataFrame(
        {
            "ts": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
            "x": [float(i % 7) for i in range(n)],
            "y": [int(i % 7 > 3) for i in range(n)],
        }
    ).write_parquet(tmp_path / "t.parquet")
    r = subprocess.run(
        [sys.executable, "-m", "rtml_cli", "compare", str(tmp_path / "t.parquet"),
         "--time-col", "ts", "--label-col", "y",
         "--model", f"{tmp_path / 'noisy.py'}:make_model", "-s", "stream:2d,static",
         "--timing-sample", "10", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("fitting a noisy model") == 1
    assert "UserWarning" in r.stderr and (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize(
    "command", ["replay", "compare", "report", "sample", "features", "export flink"]
)
def test_help_text_keeps_its_brackets(runner, command):
    """Rich reads '[...]' in help as markup: '[[feature]]' printed as '[]'."""
    r = runner.invoke(app, [*command.split(), "--help"], terminal_width=100)
    assert r.exit_code == 0
    assert "[]" not in r.output
