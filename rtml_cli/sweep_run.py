"""Running the cells of ``rtml sweep``: in this process, in local processes, or on Dask.

Each cell is :func:`run_cell` (one :func:`rtml_cli.compare.run_compare`), which never raises
for a failure of the cell itself; the runners yield ``(cell id, record)`` as cells end.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

from rtml_cli.dask_address import check_dask_address
from rtml_cli.errors import RtmlError, RtmlWarning, UsageError

#: Environment variable naming the Dask scheduler when ``--dask`` is not given.
DASK_ENV = "RTML_DASK_ADDRESS"
#: Seconds to wait for a Dask scheduler before giving up (exit 2 naming the address).
DASK_CONNECT_TIMEOUT_S = 10.0


def run_cell(
    table: str,
    config: str,
    out: str,
    *,
    seed: int,
    timing_sample: int | None,
    timing_budget_s: float | None,
) -> dict[str, Any]:
    """Run one cell (a compare run); never raises for a failure of the cell itself.

    Top level, so that joblib and Dask can ship it to another process.
    """
    from rtml_cli.compare import run_compare

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run_compare(
                table,
                config=config,
                out=out,
                force=os.path.lexists(out),  # checked by the caller: an rtml run directory
                seed=seed,
                timing_sample=timing_sample,
                timing_budget_s=timing_budget_s,
            )
            status, error = "ok", None
        except RtmlError as exc:
            status, error = "failed", str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug or a user model's own exception: this cell only
            first = (str(exc).strip().splitlines() or [""])[0]
            status, error = "failed", f"{type(exc).__name__}: {first}".rstrip(": ")
    seen = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, RtmlWarning) and text not in seen:
            seen.append(text)
    return {"status": status, "error": error, "wall_s": time.perf_counter() - t0, "warnings": seen}


def _tagged(cid: str, kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return cid, run_cell(**kw)


def local_cells(
    tasks: list[tuple[str, dict[str, Any]]], jobs: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    if jobs <= 1 or len(tasks) <= 1:
        for cid, kw in tasks:
            yield cid, run_cell(**kw)
        return
    from joblib import Parallel, delayed

    done: set[str] = set()
    try:
        par = Parallel(n_jobs=jobs, return_as="generator_unordered")
        for cid, rec in par(delayed(_tagged)(cid, kw) for cid, kw in tasks):
            done.add(cid)
            yield cid, rec
    except Exception as exc:  # a worker process died (killed, out of memory)
        why = f"its worker process ended ({type(exc).__name__}); rerun the sweep to complete it"
        for cid, _ in tasks:
            if cid not in done:
                yield cid, {"status": "failed", "error": why, "wall_s": None, "warnings": []}


def dask_client(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (UsageError if unreachable)."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--dask needs the 'distributed' package: pip install 'rtml[dask]'. Or run without "
            "--dask (in-process) or with --jobs N."
        ) from None
    check_dask_address(address, timeout=DASK_CONNECT_TIMEOUT_S)
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(
            f"cannot reach the Dask scheduler at '{address}' within {DASK_CONNECT_TIMEOUT_S:g} s "
            f"({first}). Check the address (tcp://host:8786) and that the scheduler runs, or "
            "run without --dask."
        ) from None


def dask_cells(
    tasks: list[tuple[str, dict[str, Any]]], client: Any
) -> Iterator[tuple[str, dict[str, Any]]]:
    from distributed import as_completed

    futures = {}
    for cid, kw in tasks:
        fut = client.submit(run_cell, key=f"rtml-sweep-{cid}-{os.getpid()}-{time.time_ns()}",
                            pure=False, **kw)  # fmt: skip
        futures[fut] = cid
    for fut in as_completed(list(futures), loop=client.loop):
        cid = futures[fut]
        try:
            rec = fut.result()
        except Exception as exc:  # KilledWorker, a lost worker, a scheduler gone
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            rec = {
                "status": "failed",
                "error": f"the Dask task failed ({type(exc).__name__}: {first}); rerun the "
                "sweep to complete this cell",
                "wall_s": None,
                "warnings": [],
            }
        yield cid, rec
