"""compare --dask at an address where something else listens: exit 2 in bounded time."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app


@pytest.mark.parametrize("answer", [b"", b"\xff" * 64], ids=["silent", "garbage"])
def test_compare_dask_to_a_service_that_is_not_dask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bytes
) -> None:
    # distributed.Client waits forever on a silent peer and calls a garbage one out of memory
    monkeypatch.setenv("RTML_DASK_TIMEOUT", "1")
    n = 400
    rng = np.random.default_rng(0)
    table = tmp_path / "t.parquet"
    pl.DataFrame(
        {"ts": pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 1) +
                                 pl.duration(hours=n - 1), "1h", eager=True),
         "x": rng.normal(size=n), "y": rng.random(n) < 0.5}
    ).write_parquet(table)  # fmt: skip
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        conns.append(conn)
        conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        res = CliRunner().invoke(
            app,
            ["compare", str(table), "-s", "batch:1d", "--dask", address, "-o", str(tmp_path / "r")],
        )
    finally:
        server.close()
        for c in conns:
            c.close()
    assert res.exit_code == 2, res.output
    assert address in res.output and "memory" not in res.output and "Traceback" not in res.output
