"""Writing run directories: --force replaces only rtml's run dirs, dangerous and unwritable --out
fail before simulating, a killed replacement is recovered, write errors leave nothing behind,
glob characters in the folder name are names."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rtml_cli import runs
from rtml_cli.cli import app
from rtml_cli.errors import RtmlWarning, RunDirError, UsageError
from rtml_cli.runs import check_out, read_run_dir, recover, run_dir_problem, write_run_dir
from tests.test_compare_engine import small_table

RUN = Path(__file__).parent / "data" / "run_small"


@pytest.fixture(scope="module")
def small():
    return read_run_dir(RUN)


def write(path: Path, small, *, force: bool = False, **manifest_extra) -> Path:
    manifest = {**small.manifest, **manifest_extra}
    for key in ("tool", "format", "complete"):
        manifest.pop(key, None)
    return write_run_dir(
        path,
        manifest=manifest,
        predictions=small.predictions,
        timings=small.timings,
        metrics=small.metrics,
        force=force,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def dead_pid() -> int:
    """The PID of a process that has exited (and was reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# --------------------------------------------------------------------------- --force


def test_new_manifests_say_tool_rtml_and_force_replaces_a_run(tmp_path, small):
    out = write(tmp_path / "r", small)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tool"] == "rtml" and manifest["complete"] is True and manifest["format"] == 1
    assert run_dir_problem(out) is None
    write(out, small, force=True, created="second")
    assert read_run_dir(out).manifest["created"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no .old / .tmp left


def test_force_accepts_a_run_written_before_the_tool_marker_and_an_http_recording(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(RUN, old)  # committed run: format/complete/versions, no "tool"
    assert "tool" not in json.loads((old / "manifest.json").read_text())
    (old / "responses.parquet").write_bytes(b"PAR1")  # the HTTP recorder's extra file
    assert run_dir_problem(old) is None
    check_out(old, force=True)


def _web_app(p: Path) -> None:
    p.mkdir()
    (p / "manifest.json").write_text('{"name": "my app", "icons": []}')
    (p / "index.html").write_text("<html>")


def _run_plus(extra: str):
    def make(p: Path) -> None:
        shutil.copytree(RUN, p)
        (p / extra).write_text("mine")

    return make


def _run_with_subfolder(p: Path) -> None:
    shutil.copytree(RUN, p)
    (p / "plots").mkdir()


def _manifest_only(text: str):
    def make(p: Path) -> None:
        p.mkdir()
        (p / "manifest.json").write_text(text)

    return make


def _symlink_to_run(p: Path) -> None:
    real = p.parent / "real_run"
    shutil.copytree(RUN, real)
    p.symlink_to(real)


def _file(p: Path) -> None:
    p.write_text("a user's file")


NOT_RUN_DIRS = {
    "web app with manifest.json": (_web_app, "holds 'index.html'"),
    "run dir plus a user's notes": (_run_plus("notes.txt"), "holds 'notes.txt'"),
    "run dir with a subfolder": (_run_with_subfolder, "holds 'plots'"),
    "manifest not JSON": (_manifest_only("{not json"), "not a JSON object"),
    "manifest of another tool": (
        _manifest_only('{"format": 1, "complete": true}'),
        "not written by rtml",
    ),
    "manifest a list": (_manifest_only("[1, 2]"), "not a JSON object"),
    "manifest deeply nested": (_manifest_only("[" * 100_000 + "]" * 100_000), "not a JSON"),
    "empty folder": (lambda p: p.mkdir(), "has no manifest.json"),
    "symlink to a run dir": (_symlink_to_run, "symbolic link"),
    "a file": (_file, "not a folder"),
}


@pytest.mark.parametrize("make, reason", NOT_RUN_DIRS.values(), ids=NOT_RUN_DIRS.keys())
def test_force_refuses_anything_but_a_run_dir_and_touches_nothing(tmp_path, small, make, reason):
    target = tmp_path / "target"
    make(target)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError) as e:
        write(target, small, force=True)
    msg = str(e.value)
    assert str(target) in msg and reason in msg and "not an rtml run directory" in msg
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["target"] + (["real_run"] if (tmp_path / "real_run").exists() else [])
    )


def test_compare_force_on_a_web_app_is_exit_2_before_simulating(runner, tmp_path, monkeypatch):
    table = small_table(tmp_path, n=200)
    _web_app(tmp_path / "site")
    monkeypatch.setattr("rtml_cli.compare.prepare", _must_not_simulate)
    r = runner.invoke(app, ["compare", str(table), "--out", str(tmp_path / "site"), "--force"])
    assert r.exit_code == 2, r.output
    assert "is not an rtml run directory" in r.output and "index.html" in r.output
    assert (tmp_path / "site" / "index.html").read_text() == "<html>"


def _must_not_simulate(*a, **k):
    raise AssertionError("simulated although --out was refused")


# --------------------------------------------------------------------------- dangerous --out


@pytest.mark.parametrize("which", [".", "cwd", "..", "ancestor", "/", "home"])
def test_cwd_ancestors_root_and_home_are_refused_even_with_force(tmp_path, monkeypatch, which):
    work = tmp_path / "home" / "me" / "project"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "me"))
    out = {
        ".": ".",
        "cwd": str(work),
        "..": "..",
        "ancestor": str(tmp_path / "home"),
        "/": "/",
        "home": str(tmp_path / "home" / "me"),
    }[which]
    with pytest.raises(UsageError, match="a run is written into a folder of its own") as e:
        check_out(out, force=True)
    assert f"--out '{out}'" in str(e.value)


