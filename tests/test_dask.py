"""``compare --dask ADDRESS``: the same retrain tasks on a real Dask cluster (a LocalCluster of two
worker processes on loopback, the session's ``cluster`` of tests/conftest.py), with the serial
run's results bit for bit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli.cli import app
from tests.test_parallel import delayed_table, untimed

STRATEGIES = "batch:1d,stream:12h:2d,online:4"


def compare(runner: Any, table: Path, out: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(
        app,
        [
            "compare",
            str(table),
            "--time-col",
            "ts",
            "--label-col",
            "label",
            "--key-col",
            "user",
            "--label-time-col",
            "label_ts",
            "--warmup",
            "3d",
            "--timing-sample",
            "40",
            "-s",
            STRATEGIES,
            "-o",
            str(out),
            *args,
        ],
        env=env,
    )


def outputs(out: Path) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
    return (
        pl.read_parquet(out / "predictions.parquet"),
        json.loads((out / "metrics.json").read_text()),
        json.loads((out / "manifest.json").read_text()),
    )


def test_dask_equals_serial_bit_for_bit(tmp_path: Path, runner: Any, cluster: Any) -> None:
    table = delayed_table(tmp_path, n=700)
    res = compare(runner, table, tmp_path / "serial")
    assert res.exit_code == 0, res.output
    res = compare(runner, table, tmp_path / "dask", "--dask", cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    p1, m1, f1 = outputs(tmp_path / "serial")
    p2, m2, f2 = outputs(tmp_path / "dask")
    assert any("skipped" in w for w in f1["warnings"])  # a span served by the previous model
    assert p1.equals(p2)
    assert untimed(m1) == untimed(m2)
    assert f1["warnings"] == f2["warnings"]
    assert f2["options"]["dask"] == cluster.scheduler_address


def test_address_from_the_environment(tmp_path: Path, runner: Any, cluster: Any) -> None:
    table = delayed_table(tmp_path, n=400)
    res = compare(
        runner, table, tmp_path / "env", env={"RTML_DASK_ADDRESS": cluster.scheduler_address}
    )
    assert res.exit_code == 0, res.output
    assert outputs(tmp_path / "env")[2]["options"]["dask"] == cluster.scheduler_address


def test_a_worker_killed_mid_run_is_rescheduled(tmp_path: Path, runner: Any, cluster: Any) -> None:
    """A model whose first fit on more than 300 rows kills its own worker process (SIGKILL):
    Dask reruns that task on the other worker (the payload was broadcast to both) and the run
    completes; or, if the cluster lost more than it could recompute, the run stops with a usage
    error naming the Dask address (never an internal error) and a rerun completes. Either way
    the finished run's results are the serial run's."""
    from distributed import Client

    table = delayed_table(tmp_path, n=700)
    marker = tmp_path / "killed-once"
    factory = tmp_path / "killer.py"
    factory.write_text(
        "import os, signal\n"
        "from pathlib import Path\n"
        "from sklearn.linear_model import LogisticRegression\n"
        f"MARKER = Path({str(marker)!r})\n"
        "class Killer(LogisticRegression):\n"
        "    def fit(self, X, y, sample_weight=None):\n"
        "        if len(X) > 300 and not MARKER.exists() and os.environ.get('RTML_TEST_KILL'):\n"
        "            MARKER.write_text(str(os.getpid()))\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        return super().fit(X, y, sample_weight)\n"
        "def make():\n"
        "    from sklearn.impute import SimpleImputer\n"
        "    from sklearn.pipeline import make_pipeline\n"
        "    return make_pipeline(SimpleImputer(), Killer())\n"
    )
    with Client(cluster.scheduler_address, timeout=10) as client:
        pids = set(client.run(os.getpid).values())
        client.run(lambda: os.environ.__setitem__("RTML_TEST_KILL", "1"))
    args = ("--inputs", "x1", "--model", f"{factory}:make", "-s", "batch:1d,stream:12h")
    res = compare(runner, table, tmp_path / "dask", *args, "--dask", cluster.scheduler_address)
    assert marker.exists(), "no worker was killed: the test proves nothing"
    assert int(marker.read_text()) in pids
    if res.exit_code != 0:
        assert res.exit_code == 2, res.output
        assert cluster.scheduler_address in " ".join(res.output.split())
        assert not (tmp_path / "dask").exists()
        res = compare(runner, table, tmp_path / "dask", *args, "--dask", cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    res = compare(runner, table, tmp_path / "serial", *args)  # RTML_TEST_KILL unset here
    assert res.exit_code == 0, res.output
    p1, m1, _ = outputs(tmp_path / "serial")
    p2, m2, _ = outputs(tmp_path / "dask")
    assert p1.equals(p2)
    assert untimed(m1) == untimed(m2)
    # the nanny restarts the killed worker: the cluster has two workers again for other tests
    with Client(cluster.scheduler_address, timeout=10) as client:
        client.wait_for_workers(2, timeout=60)


def test_unreachable_scheduler_is_a_usage_error_naming_the_address(
    tmp_path: Path, runner: Any
) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    table = delayed_table(tmp_path, n=300)
    res = compare(
        runner, table, tmp_path / "out", "--dask", address, env={"RTML_DASK_TIMEOUT": "2"}
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert address in text
    assert "dask scheduler" in text and "RTML_DASK_ADDRESS" in text
    assert "within 2 s" in text  # the bound it waited, from RTML_DASK_TIMEOUT
    assert not (tmp_path / "out").exists()
