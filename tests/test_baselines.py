"""The naive references against a brute-force reading of their definition."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtml_cli.baselines import NO_LABEL, naive_scores


def _by_hand(t, l, y, keys, s0, task):  # noqa: E741
    """Event by event: scan every row, keep the labels that arrived strictly before t."""
    fallback = 0.5 if task == "binary" else 0.0
    pers, prior = [], []
    for i in range(s0, len(t)):
        known = [j for j in range(len(t)) if l[j] != NO_LABEL and l[j] < t[i]]
        if not known:
            pers.append(fallback)
            prior.append(fallback)
            continue
        prior.append(sum(y[j] for j in known) / len(known))
        latest = max(known, key=lambda j: (l[j], j))
        if keys is not None and keys[i] >= 0:
            own = [j for j in known if keys[j] == keys[i]]
            if own:
                latest = max(own, key=lambda j: (l[j], j))
        pers.append(y[latest])
    return np.array(pers), np.array(prior)


@st.composite
def _tables(draw):
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    t = np.cumsum(gaps).astype(np.int64)
    delays = draw(st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=n, max_size=n))
    l = np.array([NO_LABEL if d is None else t[i] + d for i, d in enumerate(delays)])  # noqa: E741
    task = draw(st.sampled_from(["binary", "regression"]))
    if task == "binary":
        y = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    else:
        y = np.array(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), dtype=float)
    y[l == NO_LABEL] = np.nan
    keyed = draw(st.booleans())
    keys = np.array(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))) if keyed else None
    s0 = draw(st.integers(0, n - 1))
    return t, l, y, keys, s0, task


@given(_tables())
@settings(max_examples=300, deadline=None)
@example(  # two labels of one entity arriving at the same instant: the later row is the latest
    (
        np.array([0, 0, 5]),
        np.array([3, 3, 9]),
        np.array([1.0, 0.0, 1.0]),
        np.array([7, 7, 7]),
        2,
        "binary",
    )
)
@example(  # a label arriving exactly at the event's time is not known yet
    (np.array([0, 4]), np.array([4, 4]), np.array([1.0, 0.0]), None, 1, "binary")
)
def test_references_match_their_definition(case):
    t, l, y, keys, s0, task = case  # noqa: E741
    got = naive_scores(t, l, y, s0=s0, task=task, keys=keys)
    pers, prior = _by_hand(t, l, y, keys, s0, task)
    np.testing.assert_array_equal(got["persistence"], pers)
    np.testing.assert_allclose(got["prior"], prior, rtol=1e-12, atol=0)


def test_persistence_prefers_the_entity_over_the_table():
    t = np.array([0, 1, 2, 10])
    l = np.array([1, 2, 3, 20])  # noqa: E741
    y = np.array([1.0, 0.0, 0.0, 1.0])
    keys = np.array([0, 1, 1, 0])  # entity 0's only label is row 0 (1.0); the table's latest is 0.0
    got = naive_scores(t, l, y, s0=3, task="binary", keys=keys)
    assert got["persistence"].tolist() == [1.0]
    assert naive_scores(t, l, y, s0=3, task="binary")["persistence"].tolist() == [0.0]
