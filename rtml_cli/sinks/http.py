"""HTTP sink: ``--to http://HOST:PORT/PATH`` — replay events at a real model endpoint.

One ``POST`` per event, its JSON body the event message exactly as ``rtml replay`` prints it
(``Content-Type: application/json``). With ``batch_size`` > 1 the body is a JSON list of up to
that many events, and the response must be a JSON list with one item per event (or an object
whose ``score_field`` is such a list). Label messages are never POSTed: they are kept to score
the responses when recording.

**Latency is measured from each event's scheduled send time** (``MessageBatch.scheduled_ns``)
to the end of its response, not from when the request actually left: a server that stalls
delays every request queued behind it, and those delays must show (coordinated omission).
Under ``--max-speed`` there is no schedule, and latency runs from the moment the sink takes
the event from the replay.

``concurrency`` worker threads (one keep-alive connection each) send requests in parallel;
with 1 the requests are made inline. Requests due together are handed to the workers in
jobs (one hand-off per request cost more than the request). The client is a minimal
HTTP/1.1 one (:mod:`rtml_cli.sinks.http_client`): the request head is built once, each
request is one ``sendall``, and each response is read **within ``timeout_s`` for the whole
request** (connect, send and the full response, not per read) and **at most
``max_response_bytes`` of body** (a larger answer is refused unread and its connection
dropped).

The counts say what went over the wire: ``requests`` is the requests sent, ``retries`` the
re-sends of a request (``requests + retries`` POSTs went out), ``errors`` every
response that failed by kind: HTTP status (``"503"``), ``"timeout"``, ``"incomplete
response"`` (cut mid-body), ``"bad response"`` (malformed), ``"response too large"``, and,
when scores are wanted (``score_field`` or ``record``), ``"no usable score"`` (a 2xx answer
without a number at ``score_field``). None of these is sent again: the server took the
request and answered (a re-send could duplicate it), and none is fatal unless
``fail_on_error``; they count as handled for the confirmed position. A request is sent again
only when the connection failed before any byte of its answer arrived (a kept-alive
connection the server had closed, a server restarting): at once for a kept-alive
connection, then with backoff; when the retries are exhausted the sink raises a
:class:`~rtml_cli.errors.SinkError` with the events delivered and the confirmed position. A
failure in a worker after the last write is raised by :meth:`HttpSink.close`.

``record`` (``--record RUN_DIR``) writes a run directory that ``rtml report`` reads, with the
answers as the predictions of strategy ``"deployed"`` (:mod:`rtml_cli.run_record`): the
``score`` picked from each response by ``score_field`` (a dotted path such as ``"proba.1"``;
list items by index), ``y`` joined from the label messages, ``wall_ns`` = latency from
schedule, and ``responses.parquet`` (every event: status, latency, error, score). A recorded
replay in which no response carried a usable score fails (:class:`SinkError`, exit 2) and
writes nothing: its metrics would be empty.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import polars as pl

from rtml_cli.errors import RtmlError, SinkError, UsageError
from rtml_cli.escape import for_terminal
from rtml_cli.sinks.base import MessageBatch, register
from rtml_cli.sinks.http_client import DEFAULT_MAX_RESPONSE_BYTES, request_head
from rtml_cli.sinks.http_sender import (
    EXAMPLE_BYTES,
    NO_SCORE,
    Answers,
    Failure,
    Request,
    Sender,
)
from rtml_cli.sinks.transport import TransportSink, event_time_us, parse_pairs

#: Most requests handed to a worker at once (see ``HttpSink._send_outbox``).
_JOB_MAX = 32


def parse_headers(items: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """``["Authorization: Bearer x"]`` (``--header K:V``) or a mapping -> headers.

    Examples
    --------
    >>> parse_headers(["X-Team: ml", "Authorization:Bearer t"])
    {'X-Team': 'ml', 'Authorization': 'Bearer t'}
    """
    return parse_pairs(items, sep=":", flag="--header", example="'X-Api-Key: abc'")


@register("http", "https")
class HttpSink(TransportSink):
    """POST replayed events to an HTTP endpoint and measure each response from its schedule.

    Parameters
    ----------
    target : ``http(s)://HOST:PORT/PATH``.
    concurrency : requests in flight at once (worker threads).
    batch_size : events per request (1: one event object per POST; more: a JSON list).
    timeout_s : how long one request may take, all of it (connect, send, the full response),
        before it is counted as a timeout.
    connect_timeout_s : how long a TCP connect may take (within ``timeout_s``).
    max_response_bytes : the largest response body accepted; a larger one is an error
        (``"response too large"``) and is never held in memory.
    headers : extra request headers, ``"Name: value"`` strings or a mapping.
    score_field : dotted path of the prediction in the response JSON (``None``: the response
        body itself when it is a number).
    record : a new run directory to write the responses into, or ``None``.
    label_col : the label column (``None``: inferred from the label messages).
    source : the replayed table, stored in the run manifest.
    fail_on_error : stop at the first failed answer (an HTTP error, a timeout, a broken or
        too large answer, no usable score) instead of counting it.
    **common : see :class:`~rtml_cli.sinks.transport.TransportSink`.
    """

    name = "http"

    def __init__(
        self,
        target: str,
        *,
        concurrency: int = 1,
        batch_size: int = 1,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 2.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | Iterable[str] | None = None,
        score_field: str | None = None,
        record: str | Path | None = None,
        label_col: str | None = None,
        source: str | None = None,
        fail_on_error: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(target, **common)
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_response_bytes = max_response_bytes
        self.headers = headers
        self.score_field = score_field
        self.record = Path(record) if record is not None else None
        self.label_col = label_col
        self.source = source
        self.fail_on_error = fail_on_error
        self._lock = threading.Lock()
        self._results: list[Answers] = []
        self._pending: list[tuple[int, int, int, int, str]] = []
        self._labels: dict[int, tuple[Any, int | None]] = {}
        # Hand-off to the workers: C-level SimpleQueues of jobs (lists of requests; no
        # Python-level Condition per event as in queue.Queue). ``_slots`` holds one token per
        # job that may be queued or in flight: the replay takes one before handing a job over
        # (back-pressure), a worker returns it when the job is done, flush() waits for all.
        self._work: queue.SimpleQueue[list[Request] | None] | None = None
        self._outbox: list[Request] = []
        self._slots: queue.SimpleQueue[bool] | None = None
        self._slot_count = 0
        self._tls_context: ssl.SSLContext | None = None
        self._threads: list[threading.Thread] = []
        self._fatal: RtmlError | Failure | None = None
        self._fatal_raised = False
        self._inline: Sender | None = None
        self._errors_by_status: dict[str, int] = {}
        self._requests = 0
        #: the first 2xx body without a usable score, for the error of a --record run
        self._unscored_example: bytes | None = None
        self._started = time.time()
        self._closed = False
        self._opened = False

    # ----------------------------------------------------------------------------- lifecycle
    def open(self) -> None:
        """Check the options, connect once (bounded by ``connect_timeout_s``), start workers."""
        self._validate_common()
        try:  # an unclosed or invalid [IPv6] host raises here, not only at .port
            parts = urlsplit(self.target)
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), -1
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == -1:
            raise UsageError(
                f"replay target '{self.target}' is not a valid HTTP URL. "
                "Write it as http://HOST:PORT/PATH, e.g. http://127.0.0.1:8000/predict."
            )
        for name, value in (("--concurrency", self.concurrency), ("--batch-size", self.batch_size)):
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be an integer >= 1. Got {value} instead.")
        timeouts = (("--timeout", self.timeout_s), ("connect timeout", self.connect_timeout_s))
        for name, sec in timeouts:
            if not sec > 0:
                raise UsageError(f"{name} must be > 0 seconds. Got {sec} instead.")
        cap = self.max_response_bytes
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise UsageError(
                f"--max-response-bytes must be an integer >= 1 (bytes). Got {cap} instead."
            )
        if self.record is not None and self.record.exists():
            raise UsageError(
                f"--record directory {self.record} already exists. "
                "Pass a new path (a run directory is written once, atomically)."
            )
        self.https = parts.scheme.lower() == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", **parse_headers(self.headers)}
        self._head = request_head(
            self.host, self.port, 443 if self.https else 80, self.path, self._headers
        )
        # The one dict lookup per request left: whether responses must be decoded at all.
        self._want_scores = self.record is not None or self.score_field is not None
        try:
            socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s).close()
        except OSError as exc:
            raise SinkError(
                f"cannot connect to {self.host}:{self.port} for {self.target} "
                f"({exc.strerror or exc}). Check that the server is running and the URL is right."
            ) from None
        self._started = time.time()
        if self.concurrency == 1:
            self._inline = Sender(self)
            self._results.append(self._inline.results)
        else:
            self._work = queue.SimpleQueue()
            self._slots = queue.SimpleQueue()
            self._slot_count = 2 * self.concurrency
            for _ in range(self._slot_count):
                self._slots.put(True)
            for i in range(self.concurrency):
                worker = Sender(self)
                worker.batched = True
                self._results.append(worker.results)
                t = threading.Thread(target=worker.run, name=f"rtml-http-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        self._opened = True

    def write(self, batch: MessageBatch) -> None:
        """Hand every event of ``batch`` to the workers (waiting for its schedule); keep labels."""
        self._raise_fatal()
        frame = batch.frame
        lines = batch.json_lines()
        kinds = frame["rtml_kind"].to_list()
        ids = frame["rtml_event_id"].to_list()
        # Event times are only written to --record; a polars call costs ~100 us on the first
        # call after the replay slept (cold caches), and that is latency from the schedule.
        times = event_time_us(frame) if self.record is not None else [0] * len(kinds)
        sched = batch.scheduled_ns
        labels = self._labels if self.record is not None else None
        label_values = self._label_values(batch) if labels is not None else None
        pos = self.next_position
        now_ns = time.perf_counter_ns
        single = self.batch_size == 1
        label_positions: list[int] = []
        try:
            for i, kind in enumerate(kinds):
                p = pos + i
                if kind != "event":
                    if labels is not None and label_values is not None:
                        labels[ids[i]] = (label_values[i], times[i])
                    # Labels are kept, never sent: they are confirmed with the next event's
                    # answer (the worker's one lock per request), or at the end of the batch.
                    label_positions.append(p)
                    continue
                if label_positions and not single:
                    self._confirm(label_positions)
                if sched is not None:
                    due = int(sched[i])
                    wait = due - now_ns()
                    if wait > 0:  # the replay paces already; this only guards early batches
                        self._send_outbox()  # what is due already must not wait for this
                        time.sleep(wait / 1e9)
                else:
                    due = now_ns()
                if single:  # the common case: no _pending list, one request per event
                    if label_positions:
                        label_positions.append(p)
                        covers, label_positions = label_positions, []
                    else:
                        covers = [p]
                    self._hand(Request(covers, [ids[i]], [times[i] or 0], [due], lines[i].encode()))
                    continue
                self._pending.append((p, ids[i], times[i] or 0, due, lines[i]))
                if len(self._pending) >= self.batch_size:
                    self._dispatch()
            self._send_outbox()
        finally:
            self._confirm(label_positions)
        self.next_position = pos + len(kinds)
        self._save_checkpoint_locked()

    def _confirm(self, positions: list[int]) -> None:
        """Confirm (and clear) label ``positions``: labels are kept, never sent."""
        if positions:
            with self._lock:  # workers move the tracker too
                for p in positions:
                    self.tracker.done(p)
            positions.clear()

    def _label_values(self, batch: MessageBatch) -> list[Any]:
        frame = batch.frame
        # rtml replay's batches know their label column; a bare MessageBatch does not.
        col = self.label_col = self.label_col or getattr(batch, "label", None)
        if col is None:
            # The label is the one table column a label message carries.
            labels = frame.filter(pl.col("rtml_kind") == "label")
            if labels.height:
                carried = [
                    c
                    for c in labels.columns
                    if not c.startswith("rtml_") and labels[c].null_count() < labels.height
                ]
                if len(carried) == 1:
                    col = self.label_col = carried[0]
        if col is None or col not in frame.columns:
            return [None] * frame.height
        return frame[col].to_list()

    def _dispatch(self) -> None:
        pend, self._pending = self._pending, []
        if not pend:
            return
        if self.batch_size == 1 and len(pend) == 1:
            body = pend[0][4].encode()
        else:
            body = ("[" + ",".join(x[4] for x in pend) + "]").encode()
        unit = Request(
            positions=[x[0] for x in pend],
            event_ids=[x[1] for x in pend],
            times_us=[x[2] for x in pend],
            sched_ns=[x[3] for x in pend],
            body=body,
        )
        self._hand(unit)

    def _hand(self, unit: Request) -> None:
        """Send ``unit`` now (one connection) or queue it for the workers."""
        if self._inline is not None:
            self._inline.handle(unit)
            self._raise_fatal()
        else:
            self._outbox.append(unit)
            if len(self._outbox) >= _JOB_MAX * self.concurrency:
                self._send_outbox()

    def _send_outbox(self) -> None:
        """Hand the requests due so far to the workers, several per hand-off.

        One hand-off per request cost a thread wake-up and GIL transfer each, which made 4
        connections slower than 1. Requests that are due together (a burst, or everything
        under ``--max-speed``) go out in jobs of up to :data:`_JOB_MAX`, split so that every
        worker gets a share; a paced request that is due alone is still handed over alone.
        """
        box = self._outbox
        if not box:
            return
        self._outbox = []
        assert self._work is not None and self._slots is not None
        slots, work = self._slots, self._work
        jobs = max(self.concurrency, -(-len(box) // _JOB_MAX))
        for k in range(min(jobs, len(box))):
            while True:  # a bounded wait, so that a dead pool cannot block the replay forever
                self._raise_fatal()
                try:
                    slots.get(timeout=0.1)
                    break
                except queue.Empty:
                    continue
            # Dealt round-robin, so that the workers confirm neighbouring positions and the
            # confirmed prefix (the checkpoint) advances steadily instead of in jumps.
            work.put(box[k::jobs])

    def _wait_idle(self) -> None:
        """Wait until every request handed to the workers has been answered (or dropped)."""
        slots = self._slots
        if slots is None:
            return
        got = 0
        while got < self._slot_count:
            try:
                slots.get(timeout=0.1)
                got += 1
            except queue.Empty:
                if not any(t.is_alive() for t in self._threads):
                    break  # no worker left to return the tokens (cannot happen normally)
        for _ in range(got):
            slots.put(True)

    def _raise_fatal(self) -> None:
        fatal = self._fatal
        if fatal is None:
            return
        if isinstance(fatal, Failure):
            self._wait_idle()  # every worker drains its job and folds what it saw
            fatal = self._fatal = self._gave_up(fatal.what, fatal.fix)
        self._fatal_raised = True
        raise fatal

    def _save_checkpoint_locked(self, *, force: bool = False) -> None:
        with self._lock:
            position, delivered = self.tracker.position, self.delivered
        self.checkpoint.save(position, force=force, delivered=delivered)

    def flush(self) -> None:
        """Send the partial batch and wait until every request handed over has been answered."""
        if self._fatal is None:
            self._dispatch()
            self._send_outbox()
        self._wait_idle()
        self._save_checkpoint_locked(force=True)
        self._raise_fatal()

    def close(self) -> None:
        """Finish the requests in flight, stop the workers, write ``--record``, checkpoint."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._fatal is None:
                with contextlib.suppress(RtmlError):
                    self._dispatch()
                    if self._work is not None:
                        self._send_outbox()
            if self._work is not None:
                for _ in self._threads:
                    self._work.put(None)
                for t in self._threads:
                    t.join()
            if self._inline is not None:
                self._inline.close()
            self._save_checkpoint_locked(force=True)
            # A replay that never started or stopped on an error leaves no run directory:
            # a partial one would look like a finished run to `rtml report`.
            if self.record is not None and self._opened and self._fatal is None:
                self._check_scored()
                self._record(self.record)
        finally:
            self._work = None
            self._slots = None
            self._threads = []
        if self._fatal is not None and not self._fatal_raised:
            # A worker failed after the last write (e.g. the server died on the final
            # requests): the replay must not end as a success.
            self._raise_fatal()

    def _check_scored(self) -> None:
        """Refuse to record a run in which no answered event has a score: its metrics would
        be empty, and the usual cause (a wrong ``--score-field``) is the user's to fix."""
        if not any(r.event_id for r in self._results):
            return  # nothing was answered (an empty or interrupted replay): nothing to score
        if any(np.isfinite(np.frombuffer(r.score, dtype=np.float64)).any() for r in self._results):
            return
        where = (
            f"no response carried a number at --score-field '{self.score_field}'"
            if self.score_field is not None
            else "no response was a bare number (and no --score-field was given)"
        )
        errors = self.errors_by_status()
        example = self._unscored_example
        if example is not None:
            shown = for_terminal(example.decode("utf-8", "replace"), inline=True)
            more = "..." if len(example) >= EXAMPLE_BYTES else ""
            seen = f"; e.g. the endpoint answered '{shown}'{more}"
        else:
            failed = ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"
            seen = f"; no request got a usable 2xx answer (errors: {failed})"
        fix = (
            "Pass --score-field with the dotted path of the score in the answer (e.g. 'score' "
            "or 'proba.1')"
            if example is not None
            else "Check the endpoint and its URL"
        )
        raise SinkError(
            f"--record {self.record}: {where}{seen}. {fix}, then replay again. "
            "No run directory was written."
        )

    def _record(self, dest: Path) -> None:
        """Write the answers into the run directory ``dest`` (``--record``)."""
        from rtml_cli.run_record import EndpointAnswers, Recording, record_deployed_run

        def joined(name: str, dtype: type[np.generic]) -> np.ndarray:
            parts = [np.frombuffer(getattr(r, name), dtype=dtype) for r in self._results]
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        errors: dict[int, str] = {}
        for r in self._results:
            errors.update(r.errors)
        answers = EndpointAnswers(
            event_id=joined("event_id", np.int64),
            t_us=joined("t_us", np.int64),
            latency_ns=joined("latency_ns", np.int64),
            status=joined("status", np.int32),
            score=joined("score", np.float64),
            errors=errors,
            labels=self._labels,
        )
        options = {
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
            "timeout_s": self.timeout_s,
            "max_response_bytes": self.max_response_bytes,
            "score_field": self.score_field,
        }
        transport = {
            "requests": self._requests,
            "retries": self.retried,
            "errors": self.errors_by_status(),
        }
        record_deployed_run(
            answers,
            Recording(
                dest=dest,
                endpoint=self.target,
                source=self.source,
                label_col=self.label_col,
                score_field=self.score_field,
                interrupted=bool(self.interrupted),
                started=self._started,
                options=options,
                transport=transport,
            ),
        )

    def _tls(self) -> ssl.SSLContext:
        """The TLS context of https targets (system CAs, hostname checked), made once."""
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def _gave_up(self, what: str, fix: str = "") -> SinkError:
        if self.record is not None:
            fix += f" No --record run directory is written to {self.record} for a failed replay."
        return super()._gave_up(what, fix)

    # ----------------------------------------------------------------------------- results
    def errors_by_status(self) -> dict[str, int]:
        """Failed responses by HTTP status (``"503"``) or kind (``"timeout"``, ...)."""
        with self._lock:
            return dict(sorted(self._errors_by_status.items()))

    def latencies_ns(self) -> np.ndarray:
        """Per-event latency from schedule to response end, in ns (all workers)."""
        arrays = [np.frombuffer(r.latency_ns, dtype=np.int64) for r in self._results]
        return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)

    def stats(self) -> dict[str, Any]:
        """Counters (see :meth:`TransportSink.stats`), requests, errors by status, latency."""
        lat = self.latencies_ns()
        out: dict[str, Any] = {
            **super().stats(),
            "requests": self._requests,
            # one line in the summary: "503: 6, timeout: 1, 2 responses without a usable score"
            "errors": ", ".join(
                f"{v} response{'s' if v != 1 else ''} without a usable score"
                if k == NO_SCORE
                else f"{k}: {v}"
                for k, v in self.errors_by_status().items()
            )
            or "none",
        }
        if lat.size:
            p50, p99 = np.percentile(lat, [50, 99]) / 1e6
            out.update(
                latency_p50_ms=round(float(p50), 3),
                latency_p99_ms=round(float(p99), 3),
                latency_max_ms=round(float(lat.max()) / 1e6, 3),
            )
        if self.record is not None:
            out["record"] = str(self.record)
        return out
