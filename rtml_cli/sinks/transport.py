"""What the network sinks (HTTP, Kafka, Redis) share: :class:`TransportSink` and its helpers.

- :class:`TransportSink`: the confirmed position, the ``--checkpoint`` file and the counters
  of a network sink (:mod:`rtml_cli.sinks.checkpoint`).
- :class:`Backoff` and :func:`call_with_retries`: bounded retries with capped exponential
  backoff, so that a dead server turns into a clear :class:`~rtml_cli.errors.SinkError` in
  bounded time instead of a hang.
- :func:`split_url`, :func:`parse_pairs`: target URLs and repeatable ``NAME=VALUE`` options.
- :func:`transport_options`: which replay flags apply to which target, as sink options.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks.base import Sink
from rtml_cli.sinks.checkpoint import Checkpoint, PositionTracker, resolve_start

_Result = TypeVar("_Result")


def parse_pairs(
    items: Mapping[str, Any] | Iterable[str] | None,
    *,
    sep: str,
    flag: str,
    example: str,
    form: str = "NAME{sep}VALUE",
) -> dict[str, str]:
    """Repeatable ``NAME<sep>VALUE`` options (``--header``, ``--kafka-config``) or a mapping.

    Examples
    --------
    >>> parse_pairs(["acks=all", "linger.ms = 5"], sep="=", flag="--kafka-config", example="a=b")
    {'acks': 'all', 'linger.ms': '5'}
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise UsageError(
                f"{flag} '{item}' is not {form.format(sep=sep)}. Write it like {flag} {example}."
            )
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``base_s * 2**i`` seconds, at most ``cap_s``, ``retries`` times.

    Parameters
    ----------
    retries : how many times a failed send is tried again before giving up.
    base_s : the first delay, in seconds.
    cap_s : the longest delay, in seconds.

    Examples
    --------
    >>> list(Backoff(retries=4, base_s=0.1, cap_s=0.3).delays())
    [0.1, 0.2, 0.3, 0.3]
    """

    retries: int = 5
    base_s: float = 0.1
    cap_s: float = 2.0

    def delays(self) -> Iterator[float]:
        """The sleep before each retry (deterministic: tests and users can bound the total)."""
        for i in range(self.retries):
            yield min(self.cap_s, self.base_s * (2**i))

    def total_s(self) -> float:
        """The longest time spent sleeping before giving up."""
        return sum(self.delays())


def call_with_retries(
    fn: Callable[[], _Result],
    *,
    backoff: Backoff,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException], None] | None = None,
) -> _Result:
    """Call ``fn``; on one of ``retry_on`` sleep and try again, at most ``backoff.retries`` times.

    The last exception propagates when every retry failed; the caller turns it into a
    :class:`SinkError` that says how far the replay got.
    """
    delays = backoff.delays()
    while True:
        try:
            return fn()
        except retry_on as exc:
            delay = next(delays, None)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc)
            time.sleep(delay)


def failure_message(target: str, what: str, *, delivered: int, position: int, fix: str = "") -> str:
    """The standard "gave up" text: what failed, how far the replay got, how to resume."""
    return (
        f"{target}: {what}. Delivered {delivered} messages before giving up; confirmed "
        f"position {position} (resume with --resume-from {position}, or --checkpoint).{fix}"
    )


class TransportSink(Sink):
    """Common plumbing of the network sinks: position, checkpoint, retries, counters.

    Parameters
    ----------
    target : the replay target URL, for messages.
    start_position : absolute stream position of the first message this sink receives (the
        replay's ``--resume-from``); positions in errors and checkpoints count from the
        stream's start, so they can be passed back to ``--resume-from`` as they are.
    checkpoint : a file to keep the confirmed position in (``--checkpoint``), or ``None``.
    retries, backoff_s, backoff_max_s : the :class:`Backoff` when the server goes away.
    identity : the table and stream the checkpoint belongs to (see :class:`Checkpoint`).
    """

    def __init__(
        self,
        target: str,
        *,
        start_position: int = 0,
        checkpoint: str | Path | None = None,
        retries: int = 5,
        backoff_s: float = 0.1,
        backoff_max_s: float = 2.0,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.start_position = start_position
        self.backoff = Backoff(retries=retries, base_s=backoff_s, cap_s=backoff_max_s)
        self.tracker = PositionTracker(start_position)
        self.checkpoint = Checkpoint(checkpoint, target=target, identity=identity)
        #: absolute position of the next message handed to this sink
        self.next_position: int = start_position
        self.delivered: int = 0
        self.failed: int = 0
        self.retried: int = 0

    def _validate_common(self) -> None:
        if self.start_position < 0:
            raise UsageError(f"start position must be >= 0. Got {self.start_position} instead.")
        if self.backoff.retries < 0:
            raise UsageError(f"--retries must be >= 0. Got {self.backoff.retries} instead.")

    def _save_checkpoint(self, *, force: bool = False) -> None:
        self.checkpoint.save(self.tracker.position, force=force, delivered=self.delivered)

    def _count_retry(self, _exc: BaseException) -> None:
        self.retried += 1

    def _gave_up(self, what: str, fix: str = "") -> SinkError:
        self._save_checkpoint(force=True)
        return SinkError(
            failure_message(
                self.target,
                what,
                delivered=self.delivered,
                position=self.tracker.position,
                fix=fix,
            )
        )

    def stats(self) -> dict[str, Any]:
        """``delivered``, ``failed``, ``retries`` and the confirmed ``position``."""
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "retries": self.retried,
            "position": self.tracker.position,
        }


def event_time_us(frame: Any) -> list[int | None]:
    """``rtml_time`` as integer µs since the epoch, one per message.

    The protocol's Datetime("us") is read as its physical Int64 (``dt.epoch`` costs ~100 µs
    per call even on one row: too much for a sink writing one paced message at a time).
    """
    import polars as pl

    col = frame["rtml_time"]
    if col.dtype == pl.Datetime("us"):
        return col.cast(pl.Int64).to_list()
    return col.dt.epoch("us").to_list()


def split_url(target: str, *, scheme: str, default_port: int, what: str) -> tuple[str, int, str]:
    """``scheme://host:port/name`` -> ``(host, port, name)``; a clear error when malformed."""
    from urllib.parse import urlsplit

    try:  # an unclosed or invalid [IPv6] host raises here, not only at .port
        parts = urlsplit(target)
        name = parts.path.lstrip("/")
        port = parts.port or default_port
    except ValueError:
        parts, name, port = urlsplit(""), "", -1
    if parts.scheme.lower() != scheme or not parts.hostname or port < 0 or not name:
        raise UsageError(
            f"replay target '{target}' is not a valid {scheme} URL. "
            f"Write it as {scheme}://HOST:PORT/{what}, e.g. {scheme}://127.0.0.1:{default_port}/events."
        )
    return parts.hostname, port, name


