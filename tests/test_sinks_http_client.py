"""The HTTP sink's own minimal HTTP/1.1 client: request head building and response parsing.

The sink sends prebuilt request bytes over a plain socket and parses responses itself (far
cheaper per request than ``http.client``); these tests pin the parts of HTTP/1.1 a model
endpoint may use: Content-Length, chunked bodies, ``Connection: close``, HTTP/1.0 bodies
that run to the end of the connection, interim 1xx responses, bodiless 204.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest
from conftest_services import LOOPBACK, batches, make_messages
from hypothesis import given
from hypothesis import strategies as st
from scripted_http import ScriptedServer, answer, drip, score_of, stream

from rtml_cli.errors import UsageError
from rtml_cli.sinks.http import HttpSink
from rtml_cli.sinks.http_client import (
    INCOMPLETE,
    MALFORMED,
    TOO_LARGE,
    NoResponse,
    Reader,
    ResponseError,
    read_response,
    request_head,
)


def _reader(raw: bytes, step: int = 7) -> Reader:
    """A reader over ``raw`` that receives at most ``step`` bytes at a time (responses
    split across receives at awkward places)."""
    src = io.BytesIO(raw)
    return Reader(lambda n: src.read(min(n, step)))


def _resp(raw: bytes, step: int = 7, **kw) -> tuple[int, bytes, bool]:
    return read_response(_reader(raw, step), **kw)


def _chunked(body: bytes, cuts: list[int]) -> bytes:
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    out = b""
    for lo, hi in zip(edges, edges[1:], strict=False):
        out += b"%x;ext=1\r\n%s\r\n" % (hi - lo, body[lo:hi])
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


@given(
    body=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    step=st.integers(1, 80),
)
def test_chunked_and_sized_bodies_round_trip(body, cuts, step):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    # Two responses back to back on one stream: the first must not eat into the second.
    nxt = b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    reader = _reader(head + _chunked(body, cuts) + nxt, step)
    assert read_response(reader) == (200, body, False)
    assert read_response(reader) == (201, body, False)


def test_close_semantics_interim_and_bodiless_responses():
    assert _resp(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") == (
        200,
        b"ok",
        True,
    )
    # HTTP/1.0 closes unless it says keep-alive; without a length the body runs to EOF.
    assert _resp(b'HTTP/1.0 200 OK\r\n\r\n{"score": 1}') == (200, b'{"score": 1}', True)
    ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n1"
    assert _resp(ka) == (200, b"1", False)
    listed = b"HTTP/1.1 200 OK\r\nConnection: TE, close\r\nContent-Length: 1\r\n\r\n1"
    assert _resp(listed) == (200, b"1", True)
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
    assert _resp(interim) == (503, b"", False)
    assert _resp(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n") == (204, b"", False)
    # Bare LF line endings (read line by line), and a head split over many receives.
    assert _resp(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok") == (200, b"ok", False)
    assert _resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", step=1) == (200, b"ok", False)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"garbage\r\n\r\n", MALFORMED),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", INCOMPLETE),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", MALFORMED),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", MALFORMED),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", MALFORMED),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", INCOMPLETE),
        (b"HTTP/1.1 200 OK\r\nContent-Le", INCOMPLETE),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", MALFORMED),
    ],
)
def test_a_response_that_began_but_is_unusable_is_a_response_error(raw, kind):
    # The server took the request: the worker counts this as an error of ``kind`` and
    # drops the connection, it does not send the request again.
    with pytest.raises(ResponseError) as err:
        _resp(raw)
    assert err.value.kind == kind


def test_a_connection_closed_before_any_answer_is_no_response():
    # Nothing of the answer arrived: the request may not have been taken (a kept-alive
    # connection the server closed), so the worker may send it again.
    with pytest.raises(NoResponse):
        _resp(b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 400000000\r\n\r\n" + b"x" * 100,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"40\r\n" + b"x" * 64 + b"\r\n") * 3
        + b"0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 129,
    ],
    ids=["content-length", "chunked", "to-close"],
)
def test_a_body_over_the_cap_is_refused(raw):
    with pytest.raises(ResponseError) as err:
        _resp(raw, max_body=128)
    assert err.value.kind == TOO_LARGE
    # At the cap exactly, the same kinds of body are read.
    assert _resp(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 128, max_body=128)[1] == b"x" * 128


def test_request_head_is_built_once_with_host_and_headers():
    head = request_head("127.0.0.1", 8000, 80, "/p?a=1", {"Content-Type": "application/json"})
    assert head == (
        b"POST /p?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept-Encoding: identity\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
    )
    own = request_head("::1", 443, 443, "/", {"host": "model.internal", "Content-Length": "9"})
    assert b"Host: [::1]" not in own and b"host: model.internal" in own
    assert own.count(b"Content-Length") == 1  # the user's is dropped: the sink sets it
    with pytest.raises(UsageError, match="not a valid HTTP header"):
        request_head("h", 80, 80, "/", {"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(UsageError, match="not a valid HTTP header"):
        request_head("h", 80, 80, "/", {"Bad Name": "v"})
    with pytest.raises(UsageError, match="Percent-encode"):
        request_head("h", 80, 80, "/a b", {})
    with pytest.raises(UsageError, match="Latin-1"):
        request_head("h", 80, 80, "/", {"X-Name": "\u20ac"})


class _RawServer:
    """A socket server answering every request with a chunked body and ``Connection: close``
    (then closing), so that each request of the sink needs a fresh connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            if not f.readline():
                return  # the sink's connect probe at open(): no request
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = f.read(length)
            with self._lock:
                self.bodies.append(body)
            score = json.dumps({"score": json.loads(body)["x"] / 10}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + _chunked(score, [3])
            )


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sink_reconnects_after_connection_close_and_reads_chunked_scores(concurrency, tmp_path):
    server = _RawServer()
    msgs = make_messages(30)
    sink = HttpSink(
        f"http://{LOOPBACK}:{server.port}/predict",
        concurrency=concurrency,
        score_field="score",
        record=tmp_path / "run",
    )
    sink.open()
    try:
        for b in batches(msgs, 7):
            sink.write(b)
    finally:
        sink.close()
        server.sock.close()
    stats = sink.stats()
    assert stats["delivered"] == 30 and stats["retries"] == 0 and stats["errors"] == "none"
    assert sorted(json.loads(b)["rtml_event_id"] for b in server.bodies) == list(range(30))
    import polars as pl

    resp = pl.read_parquet(tmp_path / "run" / "responses.parquet")
    events = msgs.filter(pl.col("rtml_kind") == "event").sort("rtml_event_id")
    assert resp["score"].to_list() == pytest.approx((events["x"] / 10).to_list())


