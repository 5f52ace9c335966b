"""The ordered message stream: a prepared table becomes event and label messages in arrival order.

docs/semantics.md, "Replay order and ties". Event *i* arrives at ``t_i`` (delayed by a seeded
amount in ``[0, D]`` under ``disorder``), its label at ``l_i`` (the label-time column, or
``t_i`` + label delay; never before the event message, never for a null label). Ties are broken
by time, then events before labels, then table order.

Only the messages that are not yet due (labels waiting for their arrival time, events held back
by disorder) are kept between record batches, so memory does not grow with the table.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import numpy as np
import polars as pl

from rtml_cli.errors import InputError
from rtml_cli.io import EVENT_ID, EVENT_TIME, LABEL_TIME
from rtml_cli.replay_columns import JSON, KIND, LABEL_ARRIVAL, TIME
from rtml_cli.replay_encode import MessageEncoder
from rtml_cli.replay_prefetch import prefetch
from rtml_cli.replay_schedule import disorder_delays
from rtml_cli.replay_source import ReplaySource


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Give ``frame`` exactly the message schema (missing fields become typed nulls)."""
    return frame.select(
        [
            pl.col(c) if c in frame.columns else pl.lit(None, dtype=d).alias(c)
            for c, d in schema.items()
        ]
    )


def _micros(frame: pl.DataFrame) -> np.ndarray:
    """The :data:`TIME` column of ``frame`` as int64 µs (its physical values, no copy)."""
    return frame[TIME].to_physical().to_numpy()


def merge_order(ev_times: np.ndarray, lab_times: np.ndarray) -> np.ndarray:
    """Arrival order of events followed by labels, each already in (time, event id) order.

    Returns the permutation that gathers ``[events..., labels...]`` into arrival order: by
    time, events before labels at the same time, each kind keeping its own order. A stable
    sort of one int64 key per message, ``time * 2 + kind`` (timsort: two sorted runs, a
    linear merge).

    Examples
    --------
    >>> merge_order(np.array([0, 5, 5]), np.array([0, 5, 9])).tolist()
    [0, 3, 1, 2, 4, 5]
    """
    key = np.concatenate([ev_times * 2, lab_times * 2 + 1])
    return np.argsort(key, kind="stable")


