"""Replay sinks: where ``rtml replay`` sends its messages.

A sink receives :class:`~rtml_cli.sinks.base.MessageBatch` objects in arrival order and says
how it went in :meth:`~rtml_cli.sinks.base.Sink.stats`. :func:`open_sink` picks the sink for a
target (``-``, a file name, or a URL) from :data:`~rtml_cli.sinks.base.REGISTRY`.
"""

from __future__ import annotations

from rtml_cli.sinks.base import REGISTRY, MessageBatch, Sink, open_sink, register

__all__ = ["REGISTRY", "MessageBatch", "Sink", "open_sink", "register"]
