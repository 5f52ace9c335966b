"""Checks that keep ``rtml replay`` from harming the user's data or resuming the wrong stream.

- :func:`check_output`: the output is not the input (by inode), not inside a folder or glob
  read as input, and not an existing file without ``--force``; run before anything is opened.
- :func:`table_fingerprint` and :func:`stream_identity`: what a ``--checkpoint`` file records
  about the table and the options that shape the message stream, so that resuming from it
  is refused for another table or another stream (:func:`rtml_cli.sinks.checkpoint.verify_resume`).
- :func:`resolve_start_position`: where a replay starts (``--resume-from``, or a checkpoint
  that belongs to it), never beyond the stream's end.
- :func:`roles_from_config`: the ``[data]`` roles of the ``rtml.toml`` beside the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtml_cli.errors import ConfigError, UsageError
from rtml_cli.io import Roles, _expand
from rtml_cli.safe_write import refuse_existing, refuse_table_as_output

if TYPE_CHECKING:
    from rtml_cli.replay_source import ReplaySource

#: Bytes of each file's start and end that the fingerprint hashes (with the file's size).
_HEAD_BYTES = 4 << 10
_TAIL_BYTES = 64 << 10
#: The ``[data]`` keys a replay reads from ``rtml.toml``; other sections are never read.
_REPLAY_ROLES = ("time", "label", "key", "label_time", "time_unit", "time_format")


def _is_file_target(to: str) -> bool:
    return to != "-" and "://" not in to


def check_output(table: str | Path, to: str, *, force: bool) -> None:
    """Refuse a file output that is (or would join) the input, or exists without ``force``.

    Raises :class:`~rtml_cli.errors.UsageError` (exit 2) before anything is read or opened.
    """
    if not _is_file_target(to):
        return
    refuse_table_as_output(to, table)
    refuse_existing(to, force=force, what="replay output")


def table_fingerprint(table: str | Path) -> dict[str, Any]:
    """What a checkpoint records about its table: file count, total size and a content digest.

    The digest hashes each file's size, its first 4 KiB and its last 64 KiB, in table order.
    That reads at most 68 KiB per file, whatever the table's size (a 10 GB table costs
    milliseconds), and still changes when the table is rewritten: a Parquet file ends with its
    footer (schema, row groups, their offsets and statistics), a CSV or NDJSON file that grows
    or shrinks changes size and tail. Modification times are left out on purpose: a copied or
    restored table is the same table. The path is stored for messages only, not compared.
    """
    source = str(table)
    files, _fmt = _expand(source)
    h = hashlib.blake2b(digest_size=16)
    total = 0
    for f in files:
        size = os.path.getsize(f)
        total += size
        h.update(size.to_bytes(8, "little"))
        with open(f, "rb") as fh:
            h.update(fh.read(_HEAD_BYTES))
            if size > _HEAD_BYTES:
                fh.seek(max(_HEAD_BYTES, size - _TAIL_BYTES))
                h.update(fh.read(_TAIL_BYTES))
    return {"path": source, "files": len(files), "bytes": total, "digest": h.hexdigest()}


def same_table(stored: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether two fingerprints are of the same table content (the path may differ)."""
    return all(stored.get(k) == current.get(k) for k in ("files", "bytes", "digest"))


def stream_identity(src: ReplaySource) -> dict[str, Any]:
    """The replay options that decide which messages the stream holds, and in which order.

    Pacing (``--speed``, ``--rate``) and transport options change when messages are sent, not
    which: they may differ between a run and its resume.
    """
    o, r = src.options, src.roles
    return {
        "time": r.time,
        "label": r.label,
        "label_time": r.label_time,
        "ignore": sorted(r.ignore),
        "time_unit": r.time_unit,
        "time_format": r.time_format,
        "drop_null_time": o.drop_null_time,
        "label_delay_us": o.label_delay_us,
        "disorder_us": o.disorder_us,
        "seed": o.seed if o.disorder_us else None,
        "start": o.start.isoformat() if o.start else None,
        "end": o.end.isoformat() if o.end else None,
        "limit": o.limit,
    }


