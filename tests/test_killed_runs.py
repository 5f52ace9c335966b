"""A run ended by SIGTERM (kill, timeout, a cancelled CI job) cleans up like Ctrl-C; a run
killed outright (SIGKILL) leaves a temporary file that the next run into the same target removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rtml_cli.safe_write import AtomicFile, remove_stale_temps

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "clickstream.parquet"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sigterm_mid_replay_to_a_file_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    out = tmp_path / "events.ndjson"
    out.write_text("my old data\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtml_cli", "replay", str(SAMPLE), "--rate", "200",
         "--to", str(out), "--force"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".events.ndjson.tmp-") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.read_text() == "my old data\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.ndjson"], err
    assert "Traceback" not in err


def test_the_next_run_removes_temps_of_dead_processes_only(tmp_path):
    target = tmp_path / "out.parquet"
    dead = tmp_path / f".out.parquet.tmp-{_dead_pid()}"
    alive = tmp_path / f".out.parquet.tmp-{os.getppid()}"  # a live process (our parent)
    other = tmp_path / ".other.parquet.tmp-1"
    linked = tmp_path / f".out.parquet.tmp-{_dead_pid()}0"
    for p in (dead, alive, other):
        p.write_text("partial")
    linked.symlink_to(other)
    assert remove_stale_temps(target) == [dead]
    assert not dead.exists() and alive.exists() and other.exists() and linked.is_symlink()
    dead.write_text("partial")
    f = AtomicFile(target)
    tmp = f.open()
    assert not dead.exists() and tmp.exists()
    f.discard()
    assert not tmp.exists() and not target.exists()


def test_an_unwritable_target_is_named_not_its_temporary_file(runner, tmp_path):
    from rtml_cli.cli import app

    target = tmp_path / "no" / "such" / "dir" / "x.parquet"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "100", "-o", str(target)])
    assert r.exit_code == 2, r.output
    assert str(target) in r.output and ".tmp-" not in r.output


def test_replay_with_start_only_names_start_only(runner, tmp_path):
    from rtml_cli.cli import app

    r = runner.invoke(app, ["replay", str(SAMPLE), "--start", "2030-01-01", "--dry-run"])
    assert r.exit_code == 2
    assert "at or after --start 2030-01-01" in r.output and "None" not in r.output