@pytest.fixture
def tls_server(tmp_path):
    """An https model endpoint on loopback with a self-signed certificate for 127.0.0.1."""
    import shutil
    import ssl
    import subprocess
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(doc["rtml_event_id"])
            body = json.dumps({"score": doc["x"] / 10}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"https://{LOOPBACK}:{srv.server_address[1]}/predict", cert, seen
    srv.shutdown()
    srv.server_close()


def test_https_target_verifies_the_certificate(tls_server, monkeypatch):
    from rtml_cli.errors import SinkError

    url, cert, seen = tls_server
    msgs = make_messages(20)
    # Not trusted: the TLS handshake fails and the sink says why, in bounded time.
    untrusted = HttpSink(url, retries=1, backoff_s=0.01, connect_timeout_s=2)
    untrusted.open()
    with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        for b in batches(msgs, 5):
            untrusted.write(b)
    untrusted.close()
    assert seen == []
    # Trusted (the system store read from SSL_CERT_FILE): every event over TLS, once.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    sink = HttpSink(url, concurrency=2, score_field="score")
    sink.open()
    for b in batches(msgs, 5):
        sink.write(b)
    sink.close()
    assert sink.stats()["delivered"] == 20 and sink.stats()["errors"] == "none"
    assert sorted(seen) == list(range(20))


# ------------------------------------------------------- counts, deadline and body cap (served)
def _run(sink: HttpSink, n_events: int) -> HttpSink:
    sink.open()
    try:
        for b in batches(make_messages(n_events), 7):
            sink.write(b)
    finally:
        sink.close()
    return sink


def _eventually(check, limit_s: float = 20.0) -> None:
    """Wait (bounded) for a server thread to get there; no time is asserted."""
    deadline = time.monotonic() + limit_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_cut_responses_are_errors_and_the_counts_match_what_the_server_got(concurrency):
    # Every third answer stops after 5 bytes of its declared body and the server closes.
    def respond(number: int, body: bytes, conn: socket.socket) -> bool:
        full = score_of(body)
        if number % 3 == 2:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(full), full[:5]))
            return False
        return answer(conn, full)

    with ScriptedServer(respond) as server:
        sink = _run(HttpSink(server.url(), concurrency=concurrency), 30)
    s = sink.stats()
    # What the summary says went out is what the server received: a cut answer is not
    # silently sent again (the server took the request), it is an error.
    assert s["requests"] + s["retries"] == server.posts == 30
    assert sink.errors_by_status() == {INCOMPLETE: 10}
    assert s["errors"] == "incomplete response: 10"
    assert s["delivered"] == 20 and s["position"] == make_messages(30).height


