"""`rtml replay` and `rtml sample` never lose a user's file; replay outputs are written whole
or not at all; the output may not be the input."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc
import pytest

from rtml_cli.cli import app

T0 = dt.datetime(2024, 1, 1)
SUFFIXES = (".ndjson", ".arrow", ".parquet")


def _df(n: int = 40) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "x": [float(i) for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )


def _table(tmp_path: Path, name: str = "t.parquet", n: int = 40) -> Path:
    path = tmp_path / name
    _df(n).write_parquet(path)
    return path


def _messages_in(path: Path) -> int:
    if path.suffix == ".ndjson":
        return len(path.read_text().splitlines())
    if path.suffix == ".arrow":
        with pa.OSFile(str(path), "rb") as fh:
            return pyarrow.ipc.open_stream(fh).read_all().num_rows
    return pl.read_parquet(path).height


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


# ------------------------------------------------------------------ 1. the output is not the input


def _refused_as_input(runner, table: Path, to: str, *extra: str) -> str:
    before = table.read_bytes()
    r = runner.invoke(app, ["replay", str(table), "--to", to, *extra])
    assert r.exit_code == 2, r.output
    assert table.read_bytes() == before, "the input must be untouched"
    return r.output


def test_output_that_is_the_input_is_refused_even_with_force(runner, tmp_path: Path) -> None:
    t = _table(tmp_path)
    out = _refused_as_input(runner, t, str(t), "--force")
    assert "is the input file" in out and "Write the output to another path" in out
    out = _refused_as_input(runner, t, str(t))  # not "already exists": the worse problem first
    assert "is the input file" in out


def test_same_file_by_inode_not_by_name(runner, tmp_path: Path, monkeypatch) -> None:
    t = _table(tmp_path)
    hard = tmp_path / "hard.parquet"
    os.link(t, hard)
    soft = tmp_path / "soft.parquet"
    soft.symlink_to(t)
    (tmp_path / "x").mkdir()
    for spelling in (str(hard), str(soft), str(tmp_path / "x" / ".." / "t.parquet")):
        assert "is the input file" in _refused_as_input(runner, t, spelling, "--force")
    monkeypatch.chdir(tmp_path)
    assert "is the input file" in _refused_as_input(runner, t, "./x/../t.parquet", "--force")
    # the input given through a link, the output by its real name
    r = runner.invoke(app, ["replay", str(soft), "--to", str(t), "--force"])
    assert r.exit_code == 2 and "is the input file" in r.output


def test_target_inside_a_folder_or_glob_input_is_refused(runner, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    _df(10).write_parquet(parts / "a.parquet")
    _df(10).write_parquet(parts / "b.parquet")
    r = runner.invoke(app, ["replay", str(parts), "--to", str(parts / "new.parquet")])
    assert r.exit_code == 2 and "inside the input folder" in r.output, r.output
    r = runner.invoke(app, ["replay", str(parts), "--to", str(parts / "deep" / "o.ndjson")])
    assert r.exit_code == 2 and "inside the input folder" in r.output, r.output
    glob = str(parts / "*.parquet")
    r = runner.invoke(app, ["replay", glob, "--to", str(parts / "new.parquet")])
    assert r.exit_code == 2 and "matches the input glob" in r.output, r.output
    r = runner.invoke(app, ["replay", glob, "--to", str(parts / "b.parquet"), "--force"])
    assert r.exit_code == 2 and "is the input file" in r.output, r.output
    assert sorted(p.name for p in parts.iterdir()) == ["a.parquet", "b.parquet"]
    # beside the folder is fine
    r = runner.invoke(app, ["replay", glob, "--to", str(tmp_path / "o.ndjson")])
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------ 2. whole or not at all


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_existing_output_needs_force_and_force_replaces_it(
    runner, tmp_path: Path, suffix: str
) -> None:
    t = _table(tmp_path)
    out = tmp_path / f"o{suffix}"
    out.write_bytes(b"precious")
    r = runner.invoke(app, ["replay", str(t), "--to", str(out)])
    assert r.exit_code == 2, r.output
    assert str(out) in r.output and "--force" in r.output and "already exists" in r.output
    assert out.read_bytes() == b"precious"
    r = runner.invoke(app, ["replay", str(t), "--to", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert _messages_in(out) == 80 and not _leftovers(tmp_path)


def test_force_never_replaces_a_folder_or_a_link(runner, tmp_path: Path) -> None:
    t = _table(tmp_path)
    folder = tmp_path / "o.ndjson"
    folder.mkdir()
    r = runner.invoke(app, ["replay", str(t), "--to", str(folder), "--force"])
    assert r.exit_code == 2 and "a folder" in r.output, r.output
    assert folder.is_dir()
    other = tmp_path / "other.ndjson"
    other.write_text("mine\n")
    link = tmp_path / "link.ndjson"
    link.symlink_to(other)
    r = runner.invoke(app, ["replay", str(t), "--to", str(link), "--force"])
    assert r.exit_code == 2 and "symbolic link" in r.output, r.output
    assert link.is_symlink() and other.read_text() == "mine\n"


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("failure", ["disk full", "ctrl-c"])
def test_a_run_failing_mid_write_leaves_the_old_file_byte_identical(
    runner, tmp_path: Path, monkeypatch, suffix: str, failure: str
) -> None:
    from rtml_cli.sinks import files

    cls = {".ndjson": files.NdjsonSink, ".arrow": files.ArrowSink, ".parquet": files.ParquetSink}
    sink = cls[suffix]
    real_write = sink.write
    calls = {"n": 0}

    def write(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            if failure == "ctrl-c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, batch)

    monkeypatch.setattr(sink, "write", write)
    t = _table(tmp_path, n=400)
    out = tmp_path / f"o{suffix}"
    old = b"the previous run's bytes\n" * 100
    out.write_bytes(old)
    # --rate: small paced batches, so the failure lands mid-file
    r = runner.invoke(app, ["replay", str(t), "--to", str(out), "--force", "--rate", "1e6"])
    assert r.exit_code == (130 if failure == "ctrl-c" else 2), r.output
    assert calls["n"] == 3
    assert out.read_bytes() == old
    assert not _leftovers(tmp_path), "the temporary file is removed"
    if failure == "ctrl-c":
        assert "was left as it was" in r.output


def test_a_new_output_of_a_failed_run_does_not_exist_at_all(
    runner, tmp_path: Path, monkeypatch
) -> None:
    from rtml_cli.sinks import files

    def write(self, batch):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.NdjsonSink, "write", write)
    t = _table(tmp_path)
    out = tmp_path / "new.ndjson"
    r = runner.invoke(app, ["replay", str(t), "--to", str(out)])
    assert r.exit_code == 2, r.output
    assert not out.exists() and not _leftovers(tmp_path)


def test_output_appears_only_when_complete(tmp_path: Path, monkeypatch) -> None:
    """While the replay writes, the target does not exist yet; the temp file lies beside it."""
    from rtml_cli.io import Roles
    from rtml_cli.replay import ReplayOptions, replay
    from rtml_cli.sinks import files

    seen: list[tuple[bool, list[str]]] = []
    real_write = files.NdjsonSink.write

    def write(self, batch):
        seen.append((Path(self.target).exists(), _leftovers(tmp_path)))
        real_write(self, batch)

    monkeypatch.setattr(files.NdjsonSink, "write", write)
    t = _table(tmp_path)
    out = tmp_path / "o.ndjson"
    replay(str(t), Roles(), ReplayOptions(), to=str(out))
    assert seen and all(not exists for exists, _ in seen)
    assert seen[0][1] == [f".o.ndjson.tmp-{os.getpid()}"]
    assert _messages_in(out) == 80 and not _leftovers(tmp_path)


def test_stdout_is_unaffected(runner, tmp_path: Path) -> None:
    t = _table(tmp_path)
    r = runner.invoke(app, ["replay", str(t), "--to", "-"])
    assert r.exit_code == 0, r.output
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("{")]) == 80
    assert not _leftovers(tmp_path)


def test_atomic_output_removes_its_temp_on_any_exception(tmp_path: Path) -> None:
    from rtml_cli.safe_write import atomic_output

    target = tmp_path / "f.txt"
    target.write_text("old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_output(target) as tmp:
            tmp.write_text("half")
            raise exc
        assert target.read_text() == "old" and not _leftovers(tmp_path)
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and not _leftovers(tmp_path)


# ------------------------------------------------------------------ sample


def test_sample_refuses_an_existing_file_without_force(runner, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(b"mine")
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "200", "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert str(out) in r.output and "--force" in r.output
    assert out.read_bytes() == b"mine"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "200", "-o", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out).height == 200 and not _leftovers(tmp_path)
    folder = tmp_path / "d.parquet"
    folder.mkdir()
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "20", "-o", str(folder), "--force"])
    assert r.exit_code == 2 and "a folder" in r.output and folder.is_dir()


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_sample_failing_mid_write_leaves_the_old_file(
    runner, tmp_path: Path, monkeypatch, exc: BaseException
) -> None:
    real = pl.DataFrame.write_parquet

    def half_then_fail(self, file, *args, **kwargs):
        real(self.head(3), file, *args, **kwargs)  # some bytes hit the disk, then it dies
        raise exc

    monkeypatch.setattr(pl.DataFrame, "write_parquet", half_then_fail)
    out = tmp_path / "s.parquet"
    out.write_bytes(b"old table")
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "100", "-o", str(out), "--force"])
    assert r.exit_code == (130 if isinstance(exc, KeyboardInterrupt) else 2), r.output
    assert out.read_bytes() == b"old table" and not _leftovers(tmp_path)


def test_sample_writes_nothing_when_it_fails_on_a_new_path(runner, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "0", "-o", str(out)])
    assert r.exit_code == 2 and not out.exists() and not _leftovers(tmp_path)


def test_json_sample_is_written_whole(runner, tmp_path: Path) -> None:
    out = tmp_path / "s.ndjson"
    r = runner.invoke(app, ["sample", "clickstream", "--rows", "50", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len([json.loads(x) for x in out.read_text().splitlines()]) == 50
