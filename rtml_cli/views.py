"""Feature views: the one place where the feature matrix a strategy sees is built.

The *fresh* view is each event's own values; the *batch* view for a retrain period R is each
event's entity's latest values strictly before its cutoff ``floor(t / R) * R`` (a point-in-time
as-of join by key) plus the request features from the event itself. Training rows of a batch
model use the same batch view (their own preceding cutoff), so there is no train/serve skew.
Derived (windowed) feature columns plug in here (docs/semantics.md: feature views).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import polars as pl

from rtml_cli.config import FeatureSpec
from rtml_cli.io import EVENT_ID, EVENT_TIME

#: Feature age of a cold-start event (no source event).
NO_AGE = np.iinfo(np.int64).min


@dataclasses.dataclass
class View:
    """A strategy's feature matrix, aligned with the table's events.

    Attributes
    ----------
    name : ``"fresh"`` or ``"batch:<R µs>"``.
    X : n × d feature matrix (what the model is fed).
    features_time : µs, when the features were taken (the cutoff in batch, ``t`` otherwise).
    feature_age : µs, ``t`` − time of the newest event the features come from; ``NO_AGE``
        for a cold start.
    cold_start : the entity had no event before the snapshot.
    finite : X is float and holds no NaN/inf (lets the engine skip sklearn's finiteness checks).
    """

    name: str
    X: np.ndarray
    features_time: np.ndarray
    feature_age: np.ndarray
    cold_start: np.ndarray
    finite: bool = False


def _epoch_us(col: str | pl.Expr) -> pl.Expr:
    e = pl.col(col) if isinstance(col, str) else col
    return e.dt.epoch("us")


def view_frame(
    frame: pl.DataFrame,
    *,
    columns: Sequence[str],
    key: str | None,
    request_features: Sequence[str] = (),
    every_us: int | None = None,
    feature_specs: Sequence[FeatureSpec] = (),
    label: str | None = None,
) -> pl.DataFrame:
    """The feature columns of one view, one row per event in table order, plus meta columns.

    Parameters
    ----------
    frame : the event table (sorted by :data:`~rtml_cli.io.EVENT_TIME`).
    columns : feature columns in model order.
    key : entity column (``None``: the whole table is one entity).
    request_features : columns taken from the event itself even in the batch view.
    every_us : ``None`` for the fresh view; the retrain period R for the batch view.
    feature_specs : ``[[feature]]`` entries (windowed aggregates), computed by
        ``rtml_cli.features`` when that module provides them.
    label : the label column (aggregates over it respect label arrival).

    Returns
    -------
    polars.DataFrame
        ``columns`` plus ``rtml_features_time`` (µs), ``rtml_source_t`` (µs, newest event the
        features come from; null = none) and ``rtml_cold`` (the entity had no event before the
        snapshot).
    """
    t_us = _epoch_us(EVENT_TIME)
    if every_us is None:
        out = frame.select(
            *[pl.col(c) for c in columns],
            t_us.alias("rtml_features_time"),
            t_us.alias("rtml_source_t"),
            pl.lit(False).alias("rtml_cold"),
        )
    else:
        # The key itself is known at request time: never snapshot it.
        request = [c for c in columns if c in set(request_features) or c == key]
        snap = [c for c in columns if c not in request]
        by = [key] if key else []
        left = frame.select(
            pl.col(EVENT_ID),
            *[pl.col(c) for c in by],
            *[pl.col(c) for c in request],
            ((t_us // every_us) * every_us).alias("rtml_cutoff"),
        )
        # Several events of one entity at one instant: the last in table order is the latest.
        right = frame.select(
            *[pl.col(c) for c in by], t_us.alias("rtml_source_t"), *[pl.col(c) for c in snap]
        ).unique(subset=[*by, "rtml_source_t"], keep="last", maintain_order=True)
        if by:
            # as-of join with `by` needs no null keys on the right; null-key events stay cold.
            right = right.filter(pl.col(by[0]).is_not_null())
        joined = left.join_asof(
            right,
            left_on="rtml_cutoff",
            right_on="rtml_source_t",
            by=by or None,
            strategy="backward",
            allow_exact_matches=False,  # the snapshot at c sees events strictly before c
            check_sortedness=False,
            coalesce=False,
        ).sort(EVENT_ID)
        out = joined.select(
            *[pl.col(c) for c in columns],
            pl.col("rtml_cutoff").alias("rtml_features_time"),
            # feature age counts stored features only: with none (every column is known at
            # request time) the snapshot row is behind no feature
            (pl.col("rtml_source_t") if snap else pl.lit(None, pl.Int64)).alias("rtml_source_t"),
            # cold start is the entity's own: fixed here, before windowed aggregates (which may
            # span other entities) can make rtml_source_t non-null
            pl.col("rtml_source_t").is_null().alias("rtml_cold"),
        )
    return _add_derived(frame, out, feature_specs, key=key, every_us=every_us, label=label)


def _add_derived(
    frame: pl.DataFrame,
    out: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    *,
    key: str | None,
    every_us: int | None,
    label: str | None = None,
) -> pl.DataFrame:
    """Hook for windowed aggregates (``rtml_cli.features``): fresh as of ``t_i`` excluding event
    *i*, batch as of the cutoff. Adds one column per spec, named ``spec.name``."""
    if not specs:
        return out
    from rtml_cli.features import FEATURE_AGE, derived_columns

    extra = derived_columns(frame, list(specs), key=key, every_us=every_us, label=label)
    out = out.hstack(extra.select([s.name for s in specs]))
    if every_us is not None and FEATURE_AGE in extra.columns:
        # feature age = t - the newest information behind the features: the snapshot row or
        # the newest row inside a windowed aggregate, whichever is newer
        agg_src = frame[EVENT_TIME].dt.epoch("us") - extra[FEATURE_AGE]
        out = out.with_columns(
            pl.max_horizontal(pl.col("rtml_source_t"), agg_src).alias("rtml_source_t")
        )
    return out


def make_view(frame: pl.DataFrame, vf: pl.DataFrame, X: np.ndarray, name: str) -> View:
    """Bundle an encoded view frame (from :func:`view_frame`) into a :class:`View`."""
    t = frame[EVENT_TIME].dt.epoch("us").to_numpy()
    src = vf["rtml_source_t"]
    none = src.is_null().to_numpy()
    cold = vf["rtml_cold"].to_numpy() if "rtml_cold" in vf.columns else none
    age = np.where(none, NO_AGE, t - src.fill_null(0).to_numpy())
    finite = X.dtype == np.float64 and bool(np.isfinite(X).all())
    return View(
        name,
        X,
        vf["rtml_features_time"].to_numpy().astype(np.int64),
        age.astype(np.int64),
        cold,
        finite,
    )
