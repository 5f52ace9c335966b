"""Replay as a library: order, tie rules, exactly-once, label timing, disorder, schedule, Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtml_cli.errors import UsageError
from rtml_cli.io import Roles
from rtml_cli.replay import ReplayOptions, plan_replay, replay
from rtml_cli.replay_schedule import LatencyHistogram, Schedule, disorder_delays
from rtml_cli.replay_source import prepare_replay
from rtml_cli.sinks.base import MessageBatch, Sink

T0 = dt.datetime(2024, 1, 1)


class CollectSink(Sink):
    """Keeps every message as a dict (via the protocol's json_lines) and each batch's size."""

    name = "collect"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.batches: list[int] = []
        self.scheduled: list[np.ndarray | None] = []
        self.opened = self.closed = False

    def open(self) -> None:
        self.opened = True

    def write(self, batch: MessageBatch) -> None:
        self.messages += [json.loads(line) for line in batch.json_lines()]
        self.batches.append(len(batch))
        self.scheduled.append(batch.scheduled_ns)

    def close(self) -> None:
        self.closed = True


def _table(tmp_path: Path, df: pl.DataFrame, name: str = "t.parquet") -> str:
    path = tmp_path / name
    df.write_parquet(path)
    return str(path)


def _run(path: str, roles: Roles | None = None, **opts: Any) -> list[dict[str, Any]]:
    sink = CollectSink()
    replay(path, roles or Roles(), ReplayOptions(**opts), to=sink)
    return sink.messages


def _key(m: dict[str, Any]) -> tuple[str, int, int]:
    return (m["rtml_time"], 0 if m["rtml_kind"] == "event" else 1, m["rtml_event_id"])


def test_tie_rules_time_then_events_before_labels_then_table_order(tmp_path: Path) -> None:
    # e0, e1 at 00:00 with labels at 00:01; e2 at 00:01 (tied with both labels); e3 at 00:01.
    df = pl.DataFrame(
        {
            "ts": [T0, T0, T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=1)],
            "x": [10, 11, 12, 13],
            "label": [1, 0, None, 1],
        }
    )
    msgs = _run(_table(tmp_path, df), label_delay_us=60_000_000)
    got = [(m["rtml_kind"][0], m["rtml_event_id"]) for m in msgs]
    assert got == [("e", 0), ("e", 1), ("e", 2), ("e", 3), ("l", 0), ("l", 1), ("l", 3)]
    # e2's label is null: no label message for it.
    assert msgs[0] == {
        "rtml_kind": "event",
        "rtml_event_id": 0,
        "rtml_time": "2024-01-01T00:00:00",
        "ts": "2024-01-01T00:00:00",
        "x": 10,
    }
    assert msgs[4] == {
        "rtml_kind": "label",
        "rtml_event_id": 0,
        "label": 1,
        "rtml_time": "2024-01-01T00:01:00",
    }


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_ties_across_record_batches_keep_events_before_labels(tmp_path: Path, chunk: int) -> None:
    df = pl.DataFrame({"ts": [T0, T0, T0, T0 + dt.timedelta(seconds=1)], "label": [1, 1, 1, 1]})
    msgs = _run(_table(tmp_path, df), chunk_rows=chunk)
    got = [(m["rtml_kind"][0], m["rtml_event_id"]) for m in msgs]
    assert got == [("e", 0), ("e", 1), ("e", 2), ("l", 0), ("l", 1), ("l", 2), ("e", 3), ("l", 3)]


def test_label_time_column_orders_labels_and_is_left_out_of_events(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "ts": [T0, T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=20)],
            "y": [True, False, True],
            "y_at": [
                T0 + dt.timedelta(seconds=30),
                T0 + dt.timedelta(seconds=15),
                T0 + dt.timedelta(seconds=20),
            ],
        }
    )
    msgs = _run(_table(tmp_path, df), Roles(label_time="y_at"))
    got = [(m["rtml_kind"][0], m["rtml_event_id"], m["rtml_time"][-8:]) for m in msgs]
    assert got == [
        ("e", 0, "00:00:00"),
        ("e", 1, "00:00:10"),
        ("l", 1, "00:00:15"),
        ("e", 2, "00:00:20"),
        ("l", 2, "00:00:20"),
        ("l", 0, "00:00:30"),
    ]
    assert all("y_at" not in m and "y" not in m for m in msgs if m["rtml_kind"] == "event")


def test_no_label_column_gives_events_only_and_nulls_as_null(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {"when": [T0, T0 + dt.timedelta(hours=1)], "v": [1.5, None], "s": ["a", None]}
    )
    msgs = _run(_table(tmp_path, df))
    assert [m["rtml_kind"] for m in msgs] == ["event", "event"]
    assert msgs[1]["v"] is None and msgs[1]["s"] is None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 50), min_size=1, max_size=60),
    delays=st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=60, max_size=60),
    chunk=st.integers(1, 7),
    disorder=st.sampled_from([0, 5, 40]),
)
def test_every_row_once_in_order_labels_never_early(
    tmp_path: Path, offsets: list[int], delays: list[int | None], chunk: int, disorder: int
) -> None:
    """Property: each row gives one event (and one label iff labelled), in tie-rule order."""
    n = len(offsets)
    times = sorted(offsets)
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(seconds=s) for s in times],
            "row": list(range(n)),
            "y": [None if d is None else 1 for d in delays[:n]],
            "y_at": [
                T0 + dt.timedelta(seconds=s + (d or 0))
                for s, d in zip(times, delays[:n], strict=True)
            ],
        }
    )
    path = _table(tmp_path, df, f"p{n}_{chunk}_{disorder}.parquet")
    msgs = _run(
        path, Roles(label_time="y_at"), chunk_rows=chunk, disorder_us=disorder * 1_000_000, seed=7
    )
    events = [m for m in msgs if m["rtml_kind"] == "event"]
    labels = [m for m in msgs if m["rtml_kind"] == "label"]
    assert sorted(m["rtml_event_id"] for m in events) == list(range(n))
    assert [m["row"] for m in sorted(events, key=lambda m: m["rtml_event_id"])] == list(range(n))
    assert sorted(m["rtml_event_id"] for m in labels) == [
        i for i in range(n) if delays[i] is not None
    ]
    assert [_key(m) for m in msgs] == sorted(_key(m) for m in msgs)  # arrival order + tie rules
    seen: set[int] = set()
    for m in msgs:
        if m["rtml_kind"] == "event":
            seen.add(m["rtml_event_id"])
        else:
            assert m["rtml_event_id"] in seen, "a label arrived before its event"
    if disorder == 0:
        assert [m["rtml_event_id"] for m in events] == list(range(n))


def test_disorder_is_bounded_reproducible_and_keeps_fields(tmp_path: Path) -> None:
    n = 2_000
    df = pl.DataFrame({"ts": [T0 + dt.timedelta(seconds=i) for i in range(n)], "i": range(n)})
    path = _table(tmp_path, df)
    a = _run(path, disorder_us=30_000_000, seed=1)
    b = _run(path, disorder_us=30_000_000, seed=1)
    c = _run(path, disorder_us=30_000_000, seed=2)
    assert a == b
    assert a != c
    ids = [m["rtml_event_id"] for m in a]
    assert ids != sorted(ids), "30 s of disorder on 1 event/s must reorder something"
    for m in a:
        arrival = dt.datetime.fromisoformat(m["rtml_time"])
        original = dt.datetime.fromisoformat(m["ts"])
        assert dt.timedelta(0) <= arrival - original <= dt.timedelta(seconds=30)
        assert m["i"] == m["rtml_event_id"]  # original fields travel with the message
    d = disorder_delays(np.arange(100_000), disorder_us=1000, seed=3)
    assert d.min() == 0 and d.max() == 1000


def test_start_end_limit_keep_event_ids(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0 + dt.timedelta(hours=i) for i in range(10)], "v": range(10)})
    path = _table(tmp_path, df)
    msgs = _run(path, start=T0 + dt.timedelta(hours=3), end=T0 + dt.timedelta(hours=8), limit=3)
    assert [m["rtml_event_id"] for m in msgs] == [3, 4, 5]
    assert [m["v"] for m in msgs] == [3, 4, 5]


def test_resume_from_skips_exactly_the_first_messages(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(minutes=i) for i in range(50)],
            "label": [i % 2 for i in range(50)],
        }
    )
    path = _table(tmp_path, df)
    full = _run(path, label_delay_us=90_000_000, chunk_rows=7)
    for k in (0, 1, 13, 99, 100):
        assert _run(path, label_delay_us=90_000_000, chunk_rows=7, start_position=k) == full[k:]
    with pytest.raises(UsageError, match="--resume-from 150 is beyond the end"):
        _run(path, label_delay_us=90_000_000, chunk_rows=7, start_position=150)


def test_speed_k_scales_the_schedule_by_one_over_k() -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.integers(0, 5_000_000, 500))
    base = Schedule(speed=1.0).offsets_ns(times)
    for k in (2.0, 10.0, 3600.0):
        scaled = Schedule(speed=k).offsets_ns(times)
        np.testing.assert_allclose(scaled, base / k, atol=1)
    assert base[0] == 0
    np.testing.assert_array_equal(base, (times - times[0]) * 1_000)


def test_schedule_is_the_same_whether_fed_at_once_or_in_chunks() -> None:
    times = np.cumsum(np.r_[0, np.full(99, 1_000_000), 10**9, np.full(99, 1_000_000)])
    for kwargs in ({"speed": 5.0, "max_gap_us": 2_000_000}, {"rate": 250.0}):
        whole = Schedule(**kwargs).offsets_ns(times)
        s = Schedule(**kwargs)
        parts = np.concatenate([s.offsets_ns(times[i : i + 17]) for i in range(0, len(times), 17)])
        np.testing.assert_array_equal(whole, parts)


def test_max_gap_compresses_only_long_gaps() -> None:
    t = np.array([0, 1, 2, 1_000, 1_001]) * 1_000_000
    off = Schedule(speed=1.0, max_gap_us=10_000_000).offsets_ns(t)
    assert off.tolist() == [0, 1_000_000_000, 2_000_000_000, 12_000_000_000, 13_000_000_000]


def test_rate_schedules_message_k_at_k_over_rate() -> None:
    off = Schedule(rate=4.0).offsets_ns(np.zeros(5, dtype=np.int64))
    assert off.tolist() == [0, 250_000_000, 500_000_000, 750_000_000, 1_000_000_000]


def test_paced_replay_sends_due_messages_with_their_schedule(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0 + dt.timedelta(seconds=i) for i in range(20)]})
    sink = CollectSink()
    summary = replay(_table(tmp_path, df), Roles(), ReplayOptions(rate=2_000.0), to=sink)
    assert summary.messages == 20 and summary.lateness is not None and summary.lateness.count == 20
    sched = np.concatenate([s for s in sink.scheduled if s is not None])
    assert len(sched) == 20 and np.all(np.diff(sched) == 500_000)


def test_latency_histogram_percentiles_within_one_percent() -> None:
    rng = np.random.default_rng(1)
    v = rng.exponential(1_000_000, 50_000)
    h = LatencyHistogram()
    h.record(v[:20_000])
    h.record(v[20_000:])
    for q in (50, 99):
        assert abs(h.percentile(q) - np.percentile(v, q)) / np.percentile(v, q) < 0.015
    assert h.max_ns == int(v.max())


class InterruptingSink(CollectSink):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.flushed = False

    def write(self, batch: MessageBatch) -> None:
        if len(self.messages) >= self.after:
            raise KeyboardInterrupt
        super().write(batch)

    def close(self) -> None:
        self.flushed = True
        super().close()


def test_ctrl_c_closes_the_sink_and_reports_how_far_it_got(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {"ts": [T0 + dt.timedelta(seconds=i) for i in range(100)], "label": [1] * 100}
    )
    sink = InterruptingSink(after=30)
    summary = replay(_table(tmp_path, df), Roles(), ReplayOptions(chunk_rows=10), to=sink)
    assert summary.interrupted and sink.closed and sink.flushed
    assert summary.messages == len(sink.messages) >= 30
    assert summary.next_position == summary.messages
    assert any("--resume-from" in v for _, v in summary.rows())


def test_unsorted_input_is_sorted_stably_with_a_warning(tmp_path: Path) -> None:
    from rtml_cli.errors import UnsortedInputWarning

    df = pl.DataFrame(
        {"ts": [T0 + dt.timedelta(hours=h) for h in (2, 0, 1, 0)], "row": [0, 1, 2, 3]}
    )
    with pytest.warns(UnsortedInputWarning, match="not sorted"):
        msgs = _run(_table(tmp_path, df))
    assert [m["row"] for m in msgs] == [1, 3, 2, 0]
    assert [m["rtml_event_id"] for m in msgs] == [0, 1, 2, 3]


def test_dry_run_plans_without_sending(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0 + dt.timedelta(minutes=i) for i in range(61)], "label": [1] * 61})
    path = _table(tmp_path, df)
    plan = plan_replay(path, Roles(), ReplayOptions(speed=60.0, label_delay_us=0))
    assert (plan.events, plan.labels, plan.messages) == (61, 61, 122)
    assert plan.expected_wall_s == pytest.approx(60.0)
    assert plan_replay(path, Roles(), ReplayOptions(rate=10.0)).expected_wall_s == pytest.approx(
        12.1
    )
    assert plan_replay(path, Roles(), ReplayOptions()).expected_wall_s is None


def test_real_table_elec2_counts_and_order() -> None:
    from conftest import shared_table

    src = prepare_replay(
        shared_table("elec2.parquet"), Roles(), ReplayOptions(label_delay_us=1_800_000_000)
    )
    assert src.was_sorted  # 1997-05-04 appears twice: ties, not disorder
    assert (src.events, src.labels) == (45_312, 45_312)
    sink = CollectSink()
    replay(
        shared_table("elec2.parquet"), Roles(), ReplayOptions(label_delay_us=1_800_000_000), to=sink
    )
    msgs = sink.messages
    assert len(msgs) == 90_624
    assert [_key(m) for m in msgs] == sorted(_key(m) for m in msgs)
    events = [m for m in msgs if m["rtml_kind"] == "event"]
    assert [m["rtml_event_id"] for m in events] == list(range(45_312))
    ts = [m["timestamp"] for m in events]
    assert len(ts) - len(set(ts)) == 48  # the 48 tied timestamps survive, in table order


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"start": T0 + dt.timedelta(minutes=7), "end": T0 + dt.timedelta(minutes=40), "limit": 20},
        {"drop_null_time": True, "label_delay_us": 5_000_000},
    ],
)
def test_parquet_pull_reader_equals_the_lazy_query(tmp_path: Path, opts: dict[str, Any]) -> None:
    """Parquet is read batch by batch (bounded memory) through the same plan as the lazy query."""
    times = [T0 + dt.timedelta(minutes=i) for i in range(60)]
    times[5] = times[33] = None  # type: ignore[call-overload]
    df = pl.DataFrame({"ts": times, "v": range(60), "label": [i % 3 for i in range(60)]})
    folder = tmp_path / "parts"
    folder.mkdir()
    df.head(25).write_parquet(folder / "a.parquet", row_group_size=7)
    df.tail(35).write_parquet(folder / "b.parquet", row_group_size=7)
    opts = {"drop_null_time": True, **opts}
    from rtml_cli.errors import DroppedRowsWarning

    with pytest.warns(DroppedRowsWarning, match="dropped 2 row"):
        src = prepare_replay(folder, Roles(), ReplayOptions(**opts))
    assert src.reader is not None
    batches = list(src.batches(4))
    assert all(b.height <= 4 for b in batches)
    pulled = pl.concat(batches)
    assert pulled.equals(src.frame.collect())
    assert pulled.height == src.events


class _FramesSink(CollectSink):
    """Keeps the columns of every frame it gets; stops the replay after ``stop_after`` batches."""

    def __init__(self, *, needs_frame: bool = True, stop_after: int | None = None) -> None:
        super().__init__()
        self.needs_frame = needs_frame
        self.stop_after = stop_after
        self.columns: list[list[str]] = []

    def write(self, batch: MessageBatch) -> None:
        super().write(batch)
        self.columns.append(batch.frame.columns)
        if self.stop_after is not None and len(self.batches) >= self.stop_after:
            self.closed_by_reader = True


def test_sink_base_declares_the_capabilities_replay_reads() -> None:
    assert (Sink.name, Sink.needs_frame, Sink.writes_ndjson) == ("sink", True, False)
    assert (Sink.closed_by_reader, Sink.discarded) == (False, False)


def test_a_sink_that_needs_no_frame_gets_narrow_frames_and_the_same_messages(
    tmp_path: Path,
) -> None:
    df = pl.DataFrame(
        {"ts": [T0 + dt.timedelta(seconds=i) for i in range(6)], "x": range(6), "label": [0, 1] * 3}
    )
    path = _table(tmp_path, df)
    wide, narrow = _FramesSink(), _FramesSink(needs_frame=False)
    replay(path, Roles(), ReplayOptions(), to=wide)
    replay(path, Roles(), ReplayOptions(), to=narrow)
    assert narrow.messages == wide.messages and len(wide.messages) == 12
    assert {c for cols in narrow.columns for c in cols} == {
        "rtml_kind",
        "rtml_event_id",
        "rtml_time",
    }
    assert "x" in wide.columns[0] and "label" in wide.columns[0]


def test_a_sink_whose_reader_went_away_stops_the_replay_early(tmp_path: Path) -> None:
    df = pl.DataFrame({"ts": [T0 + dt.timedelta(seconds=i) for i in range(50)], "x": range(50)})
    sink = _FramesSink(stop_after=1)
    summary = replay(_table(tmp_path, df), Roles(), ReplayOptions(chunk_rows=10), to=sink)
    assert len(sink.batches) == 1 and summary.messages == 0 < summary.planned
    assert any("stopped early" in note for note in summary.notes)
    assert not summary.discarded and sink.closed