def test_connections_dropped_before_any_answer_are_resent_and_counted_as_retries():
    # Every fourth POST is read and the connection closed without a byte of answer.
    def respond(number: int, body: bytes, conn: socket.socket) -> bool:
        return number % 4 != 3 and answer(conn, score_of(body))

    with ScriptedServer(respond) as server:
        sink = _run(HttpSink(server.url(), backoff_s=0.01), 30)
    s = sink.stats()
    assert s["requests"] == 30 and s["retries"] == server.posts - 30 > 0
    assert s["delivered"] == 30 and s["errors"] == "none"


def test_timeout_bounds_the_whole_request_not_each_read():
    # One byte every 0.3 s: each read waits far less than the 1 s timeout, so a per-read
    # timeout never fires. The server's drip is bounded (20 bytes, ~6 s per request).
    with ScriptedServer(lambda n, b, c: drip(c, every_s=0.3, max_bytes=20)) as server:
        sink = _run(HttpSink(server.url(), timeout_s=1.0), 2)
    assert sink.errors_by_status() == {"timeout": 2}
    s = sink.stats()
    assert (s["requests"], s["retries"], server.posts) == (2, 0, 2)


_PIECE = b"x" * 65536


@pytest.mark.parametrize(
    ("head", "piece", "tail", "cap"),
    [
        # a declared 400 MB answer, of which 32 MiB at most are streamed; the default cap
        (b"HTTP/1.1 200 OK\r\nContent-Length: 400000000\r\n\r\n", _PIECE, b"", None),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"10000\r\n" + _PIECE + b"\r\n",
            b"0\r\n\r\n",
            256 * 1024,
        ),
    ],
    ids=["content-length", "chunked"],
)
def test_an_answer_over_the_cap_is_an_error_and_its_connection_dropped(head, piece, tail, cap):
    def respond(number: int, body: bytes, conn: socket.socket) -> bool:
        return stream(conn, head, piece, pieces=512, tail=tail)

    kw = {} if cap is None else {"max_response_bytes": cap}
    with ScriptedServer(respond) as server:
        sink = _run(HttpSink(server.url(), **kw), 3)
        # The sink hung up on each answer instead of reading it to its end.
        _eventually(lambda: server.dropped_by_client == 3)
        assert server.dropped_by_client == 3
    assert sink.errors_by_status() == {TOO_LARGE: 3}
    assert sink.stats()["requests"] == 3 and server.posts == 3
