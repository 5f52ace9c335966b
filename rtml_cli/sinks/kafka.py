"""Kafka sink: ``--to kafka://HOST:PORT/TOPIC`` with confluent-kafka (extra ``rtml[kafka]``).

Every message (events and labels) is produced to the topic with

- value: the message JSON, exactly as ``rtml replay`` prints it;
- key: the ``key_col`` value as UTF-8 text (``--key-col``); a label message carries no key
  column, so it gets the key of its event (remembered until the label is sent), which keeps
  an entity's events and labels in one partition, in order;
- timestamp: the message's event-time arrival (``rtml_time``) in ms, so stream processors
  can window on event time.

Delivery is confirmed, not assumed: every produce has a delivery report; the summary counts
delivered and failed messages and the confirmed position (the longest prefix of whole
batches delivered, so a resume re-sends at most the batches that were in flight). The
producer is idempotent by default (``enable.idempotence=true``), so librdkafka's internal
retries neither duplicate nor reorder messages within a partition. librdkafka retries with
backoff (``retry.backoff.ms``) until ``message.timeout.ms`` (``delivery_timeout_s``); a
message that still fails makes the replay stop with a :class:`~rtml_cli.errors.SinkError`.
Any producer setting can be overridden with ``kafka_config`` (``--kafka-config key=value``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import polars as pl

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks.base import MessageBatch, register
from rtml_cli.sinks.transport import TransportSink, event_time_us, parse_pairs

INSTALL_HINT = "Install the Kafka extra: pip install 'rtml[kafka]'."

# librdkafka logs every failed connect to stderr; our errors say it once, clearly.
_QUIET = logging.getLogger("rtml.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

#: at most this many event keys are remembered for their label messages (oldest dropped).
KEY_MEMORY = 1_000_000


def _import_kafka() -> ModuleType:
    try:
        import confluent_kafka
    except ImportError:
        raise UsageError(
            f"the kafka:// sink needs the confluent-kafka package. {INSTALL_HINT}"
        ) from None
    return confluent_kafka


def parse_config(items: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str]:
    """``["acks=all", "linger.ms=5"]`` (or a mapping) -> producer settings (librdkafka names).

    Examples
    --------
    >>> parse_config(["acks=all", "linger.ms=5"])
    {'acks': 'all', 'linger.ms': '5'}
    """
    return parse_pairs(
        items, sep="=", flag="--kafka-config", example="linger.ms=5", form="KEY=VALUE"
    )


def split_kafka_url(target: str) -> tuple[str, str]:
    """``kafka://h1:9092,h2:9092/topic`` -> ``("h1:9092,h2:9092", "topic")``."""
    rest = target.split("://", 1)[1] if "://" in target else ""
    servers, _, topic = rest.partition("/")
    topic = topic.strip("/")
    if not servers or not topic or "/" in topic:
        raise UsageError(
            f"replay target '{target}' is not a valid kafka URL. Write it as "
            "kafka://HOST:PORT/TOPIC (several brokers: kafka://h1:9092,h2:9092/TOPIC)."
        )
    return servers, topic


class _BatchAck:
    """Delivery callback shared by the messages of one batch; confirms the batch when done."""

    __slots__ = ("sink", "first", "stop", "remaining")

    def __init__(self, sink: KafkaSink, first: int, stop: int) -> None:
        self.sink = sink
        self.first = first
        self.stop = stop
        self.remaining = stop - first

    def __call__(self, err: Any, _msg: Any) -> None:
        sink = self.sink
        if err is None:
            sink.delivered += 1
            self.remaining -= 1
            if self.remaining == 0:
                sink.tracker.done_range(self.first, self.stop)
        else:
            sink.failed += 1
            if sink._error is None:
                sink._error = str(err)


