"""A raw-socket HTTP endpoint whose every answer a test scripts, byte by byte.

``http.server`` cannot misbehave on purpose (cut a body, drip bytes, lie about a length);
this one can. Each POST read is numbered from 0 (across connections) and counted in
:attr:`ScriptedServer.posts`, then ``respond(number, body, conn)`` writes whatever it wants on
the socket and returns whether to keep the connection open. Every response script used by
the tests is bounded in time and size, so a broken client cannot hang the suite.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

from conftest_services import LOOPBACK

Respond = Callable[[int, bytes, socket.socket], bool]


class ScriptedServer:
    """Listens on a free loopback port; ``close()`` stops it (also usable as a context)."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.posts = 0
        #: responses whose writing failed because the client dropped the connection
        self.dropped_by_client = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/predict") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)  # a client that vanishes must not keep a thread forever
        with conn, conn.makefile("rb") as f:
            while True:
                try:
                    line = f.readline()
                    if not line:
                        return  # the client closed (or the sink's connect probe)
                    length = 0
                    while (h := f.readline()) not in (b"\r\n", b""):
                        if h.lower().startswith(b"content-length:"):
                            length = int(h.split(b":")[1])
                    body = f.read(length)
                except OSError:
                    return
                with self._lock:
                    number = self.posts
                    self.posts += 1
                try:
                    keep = self.respond(number, body, conn)
                except OSError:
                    with self._lock:
                        self.dropped_by_client += 1
                    return
                if not keep:
                    return


def answer(conn: socket.socket, body: bytes, *, status: int = 200) -> bool:
    """A complete keep-alive response."""
    conn.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
    return True


def score_of(body: bytes) -> bytes:
    """``{"score": x / 10}`` for an event body (what ModelServer answers too)."""
    return json.dumps({"score": json.loads(body)["x"] / 10}).encode()


def drip(conn: socket.socket, *, every_s: float, max_bytes: int) -> bool:
    """Declare a 1000-byte body, then send one byte every ``every_s`` seconds, at most
    ``max_bytes`` of them (bounded life), then close."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(max_bytes):
        time.sleep(every_s)
        conn.sendall(b"x")
    return False


def stream(conn: socket.socket, head: bytes, piece: bytes, *, pieces: int, tail: bytes) -> bool:
    """``head``, then ``piece`` up to ``pieces`` times (bounded), then ``tail``; close."""
    conn.sendall(head)
    for _ in range(pieces):
        conn.sendall(piece)
    conn.sendall(tail)
    return False