def test_out_dot_through_the_cli_is_exit_2_before_simulating(runner, tmp_path, monkeypatch):
    table = small_table(tmp_path, n=200)
    work = tmp_path / "w"
    work.mkdir()
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    monkeypatch.setattr("rtml_cli.compare.prepare", _must_not_simulate)
    r = runner.invoke(app, ["compare", str(table), "--out", ".", "--force"])
    assert r.exit_code == 2, r.output
    assert "is the working directory" in r.output
    assert (work / "keep.txt").read_text() == "keep"


# --------------------------------------------------------------------------- unwritable parent


def _read_only(folder: Path):
    real = runs.tempfile.mkdtemp

    def mkdtemp(*a, **k):
        if Path(k.get("dir", "")) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        return real(*a, **k)

    return mkdtemp


def test_read_only_parent_is_exit_2_naming_the_folder_before_simulating(
    runner, tmp_path, monkeypatch
):
    table = small_table(tmp_path, n=200)
    ro = tmp_path / "ro"
    ro.mkdir()
    # running as root, chmod cannot make a folder read-only: refuse the probe instead
    monkeypatch.setattr(runs.tempfile, "mkdtemp", _read_only(ro))
    monkeypatch.setattr("rtml_cli.compare.prepare", _must_not_simulate)
    r = runner.invoke(app, ["compare", str(table), "--out", str(ro / "deeper" / "run")])
    assert r.exit_code == 2, r.output
    assert f"folder '{ro}' is not writable" in r.output and "Permission denied" in r.output
    assert list(ro.iterdir()) == []  # the missing parents were not created


def test_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        check_out(tmp_path / "f" / "run")