#: which replay flags apply to which URL schemes (anything else given is a usage error).
_FLAG_SCHEMES: dict[str, tuple[str, ...]] = {
    "--concurrency": ("http", "https"),
    "--batch-size": ("http", "https"),
    "--timeout": ("http", "https"),
    "--max-response-bytes": ("http", "https"),
    "--header": ("http", "https"),
    "--score-field": ("http", "https"),
    "--record": ("http", "https"),
    "--fail-on-error": ("http", "https"),
    "--kafka-config": ("kafka",),
    "--maxlen": ("redis",),
    "--checkpoint": ("http", "https", "kafka", "redis"),
    "--retries": ("http", "https", "kafka", "redis"),
}


def transport_options(
    target: str,
    *,
    resume_from: int | None = None,
    checkpoint: str | None = None,
    retries: int | None = None,
    key_col: str | None = None,
    source: str | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
    timeout_s: float | None = None,
    max_response_bytes: int | None = None,
    headers: list[str] | None = None,
    score_field: str | None = None,
    record: str | None = None,
    fail_on_error: bool = False,
    kafka_config: list[str] | None = None,
    maxlen: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """The replay start position and the sink options for ``target``, from the replay flags.

    A flag that does not apply to the target's kind is an error rather than silently ignored.
    The start position is ``--resume-from`` when given (> 0), else the position stored in an
    existing ``--checkpoint`` file, else 0.

    Returns
    -------
    (start_position, options) : options to pass to :func:`~rtml_cli.sinks.base.open_sink`.
    """
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    given = {
        "--concurrency": concurrency,
        "--batch-size": batch_size,
        "--timeout": timeout_s,
        "--max-response-bytes": max_response_bytes,
        "--header": headers or None,
        "--score-field": score_field,
        "--record": record,
        "--fail-on-error": fail_on_error or None,
        "--kafka-config": kafka_config or None,
        "--maxlen": maxlen,
        "--checkpoint": checkpoint,
        "--retries": retries,
    }
    for flag, value in given.items():
        if value is not None and scheme not in _FLAG_SCHEMES[flag]:
            kinds = ", ".join(f"{s}://" for s in _FLAG_SCHEMES[flag])
            raise UsageError(
                f"{flag} applies to {kinds} targets only, not to '{target}'. "
                f"Drop {flag} or replay to such a target."
            )
    start = resolve_start(resume_from, checkpoint)
    if scheme not in ("http", "https", "kafka", "redis"):
        return start, {}
    options: dict[str, Any] = {"start_position": start, "checkpoint": checkpoint}
    if retries is not None:
        options["retries"] = retries
    if scheme in ("http", "https"):
        options.update(
            source=source,
            fail_on_error=fail_on_error,
            headers=headers,
            score_field=score_field,
            record=record,
        )
        for name, value in (
            ("concurrency", concurrency),
            ("batch_size", batch_size),
            ("timeout_s", timeout_s),
            ("max_response_bytes", max_response_bytes),
        ):
            if value is not None:
                options[name] = value
    elif scheme == "kafka":
        options.update(key_col=key_col, kafka_config=kafka_config)
    else:
        options["maxlen"] = maxlen
    return start, options
