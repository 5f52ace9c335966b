"""Where the pieces of a run execute: local worker processes (``--jobs N``) or a Dask cluster
(``--dask ADDRESS``).

Both backends get the run's arrays once (a worker initializer for local processes, a broadcast
``scatter`` for Dask) and then run small tasks that refer to them; :mod:`rtml_cli.parallel` says
which tasks. A task function takes that shared payload as its first argument: ``None`` in a local
worker (the payload is the process's :data:`_PAYLOAD`), the payload itself on a Dask worker (Dask
replaces the scattered future by the object in the worker's memory).

With one job and no Dask nothing here is used: the serial run needs no pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from rtml_cli.dask_address import check_dask_address
from rtml_cli.errors import UsageError

#: The payload of a local worker process, installed once by :func:`_install`.
_PAYLOAD: Any = None
_LIMITS: Any = None
#: Seconds to wait for a Dask scheduler (and for its first worker) before giving up.
DEFAULT_DASK_TIMEOUT_S = 10.0
DASK_ENV = "RTML_DASK_ADDRESS"
DASK_TIMEOUT_ENV = "RTML_DASK_TIMEOUT"
#: Modules a local worker's forkserver imports once (those of rtml's preset models).
PRELOAD = (
    "numpy",
    "sklearn.base",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "rtml_cli.parallel",
)


def payload(p: Any) -> Any:
    """The payload a task was given: its argument (Dask), else this process's (local pool)."""
    return _PAYLOAD if p is None else p


def _install(p: Any, threads: int) -> None:
    """Worker initializer: keep the payload, and cap native thread pools so that N workers on
    a machine do not each start a thread per core."""
    global _PAYLOAD, _LIMITS
    _PAYLOAD = p
    try:
        from threadpoolctl import threadpool_limits

        _LIMITS = threadpool_limits(threads)
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        pass


class Backend(Protocol):
    """Submit tasks, wait for some, stop."""

    workers: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def wait(self, futures: Iterable[Any]) -> set[Any]: ...

    def result(self, future: Any) -> Any: ...

    def cancel(self, futures: Iterable[Any]) -> None:
        """Cancel tasks that are no longer needed (those already running may still end)."""
        ...

    def close(self, pending: Iterable[Any] = ()) -> None:
        """Release the workers; ``pending`` futures are cancelled (after an error)."""
        ...


class LocalPool:
    """``--jobs N``: N local worker processes, each holding the payload."""

    def __init__(self, p: Any, jobs: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        # never fork: the parent runs polars and OpenMP threads, which a forked child inherits
        # half-locked; forkserver starts each worker from a clean process
        ctx: Any
        if "forkserver" in methods:
            ctx = multiprocessing.get_context("forkserver")
            # imported once by the server, not once per worker: scikit-learn takes seconds
            # (the server only imports and forks: no thread pool is started in it)
            ctx.set_forkserver_preload(list(PRELOAD))
        else:  # pragma: no cover - Windows, macOS
            ctx = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        self.workers = jobs
        self.pool = cf.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_install, initargs=(p, threads)
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, None, *args)

    def wait(self, futures: Iterable[Any]) -> set[Any]:
        done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return done

    def result(self, future: Any) -> Any:
        try:
            return future.result()
        except cf.process.BrokenProcessPool:
            raise UsageError(
                "a --jobs worker process ended abruptly (killed, or out of memory); the run "
                "was stopped. Rerun it, with fewer --jobs if memory is short."
            ) from None

    def cancel(self, futures: Iterable[Any]) -> None:
        for f in futures:
            f.cancel()

    def close(self, pending: Iterable[Any] = ()) -> None:
        if list(pending):
            # running tasks cannot be cancelled: end their processes (only ours)
            procs = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(5)
        else:
            self.pool.shutdown(wait=True)


def dask_timeout() -> float:
    """``RTML_DASK_TIMEOUT`` (seconds), else :data:`DEFAULT_DASK_TIMEOUT_S`."""
    raw = os.environ.get(DASK_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_DASK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        raise UsageError(
            f"{DASK_TIMEOUT_ENV} must be a number of seconds between 0 and 3600. Got {raw!r}."
        )
    return value


class DaskPool:
    """``--dask ADDRESS``: a running Dask scheduler; the payload is scattered to every worker."""

    def __init__(self, p: Any, address: str, *, timeout: float | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise UsageError(
                "--dask needs the Dask extra, which is not installed. Install it with "
                "pip install 'rtml[dask]' (or pip install 'dask[distributed]')."
            ) from None
        self._distributed = distributed
        self.address = address
        timeout = dask_timeout() if timeout is None else timeout
        fix = f"Start one (dask scheduler; then dask worker ADDRESS), or fix --dask / {DASK_ENV}."
        # a port where another service listens would hang the Client's handshake: ask first
        check_dask_address(address, timeout=timeout, flag=f"--dask (or {DASK_ENV})")
        try:
            self.client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # unreachable, refused, malformed address: all the user's
            raise UsageError(
                f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                f"({type(exc).__name__}: {exc}). {fix}"
            ) from None
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except KeyboardInterrupt:
            self.client.close()
            raise
        except Exception:
            self.client.close()
            raise UsageError(
                f"the Dask scheduler at {address!r} has no worker (waited {timeout:g} s). Start "
                f"one with: dask worker {address}"
            ) from None
        self.workers = max(
            1,
            sum(
                int(w.get("nthreads", 1)) for w in self.client.scheduler_info()["workers"].values()
            ),
        )
        # once to every worker; a worker that joins later fetches it from a peer
        self.ref = self.client.scatter(p, broadcast=True, hash=False)
        # not distributed.wait: it looks for a default client, and this one is not the default
        self.finished = distributed.as_completed(loop=self.client.loop)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        fut = self.client.submit(fn, self.ref, *args, pure=False)
        self.finished.add(fut)
        return fut

    def wait(self, futures: Iterable[Any]) -> set[Any]:
        # every submitted future comes out of `finished` once done (cancelled ones too: the
        # caller skips those it no longer waits for)
        return set(self.finished.next_batch(block=True))

    def result(self, future: Any) -> Any:
        try:
            return future.result()
        except self._distributed.KilledWorker as exc:
            raise UsageError(
                f"Dask workers of {self.address!r} died while running one task several times "
                f"({exc}); the run was stopped. Check the workers' memory and logs, then rerun."
            ) from None
        except (asyncio.CancelledError, cf.CancelledError, OSError) as exc:
            # a task whose inputs the cluster lost (every worker holding them died), or a
            # connection to the scheduler that broke
            raise UsageError(
                f"lost the Dask cluster at {self.address!r} during the run "
                f"({type(exc).__name__}: {exc}). Rerun once the scheduler and workers are up."
            ) from None

    def cancel(self, futures: Iterable[Any]) -> None:
        futures = list(futures)
        if futures:
            self.client.cancel(futures)

    def close(self, pending: Iterable[Any] = ()) -> None:
        try:
            futures = list(pending)
            if futures:
                self.client.cancel(futures)
        finally:
            self.client.close()


def make_backend(p: Any, *, jobs: int, dask: str | None) -> Backend:
    """The Dask backend when an address is given, else ``jobs`` local worker processes."""
    if dask:
        return DaskPool(p, dask)
    return LocalPool(p, jobs)
