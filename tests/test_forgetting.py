"""Forgetting: which snapshot stands for a block end, and the matrix read from the snapshots."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rtml_cli.forgetting import SnapshotProbe, block_edges, forgetting_matrix, sample_blocks


@given(
    st.lists(st.integers(0, 60), min_size=0, max_size=12),
    st.booleans(),
    st.lists(st.integers(1, 15), min_size=1, max_size=6),
)
def test_each_block_end_gets_the_model_that_serves_it(changes, inclusive, gaps):
    edges = np.cumsum(gaps).astype(np.int64)
    changes = sorted(changes)
    probe = SnapshotProbe(edges=edges)
    for version, at in enumerate(changes):
        probe.capture(version, change_at=at, inclusive=inclusive)
    probe.finish(len(changes))
    assert len(probe.models) == len(edges)
    for e, got in zip(edges, probe.models, strict=True):
        # the model serving time e: every change effective at or before e has been applied
        applied = sum(1 for c in changes if (c < e if inclusive else c <= e))
        assert got == applied


def test_a_snapshot_is_a_copy_not_the_model_that_keeps_learning():
    probe = SnapshotProbe(edges=np.array([10, 20]))
    model = {"w": 1}
    probe.capture(model, change_at=15, inclusive=True)
    model["w"] = 2
    probe.finish(model)
    assert [m["w"] for m in probe.models] == [1, 2]


def test_blocks_sample_at_most_per_block_and_stay_inside_their_block():
    t = np.arange(0, 100)
    edges = block_edges(0, 99, 25)
    blocks = sample_blocks(t, np.arange(100), edges, 25, per_block=10, seed=1)
    assert edges.tolist() == [25, 50, 75, 100]
    for k, rows in enumerate(blocks):
        assert len(rows) == 10 and rows.tolist() == sorted(rows.tolist())
        assert ((t[rows] >= 25 * k) & (t[rows] < 25 * (k + 1))).all()


def _accuracy(y, s):
    return float(np.mean((s >= 0.5) == (y == 1)))


def test_a_model_that_learns_b_and_forgets_a_shows_forgetting():
    # blocks: A, B, A-again; concept A: y = x > 0; concept B: y = x < 0
    X = np.array([[-1.0], [1.0]] * 6)
    y = np.array([0.0, 1.0] * 2 + [1.0, 0.0] * 2 + [0.0, 1.0] * 2)
    blocks = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)]
    knows_a = lambda X: (X[:, 0] > 0).astype(float)  # noqa: E731
    knows_b = lambda X: (X[:, 0] < 0).astype(float)  # noqa: E731
    out = forgetting_matrix(
        [knows_a, knows_b, knows_b],
        X,
        y,
        blocks,
        _accuracy,
        lambda model, rows: model(rows),
        higher_is_better=True,
    )
    assert out["matrix"][0] == [1.0, None, None]
    assert out["matrix"][2] == [0.0, 1.0, 0.0]
    assert out["per_block"] == [1.0, 0.0]  # A forgotten entirely, B still known
    assert out["mean"] == 0.5 and out["max"] == 1.0 and out["max_block"] == 0
    # a metric where lower is better is signed so that forgetting is still positive
    err = forgetting_matrix(
        [knows_a, knows_b, knows_b],
        X,
        y,
        blocks,
        lambda y, s: 1 - _accuracy(y, s),
        lambda model, rows: model(rows),
        higher_is_better=False,
    )
    assert err["per_block"] == [1.0, 0.0]