def roles_from_config(
    table: str | Path,
    roles: Roles,
    *,
    config: str | Path | None = None,
    label_delay: str | None = None,
) -> tuple[Roles, int | None, str | None]:
    """The roles and label delay from ``[data]`` of ``rtml.toml``, flags overriding.

    ``config`` is ``--config``; without it, the ``rtml.toml`` beside the table is used when
    there is one. Only ``[data]`` is read and validated (``time``, ``label``, ``label_time``,
    ``label_delay``, ``key``, ``ignore``, ``time_unit``, ``time_format``): a model named in the
    file is never imported. Returns ``(roles, label_delay_us, note)``; ``note`` says which file
    was used and what it gave (``None`` when no file was used).

    Raises
    ------
    ConfigError
        Unreadable TOML, an unknown top-level section or ``[data]`` key, a bad value.
    """
    from rtml_cli.config import (
        _DATA_KEYS,
        _TOP_KEYS,
        _check_keys,
        _duration,
        _str,
        _str_list,
        find_config,
        load_toml,
    )

    path = Path(config) if config is not None else find_config(table)
    merged = Roles(**{k: getattr(roles, k) for k in Roles.__dataclass_fields__})
    delay_us = _duration(label_delay, "--label-delay") if label_delay is not None else None
    if path is None:
        return merged, delay_us, None
    raw = load_toml(path)
    where = f" of {path}"
    _check_keys(raw, _TOP_KEYS, f"the top level{where}")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise ConfigError(f"[data]{where} must be a table.")
    _check_keys(data, _DATA_KEYS, f"[data]{where}")
    used: list[str] = []
    for k in _REPLAY_ROLES:
        if k in data:
            value = _str(data[k], f"[data] {k}{where}")
            if k == "label_time" and delay_us is not None:
                continue  # --label-delay replaces the file's label-time column
            if getattr(merged, k) is None:
                setattr(merged, k, value)
                used.append(f"{k}={value}")
    if "ignore" in data:
        ignore = _str_list(data["ignore"], f"[data] ignore{where}")
        if not merged.ignore:
            merged.ignore = ignore
            used.append(f"ignore={','.join(ignore)}")
    if "label_delay" in data:
        file_delay = _duration(data["label_delay"], f"[data] label_delay{where}")
        if delay_us is None and merged.label_time is None:
            delay_us = file_delay
            used.append(f"label_delay={data['label_delay']}")
    what = ", ".join(used) if used else "no role: flags set them all"
    how = (
        "given by --config" if config is not None else "found beside the table; --config to change"
    )
    return merged, delay_us, f"using roles from {path} ({what}); {how}"


def resolve_start_position(
    src: ReplaySource, target: str, sink_options: dict[str, Any] | None
) -> ReplaySource:
    """``src`` with its start position settled, and the checkpoint told what it belongs to.

    ``start_position`` None means "from the ``checkpoint`` sink option when that file exists":
    the file must name this target, this table (by content) and this stream. A start beyond
    the stream's end is an error, not a silent no-op.
    """
    from rtml_cli.sinks.checkpoint import refuse_foreign_checkpoint, verify_resume

    opts = src.options
    ck = (sink_options or {}).get("checkpoint")
    identity: dict[str, Any] | None = None
    if ck is not None:
        refuse_foreign_checkpoint(ck)
        identity = {"table": table_fingerprint(src.source), "stream": stream_identity(src)}
        if sink_options is not None:
            sink_options["identity"] = identity
    start = opts.start_position
    if start is None:
        stored = None
        if ck is not None and identity is not None:
            stored = verify_resume(
                ck, target=target, identity=identity, messages=src.messages, compare=same_table
            )
        start = stored or 0
    elif start > src.messages:
        raise UsageError(
            f"--resume-from {start} is beyond the end of the stream of {src.source} "
            f"({src.messages:,} messages). Pass a smaller position, or 0 to start over."
        )
    if sink_options is not None and "start_position" in sink_options:
        sink_options["start_position"] = start
    return dataclasses.replace(src, options=dataclasses.replace(opts, start_position=start))