def test_the_probe_leaves_nothing_behind(tmp_path):
    check_out(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- crash recovery


def _leftover(tmp_path: Path, kind: str, name: str, pid: int, content: str) -> Path:
    p = tmp_path / f".{name}.{kind}-{pid}"
    shutil.copytree(RUN, p)
    m = json.loads((p / "manifest.json").read_text())
    m["created"] = content
    (p / "manifest.json").write_text(json.dumps(m))
    return p


def test_killed_between_the_two_renames_restores_the_old_run(tmp_path, small):
    pid = dead_pid()
    _leftover(tmp_path, "old", "r", pid, "old run")
    _leftover(tmp_path, "tmp", "r", pid, "new run, never reported")
    with pytest.warns(RtmlWarning, match="interrupted") as caught:
        with pytest.raises(UsageError, match="already exists"):  # restored, so it exists
            check_out(tmp_path / "r")
    assert any("restored run directory" in str(w.message) for w in caught)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert read_run_dir(tmp_path / "r").manifest["created"] == "old run"


def test_next_run_into_the_same_parent_recovers_other_names_too(tmp_path, small):
    pid = dead_pid()
    _leftover(tmp_path, "old", "exp[1]", pid, "old run")
    with pytest.warns(RtmlWarning):
        write(tmp_path / "other", small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp[1]", "other"]
    assert read_run_dir(tmp_path / "exp[1]").manifest["created"] == "old run"


def test_killed_before_deleting_the_old_run_removes_it(tmp_path, small):
    pid = dead_pid()
    write(tmp_path / "r", small, created="new run")
    _leftover(tmp_path, "old", "r", pid, "old run")
    with pytest.warns(RtmlWarning, match="interrupted --force replacement"):
        notes = recover(tmp_path)
    assert notes and "removed" in notes[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert read_run_dir(tmp_path / "r").manifest["created"] == "new run"


def test_a_deletion_killed_half_way_is_finished_by_the_next_run(tmp_path, small, monkeypatch):
    out = write(tmp_path / "r", small, created="old run")
    real_unlink = os.unlink
    deleted = []

    def unlink(path, *a, **k):
        if Path(path).parent.name.startswith(".r.old-") and deleted:
            raise KeyboardInterrupt  # the user gives up while the old run is being deleted
        deleted.append(Path(path).name)
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(runs.os, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt):
        write(out, small, force=True, created="new run")
    monkeypatch.undo()
    assert deleted and "manifest.json" not in deleted  # the manifest goes last
    (old,) = tmp_path.glob(".r.old-*")
    old.rename(tmp_path / f".r.old-{dead_pid()}")  # as if the process had died there
    with pytest.warns(RtmlWarning, match="interrupted --force replacement"):
        recover(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert read_run_dir(out).manifest["created"] == "new run"


def test_killed_while_writing_the_temporary_dir_is_removed(tmp_path):
    pid = dead_pid()
    half = tmp_path / f".r.tmp-{pid}"
    half.mkdir()
    (half / runs.WRITING_MARKER).write_text("")
    (half / "predictions.parquet").write_bytes(b"PAR1 half")
    empty = tmp_path / f".q.tmp-{pid}"  # killed right after mkdir
    empty.mkdir()
    with pytest.warns(RtmlWarning, match="left by an interrupted run"):
        recover(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_leftover_names_that_are_not_rtml_dirs_are_never_touched(tmp_path):
    pid = dead_pid()
    mine = tmp_path / f".r.tmp-{pid}"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / runs.WRITING_MARKER).write_text("")
    old = tmp_path / f".s.old-{pid}"
    old.mkdir()
    (old / "manifest.json").write_text('{"name": "web"}')
    afile = tmp_path / f".t.tmp-{pid}"
    afile.write_text("a file, not a folder")
    before = snapshot(tmp_path)
    assert recover(tmp_path) == []
    assert snapshot(tmp_path) == before and not (tmp_path / "s").exists()


def test_leftovers_of_a_live_process_are_left_alone(tmp_path):
    live = os.getppid()  # pytest's parent: alive while we run
    _leftover(tmp_path, "old", "r", live, "being replaced right now")
    (tmp_path / f".r.tmp-{live}").mkdir()
    assert recover(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".r.old-{live}", f".r.tmp-{live}"]


def test_a_failed_second_rename_puts_the_old_run_back(tmp_path, small, monkeypatch):
    out = write(tmp_path / "r", small, created="old run")
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(src).name.startswith(".r.tmp-"):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(runs.os, "rename", rename)
    with pytest.raises(RunDirError, match="renaming it into place"):
        write(out, small, force=True, created="new run")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert read_run_dir(out).manifest["created"] == "old run"


# --------------------------------------------------------------------------- write errors


def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["write_parquet", "fsync", "mkdir"])
def test_disk_full_is_a_run_dir_error_and_the_old_run_is_intact(
    tmp_path, small, monkeypatch, where
):
    out = write(tmp_path / "r", small, created="old run")
    before = snapshot(tmp_path)
    if where == "write_parquet":
        monkeypatch.setattr(pl.DataFrame, "write_parquet", _no_space)
    elif where == "fsync":
        monkeypatch.setattr(runs.os, "fsync", _no_space)
    else:
        monkeypatch.setattr(Path, "mkdir", _no_space)
    with pytest.raises(RunDirError) as e:
        write(out, small, force=True, created="new run")
    monkeypatch.undo()
    msg = str(e.value)
    assert f"cannot write run directory '{out}'" in msg and "No space left on device" in msg
    assert snapshot(tmp_path) == before  # no half-written dir, old run untouched


def test_disk_full_through_the_cli_is_exit_2(runner, tmp_path, monkeypatch):
    table = small_table(tmp_path, n=200)
    monkeypatch.setattr(runs.os, "fsync", _no_space)
    out = tmp_path / "runs" / "r"
    r = runner.invoke(
        app, ["compare", str(table), "--out", str(out), "--strategies", "static", "--timing-sample", "3", "--warmup", "1d"]
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "No space left on device" in r.output and str(out) in r.output
    assert "Traceback" not in r.output
    assert list((tmp_path / "runs").iterdir()) == []


def test_non_finite_numbers_are_written_as_null(tmp_path, small):
    metrics = json.loads(json.dumps(small.metrics))
    metrics["quality"]["stream"]["auc"] = float("nan")
    out = write_run_dir(
        tmp_path / "r",
        manifest={**small.manifest, "peak_memory_mb": float("inf")},
        predictions=small.predictions,
        timings=small.timings,
        metrics=metrics,
    )
    strict = {"parse_constant": lambda c: pytest.fail(f"{c} written")}
    assert (
        json.loads((out / "metrics.json").read_text(), **strict)["quality"]["stream"]["auc"] is None
    )
    assert json.loads((out / "manifest.json").read_text(), **strict)["peak_memory_mb"] is None


# --------------------------------------------------------------------------- glob characters


@pytest.mark.parametrize("name", ["exp[1]", "a*b", "q?"])
def test_glob_characters_in_the_folder_name_are_a_name(runner, tmp_path, small, name):
    # siblings a glob would match: reading must not pick them up
    for decoy in ("exp1", "aXb", "q1"):
        shutil.copytree(RUN, tmp_path / decoy)
    out = write(tmp_path / name, small, created="this one")
    run = read_run_dir(out)
    assert run.manifest["created"] == "this one"
    assert run.predictions.height == small.predictions.height
    write(out, small, force=True, created="replaced")
    r = runner.invoke(app, ["report", str(out), "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["manifest"]["created"] == "replaced"


def test_compare_then_report_in_a_folder_named_exp_1(runner, tmp_path):
    table = small_table(tmp_path, n=200)
    out = tmp_path / "exp[1]"
    args = ["--strategies", "static", "--timing-sample", "3", "--warmup", "1d"]
    r = runner.invoke(app, ["compare", str(table), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["compare", str(table), "--out", str(out), "--force", *args])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out), "-f", "markdown"])
    assert r.exit_code == 0, r.output
    assert "static" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp[1]", "small.parquet"]
