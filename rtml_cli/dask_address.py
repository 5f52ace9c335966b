"""Check a ``--dask`` address before a ``distributed.Client`` is built for it.

``Client(address, timeout=...)`` does not bound every failure: pointed at a port where something
else listens (an HTTP server) it waits for the handshake forever, and at a peer that answers
garbage it raises ``MemoryError`` (the garbage read as a frame length), which rtml would call
"out of memory"; a Client whose construction failed is also left half-built, and its ``__del__``
blocks another 20 s and prints a traceback after rtml's error. So the address is parsed, and a
``tcp://`` one is asked for its identity over one connection bounded by ``timeout`` in all;
only a Dask scheduler that answers gets a Client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rtml_cli.errors import UsageError


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def check_dask_address(address: str, *, timeout: float, flag: str = "--dask") -> None:
    """UsageError naming ``address`` unless it parses and a tcp:// one is a Dask scheduler."""
    from distributed.comm.addressing import parse_address, parse_host_port

    fix = f"Give {flag} as tcp://HOST:PORT of a running scheduler (dask scheduler), or omit it."
    try:
        scheme, location = parse_address(address)
        parse_host_port(location)
    except ValueError as exc:
        raise UsageError(f"{flag} {address!r} is not a scheduler address ({exc}). {fix}") from None
    if scheme != "tcp":  # tls/ws need the user's security settings: the Client checks those
        return
    try:
        reply = asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # refused, unreachable, garbage or silence: all the address's
        why = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise UsageError(
            f"cannot reach a Dask scheduler at {address!r} within {timeout:g} s ({why}). "
            f"Check the address and that the scheduler runs. {fix}"
        ) from None
    if not (isinstance(reply, dict) and reply.get("type") == "Scheduler"):
        raise UsageError(
            f"{address!r} answers, but not as a Dask scheduler (another service listens "
            f"there). {fix}"
        )
