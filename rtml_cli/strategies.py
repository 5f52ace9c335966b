"""The simulation of ``batch``, ``stream``, ``online`` and ``static`` deployments (docs/semantics.md: the four strategies, performance principles).

Two parts:

* **Feature views** (:func:`view_frame`, :func:`make_view`) — the one place where the feature
  matrix a strategy sees is built. The *fresh* view is each event's own values; the *batch* view
  for a retrain period R is each event's entity's latest values strictly before its cutoff
  ``floor(t / R) * R`` (a point-in-time as-of join by key) plus the request features from the
  event itself. Training rows of a batch model use the same batch view (their own preceding
  cutoff), so there is no train/serve skew. Derived (windowed) feature columns plug in here.
* **The engine** (:func:`simulate`) — one rule for every job at time ``c`` (the warm-up fit at
  ``W``, a retrain, an online update): it sees exactly the labels that arrived strictly before
  ``c``. Between two model changes the model is a pure function, so a whole span of events is
  predicted in one call (exact-equivalence vectorization); only ``online`` with
  ``update_every=1`` is per event. Per-event latency comes from real single-row calls on a
  uniform sample of events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from rtml_cli.config import FeatureSpec, StrategySpec
from rtml_cli.durations import format_duration
from rtml_cli.errors import ModelError, UsageError
from rtml_cli.io import EVENT_ID, T
from rtml_cli.models import ModelBuilder, raised, split_online
from rtml_cli.timing import CallLog, cpu_ns, perf_ns

#: Label arrival time of an event whose label is null (never "before" any time).
NO_LABEL = np.iinfo(np.int64).max
#: Feature age of a cold-start event (no source event).
NO_AGE = np.iinfo(np.int64).min
#: Fewest single-row calls a timing budget leaves: about the fewest for which the p99 has a
#: finite 95 % upper bound (``metrics.quantile_interval``: below ~380 calls it is unbounded).
MIN_TIMED_CALLS = 400
#: Untimed single-row calls that measure one call's cost before the sample is thinned.
CALIBRATION_CALLS = 10


# --------------------------------------------------------------------------- feature views
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
    frame : the event table (sorted by :data:`~rtml_cli.io.T`).
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
    t_us = _epoch_us(T)
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
        agg_src = frame[T].dt.epoch("us") - extra[FEATURE_AGE]
        out = out.with_columns(
            pl.max_horizontal(pl.col("rtml_source_t"), agg_src).alias("rtml_source_t")
        )
    return out


# --------------------------------------------------------------------------- engine
@dataclasses.dataclass
class SimData:
    """The label side of the table as numpy arrays (shared by every strategy).

    Attributes
    ----------
    t : event times, µs, sorted.
    l : label arrival times, µs; ``NO_LABEL`` where the label is null.
    y : labels as float (binary 0/1), NaN where null.
    W : end of warm-up, µs (events with ``t < W`` are warm-up).
    task : ``binary`` | ``regression``.
    """

    t: np.ndarray
    l: np.ndarray  # noqa: E741 (l_i as in docs/semantics.md)
    y: np.ndarray
    W: int
    task: str

    @property
    def s0(self) -> int:
        """Index of the first scored event."""
        return int(np.searchsorted(self.t, self.W, "left"))


@dataclasses.dataclass
class StrategyResult:
    """What one strategy did, per scored event (arrays start at the first scored event)."""

    name: str
    kind: str
    score: np.ndarray
    pred: np.ndarray
    model_version: np.ndarray
    model_time: np.ndarray
    features_time: np.ndarray
    feature_age: np.ndarray
    cold_start: np.ndarray
    calls: dict[str, Any]
    warnings: list[str]
    fits: list[tuple[str, int, int]]  # (retrain|update, time µs, rows) in call order
    wall_s: float = 0.0
    cpu_s: float = 0.0


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat()


def _train_rows(data: SimData, c: int, window_us: int | None) -> np.ndarray:
    """Indexes of rows whose label arrived strictly before ``c`` (and ``t >= c - window``)."""
    end = int(np.searchsorted(data.t, c, "left"))  # l >= t, so only rows with t < c qualify
    start = 0 if window_us is None else int(np.searchsorted(data.t, c - window_us, "left"))
    return start + np.flatnonzero(data.l[start:end] < c)


class _Scorer:
    """score(X) for a fitted model: P(positive) for binary, the prediction for regression."""

    def __init__(self, model: Any, task: str, *, what: str) -> None:
        self.task = task
        self.what = what
        if task == "binary":
            classes = list(getattr(model, "classes_", [0.0, 1.0]))
            self.pos = classes.index(1.0) if 1.0 in classes else len(classes) - 1
            if hasattr(model, "predict_proba"):
                self.fn: Callable[[Any], np.ndarray] = lambda X: model.predict_proba(X)[:, self.pos]
            else:  # e.g. hinge-loss SGD: squash the margin to (0, 1); 0.5 stays the boundary
                self.fn = lambda X: (
                    1.0
                    / (1.0 + np.exp(-np.asarray(model.decision_function(X), dtype=float).ravel()))
                )
        else:
            self.fn = lambda X: np.asarray(model.predict(X), dtype=float).ravel()

    def __call__(self, X: Any, at: int) -> np.ndarray:
        try:
            return self.fn(X)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # user code: even sys.exit is the model's error
            verb, detail = raised(exc)
            raise ModelError(
                f"model {verb} while predicting for strategy '{self.what}' at {_iso(at)}{detail}"
            ) from None


class _Sim:
    """State shared by the strategy loops: outputs, call log, warnings, progress."""

    def __init__(
        self,
        spec: StrategySpec,
        data: SimData,
        view: View,
        builder: ModelBuilder,
        sample: np.ndarray,
        vectorize: bool,
        progress: Callable[[int], None] | None,
        timing_budget_ns: int | None = None,
    ) -> None:
        self.spec, self.data, self.view, self.builder = spec, data, view, builder
        self.s0 = data.s0
        m = len(data.t) - self.s0
        self.score = np.full(m, np.nan)
        self.version = np.zeros(m, dtype=np.int32)
        self.mtime = np.zeros(m, dtype=np.int64)
        self.sample = sample  # bool mask over scored events
        self.timing_budget_ns = timing_budget_ns
        self.vectorize = vectorize
        self.log = CallLog()
        self.warnings: list[str] = []
        self.fits: list[tuple[str, int, int]] = []
        self.progress = progress

    def fit(self, c: int, *, first: bool, warn: bool = True) -> Any | None:
        """A fresh model fitted at ``c`` on labels arrived strictly before ``c``; ``None`` = skip
        (with a warning unless ``warn`` is false)."""
        d, spec = self.data, self.spec
        rows = _train_rows(d, c, spec.train_window_us)
        # train_window bounds the event time; every row's label arrived before c
        window = f"labels arrived before {_iso(c)}" + (
            f", events since {_iso(c - spec.train_window_us)}" if spec.train_window_us else ""
        )
        problem = None
        if len(rows) == 0:
            problem = "holds no label"
        elif d.task == "binary" and np.unique(d.y[rows]).size < 2:
            problem = f"holds labels of one class only ({len(rows)} rows, all {d.y[rows][0]:g})"
        if problem:
            if first:
                raise ModelError(
                    f"strategy '{spec.name}': the warm-up training window ({window}) "
                    f"{problem}; no model can be fitted. Use a longer --warmup."
                )
            if not warn:
                return None
            self.warnings.append(
                f"strategy '{spec.name}': retrain at {_iso(c)} skipped, its window ({window}) "
                f"{problem}; the previous model was kept"
            )
            return None
        model = self.builder.make()
        X = self.view.X[rows]
        y = d.y[rows]
        w0, c0 = perf_ns(), cpu_ns()
        try:
            model.fit(X, y)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # user code: even sys.exit is the model's error
            verb, detail = raised(exc)
            cold = int(self.view.cold_start.sum())
            # say where the NaN come from: sklearn's own text cannot know about cold starts
            hint = (
                f" (Strategy '{spec.name}' sees null features for {cold} cold-start event(s), "
                "entities with no event before their batch cutoff: use a preset, or a pipeline "
                "with an imputer.)"
                if cold and "nan" in str(exc).lower()
                else ""
            )
            raise ModelError(
                f"model {self.builder.describe()} {verb} while fitting strategy '{spec.name}' at "
                f"{_iso(c)} on {len(rows)} rows{detail}{hint}"
            ) from None
        self.log.add("retrain", perf_ns() - w0, cpu_ns() - c0, len(rows), c)
        self.fits.append(("retrain", c, len(rows)))
        return model

    def predict_span(
        self, scorer: _Scorer, Z: np.ndarray, a: int, b: int, at: int, *, job: bool
    ) -> None:
        """Predict events ``a:b`` (table indexes) with one call (or one per event)."""
        s0 = self.s0
        if self.vectorize:
            if job:
                w0, c0 = perf_ns(), cpu_ns()
                self.score[a - s0 : b - s0] = scorer(Z[a:b], at)
                self.log.add("score_job", perf_ns() - w0, cpu_ns() - c0, b - a, at)
            else:
                self.score[a - s0 : b - s0] = scorer(Z[a:b], at)
        else:
            for i in range(a, b):
                self.score[i - s0] = scorer(Z[i : i + 1], at)[0]

    def fit_timing_budget(self, scorer: _Scorer, X: np.ndarray) -> None:
        """Thin the timing sample so its single-row calls cost about ``timing_budget_ns``.

        The cost of one call is measured on the first model with a few real single-row calls
        (not recorded), before any event is timed; the sample is then thinned uniformly at
        random (seeded by its own size), so it stays a uniform sample over the whole table,
        never below :data:`MIN_TIMED_CALLS` calls.
        """
        budget, self.timing_budget_ns = self.timing_budget_ns, None  # once per strategy
        if budget is None:  # called at every span: return before touching the sample
            return
        picked = np.flatnonzero(self.sample)
        if len(picked) <= MIN_TIMED_CALLS:
            return
        probe = picked[:CALIBRATION_CALLS] + self.s0
        costs = []
        for i in probe.tolist():
            w0 = perf_ns()
            scorer(X[i : i + 1], int(self.data.t[i]))
            costs.append(perf_ns() - w0)
        per_call = max(float(np.median(costs)), 1.0)
        keep = max(MIN_TIMED_CALLS, int(budget / per_call))
        if keep < len(picked):
            rng = np.random.default_rng(len(picked))
            mask = np.zeros_like(self.sample)
            mask[rng.choice(picked, size=keep, replace=False)] = True
            self.sample = mask

    def time_singles(self, scorer: _Scorer, X: np.ndarray, a: int, b: int) -> None:
        """Real single-row predict calls for the sampled events in ``a:b`` (latency)."""
        s0, t = self.s0, self.data.t
        for k in np.flatnonzero(self.sample[a - s0 : b - s0]):
            i = a + int(k)
            w0, c0 = perf_ns(), cpu_ns()
            scorer(X[i : i + 1], int(t[i]))
            self.log.add("predict", perf_ns() - w0, cpu_ns() - c0, 1, int(t[i]))

    def result(self) -> StrategyResult:
        s0, v = self.s0, self.view
        task = self.data.task
        pred = (self.score > 0.5).astype(np.float64) if task == "binary" else self.score.copy()
        return StrategyResult(
            name=self.spec.name,
            kind=self.spec.kind,
            score=self.score,
            pred=pred,
            model_version=self.version,
            model_time=self.mtime,
            features_time=v.features_time[s0:],
            feature_age=v.feature_age[s0:],
            cold_start=v.cold_start[s0:],
            calls=self.log.columns(),
            warnings=self.warnings,
            fits=self.fits,
        )


#: Most retrain cutoffs one scheduled strategy may have (an hourly retrain over 100 years).
MAX_CUTOFFS = 1_000_000


def _scheduled(sim: _Sim) -> None:
    """``batch``, ``stream`` and ``static``: fits at W and (not static) at each grid cutoff."""
    spec, d = sim.spec, sim.data
    t, n, s0, W = d.t, len(d.t), sim.s0, d.W
    if spec.kind == "static":
        fit_times = np.array([W], dtype=np.int64)
    else:
        R = int(spec.retrain_every_us or 0)
        first = (W // R + 1) * R  # first grid cutoff strictly after W
        cutoffs = max(0, (int(t[-1]) - first) // R + 1)
        if cutoffs > MAX_CUTOFFS:
            # the grid is an array and a loop: a retrain every microsecond would exhaust memory
            raise UsageError(
                f"strategy '{spec.name}': retrain_every {format_duration(R)} gives {cutoffs:,} retrain "
                f"cutoffs over the scored span (at most {MAX_CUTOFFS:,}). Use a longer "
                "retrain_every, or an 'online' strategy for per-label updates."
            )
        fit_times = np.concatenate([[W], np.arange(first, int(t[-1]) + 1, R, dtype=np.int64)])
    starts = np.maximum(np.searchsorted(t, fit_times, "left"), s0)
    stops = np.append(starts[1:], n)
    model, scorer, version, mtime = None, None, -1, W
    job = spec.kind == "batch"
    idle: list[int] = []  # cutoffs since the last fit whose span held no event
    for k, c in enumerate(fit_times.tolist()):
        a, b = int(starts[k]), int(stops[k])
        if b <= a and k > 0:
            idle.append(c)  # no event until the next cutoff: this model would serve nothing
            continue
        fitted, fit_at = sim.fit(c, first=k == 0), c
        if fitted is None and spec.train_window_us is not None:
            # Skipped: the deployment keeps its previous model, which is that of the latest
            # idle cutoff that could fit one (only a sliding window can make an earlier window
            # valid when a later one is not).
            for ci in reversed(idle):
                fitted = sim.fit(ci, first=False, warn=False)
                if fitted is not None:
                    fit_at = ci
                    break
        idle.clear()
        if fitted is not None:
            model, version, mtime = fitted, version + 1, fit_at
            scorer = _Scorer(model, d.task, what=spec.name)
        if b > a:
            assert scorer is not None
            sim.predict_span(scorer, sim.view.X, a, b, c, job=job)
            if not job:  # a batch deployment serves the scores of its job: no call per request
                sim.fit_timing_budget(scorer, sim.view.X)
                sim.time_singles(scorer, sim.view.X, a, b)
            sim.version[a - s0 : b - s0] = version
            sim.mtime[a - s0 : b - s0] = mtime
            if sim.progress is not None:
                sim.progress(b - s0)


def _online(sim: _Sim) -> None:
    """``online``: the warm-up model, then ``partial_fit`` per ``update_every`` arrived labels."""
    spec, d = sim.spec, sim.data
    t, l, y, n, s0, W = d.t, d.l, d.y, len(d.t), sim.s0, d.W  # noqa: E741 (l_i as in docs/semantics.md)
    k = spec.update_every
    model = sim.fit(W, first=True)
    prefix, final = split_online(model, what=spec.name)
    X = sim.view.X
    # The preprocessing is frozen after warm-up, so transforming every row once is exact.
    try:
        Z = prefix.transform(X) if prefix is not None else X
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        verb, detail = raised(exc)
        raise ModelError(
            f"model {sim.builder.describe()} {verb} while transforming the features of strategy "
            f"'{spec.name}' with its preprocessing fitted at warm-up{detail}"
        ) from None
    full = _Scorer(model, d.task, what=spec.name)  # the whole pipeline: real single-row latency
    hot = _Scorer(final, d.task, what=spec.name) if prefix is not None else full
    # Labels that arrive at or after W, in arrival order (ties: table order).
    idx = np.flatnonzero((l != NO_LABEL) & (l >= W))
    order = idx[np.argsort(l[idx], kind="stable")]
    nb = len(order) // k  # a trailing partial batch is never applied
    u = l[order[k - 1 :: k]][:nb]  # when each update happens
    # Events with t <= u_b are predicted before update b (ties: events before labels).
    ends = np.maximum(np.searchsorted(t, u, "right"), s0)
    begins = np.concatenate([[s0], ends[:-1]]) if nb else np.array([], dtype=np.int64)
    sim.fit_timing_budget(full, X)
    csum = np.concatenate([[0], np.cumsum(sim.sample)])
    span_sampled = (csum[ends - s0] - csum[begins - s0]) > 0 if nb else np.array([], dtype=bool)
    uw = np.zeros(nb, dtype=np.int64)
    uc = np.zeros(nb, dtype=np.int64)
    score = sim.score
    hot_fn = hot.fn
    pf = final.partial_fit
    fast_single = prefix is None
    vec = sim.vectorize
    prog = sim.progress
    p = s0
    try:
        for b in range(nb):
            e = ends[b]
            if e > p:
                if span_sampled[b] or not vec:
                    if fast_single and e - p == 1 and vec:
                        # the hot call is itself a real single-row call: time it
                        w0, c0 = perf_ns(), cpu_ns()
                        score[p - s0] = hot_fn(Z[p:e])[0]
                        sim.log.add("predict", perf_ns() - w0, cpu_ns() - c0, 1, int(t[p]))
                    else:
                        sim.predict_span(hot, Z, p, e, int(t[p]), job=False)
                        sim.time_singles(full, X, p, e)
                else:
                    score[p - s0 : e - s0] = hot_fn(Z[p:e])
                p = e
            if k == 1:
                j = order[b]
                zb, yb = Z[j : j + 1], y[j : j + 1]
            else:
                rows = order[b * k : (b + 1) * k]
                zb, yb = Z[rows], y[rows]
            w0, c0 = perf_ns(), cpu_ns()
            pf(zb, yb)
            uw[b] = perf_ns() - w0
            uc[b] = cpu_ns() - c0
            if prog is not None and not b & 1023:
                prog(p - s0)
    except (ModelError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # user code: even sys.exit is the model's error
        verb, detail = raised(exc)
        raise ModelError(
            f"model {sim.builder.describe()} {verb} while updating strategy '{spec.name}' "
            f"(update {b + 1} at {_iso(int(u[b]))}){detail}"
        ) from None
    if p < n:
        sim.predict_span(hot, Z, p, n, int(t[p]), job=False)
        sim.time_singles(full, X, p, n)
    sim.log.extend("update", uw, uc, np.full(nb, k), u)
    sim.fits.extend(("update", int(x), k) for x in u)
    # Version/time of the model that predicted each event: updates applied strictly before t.
    applied = np.searchsorted(u, t[s0:], "left")
    sim.version[:] = applied
    sim.mtime[:] = np.where(applied > 0, u[np.maximum(applied - 1, 0)] if nb else W, W)
    if prog is not None:
        prog(n - s0)


def uniform_sample(n_scored: int, size: int | None, seed: int) -> np.ndarray:
    """Boolean mask of ``size`` events drawn uniformly (``None`` = all) — where latency is timed."""
    mask = np.zeros(n_scored, dtype=bool)
    if size is None or size >= n_scored:
        mask[:] = True
    elif size > 0:
        rng = np.random.default_rng(seed)
        mask[rng.choice(n_scored, size=size, replace=False)] = True
    return mask


def simulate(
    spec: StrategySpec,
    data: SimData,
    view: View,
    builder: ModelBuilder,
    *,
    sample: np.ndarray | None = None,
    vectorize: bool = True,
    fast: bool = True,
    progress: Callable[[int], None] | None = None,
    timing_budget_s: float | None = None,
) -> StrategyResult:
    """Simulate one strategy over the whole table.

    Parameters
    ----------
    spec : the strategy.
    data : times, label arrivals, labels, warm-up end.
    view : the feature view this strategy sees (fresh, or the batch view of its period).
    builder : builds fresh copies of the model.
    sample : bool mask over scored events whose latency is measured with real single-row calls
        (default: none). A ``batch`` strategy makes no model call per request (it serves the
        scores of its scoring job), so it times none.
    timing_budget_s : thin ``sample`` so its calls take about this long (never below
        :data:`MIN_TIMED_CALLS` calls); ``None`` keeps the sample as given.
    vectorize : predict each span between model changes in one call (``False``: one call per
        event; the parity tests compare both).
    fast : run under ``sklearn.config_context(skip_parameter_validation=True)`` (and
        ``assume_finite=True`` when the view holds no NaN).
    progress : called with the number of scored events done so far.

    Raises
    ------
    ModelError
        The warm-up window cannot train a model, the model raised, or an online model has no
        ``partial_fit``.
    """
    import sklearn

    m = len(data.t) - data.s0
    sim = _Sim(
        spec,
        data,
        view,
        builder,
        np.zeros(m, bool) if sample is None else sample,
        vectorize,
        progress,
        timing_budget_ns=None if timing_budget_s is None else int(timing_budget_s * 1e9),
    )
    ctx = (
        sklearn.config_context(skip_parameter_validation=True, assume_finite=view.finite)
        if fast
        else contextlib.nullcontext()
    )
    w0, c0 = perf_ns(), cpu_ns()
    with ctx:
        if spec.kind == "online":
            _online(sim)
        else:
            _scheduled(sim)
    res = sim.result()
    res.wall_s = (perf_ns() - w0) / 1e9
    res.cpu_s = (cpu_ns() - c0) / 1e9
    return res


def make_view(frame: pl.DataFrame, vf: pl.DataFrame, X: np.ndarray, name: str) -> View:
    """Bundle an encoded view frame (from :func:`view_frame`) into a :class:`View`."""
    t = frame[T].dt.epoch("us").to_numpy()
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