@register("kafka")
class KafkaSink(TransportSink):
    """Replay into a Kafka topic with delivery reports.

    Parameters
    ----------
    target : ``kafka://HOST:PORT/TOPIC``.
    key_col : the table column whose value is the message key (``--key-col``), or ``None``.
    kafka_config : librdkafka producer settings, as ``KEY=VALUE`` strings or a mapping.
    connect_timeout_s : how long to wait for the broker's metadata at open.
    delivery_timeout_s : ``message.timeout.ms``: how long librdkafka retries one message.
    **common : see :class:`~rtml_cli.sinks.transport.TransportSink` (position, checkpoint,
        ``backoff_s``/``backoff_max_s`` become ``retry.backoff.ms``/``retry.backoff.max.ms``).
    """

    name = "kafka"

    def __init__(
        self,
        target: str,
        *,
        key_col: str | None = None,
        kafka_config: Mapping[str, Any] | Iterable[str] | None = None,
        connect_timeout_s: float = 5.0,
        delivery_timeout_s: float = 30.0,
        **common: Any,
    ) -> None:
        super().__init__(target, **common)
        self.key_col = key_col
        self.kafka_config = kafka_config
        self.connect_timeout_s = connect_timeout_s
        self.delivery_timeout_s = delivery_timeout_s
        self._producer: Any = None
        self._keys: dict[int, bytes | None] = {}
        self._error: str | None = None
        self._reported = False

    def open(self) -> None:
        """Create the producer and fetch metadata; a broker that does not answer is an error."""
        self._validate_common()
        servers, self.topic = split_kafka_url(self.target)
        ck = _import_kafka()
        conf: dict[str, Any] = {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            "retry.backoff.ms": max(1, int(self.backoff.base_s * 1000)),
            "retry.backoff.max.ms": max(1, int(self.backoff.cap_s * 1000)),
            "logger": _QUIET,
        }
        conf.update(parse_config(self.kafka_config))
        try:
            self._producer = ck.Producer(conf)
        except (ck.KafkaException, ValueError, TypeError) as exc:
            raise UsageError(
                f"invalid Kafka producer settings for {self.target}: {exc}. "
                "Check the --kafka-config KEY=VALUE names against librdkafka's CONFIGURATION.md."
            ) from None
        try:
            self._producer.list_topics(timeout=self.connect_timeout_s)
        except ck.KafkaException as exc:
            self._producer = None
            raise SinkError(
                f"cannot reach a Kafka broker at {servers} for {self.target} within "
                f"{self.connect_timeout_s:g}s ({exc.args[0] if exc.args else exc}). "
                "Check that the broker is running and the host:port is right."
            ) from None

    def write(self, batch: MessageBatch) -> None:
        """Produce every message of ``batch``; serve delivery reports as they come."""
        producer = self._producer
        assert producer is not None, "open() first"
        lines = batch.json_lines()
        frame = batch.frame
        ts_ms = [0 if t is None else t // 1000 for t in event_time_us(frame)]
        keys = self._batch_keys(frame)
        produce, poll, topic = producer.produce, producer.poll, self.topic
        # One callback object per batch, not one closure per message: the position advances
        # by whole batches (resume may re-send at most the batch in flight: at-least-once).
        ack = _BatchAck(self, self.next_position, self.next_position + len(lines))
        for i, line in enumerate(lines):
            while True:
                try:
                    if keys is None:
                        produce(topic, value=line, timestamp=ts_ms[i], on_delivery=ack)
                    else:
                        produce(topic, value=line, key=keys[i], timestamp=ts_ms[i], on_delivery=ack)
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports until there is room.
                    poll(0.05)
                    self._raise_if_failed()
            if i % 1000 == 999:
                poll(0)
        self.next_position = ack.stop
        poll(0)
        self._raise_if_failed()
        self._save_checkpoint()

    def _batch_keys(self, frame: pl.DataFrame) -> list[bytes | None] | None:
        if self.key_col is None:
            return None
        if self.key_col not in frame.columns:
            raise UsageError(
                f"--key-col '{self.key_col}' is not a column of the replayed table. "
                f"Columns are: {', '.join(c for c in frame.columns if not c.startswith('rtml_'))}."
            )
        raw = frame[self.key_col].cast(pl.String).to_list()
        kinds = frame["rtml_kind"].to_list()
        ids = frame["rtml_event_id"].to_list()
        memory = self._keys
        out: list[bytes | None] = []
        for kind, eid, k in zip(kinds, ids, raw, strict=True):
            if kind == "event":
                key = k.encode() if k is not None else None
                memory[eid] = key
                if len(memory) > KEY_MEMORY:  # events whose label never comes
                    del memory[next(iter(memory))]
            else:
                key = k.encode() if k is not None else memory.pop(eid, None)
            out.append(key)
        return out

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self._reported = True
            raise self._gave_up(
                f"{self.failed} messages could not be delivered after librdkafka's retries "
                f"(last error: {self._error})",
                " Check the broker, then resume.",
            )

    def flush(self) -> None:
        """Wait (bounded by the delivery timeout) until every produced message is reported."""
        if self._producer is None:
            return
        deadline = time.monotonic() + self.delivery_timeout_s + 5.0
        while len(self._producer) > 0 and time.monotonic() < deadline:
            self._producer.flush(0.2)
        self._raise_if_failed()
        if len(self._producer) > 0:
            raise self._gave_up(
                f"{len(self._producer)} messages still unconfirmed after "
                f"{self.delivery_timeout_s:g}s",
                " Check the broker, then resume.",
            )
        self._save_checkpoint(force=True)

    def close(self) -> None:
        """Flush (bounded), record the confirmed position, release the producer."""
        try:
            if self._producer is not None:
                try:
                    self.flush()
                except SinkError:
                    # Already raised from write(): do not mask it with the same news.
                    if not self._reported:
                        raise
        finally:
            self._save_checkpoint(force=True)
            self._producer = None

    def stats(self) -> dict[str, Any]:
        """Counters for the summary (see :meth:`TransportSink.stats`) plus the topic."""
        return {**super().stats(), "topic": getattr(self, "topic", None)}
