"""The simulation of ``batch``, ``stream``, ``online`` and ``static`` deployments (docs/semantics.md: the four strategies, performance principles).

One rule for every job at time ``c`` (the warm-up fit at ``W``, a retrain, an online update): it
sees exactly the labels that arrived strictly before ``c``. Between two model changes the model is
a pure function, so a whole span of events is predicted in one call (exact-equivalence
vectorization); only ``online`` with ``update_every=1`` is per event. Per-event latency comes from
real single-row calls on a uniform sample of events. The feature matrices come from
:mod:`rtml_cli.views`.

A scheduled strategy (``batch``, ``stream``, ``static``) is a list of spans
(:mod:`rtml_cli.spans`), each one fit and the events its model serves first. Each fit is seeded by
the run seed and its own time (:func:`seeded`), so a span gives the same result in any process
and order: :mod:`rtml_cli.parallel` runs them across processes or a Dask cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from rtml_cli.config import StrategySpec
from rtml_cli.errors import ModelError
from rtml_cli.forgetting import SnapshotProbe, block_edges
from rtml_cli.models import ModelBuilder, raised, split_online
from rtml_cli.timing import CallLog, cpu_ns, perf_ns
from rtml_cli.views import NO_AGE as NO_AGE  # the views' names stay importable from here
from rtml_cli.views import View as View
from rtml_cli.views import make_view as make_view
from rtml_cli.views import view_frame as view_frame

#: Label arrival time of an event whose label is null (never "before" any time).
NO_LABEL = np.iinfo(np.int64).max
#: Fewest single-row calls a timing budget leaves: about the fewest for which the p99 has a
#: finite 95 % upper bound (``metrics.quantile_interval``: below ~380 calls it is unbounded).
MIN_TIMED_CALLS = 400
#: Untimed single-row calls that measure one call's cost before the sample is thinned.
CALIBRATION_CALLS = 10


# --------------------------------------------------------------------------- engine
@dataclasses.dataclass
class SimData:
    """The label side of the table as numpy arrays (shared by every strategy).

    Attributes
    ----------
    t : event times, µs, sorted.
    l : label arrival times, µs; ``NO_LABEL`` where the label is null.
    y : labels as float (binary 0/1, multiclass the class code 0..K-1), NaN where null.
    W : end of warm-up, µs (events with ``t < W`` are warm-up).
    task : ``binary`` | ``multiclass`` | ``regression``.
    """

    t: np.ndarray
    l: np.ndarray  # noqa: E741 (l_i as in docs/semantics.md)
    y: np.ndarray
    W: int
    task: str
    #: width (µs) of the report's time blocks; with it, changing models keep a snapshot at the end
    #: of each block for the forgetting matrix (rtml_cli/forgetting.py); 0: none kept
    block_us: int = 0

    @property
    def s0(self) -> int:
        """Index of the first scored event."""
        return int(np.searchsorted(self.t, self.W, "left"))

    @property
    def n_classes(self) -> int:
        """K of a multiclass label (codes 0..K-1, each present in ``y``); 0 otherwise."""
        return int(np.nanmax(self.y)) + 1 if self.task == "multiclass" else 0


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
    #: multiclass: the class probabilities, events × K (``score`` is that of ``pred``)
    proba: np.ndarray | None = None
    #: the model at the end of each time block (``SimData.block_us``), for forgetting
    snapshots: list[Any] | None = None
    #: the forgetting entry, when a worker process computed it from its snapshots (models of a
    #: factory file need not travel back between processes)
    forgetting: dict[str, Any] | None = None


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat()


def _train_rows(data: SimData, c: int, window_us: int | None) -> np.ndarray:
    """Indexes of rows whose label arrived strictly before ``c`` (and ``t >= c - window``)."""
    end = int(np.searchsorted(data.t, c, "left"))  # l >= t, so only rows with t < c qualify
    start = 0 if window_us is None else int(np.searchsorted(data.t, c - window_us, "left"))
    return start + np.flatnonzero(data.l[start:end] < c)


@contextlib.contextmanager
def seeded(seed: int, *salt: int | str) -> Iterator[None]:
    """Seed numpy's and Python's global random generators from ``seed`` and ``salt`` for the
    duration of the block, then restore them.

    A model without its own ``random_state`` draws from the global generators: seeding each fit
    by its time makes it the same fit in any process and in any order (serial, ``--jobs``,
    Dask), and leaves the caller's generators as they were.
    """
    words = [seed & 0xFFFFFFFF]
    for x in salt:
        v = zlib.crc32(x.encode()) if isinstance(x, str) else int(x)
        words += [(v >> 32) & 0xFFFFFFFF, v & 0xFFFFFFFF]
    state = np.random.SeedSequence(words).generate_state(2)
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _class_proba(model: Any, X: Any, k: int) -> np.ndarray:
    """``predict_proba`` as K columns, class code c in column c: a model fitted on rows lacking
    some class has fewer columns (``classes_`` says which; read at each call, since an online
    River learner meets new classes as it learns)."""
    p = np.asarray(model.predict_proba(X), dtype=np.float64)
    out = np.zeros((p.shape[0], k))
    out[:, np.asarray(model.classes_).astype(np.int64)] = p
    return out


class _Scorer:
    """score(X) for a fitted model: P(positive) for binary, the K class probabilities (n × K) for
    multiclass, the prediction for regression."""

    def __init__(self, model: Any, task: str, *, what: str, n_classes: int = 0) -> None:
        self.task = task
        self.what = what
        self.fn: Callable[[Any], np.ndarray]
        if task == "multiclass":
            self.fn = lambda X: _class_proba(model, X, n_classes)
        elif task == "binary":
            classes = list(getattr(model, "classes_", [0.0, 1.0]))
            self.pos = classes.index(1.0) if 1.0 in classes else len(classes) - 1
            if hasattr(model, "predict_proba"):
                self.fn = lambda X: model.predict_proba(X)[:, self.pos]
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
        # multiclass: one row of K class probabilities per event
        self.score = np.full((m, data.n_classes) if data.task == "multiclass" else m, np.nan)
        self.version = np.zeros(m, dtype=np.int32)
        self.mtime = np.zeros(m, dtype=np.int64)
        self.sample = sample  # bool mask over scored events
        self.timing_budget_ns = timing_budget_ns
        self.vectorize = vectorize
        self.log = CallLog()
        self.warnings: list[str] = []
        self.fits: list[tuple[str, int, int]] = []
        self.snapshots: list[Any] | None = None
        self.progress = progress

    def fit(self, c: int, *, first: bool, warn: bool = True, record: bool = True) -> Any | None:
        """A fresh model fitted at ``c`` on labels arrived strictly before ``c``; ``None`` = skip
        (with a warning unless ``warn`` is false). ``record=False`` refits a model already
        recorded elsewhere (another process made this fit): no call is logged."""
        d, spec = self.data, self.spec
        rows = _train_rows(d, c, spec.train_window_us)
        # train_window bounds the event time; every row's label arrived before c
        window = f"labels arrived before {_iso(c)}" + (
            f", events since {_iso(c - spec.train_window_us)}" if spec.train_window_us else ""
        )
        problem = None
        if len(rows) == 0:
            problem = "holds no label"
        elif d.task != "regression" and np.unique(d.y[rows]).size < 2:
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
        with seeded(self.builder.seed, c):
            return self._fit_rows(c, rows, record=record)

    def _fit_rows(self, c: int, rows: np.ndarray, *, record: bool) -> Any:
        d, spec = self.data, self.spec
        model = self.builder.make()
        if getattr(model, "learns_in_order", False):
            # a River learner learns row by row: in label-arrival order (ties: table order)
            rows = rows[np.argsort(d.l[rows], kind="stable")]
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
        if record:
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
        score, proba = self.score, None
        if task == "multiclass":
            proba = self.score
            pred = np.argmax(proba, axis=1).astype(np.float64)
            score = np.take_along_axis(proba, pred.astype(np.int64)[:, None], axis=1)[:, 0]
        elif task == "binary":
            pred = (self.score > 0.5).astype(np.float64)
        else:
            pred = self.score.copy()
        return StrategyResult(
            name=self.spec.name,
            kind=self.spec.kind,
            score=score,
            proba=proba,
            pred=pred,
            model_version=self.version,
            model_time=self.mtime,
            features_time=v.features_time[s0:],
            feature_age=v.feature_age[s0:],
            cold_start=v.cold_start[s0:],
            calls=self.log.columns(),
            warnings=self.warnings,
            fits=self.fits,
            snapshots=self.snapshots,
        )


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
    k_cls = d.n_classes
    # the whole pipeline: real single-row latency
    full = _Scorer(model, d.task, what=spec.name, n_classes=k_cls)
    hot = _Scorer(final, d.task, what=spec.name, n_classes=k_cls) if prefix is not None else full
    # Labels that arrive at or after W, in arrival order (ties: table order).
    idx = np.flatnonzero((l != NO_LABEL) & (l >= W))
    order = idx[np.argsort(l[idx], kind="stable")]
    if d.task == "multiclass" and not getattr(model, "learns_in_order", False):
        _check_online_classes(final, y[order], what=spec.name)
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
    probe = snapshot_probe(d)
    # the model before update b serves every block end in (u[b-1], u[b]]: copy it then
    capture_before = (
        set() if probe is None else set(np.searchsorted(u, probe.edges, "left").tolist())
    )
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
            if probe is not None and b in capture_before:
                probe.capture(model, change_at=int(u[b]), inclusive=True)
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
    if probe is not None:
        probe.finish(model)
        sim.snapshots = probe.models
    sim.log.extend("update", uw, uc, np.full(nb, k), u)
    sim.fits.extend(("update", int(x), k) for x in u)
    # Version/time of the model that predicted each event: updates applied strictly before t.
    applied = np.searchsorted(u, t[s0:], "left")
    sim.version[:] = applied
    sim.mtime[:] = np.where(applied > 0, u[np.maximum(applied - 1, 0)] if nb else W, W)
    if prog is not None:
        prog(n - s0)


def snapshot_probe(d: SimData) -> SnapshotProbe | None:
    """A probe for the ends of the report's time blocks over the labelled scored events."""
    s0 = d.s0
    labelled = s0 + np.flatnonzero(d.l[s0:] != NO_LABEL)
    if not d.block_us or len(labelled) == 0:
        return None
    return SnapshotProbe(
        edges=block_edges(int(d.t[labelled[0]]), int(d.t[labelled[-1]]), d.block_us)
    )


