"""Retry/backoff, confirmed position and checkpoint helpers shared by the network sinks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtml_cli.errors import SinkError, UsageError
from rtml_cli.sinks.checkpoint import Checkpoint, PositionTracker, resolve_start
from rtml_cli.sinks.transport import Backoff, call_with_retries


def test_backoff_is_capped_exponential_and_bounded():
    b = Backoff(retries=5, base_s=0.1, cap_s=0.5)
    assert list(b.delays()) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert b.total_s() == pytest.approx(1.7)


def test_call_with_retries_gives_up_after_the_bound(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr("rtml_cli.sinks.transport.time.sleep", sleeps.append)
    calls = []

    def boom():
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call_with_retries(
            boom, backoff=Backoff(retries=3, base_s=1, cap_s=2), retry_on=(ConnectionError,)
        )
    assert len(calls) == 4 and sleeps == [1, 2, 2]


def test_call_with_retries_returns_once_it_works(monkeypatch):
    monkeypatch.setattr("rtml_cli.sinks.transport.time.sleep", lambda s: None)
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] < 3:
            raise ConnectionError
        return "ok"

    seen = []
    assert (
        call_with_retries(
            flaky, backoff=Backoff(retries=5), retry_on=(ConnectionError,), on_retry=seen.append
        )
        == "ok"
    )
    assert len(seen) == 2


@given(start=st.integers(0, 50), order=st.permutations(range(30)), cut=st.integers(0, 30))
def test_position_is_the_longest_confirmed_prefix(start, order, cut):
    p = PositionTracker(start)
    done = set(order[:cut])
    for i in order[:cut]:
        p.done(start + i)
    expected = 0
    while expected in done:
        expected += 1
    assert p.position == start + expected


@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 60), st.integers(1, 8)).map(lambda r: (r[0], r[0] + r[1])),
        max_size=40,
    )
)
def test_position_matches_a_set_model_for_overlapping_repeated_ranges(ranges):
    # Runs may overlap, repeat and arrive in any order (at-least-once resends, retries).
    p = PositionTracker(0)
    seen: set[int] = set()
    for first, stop in ranges:
        p.done_range(first, stop)
        seen.update(range(first, stop))
        expected = 0
        while expected in seen:
            expected += 1
        assert p.position == expected


def test_position_ignores_repeats_and_ranges():
    p = PositionTracker(0)
    p.done_range(0, 5)
    p.done(7)
    p.done(3)  # already confirmed: ignored
    assert p.position == 5
    p.done_range(5, 7)
    assert p.position == 8


def test_checkpoint_roundtrip_and_atomic_write(tmp_path):
    path = tmp_path / "sub" / "ck.json"
    ck = Checkpoint(path, target="redis://x/s", every_s=0)
    assert Checkpoint.read(path) is None
    ck.save(42, delivered=40)
    assert Checkpoint.read(path) == 42
    assert json.loads(path.read_text())["target"] == "redis://x/s"
    assert [p.name for p in path.parent.iterdir()] == ["ck.json"]  # no temp file left


def test_checkpoint_is_throttled_unless_forced(tmp_path):
    path = tmp_path / "ck.json"
    ck = Checkpoint(path, target="t", every_s=3600)
    ck.save(1)
    ck.save(2)
    assert Checkpoint.read(path) == 1
    ck.save(3, force=True)
    assert Checkpoint.read(path) == 3


def test_bad_checkpoint_file_is_a_usage_error(tmp_path):
    path = tmp_path / "ck.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not a valid rtml checkpoint.*delete it"):
        resolve_start(None, path)


def test_unwritable_checkpoint_is_a_sink_error(tmp_path):
    (tmp_path / "file").write_text("")
    ck = Checkpoint(tmp_path / "file" / "ck.json", target="t")
    with pytest.raises(SinkError, match="cannot write checkpoint"):
        ck.save(1, force=True)


def test_resolve_start_prefers_explicit_resume(tmp_path):
    path = tmp_path / "ck.json"
    assert resolve_start(None, path) == 0
    Checkpoint(path, target="t").save(17, force=True)
    assert resolve_start(None, path) == 17
    assert resolve_start(5, path) == 5
    with pytest.raises(UsageError, match="--resume-from must be >= 0"):
        resolve_start(-1, None)


@given(data=st.data(), sizes=st.lists(st.integers(1, 5), min_size=1, max_size=15))
def test_position_over_runs_completed_in_any_order(data, sizes):
    # Runs (Kafka batches) confirmed in any order, some never: the position is the end of
    # the longest prefix of confirmed runs.
    bounds, lo = [], 3
    for n in sizes:
        bounds.append((lo, lo + n))
        lo += n
    order = data.draw(st.permutations(range(len(bounds))))
    confirmed = data.draw(st.sets(st.sampled_from(range(len(bounds)))))
    p = PositionTracker(3)
    for k in order:
        if k in confirmed:
            p.done_range(*bounds[k])
    expected = 3
    for k, (_first, stop) in enumerate(bounds):
        if k not in confirmed:
            break
        expected = stop
    assert p.position == expected
