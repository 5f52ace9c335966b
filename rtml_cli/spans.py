"""The spans of a scheduled strategy (``batch``, ``stream``, ``static``): one fit each, at W or at
a grid cutoff, and the events its model serves until the next fit (docs/semantics.md: the cutoff
grid, training and model changes).

:func:`scheduled` runs them one after another in one process; :func:`run_span` runs one on its
own, as :mod:`rtml_cli.parallel` does in worker processes or on Dask. Both use the same fit
(:meth:`~rtml_cli.strategies._Sim.fit`, seeded by its time) and the same scoring, so the two
give the same scores bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rtml_cli.config import StrategySpec
from rtml_cli.durations import format_duration
from rtml_cli.errors import UsageError
from rtml_cli.models import ModelBuilder
from rtml_cli.strategies import SimData, View, _Scorer, _Sim, snapshot_probe
from rtml_cli.timing import cpu_ns, perf_ns

#: Most retrain cutoffs one scheduled strategy may have (an hourly retrain over 100 years).
MAX_CUTOFFS = 1_000_000


@dataclasses.dataclass(frozen=True)
class Span:
    """One fit of a scheduled strategy and the events its model serves first.

    Attributes
    ----------
    k : position among the strategy's spans (0: the warm-up fit at W).
    c : fit time (W or a grid cutoff), µs; also the time of the span's scoring job.
    a, b : the events served, table indexes ``a:b`` (``a == b``: only the warm-up fit, whose
        span is empty when no event comes before the first cutoff).
    idle : the cutoffs since the previous span whose span held no event: a skipped fit with a
        ``train_window`` falls back to the latest of them that can fit a model.
    """

    k: int
    c: int
    a: int
    b: int
    idle: tuple[int, ...] = ()


@dataclasses.dataclass
class SpanOut:
    """What one span did (:func:`run_span`): the fit behind it, its scores and its calls.

    ``fit_at`` is ``None`` when every fit of the span was skipped: the span is then served by
    the previous span's model, which the caller supplies (``refit_at``) in a second pass.
    """

    k: int
    fit_at: int | None
    score: np.ndarray | None
    calls: np.ndarray  # CallLog rows, in call order
    warnings: list[str]
    fits: list[tuple[str, int, int]]
    wall_ns: int = 0
    cpu_ns: int = 0


def plan_spans(spec: StrategySpec, data: SimData) -> list[Span]:
    """The spans of a scheduled strategy: a fit at W and (not static) at each grid cutoff
    strictly after W whose span holds an event (docs/semantics.md: the cutoff grid)."""
    t, n, s0, W = data.t, len(data.t), data.s0, data.W
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
    spans: list[Span] = []
    idle: list[int] = []  # cutoffs since the last fit whose span held no event
    for k, c in enumerate(fit_times.tolist()):
        a, b = int(starts[k]), int(stops[k])
        if b <= a and k > 0:
            idle.append(c)  # no event until the next cutoff: this model would serve nothing
            continue
        spans.append(Span(len(spans), c, a, b, tuple(idle)))
        idle.clear()
    return spans


def fit_span(sim: _Sim, sp: Span) -> tuple[Any | None, int]:
    """The fit of span ``sp`` and its time; ``None`` when it was skipped (with a warning)."""
    fitted, fit_at = sim.fit(sp.c, first=sp.k == 0), sp.c
    if fitted is None and sim.spec.train_window_us is not None:
        # Skipped: the deployment keeps its previous model, which is that of the latest
        # idle cutoff that could fit one (only a sliding window can make an earlier window
        # valid when a later one is not).
        for ci in reversed(sp.idle):
            fitted = sim.fit(ci, first=False, warn=False)
            if fitted is not None:
                return fitted, ci
    return fitted, fit_at


def serve_span(sim: _Sim, scorer: _Scorer, sp: Span) -> None:
    """Score the events of ``sp`` (one scoring job for batch) and time the sampled ones."""
    job = sim.spec.kind == "batch"
    sim.predict_span(scorer, sim.view.X, sp.a, sp.b, sp.c, job=job)
    if not job:  # a batch deployment serves the scores of its job: no call per request
        sim.fit_timing_budget(scorer, sim.view.X)
        sim.time_singles(scorer, sim.view.X, sp.a, sp.b)


def scheduled(sim: _Sim) -> None:
    """``batch``, ``stream`` and ``static``: the spans one after another, in one process."""
    d, s0 = sim.data, sim.s0
    scorer, version, mtime = None, -1, d.W
    # the model serving each block end, for the forgetting matrix (a fit serves t >= sp.c)
    probe = snapshot_probe(d) if sim.spec.kind != "static" else None
    model = None
    for sp in plan_spans(sim.spec, d):
        fitted, fit_at = fit_span(sim, sp)
        if fitted is not None:
            if probe is not None and model is not None:
                probe.capture(model, change_at=sp.c, inclusive=False, copy=False)
            model = fitted
            version, mtime = version + 1, fit_at
            scorer = _Scorer(fitted, d.task, what=sim.spec.name, n_classes=d.n_classes)
        if sp.b > sp.a:
            assert scorer is not None
            serve_span(sim, scorer, sp)
            sim.version[sp.a - s0 : sp.b - s0] = version
            sim.mtime[sp.a - s0 : sp.b - s0] = mtime
            if sim.progress is not None:
                sim.progress(sp.b - s0)
    if probe is not None and model is not None:
        probe.finish(model, copy=False)
        sim.snapshots = probe.models


def run_span(sim: _Sim, sp: Span, *, refit_at: int | None = None) -> SpanOut:
    """One span on its own (another process, or a Dask worker): its fit and its scores.

    ``refit_at``: the span's own fits were skipped; serve it with the model fitted at that time
    (the previous span's, already recorded there), refitted here without recording it. Every fit
    is seeded by its time (:func:`seeded`), so the refit is the same model.
    """
    w0, c0 = perf_ns(), cpu_ns()
    if refit_at is None:
        fitted, fit_at = fit_span(sim, sp)
    else:
        fitted, fit_at = sim.fit(refit_at, first=False, warn=False, record=False), refit_at
        assert fitted is not None  # it was fitted once from the same rows
    score = None
    if fitted is not None and sp.b > sp.a:
        k = sim.data.n_classes
        serve_span(sim, _Scorer(fitted, sim.data.task, what=sim.spec.name, n_classes=k), sp)
        score = sim.score[sp.a - sim.s0 : sp.b - sim.s0].copy()
    return SpanOut(
        sp.k,
        None if fitted is None else fit_at,
        score,
        sim.log.rows(),
        sim.warnings,
        sim.fits,
        perf_ns() - w0,
        cpu_ns() - c0,
    )


def make_sim(
    spec: StrategySpec,
    data: SimData,
    view: View,
    builder: ModelBuilder,
    sample: np.ndarray,
    *,
    vectorize: bool = True,
    timing_budget_s: float | None = None,
) -> _Sim:
    """The state of one strategy's simulation (for :func:`run_span` in another process)."""
    budget = None if timing_budget_s is None else int(timing_budget_s * 1e9)
    return _Sim(spec, data, view, builder, sample, vectorize, None, timing_budget_ns=budget)


def calibrate_sample(sim: _Sim) -> np.ndarray:
    """The timing sample thinned to the budget, measured on the warm-up model (parallel runs
    thin it once, before the spans are spread over processes)."""
    model = sim.fit(sim.data.W, first=True, record=False)
    scorer = _Scorer(model, sim.data.task, what=sim.spec.name, n_classes=sim.data.n_classes)
    sim.fit_timing_budget(scorer, sim.view.X)
    return sim.sample
