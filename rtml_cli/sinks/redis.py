"""Redis Streams sink: ``--to redis://HOST:PORT/STREAM`` (extra ``rtml[redis]``).

Each message becomes one stream entry with a single field, ``data`` (configurable with
``field``), holding the message JSON exactly as ``rtml replay`` prints it — one field rather
than flat fields so that a consumer gets the same message, types included, as every other
sink delivers (flat Redis fields would turn every value into a string and drop nulls).
Entry IDs are assigned by Redis (``*``), so the stream order is the replay's arrival order.

Entries are sent with pipelined ``XADD`` (``chunk_size`` per round trip, no MULTI), and
``maxlen`` trims the stream exactly (``MAXLEN n``) to its newest ``n`` entries.
A chunk that fails on a dropped connection is sent again after a backoff (at-least-once: a
chunk whose reply was lost may appear twice); when the retries are exhausted the sink raises
a :class:`~rtml_cli.errors.SinkError` with the count delivered and the confirmed position.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks.base import MessageBatch, register
from rtml_cli.sinks.transport import TransportSink, call_with_retries, split_url

INSTALL_HINT = "Install the Redis extra: pip install 'rtml[redis]'."


def _import_redis() -> ModuleType:
    try:
        import redis
    except ImportError:
        raise UsageError(f"the redis:// sink needs the redis package. {INSTALL_HINT}") from None
    return redis


@register("redis")
class RedisSink(TransportSink):
    """Replay into a Redis stream with pipelined XADD.

    Parameters
    ----------
    target : ``redis://HOST:PORT/STREAM`` (``?db=N`` selects a database, default 0).
    maxlen : keep at most this many entries (``XADD ... MAXLEN n``); ``None`` keeps all.
    field : the entry field holding the message JSON.
    chunk_size : XADDs per pipeline round trip.
    connect_timeout_s, timeout_s : socket timeouts (connect; each reply).
    **common : see :class:`~rtml_cli.sinks.transport.TransportSink` (position, checkpoint, retries).

    Examples
    --------
    >>> sink = RedisSink("redis://127.0.0.1:6379/clicks", maxlen=100_000)  # doctest: +SKIP
    """

    name = "redis"

    def __init__(
        self,
        target: str,
        *,
        maxlen: int | None = None,
        field: str = "data",
        chunk_size: int = 1000,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
        **common: Any,
    ) -> None:
        super().__init__(target, **common)
        self.maxlen = maxlen
        self.field = field
        self.chunk_size = chunk_size
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self._client: Any = None
        self._redis: ModuleType | None = None

    def open(self) -> None:
        """Connect and PING, failing within ``connect_timeout_s`` when Redis is unreachable."""
        self._validate_common()
        host, port, stream = split_url(
            self.target, scheme="redis", default_port=6379, what="STREAM"
        )
        if self.maxlen is not None and self.maxlen < 1:
            raise UsageError(f"--maxlen must be >= 1. Got {self.maxlen} instead.")
        if self.chunk_size < 1:
            raise UsageError(f"chunk size must be >= 1. Got {self.chunk_size} instead.")
        query = parse_qs(urlsplit(self.target).query)
        try:
            db = int(query.get("db", ["0"])[0])
        except ValueError:
            raise UsageError(f"replay target '{self.target}': ?db= must be an integer.") from None
        self.stream = stream
        redis = self._redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # redis-py's own silent retries are switched off: ours are bounded, counted and
        # reported with the position reached.
        self._client = redis.Redis(
            host=host,
            port=port,
            db=db,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            self._client.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise SinkError(
                f"cannot connect to Redis at {host}:{port} for {self.target} ({exc}). "
                "Check that redis-server is running there and the URL is right."
            ) from None

    def write(self, batch: MessageBatch) -> None:
        """XADD every message of ``batch`` in order, one pipeline per ``chunk_size``."""
        lines = batch.json_lines()
        for start in range(0, len(lines), self.chunk_size):
            self._send(lines[start : start + self.chunk_size])

    def _send(self, chunk: list[str]) -> None:
        redis = self._redis
        assert redis is not None and self._client is not None, "open() first"
        client, stream, field = self._client, self.stream, self.field
        maxlen = self.maxlen

        def attempt() -> None:
            pipe = client.pipeline(transaction=False)
            xadd = pipe.xadd
            for line in chunk:
                xadd(stream, {field: line}, maxlen=maxlen, approximate=False)
            pipe.execute()

        try:
            call_with_retries(
                attempt,
                backoff=self.backoff,
                retry_on=(redis.ConnectionError, redis.TimeoutError),
                on_retry=self._count_retry,
            )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._gave_up(
                f"Redis stopped answering ({exc}) and {self.backoff.retries} retries failed",
                " Check that redis-server is up, then resume.",
            ) from None
        except redis.ResponseError as exc:
            raise self._gave_up(
                f"Redis refused XADD to stream '{stream}' ({exc})",
                " Is the key used by something other than a stream? Pick another stream name.",
            ) from None
        first = self.next_position
        self.next_position += len(chunk)
        self.delivered += len(chunk)
        self.tracker.done_range(first, self.next_position)
        self._save_checkpoint()

    def flush(self) -> None:
        """Every XADD is acknowledged before :meth:`write` returns; just record the position."""
        self._save_checkpoint(force=True)

    def close(self) -> None:
        """Record the confirmed position and disconnect."""
        try:
            self._save_checkpoint(force=True)
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None

    def stats(self) -> dict[str, Any]:
        """Counters for the summary (see :meth:`TransportSink.stats`) plus the stream name."""
        return {**super().stats(), "stream": getattr(self, "stream", None)}