def _split_due(
    part: pl.DataFrame | None, watermark_us: int, *, inclusive: bool
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """Put ``part`` in (time, event id) order and split it into (due, pending) at the watermark.

    Due are messages before the watermark (``inclusive``: at it too). Ordered, the due ones are
    a prefix, so the split is two zero-copy slices.
    """
    if part is None or part.height == 0:
        return part, None
    if not part[TIME].is_sorted():
        part = part.sort([TIME, EVENT_ID])
    k = int(np.searchsorted(_micros(part), watermark_us, side="right" if inclusive else "left"))
    return part.slice(0, k), part.slice(k)


def iter_messages(
    src: ReplaySource,
    *,
    encode: bool = False,
    narrow: bool = False,
    chunk_rows: int | None = None,
    parallel: bool = True,
    newline: bool = False,
) -> Iterator[pl.DataFrame]:
    """Yield the message stream as frames in arrival order (schema ``src.schema``).

    ``options.start_position`` messages are dropped from the front. Memory holds one record
    batch (two when encoding runs ahead in its own thread: ``encode`` and ``parallel``) plus
    the messages not yet due. With ``encode``, each frame has one more column,
    :data:`JSON`: the message as a flat JSON object, encoded per kind before events and labels
    are merged (so no message is encoded twice and no frame is split again by kind). With
    ``narrow`` too, frames hold only kind, event id, time and :data:`JSON` (for sinks that only
    write JSON: ordering narrow frames is much cheaper). With ``newline`` too, each
    :data:`JSON` value ends in a newline (NDJSON lines, written without joining them).
    """
    opts = src.options
    label = src.roles.label
    disorder = opts.disorder_us
    pending_ev: pl.DataFrame | None = None
    pending_lab: pl.DataFrame | None = None
    to_skip = opts.start_position
    out_schema = pl.Schema([*src.schema.items(), (JSON, pl.String())]) if encode else src.schema
    narrow = narrow and encode
    if narrow:
        out_schema = pl.Schema([(c, out_schema[c]) for c in (KIND, EVENT_ID, TIME, JSON)])
    ev_cols = [pl.lit("event").alias(KIND), pl.col(EVENT_ID), pl.col(TIME)]
    lab_cols = [pl.lit("label").alias(KIND), pl.col(EVENT_ID), pl.col(LABEL_ARRIVAL).alias(TIME)]
    if not narrow:
        ev_cols += map(pl.col, src.payload)
        lab_cols += [pl.col(label)] if label else []
    encoder = MessageEncoder(
        src.schema, src.payload, label, time_col=src.roles.time, newline=newline
    )
    parts = max(1, pl.thread_pool_size()) if parallel else 1

    def emit(due_ev: pl.DataFrame | None, due_lab: pl.DataFrame | None) -> pl.DataFrame | None:
        nonlocal to_skip
        kinds = [p for p in (due_ev, due_lab) if p is not None and p.height]
        if not kinds:
            return None
        if not narrow:
            kinds = [_conform(p, out_schema) for p in kinds]
        if len(kinds) == 1:
            out = kinds[0]
        else:
            order = merge_order(_micros(kinds[0]), _micros(kinds[1]))
            # one chunk first: gathering from two chunks is twice as slow
            out = pl.concat(kinds, rechunk=True)[order]
        if to_skip:
            n = min(to_skip, out.height)
            to_skip -= n
            out = out.slice(n)
        return out if out.height else None

    def prepared() -> Generator[tuple[int, pl.DataFrame, pl.DataFrame | None], None, None]:
        """Each record batch as (watermark, its events, its labels), encoded when asked."""
        for batch in src.batches(chunk_rows or opts.chunk_rows):
            if batch.height == 0:
                continue
            # batches are in time order: later events are at or after the watermark
            watermark = int(batch[EVENT_TIME].to_physical()[-1])
            arrival = pl.col(EVENT_TIME)
            if disorder:
                delays = disorder_delays(
                    batch[EVENT_ID].to_numpy(), disorder_us=disorder, seed=opts.seed
                )
                arrival = arrival + pl.Series(delays).cast(pl.Duration("us"))
            frame = batch.with_columns(arrival.alias(TIME))
            if label is not None:
                # A label never arrives before its event message (disorder may delay the event).
                lab_at = (
                    pl.max_horizontal(pl.col(LABEL_TIME), pl.col(TIME))
                    if disorder
                    else pl.col(LABEL_TIME)
                )
                frame = frame.with_columns(lab_at.alias(LABEL_ARRIVAL))
            ev_json, lab_json = encoder.encode(frame, parts=parts) if encode else (None, None)
            ev = frame.select(ev_cols)
            if ev_json is not None:
                ev = ev.with_columns(ev_json)
            lab = None
            if label is not None:
                lab = frame.select(lab_cols)
                if lab_json is not None:
                    lab = lab.with_columns(lab_json)
                if frame[label].null_count():  # a null label sends no label message
                    lab = lab.filter(frame[label].is_not_null())
            yield watermark, ev, lab

    # Encoding in a thread of its own overlaps it with ordering this batch and with whatever
    # the consumer does (writing): polars releases the GIL while it works.
    source = prefetch(prepared(), depth=1) if encode and parallel else prepared()
    try:
        for watermark, ev, lab in source:
            due_lab = None
            if lab is not None:
                if pending_lab is not None and pending_lab.height:
                    lab = pl.concat([pending_lab, lab])
                # a label at the watermark waits for the events at the watermark
                due_lab, pending_lab = _split_due(lab, watermark, inclusive=False)
            if disorder:
                if pending_ev is not None and pending_ev.height:
                    ev = pl.concat([pending_ev, ev])
                due_ev, pending_ev = _split_due(ev, watermark, inclusive=True)
            else:
                due_ev = ev
            out = emit(due_ev, due_lab)
            if out is not None:
                yield out
        out = emit(pending_ev, pending_lab)
        if out is not None:
            yield out
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"cannot read table '{src.source}' while replaying: {first}. The file may be corrupt."
        ) from None
    finally:
        source.close()
