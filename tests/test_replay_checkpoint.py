"""A `--checkpoint` names its target, its table and its stream, and is never misapplied."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.errors import UsageError
from rtml_cli.io import Roles
from rtml_cli.replay import ReplayOptions, replay
from rtml_cli.replay_guard import same_table, stream_identity, table_fingerprint
from rtml_cli.replay_source import prepare_replay
from rtml_cli.sinks.base import MessageBatch, Sink
from rtml_cli.sinks.checkpoint import Checkpoint, verify_resume

T0 = dt.datetime(2024, 1, 1)
URL = "http://127.0.0.1:9/events"  # never contacted: the checks come first


class CollectSink(Sink):
    name = "collect"
    target = URL

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, batch: MessageBatch) -> None:
        self.messages += [json.loads(line) for line in batch.json_lines()]

    def close(self) -> None:
        pass


def _table(folder: Path, name: str = "t.parquet", n: int = 20, x0: float = 0.0) -> str:
    path = folder / name
    pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "x": [x0 + i for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    ).write_parquet(path)
    return str(path)


def _checkpoint(path: Path, table: str, position: int, **opts: Any) -> Path:
    """A checkpoint as a replay of ``table`` with ``opts`` to :data:`URL` writes it."""
    src = prepare_replay(table, Roles(), ReplayOptions(**opts))
    identity = {"table": table_fingerprint(table), "stream": stream_identity(src)}
    Checkpoint(path, target=URL, identity=identity).save(position, force=True)
    return path


def _resume(table: str, ck: Path, **opts: Any) -> list[dict[str, Any]]:
    sink = CollectSink()
    replay(
        table,
        Roles(),
        ReplayOptions(start_position=None, **opts),
        to=sink,
        sink_options={"checkpoint": str(ck)},
    )
    return sink.messages


def test_the_checkpoint_file_names_target_table_and_stream(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 7, label_delay_us=60_000_000, limit=15)
    data = json.loads(ck.read_text())
    assert data["target"] == URL and data["position"] == 7 and data["version"] == 2
    assert data["table"]["files"] == 1 and data["table"]["bytes"] == Path(t).stat().st_size
    assert data["stream"]["label_delay_us"] == 60_000_000 and data["stream"]["limit"] == 15


def test_resume_from_its_own_checkpoint_skips_exactly_that_many(tmp_path: Path) -> None:
    t = _table(tmp_path)
    full = _resume(t, tmp_path / "none.json")  # no file yet: from the start
    assert len(full) == 40
    ck = _checkpoint(tmp_path / "ck.json", t, 13)
    assert _resume(t, ck) == full[13:]


def test_a_copied_table_is_the_same_table(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 5)
    (tmp_path / "moved").mkdir()
    copy = shutil.copy2(t, tmp_path / "moved" / "t.parquet")
    assert len(_resume(str(copy), ck)) == 35


def test_another_tables_checkpoint_is_an_error(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 5)
    other = _table(tmp_path, "other.parquet", x0=100.0)  # same shape, other content
    with pytest.raises(UsageError) as err:
        _resume(other, ck)
    text = str(err.value)
    assert "belongs to another table" in text and str(ck) in text
    assert "--resume-from 0" in text and "another --checkpoint path" in text


def test_a_rewritten_table_is_another_table(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 5)
    _table(tmp_path, n=30)  # same path, more rows
    with pytest.raises(UsageError, match="belongs to another table"):
        _resume(t, ck)


def test_another_targets_checkpoint_is_an_error(tmp_path: Path) -> None:
    t = _table(tmp_path)
    src = prepare_replay(t, Roles(), ReplayOptions())
    identity = {"table": table_fingerprint(t), "stream": stream_identity(src)}
    ck = tmp_path / "ck.json"
    Checkpoint(ck, target="kafka://h:9092/other", identity=identity).save(5, force=True)
    with pytest.raises(UsageError) as err:
        _resume(t, ck)
    assert "belongs to target 'kafka://h:9092/other'" in str(err.value)
    assert "--resume-from 0" in str(err.value)


@pytest.mark.parametrize(
    "written, resumed, field",
    [
        ({"label_delay_us": 60_000_000}, {}, "label_delay_us"),
        ({"disorder_us": 5_000_000, "seed": 1}, {"disorder_us": 5_000_000, "seed": 2}, "seed"),
        ({"limit": 10}, {"limit": 12}, "limit"),
        ({"start": T0 + dt.timedelta(minutes=3)}, {}, "start"),
        ({"end": T0 + dt.timedelta(minutes=15)}, {}, "end"),
    ],
)
def test_another_streams_checkpoint_is_an_error(
    tmp_path: Path, written: dict, resumed: dict, field: str
) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 3, **written)
    with pytest.raises(UsageError) as err:
        _resume(t, ck, **resumed)
    assert "another message stream" in str(err.value) and field in str(err.value)
    assert len(_resume(t, ck, **written)) > 0  # with the options it was written with: fine


def test_pace_may_change_between_a_run_and_its_resume(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 30)
    assert len(_resume(t, ck, rate=1e6)) == 10


@pytest.mark.parametrize(
    "position, shown",
    [
        (True, "not true"),
        (-1, "is -1"),
        (3.0, "not 3.0"),
        (2.5, "not 2.5"),
        ("7", "not '7'"),
        (None, "not null"),
        (10**30, f"is {10**30}"),
    ],
)
def test_a_bad_position_is_an_error_naming_the_file_and_field(
    tmp_path: Path, position: Any, shown: str
) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 3)
    data = json.loads(ck.read_text())
    data["position"] = position
    ck.write_text(json.dumps(data))
    for read in (lambda: Checkpoint.read(ck), lambda: _resume(t, ck)):
        with pytest.raises(UsageError) as err:
            read()
        assert str(ck) in str(err.value) and "field 'position'" in str(err.value)
        assert shown in str(err.value)


def test_a_position_beyond_the_stream_is_an_error(tmp_path: Path) -> None:
    t = _table(tmp_path)
    ck = _checkpoint(tmp_path / "ck.json", t, 41)
    with pytest.raises(UsageError) as err:
        _resume(t, ck)
    assert str(ck) in str(err.value) and "field 'position' is 41" in str(err.value)
    assert "40 messages" in str(err.value)
    _checkpoint(ck, t, 40)
    assert _resume(t, ck) == []  # at the end exactly: nothing left, no error


@pytest.mark.parametrize("content", [{"target": URL, "position": 5}, {"position": 5}])
def test_an_old_checkpoint_says_it_predates_target_checks(tmp_path: Path, content: dict) -> None:
    t = _table(tmp_path)
    ck = tmp_path / "ck.json"
    ck.write_text(json.dumps(content))
    with pytest.raises(UsageError) as err:
        _resume(t, ck)
    text = str(err.value)
    assert "predates target checks" in text and str(ck) in text
    assert "--resume-from 0" in text and "--resume-from 5" in text


def test_not_json_is_an_error_naming_the_file(tmp_path: Path) -> None:
    ck = tmp_path / "ck.json"
    for text in ("{not json", "[1, 2]", '{"target": "x"}'):
        ck.write_text(text)
        with pytest.raises(UsageError, match="ck.json"):
            Checkpoint.read(ck)


def test_verify_resume_without_a_file_is_none(tmp_path: Path) -> None:
    got = verify_resume(
        tmp_path / "none.json", target=URL, identity={}, messages=3, compare=same_table
    )
    assert got is None


def test_fingerprint_reads_little_of_a_big_file(tmp_path: Path) -> None:
    big = tmp_path / "big.ndjson"
    with big.open("wb") as fh:
        fh.truncate(200 << 20)  # sparse: 200 MB that would take a while to hash whole
    fp = table_fingerprint(str(big))
    assert fp["bytes"] == 200 << 20 and fp["files"] == 1
    with big.open("r+b") as fh:  # a change in the tail changes the digest
        fh.seek((200 << 20) - 10)
        fh.write(b"x")
    assert table_fingerprint(str(big))["digest"] != fp["digest"]


# ------------------------------------------------------------------ through the CLI: exit 2


def test_cli_refuses_another_tables_checkpoint_before_connecting(runner, tmp_path: Path) -> None:
    t = _table(tmp_path)
    other = _table(tmp_path, "other.parquet", x0=9.0)
    ck = _checkpoint(tmp_path / "ck.json", t, 5)
    r = runner.invoke(app, ["replay", other, "--to", URL, "--checkpoint", str(ck)])
    assert r.exit_code == 2, r.output
    assert "belongs to another table" in r.output and "--resume-from 0" in r.output
    r = runner.invoke(
        app, ["replay", t, "--to", URL, "--checkpoint", str(ck), "--label-delay", "1m"]
    )
    assert r.exit_code == 2 and "label_delay_us" in r.output, r.output
    ck.write_text(json.dumps({"target": URL, "position": True}))
    r = runner.invoke(app, ["replay", t, "--to", URL, "--checkpoint", str(ck)])
    assert r.exit_code == 2 and "field 'position'" in r.output and str(ck) in r.output


def test_cli_resume_from_beyond_the_end_is_an_error(runner, tmp_path: Path) -> None:
    t = _table(tmp_path)
    r = runner.invoke(app, ["replay", t, "--resume-from", "41"])
    assert r.exit_code == 2 and "beyond the end" in r.output, r.output
    r = runner.invoke(app, ["replay", t, "--resume-from", "40"])
    assert r.exit_code == 0, r.output
