"""``rtml sweep --dask``: cells as tasks of a real Dask cluster (the LocalCluster of two worker
processes of tests/conftest.py), the serial curve, and a worker killed mid-sweep."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from rtml_cli.cli import app
from tests import test_sweep
from tests.test_sweep import QUALITY, sweep_args

# fixtures shared with test_sweep: the table and its serial sweep (the LocalCluster is the
# session's, tests/conftest.py)
done = test_sweep.done
table = test_sweep.table


def test_dask_cells_give_the_serial_curve(
    done: Path, table: Path, tmp_path: Path, cluster: Any
) -> None:
    out = tmp_path / "dask"
    res = CliRunner().invoke(app, sweep_args(table, out, "--dask", cluster.scheduler_address))
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["runner"]["dask"] == cluster.scheduler_address
    serial = pl.read_parquet(done / "curve.parquet").select(QUALITY)
    assert pl.read_parquet(out / "curve.parquet").select(QUALITY).equals(serial)


def test_a_worker_killed_mid_sweep_is_rescheduled_or_its_cell_rerun(
    done: Path,
    table: Path,
    tmp_path: Path,
    cluster: Any,
) -> None:
    from distributed import Client

    out = tmp_path / "killed"
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        victim = sorted(client.run(os.getpid).values())[0]

    def kill_once_the_cells_are_sent() -> None:
        for _ in range(600):  # the sweep writes sweep.json just before it submits the cells
            if (out / "sweep.json").exists():
                os.kill(victim, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_once_the_cells_are_sent)
    killer.start()
    args = sweep_args(table, out, "--dask", cluster.scheduler_address)
    first = CliRunner().invoke(app, args)
    killer.join()
    # Dask reschedules the lost task; if it could not, the cell is failed and a rerun completes it
    assert first.exit_code in (0, 1), first.output
    if first.exit_code == 1:
        assert "rerun the sweep" in first.output
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0, again.output
    serial = pl.read_parquet(done / "curve.parquet").select(QUALITY)
    assert pl.read_parquet(out / "curve.parquet").select(QUALITY).equals(serial)
