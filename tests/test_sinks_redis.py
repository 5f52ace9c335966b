"""Redis Streams sink against a real redis-server started by the suite on a loopback port."""

from __future__ import annotations

import json

import pytest
from conftest_services import LOOPBACK, batches, encode, free_port, make_messages

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks import open_sink
from rtml_cli.sinks.checkpoint import Checkpoint
from rtml_cli.sinks.redis import RedisSink

pytestmark = pytest.mark.service


def _entries(server, stream):
    return [json.loads(f[b"data"]) for _id, f in server.client().xrange(stream)]


def test_every_message_arrives_once_in_order(redis_server):
    msgs = make_messages(700)
    sink = open_sink(f"{redis_server.url}/ev", chunk_size=128)
    assert isinstance(sink, RedisSink)
    sink.open()
    for b in batches(msgs, 100):
        sink.write(b)
    sink.close()
    got = _entries(redis_server, "ev")
    assert got == [json.loads(line) for line in encode(msgs)]  # none lost, none doubled, order
    assert sink.stats()["delivered"] == msgs.height == sink.stats()["position"]
    assert sink.stats()["failed"] == 0


def test_maxlen_keeps_the_newest_entries(redis_server):
    msgs = make_messages(300)
    sink = RedisSink(f"{redis_server.url}/ev", maxlen=50)
    sink.open()
    for b in batches(msgs, 64):
        sink.write(b)
    sink.close()
    got = _entries(redis_server, "ev")
    assert got == [json.loads(line) for line in encode(msgs)][-50:]


def test_unreachable_server_fails_fast_with_a_clear_error():
    sink = RedisSink(f"redis://{LOOPBACK}:{free_port()}/ev", connect_timeout_s=1.0)
    with pytest.raises(
        SinkError,
        match=r"cannot connect to Redis at 127\.0\.0\.1:\d+ .*"
        r"redis-server is running",
    ):
        sink.open()


@pytest.mark.parametrize(
    "target, match",
    [("redis://127.0.0.1:6379/", "not a valid redis URL"), ("redis://127.0.0.1:x/s", "valid")],
)
def test_malformed_url_is_a_usage_error(target, match):
    with pytest.raises(UsageError, match=match):
        RedisSink(target).open()


def test_wrong_key_type_is_a_sink_error(redis_server):
    redis_server.client().set("ev", "a string")
    sink = RedisSink(f"{redis_server.url}/ev", retries=0)
    sink.open()
    with pytest.raises(SinkError, match="refused XADD to stream 'ev'"):
        sink.write(batches(make_messages(3), 10)[0])
    sink.close()


def test_server_death_gives_up_with_position_then_resume_loses_nothing(redis_server, tmp_path):
    msgs = make_messages(500)
    parts = batches(msgs, 50)
    ck = tmp_path / "ck.json"
    sink = RedisSink(
        f"{redis_server.url}/ev",
        checkpoint=ck,
        retries=3,
        backoff_s=0.01,
        backoff_max_s=0.05,
        connect_timeout_s=0.5,
        timeout_s=0.5,
    )
    sink.open()
    for b in parts[:4]:
        sink.write(b)
    redis_server.kill()
    with pytest.raises(SinkError) as err:  # bounded: 3 retries, then give up
        sink.write(parts[4])
    sink.close()
    text = str(err.value)
    assert "3 retries failed" in text
    assert "Delivered 200 messages" in text and "--resume-from 200" in text
    assert Checkpoint.read(ck) == 200
    assert sink.stats()["retries"] == 3

    redis_server.start()  # append-only file: the 200 confirmed entries survived
    start = Checkpoint.read(ck)
    resumed = RedisSink(f"{redis_server.url}/ev", checkpoint=ck, start_position=start)
    resumed.open()
    for b in batches(msgs.slice(start), 64):
        resumed.write(b)
    resumed.close()
    assert _entries(redis_server, "ev") == [json.loads(line) for line in encode(msgs)]
    assert Checkpoint.read(ck) == msgs.height


def test_missing_extra_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "redis":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UsageError, match=r"pip install 'rtml\[redis\]'"):
        RedisSink("redis://127.0.0.1:1/s").open()
