"""The HTTP sink's senders: one keep-alive connection each, and what came back.

A :class:`Sender` sends :class:`Request` s (one event, or a batch of them) over one connection
(a plain socket, TLS-wrapped for https, read by :mod:`rtml_cli.sinks.http_client` under the
request's deadline), re-sends a request only when the connection failed before any byte of its
answer arrived, picks each event's score from the answer (:func:`pick`), and keeps what it saw
in its own :class:`Answers` (no lock per request). Its tallies (requests, retries, errors by
kind, the stream positions the answers confirm) are folded into the
:class:`~rtml_cli.sinks.http.HttpSink` once per job; a fatal failure is left for the replay
thread as a :class:`Failure`.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rtml_cli.errors import SinkError
from rtml_cli.sinks.http_client import Reader, ResponseError, read_response

if TYPE_CHECKING:
    from rtml_cli.sinks.http import HttpSink

#: The error kind of a 2xx answer without a usable score (when scores are wanted).
NO_SCORE = "no usable score"
#: How much of such an answer is kept to show in the error of a --record run.
EXAMPLE_BYTES = 200


def pick(data: Any, path: str) -> Any:
    """Follow a dotted ``path`` into decoded JSON; digits index lists. ``KeyError`` if absent.

    Examples
    --------
    >>> pick({"proba": [0.2, 0.8]}, "proba.1")
    0.8
    """
    for part in path.split(".") if path else []:
        if isinstance(data, list):
            try:
                data = data[int(part)]
            except (ValueError, IndexError):
                raise KeyError(path) from None
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(path)
    return data


def _as_score(value: Any) -> float | None:
    if isinstance(value, (bool, int, float)):
        score = float(value)
        return score if math.isfinite(score) else None
    return None


@dataclass(slots=True)
class Request:
    """One request: one event, or up to ``batch_size`` of them.

    ``positions`` are the stream positions its answer confirms: its events' and, with one
    event per request, those of the labels just before it (confirmed with it, so that the
    replay thread takes no lock per label).
    """

    positions: list[int]
    event_ids: list[int]
    times_us: list[int]
    sched_ns: list[int]
    body: bytes


@dataclass
class Answers:
    """What one worker saw (merged at close; per worker so that no lock is needed)."""

    event_id: array = field(default_factory=lambda: array("q"))
    t_us: array = field(default_factory=lambda: array("q"))
    latency_ns: array = field(default_factory=lambda: array("q"))
    status: array = field(default_factory=lambda: array("i"))  # 0 = no response (timeout)
    score: array = field(default_factory=lambda: array("d"))  # NaN = none
    errors: dict[int, str] = field(default_factory=dict)  # event id -> error text


@dataclass
class Failure:
    """A fatal failure seen by a worker, turned into the SinkError by the replay thread once
    every worker has folded its tallies (so the error's counts and position are final)."""

    what: str
    fix: str


class ServerGone(Exception):
    """The connection could not be made or dropped, after every retry."""

    def __init__(self, what: str, sends: int) -> None:
        super().__init__(what)
        self.sends = sends


class Sender:
    """Sends requests over one keep-alive connection and records what came back.

    The connection is a plain socket (TLS-wrapped for https) with one receive buffer kept
    for its lifetime (:class:`~rtml_cli.sinks.http_client.Reader`): each request is one
    ``sendall`` of the prebuilt head plus the body, each response is read by
    :func:`~rtml_cli.sinks.http_client.read_response` under the request's deadline.
    """

    def __init__(self, sink: HttpSink) -> None:
        self.sink = sink
        self.results = Answers()
        self.sock: socket.socket | None = None
        self.reader: Reader | None = None
        # Answers not yet folded into the sink's shared counters and position: a worker in
        # a pool folds them once per job (one lock per job, not per request: the lock was
        # contended by 4 workers and the replay thread); the inline worker after each one.
        self.batched = False
        self._positions: list[int] = []
        self._requests = 0
        self._retries = 0
        self._delivered = 0
        self._errors: dict[str, int] = {}

    def fold(self) -> None:
        """Fold this worker's tallies into the sink's counters and confirmed position."""
        if not (self._requests or self._retries or self._positions):
            return
        s = self.sink
        with s._lock:
            s._requests += self._requests
            s.retried += self._retries
            s.delivered += self._delivered
            for key, count in self._errors.items():
                s._errors_by_status[key] = s._errors_by_status.get(key, 0) + count
            done, done_range = s.tracker.done, s.tracker.done_range
            ps = self._positions
            i, n = 0, len(ps)
            while i < n:  # runs of consecutive positions as ranges
                j = i + 1
                while j < n and ps[j] == ps[j - 1] + 1:
                    j += 1
                if j - i == 1:
                    done(ps[i])
                else:
                    done_range(ps[i], ps[j - 1] + 1)
                i = j
        self._positions = []
        self._requests = self._retries = self._delivered = 0
        self._errors = {}

    def run(self) -> None:
        s = self.sink
        work, slots = s._work, s._slots
        assert work is not None and slots is not None
        while True:
            job = work.get()
            if job is None:
                self.close()
                return
            try:
                for unit in job:
                    if s._fatal is not None:  # after a fatal error, drain without sending
                        break
                    self.handle(unit)
            except BaseException as exc:  # noqa: BLE001 - a worker must never die silently
                if s._fatal is None:
                    s._fatal = SinkError(f"{s.target}: worker failed: {exc!r}")
            finally:
                self.fold()  # before the slot goes back: flush() then sees every answer
                slots.put(True)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = self.reader = None

    def _connect(self, deadline: float) -> None:
        """Connect (and TLS handshake) within both the connect timeout and ``deadline``."""
        s = self.sink
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no time left to connect")
        sock = socket.create_connection((s.host, s.port), timeout=min(s.connect_timeout_s, left))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if s.https:
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                sock = s._tls().wrap_socket(sock, server_hostname=s.host)
            # The send and the response get what is left of this request's time.
            left = max(deadline - time.monotonic(), 1e-3)
            sock.settimeout(left)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = Reader(sock.recv, sock.settimeout, left)

    def _post(self, body: bytes) -> tuple[int, bytes | None, str | None, int]:
        """One request: ``(status, body, error, sends)``.

        ``status`` 0 means no usable response, ``error`` then says why (``"timeout"``, an
        :class:`~rtml_cli.sinks.http_client.ResponseError` kind); ``sends`` is how many times
        the request went out. Only a connection that failed before any byte of the answer
        arrived is tried again: at once when it was a kept-alive one (the server may have
        closed it between requests), then with backoff; :class:`ServerGone` when every
        retry failed.
        """
        s = self.sink
        # One write for head and body: a second small write costs a syscall and, against a
        # server without TCP_NODELAY, a Nagle/delayed-ACK wait that would pollute latency.
        request = b"%s%d\r\n\r\n%s" % (s._head, len(body), body)
        timeout = s.timeout_s
        sends = 0
        delays: Iterator[float] | None = None
        while True:
            deadline = time.monotonic() + timeout
            reused = self.sock is not None
            stage = "connect"
            try:
                if self.sock is None:
                    self._connect(deadline)
                sock, reader = self.sock, self.reader
                assert sock is not None and reader is not None
                if reused and reader.timeout != timeout:
                    sock.settimeout(timeout)  # the send's bound; reads are cut to the deadline
                    reader.timeout = timeout
                reader.deadline = deadline
                stage = "send"
                sends += 1  # counted when it starts: a send cut short may still have arrived
                sock.sendall(request)
                stage = "response"
                status, data, close = read_response(reader, s.max_response_bytes)
            except TimeoutError as exc:
                self.close()
                if stage != "connect":
                    # The server took the request and did not answer in time: a slow
                    # answer, counted, not a dead server (sending again could duplicate it).
                    return 0, None, "timeout", sends
                last: BaseException = exc
            except ResponseError as exc:
                self.close()  # what is left of the answer is unread: the connection is unusable
                return 0, None, exc.kind, sends
            except OSError as exc:  # refused, reset, or closed before any byte of the answer
                self.close()
                last = exc
            else:
                if close:
                    self.close()
                return status, data, None, sends
            if reused and stage != "connect":
                continue  # a kept-alive connection the server closed: reconnect at once
            if delays is None:
                delays = s.backoff.delays()
            delay = next(delays, None)
            if delay is None:
                raise ServerGone(str(last), sends)
            time.sleep(delay)

    def handle(self, unit: Request) -> None:
        s = self.sink
        try:
            status, data, error, sends = self._post(unit.body)
        except ServerGone as exc:
            if exc.sends:
                self._requests += 1
                self._retries += exc.sends - 1
            self.fold()  # the error names what was delivered and confirmed so far
            with s._lock:
                s.failed += len(unit.event_ids)
                if s._fatal is None:
                    s._fatal = Failure(
                        f"the server stopped accepting connections ({exc}) and "
                        f"{s.backoff.retries} retries failed",
                        " Check the server, then resume.",
                    )
            return
        end = time.perf_counter_ns()
        n = len(unit.event_ids)
        ok = 200 <= status < 300 and error is None
        # Responses are decoded only when their scores are used (recording, --score-field).
        scores = self._scores(data, n) if ok and s._want_scores else [None] * n
        unscored = ok and s._want_scores and None in scores
        if unscored and s._unscored_example is None:
            s._unscored_example = (data or b"")[:EXAMPLE_BYTES]
        r = self.results
        for k in range(n):
            r.event_id.append(unit.event_ids[k])
            r.t_us.append(unit.times_us[k])
            r.latency_ns.append(end - unit.sched_ns[k])
            r.status.append(status)
            sc = scores[k]
            r.score.append(float("nan") if sc is None else sc)
            if error:
                r.errors[unit.event_ids[k]] = error
            elif unscored and sc is None:
                r.errors[unit.event_ids[k]] = NO_SCORE
        if ok:
            bad = NO_SCORE if unscored else None
        else:
            bad = str(status) if status else (error or "error")
        self._requests += 1
        self._retries += sends - 1
        if ok:
            self._delivered += n
        if bad is not None:
            self._errors[bad] = self._errors.get(bad, 0) + 1
        self._positions.extend(unit.positions)
        if not self.batched:
            self.fold()
        if bad is not None and s.fail_on_error and s._fatal is None:
            self.fold()
            s._fatal = Failure(
                f"request for event {unit.event_ids[0]} failed ({bad}) and --fail-on-error is set",
                " Drop --fail-on-error to count such errors instead of stopping.",
            )

    def _scores(self, data: bytes | None, n: int) -> list[float | None]:
        s = self.sink
        if not data:
            return [None] * n
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):  # a server's reply nested too deeply is no score
            return [None] * n
        path = s.score_field or ""
        if s.batch_size == 1:
            try:
                return [_as_score(pick(doc, path))] * n
            except KeyError:
                return [None] * n
        try:
            items = pick(doc, path) if isinstance(doc, dict) else doc
            if isinstance(items, list) and len(items) == n and not isinstance(doc, list):
                return [_as_score(x) for x in items]
            if isinstance(doc, list) and len(doc) == n:
                out: list[float | None] = []
                for item in doc:
                    try:
                        out.append(_as_score(pick(item, path)))
                    except KeyError:
                        out.append(None)
                return out
        except KeyError:
            pass
        return [None] * n
