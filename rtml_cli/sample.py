"""``rtml sample``: realistic synthetic tables for demos, tests and benchmarks (README: `rtml sample`).

``clickstream``: a recommendation impression log. Each row is one item shown to one user; the
label ``click`` says whether the user clicked it. What makes it a streaming case: each user's
taste (favourite category) changes every few hours, and a site-wide campaign lifts one category
for a day, and every category's appeal follows a random walk in 6-hour steps, so a model
retrained daily serves stale preferences while an online model follows.

Label timing: a click is known when it happens (``click_time`` = impression + a few seconds to a
few minutes); a non-click is known only when the attribution window closes, so for
``click == 0`` the ``click_time`` is the impression time + :data:`ATTRIBUTION_WINDOW_S`.

``recurring``: a concept that switches A → B → A (:func:`recurring`), where a fast online
learner forgets A during B and a model retrained on all history does not.

Everything is vectorised with numpy and deterministic under ``seed``.

Examples
--------
>>> df = clickstream(rows=1_000, seed=1)
>>> df.height, df["click"].dtype
(1000, Int8)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from rtml_cli.errors import UsageError

#: A non-click becomes a known 0 when this window after the impression closes.
ATTRIBUTION_WINDOW_S = 600
#: First impression of the default table (a Monday, UTC-naive wall clock).
START = dt.datetime(2024, 3, 4)
CATEGORIES = ("shoes", "bags", "dresses", "jackets", "jeans", "shirts", "sport", "accessories")
DEVICES = ("mobile", "desktop", "tablet")


def clickstream(
    rows: int = 50_000,
    *,
    seed: int = 0,
    days: float = 7.0,
    users: int | None = None,
    items: int = 400,
    start: dt.datetime = START,
) -> pl.DataFrame:
    """A synthetic recommendation click log whose user preferences drift within hours.

    Parameters
    ----------
    rows : impressions to generate.
    seed : random seed; the same seed gives the same table.
    days : span of event time.
    users : number of users (default: grows with ``rows``, 300 for 50k rows).
    items : number of items.
    start : time of the first possible impression.

    Returns
    -------
    polars.DataFrame
        Sorted by ``ts``; columns ``ts`` (Datetime us), ``user_id``, ``item_id``, ``category``,
        ``price``, ``position`` (1 = top slot), ``device``, ``hour``, ``item_popularity`` (the
        item's click rate over the previous day, a typical batch feature), ``click`` (Int8 0/1)
        and ``click_time`` (when the label became known).
    """
    if rows < 1:
        raise UsageError(f"The '--rows' option of sample must be >= 1. Got {rows!r} instead.")
    if users is None:
        users = max(20, int(round(1.35 * np.sqrt(rows))))
    rng = np.random.default_rng(seed)
    n_cat = len(CATEGORIES)
    span_s = days * 86_400.0

    # Event times: a diurnal intensity (quiet nights, busy evenings), sampled by inverse CDF.
    grid = np.arange(0.0, span_s, 60.0)
    hour = (grid / 3600.0) % 24
    intensity = (
        0.25
        + np.exp(-0.5 * ((hour - 20.0) / 3.0) ** 2)
        + 0.6 * np.exp(-0.5 * ((hour - 12.5) / 2.0) ** 2)
    )
    cdf = np.cumsum(intensity)
    cdf /= cdf[-1]
    u = np.sort(rng.random(rows))
    ts_s = np.interp(u, np.concatenate([[0.0], cdf]), np.concatenate([[0.0], grid + 60.0]))
    ts_us = np.round(ts_s * 1e3).astype(np.int64) * 1_000  # millisecond clock, like most logs
    ts_s = ts_us / 1e6

    # Users: heavy-tailed activity; each keeps one device most of the time.
    activity = rng.pareto(1.2, users) + 1.0
    user = rng.choice(users, size=rows, p=activity / activity.sum())
    user_device = rng.choice(3, size=users, p=[0.6, 0.3, 0.1])
    device = np.where(rng.random(rows) < 0.9, user_device[user], rng.choice(3, size=rows))

    # Items: a category, a price level per category, an intrinsic appeal.
    item_cat = rng.integers(0, n_cat, items)
    cat_price = np.exp(rng.normal(3.3, 0.5, n_cat))
    item_price = np.round(cat_price[item_cat] * np.exp(rng.normal(0.0, 0.35, items)), 2)
    item_appeal = rng.normal(0.0, 0.5, items)

    # Drift 1 — user taste: a favourite category per user, redrawn every 2-8 hours
    # (each user has their own regime length and phase).
    regime_h = rng.uniform(2.0, 8.0, users)
    phase_h = rng.uniform(0.0, 8.0, users)
    n_regimes = int(np.ceil(days * 24 / 2.0)) + 3
    fav_table = rng.integers(0, n_cat, (users, n_regimes))
    regime = ((ts_s / 3600.0 + phase_h[user]) // regime_h[user]).astype(np.int64)
    fav = fav_table[user, np.minimum(regime, n_regimes - 1)]

    # The recommender shows half the time an item of the user's current favourite (it learns
    # taste with a lag, so mostly from the previous regime), otherwise a popular item.
    prev_fav = fav_table[user, np.maximum(np.minimum(regime, n_regimes - 1) - 1, 0)]
    shown_cat = np.where(rng.random(rows) < 0.45, prev_fav, rng.integers(0, n_cat, rows))
    # pick an item of the chosen category: items sorted by category, uniform within it
    order = np.argsort(item_cat, kind="stable")
    counts = np.bincount(item_cat, minlength=n_cat)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    shown_cat = np.where(counts[shown_cat] > 0, shown_cat, item_cat[0])
    item = order[offsets[shown_cat] + (rng.random(rows) * counts[shown_cat]).astype(np.int64)]
    cat = item_cat[item]
    position = np.minimum(rng.geometric(0.3, rows), 10)

    # Drift 2 — a site-wide campaign lifts one category for one day (day 3 of the week).
    campaign_cat = int(rng.integers(0, n_cat))
    day = ts_s / 86_400.0
    campaign = (cat == campaign_cat) & (day >= 3.0) & (day < 4.0)

    # Drift 3 — trends: every category's appeal to everyone moves every 6 hours (a random walk),
    # which a model updated online follows and a daily retrain averages away.
    n_blocks = int(np.ceil(days * 4)) + 1
    trend = np.cumsum(rng.normal(0.0, 0.45, (n_cat, n_blocks)), axis=1)
    trend -= trend.mean(axis=0, keepdims=True)
    block = (ts_s // 21_600).astype(np.int64)

    hour_of_day = ((ts_s / 3600.0) % 24).astype(np.int64)
    price = item_price[item]
    logit = (
        -3.1
        + 2.3 * (cat == fav)
        + item_appeal[item]
        - 0.22 * (position - 1)
        - 0.45 * np.log(price / np.median(item_price))
        + np.array([0.0, 0.25, -0.1])[device]
        + 0.25 * np.sin((hour_of_day - 15) / 24 * 2 * np.pi)
        + 1.2 * campaign
        + trend[cat, block]
    )
    click = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    # Clicks come a few seconds to a few minutes after the impression (log-normal, capped
    # inside the attribution window); a 0 is known when the window closes.
    delay_s = np.clip(np.exp(rng.normal(np.log(25.0), 1.0, rows)), 2.0, ATTRIBUTION_WINDOW_S - 1.0)
    label_us = ts_us + np.where(
        click == 1, np.round(delay_s * 1e6), ATTRIBUTION_WINDOW_S * 1_000_000
    ).astype(np.int64)

    # item_popularity: the item's click rate on the previous calendar day (a stale batch
    # feature), smoothed toward the global rate; computed from the clicks generated above.
    day_idx = (ts_s // 86_400).astype(np.int64)
    n_days = int(day_idx.max()) + 2
    shows = np.zeros((items, n_days))
    clicks = np.zeros((items, n_days))
    np.add.at(shows, (item, day_idx), 1.0)
    np.add.at(clicks, (item, day_idx), click)
    prior = click.mean() if rows else 0.0
    rate = (clicks + 20 * prior) / (shows + 20)
    popularity = np.where(day_idx > 0, rate[item, np.maximum(day_idx - 1, 0)], prior)

    base = np.datetime64(start, "us").astype(np.int64)
    return pl.DataFrame(
        {
            "ts": pl.Series(base + ts_us).cast(pl.Datetime("us")),
            "user_id": user.astype(np.int32),
            "item_id": item.astype(np.int32),
            "category": pl.Series([CATEGORIES[i] for i in range(n_cat)])[cat],
            "price": price,
            "position": position.astype(np.int8),
            "device": pl.Series(DEVICES)[device],
            "hour": hour_of_day.astype(np.int8),
            "item_popularity": np.round(popularity, 4),
            "click": click,
            "click_time": pl.Series(base + label_us).cast(pl.Datetime("us")),
        }
    )


#: Where the concepts of :func:`recurring` change, as fractions of the rows: A until the first,
#: B until the second, A again after it.
RECURRING_SWITCHES = (0.5, 0.7)


def recurring(
    rows: int = 20_000,
    *,
    seed: int = 0,
    period_s: float = 60.0,
    start: dt.datetime = START,
) -> pl.DataFrame:
    """A stream whose concept switches A → B → A: the test bed of catastrophic forgetting.

    One event every ``period_s`` seconds (20,000 rows at one a minute: about 14 days), four
    features ``x1``…``x4`` drawn independently from a standard normal, and a binary label ``y``
    drawn from a logistic model whose coefficients depend on the concept:

    * **A** (the first half of the rows, and again the last 30 %): ``logit = 3·x1 + 1.5·x2``;
    * **B** (from 50 % to 70 % of the rows): ``logit = −3·x1 + 1.5·x3`` — the effect of ``x1``
      is reversed, and ``x3`` replaces ``x2``.

    ``x4`` is noise. The boundaries are :data:`RECURRING_SWITCHES`. What it shows: an online
    learner with a fast learning rate (e.g. ``SGDClassifier`` with ``learning_rate="constant"``,
    ``eta0=0.05``) follows B within a few hundred labels and so *forgets* A: when A returns it
    is wrong until it has re-learned it. A model retrained on all history (``batch`` with the
    default ``train_window = all``) still holds mostly A when A returns and is right at once,
    at the price of being wrong throughout B. The concept is not a column: a deployment does not
    know it either.

    Parameters
    ----------
    rows : events to generate.
    seed : random seed; the same seed gives the same table.
    period_s : seconds between two events.
    start : time of the first event.

    Returns
    -------
    polars.DataFrame
        ``ts`` (Datetime us, sorted, no ties), ``x1``…``x4`` (Float64) and ``y`` (Boolean).
        Labels carry no time of their own: pass ``--label-delay`` to ``compare``.

    Examples
    --------
    >>> df = recurring(1_000, seed=3)
    >>> df.columns, df["y"].dtype
    (['ts', 'x1', 'x2', 'x3', 'x4', 'y'], Boolean)
    """
    if rows < 1:
        raise UsageError(f"The '--rows' option of sample must be >= 1. Got {rows!r} instead.")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 4))
    i = np.arange(rows)
    a_end, b_end = (int(round(f * rows)) for f in RECURRING_SWITCHES)
    in_b = (i >= a_end) & (i < b_end)
    logit = np.where(in_b, -3.0 * X[:, 0] + 1.5 * X[:, 2], 3.0 * X[:, 0] + 1.5 * X[:, 1])
    y = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    base = np.datetime64(start, "us").astype(np.int64)
    ts_us = base + np.round(i * period_s * 1e6).astype(np.int64)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts_us).cast(pl.Datetime("us")),
            **{f"x{k + 1}": X[:, k] for k in range(4)},
            "y": y,
        }
    )


#: name -> generator(rows, seed) of the tables ``rtml sample`` knows.
GENERATORS: dict[str, Callable[..., pl.DataFrame]] = {
    "clickstream": clickstream,
    "recurring": recurring,
}
DEFAULT_ROWS = {"clickstream": 50_000, "recurring": 20_000}


def write_sample(
    name: str,
    *,
    rows: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Generate sample table ``name`` and write it (Parquet, CSV, NDJSON or Arrow by suffix).

    Returns the path written (default ``<name>.parquet`` in the current folder). An existing
    file is refused unless ``force`` (and only a regular file is ever replaced). The table is
    written to a temporary file beside the target and renamed over it when complete, so a
    failed or interrupted run leaves the previous file as it was.
    """
    from rtml_cli.errors import suggest
    from rtml_cli.safe_write import atomic_output, refuse_existing

    if name not in GENERATORS:
        raise UsageError(
            f"unknown sample '{name}'.{suggest(name, GENERATORS)} Known samples: "
            f"{', '.join(GENERATORS)}."
        )
    path = Path(out) if out is not None else Path(f"{name}.parquet")
    suffix = path.suffix.lower()
    writers: dict[str, Callable[[pl.DataFrame, Path], None]] = {
        ".parquet": lambda df, p: df.write_parquet(p, compression="zstd", statistics=True),
        ".csv": lambda df, p: df.write_csv(p),
        ".ndjson": lambda df, p: df.write_ndjson(p),
        ".jsonl": lambda df, p: df.write_ndjson(p),
        ".arrow": lambda df, p: df.write_ipc(p),
    }
    if suffix not in writers:
        raise UsageError(
            f"cannot write sample to '{path}': unknown suffix '{suffix}'. Use one of "
            f"{', '.join(writers)}."
        )
    if not path.parent.exists():
        raise UsageError(f"cannot write sample to '{path}': folder '{path.parent}' does not exist.")
    refuse_existing(path, force=force, what="sample output")
    df = GENERATORS[name](rows if rows is not None else DEFAULT_ROWS[name], seed=seed)
    with atomic_output(path) as tmp:
        writers[suffix](df, tmp)
    return path
