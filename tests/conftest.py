"""Shared fixtures: paths to real data, a CliRunner with a pinned console width."""

from __future__ import annotations

import os

# One native thread per process, set before anything loads OpenMP/BLAS. CI has 2 cores and runs
# two pytest-xdist workers; a scikit-learn HistGradientBoosting fit would otherwise start a
# thread per core in each, and OpenMP threads spin-wait for each other on an oversubscribed
# machine (a 1,500-row fit measured 20x slower). Results do not depend on the thread count.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

# Real servers (redis-server, Tansu Kafka broker, a test HTTP model endpoint) for sink tests.
pytest_plugins = ["conftest_services"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Pin rich/typer output so CLI text assertions do not depend on the terminal.
os.environ.setdefault("COLUMNS", "120")
os.environ.setdefault("TERM", "dumb")
os.environ.pop("FORCE_COLOR", None)


def shared_table(name: str) -> Path:
    """Path to a real table in ../shared/data (never copied into the repo)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"real data table {path} is missing; CI lays ../shared/data beside the repo")
    return path


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A real Dask LocalCluster (two single-threaded worker processes on loopback), started once
    per session: the ``--dask`` tests of compare and sweep share it (a worker some test kills is
    restarted by its nanny)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        # the scheduler serves its HTTP routes even without a dashboard, on port 8787 by
        # default: a free port instead, so two sessions (xdist workers) never collide
        scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
    ) as c:
        yield c