def _check_online_classes(final: Any, y: np.ndarray, *, what: str) -> None:
    """A scikit-learn ``partial_fit`` cannot learn a class its warm-up fit did not see: say so
    before updating (River learners meet new classes as they come)."""
    known = set(np.asarray(getattr(final, "classes_", [])).astype(np.int64).tolist())
    new = sorted(set(y[~np.isnan(y)].astype(np.int64).tolist()) - known)
    if known and new:
        raise ModelError(
            f"strategy '{what}' is online, but labels of class code(s) {new} arrive after the "
            "warm-up, which held none: a scikit-learn partial_fit cannot learn a class its first "
            "fit did not see (codes follow the sorted label values, see the manifest's classes). "
            "Use a longer --warmup, or a River learner (e.g. --model river-logreg), which learns "
            "new classes as they arrive."
        )


def uniform_sample(n_scored: int, size: int | None, seed: int) -> np.ndarray:
    """Boolean mask of ``size`` events drawn uniformly (``None`` = all) — where latency is timed."""
    mask = np.zeros(n_scored, dtype=bool)
    if size is None or size >= n_scored:
        mask[:] = True
    elif size > 0:
        rng = np.random.default_rng(seed)
        mask[rng.choice(n_scored, size=size, replace=False)] = True
    return mask


@contextlib.contextmanager
def sim_context(
    spec: StrategySpec, view: View, builder: ModelBuilder, *, fast: bool
) -> Iterator[None]:
    """What every piece of a strategy runs under, in any process: the global generators seeded
    by the run seed and the strategy (for ``partial_fit`` of a model without ``random_state``),
    and with ``fast`` scikit-learn's parameter validation (and, when the view holds no NaN,
    its finiteness checks) skipped."""
    import sklearn

    ctx = (
        sklearn.config_context(skip_parameter_validation=True, assume_finite=view.finite)
        if fast
        else contextlib.nullcontext()
    )
    with ctx, seeded(builder.seed, spec.name):
        yield


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
    w0, c0 = perf_ns(), cpu_ns()
    with sim_context(spec, view, builder, fast=fast):
        if spec.kind == "online":
            _online(sim)
        else:
            from rtml_cli.spans import scheduled  # spans builds on this module's _Sim

            scheduled(sim)
    res = sim.result()
    res.wall_s = (perf_ns() - w0) / 1e9
    res.cpu_s = (cpu_ns() - c0) / 1e9
    return res
