"""Strategies across processes: every retrain of a ``batch``/``stream`` strategy is its own task.

A scheduled strategy is a list of spans (:func:`rtml_cli.spans.plan_spans`): a fit at a
cutoff ``c`` on the labels that arrived before ``c``, and the events its model serves until the
next fit. Spans are independent, so they are spread over the workers of a backend
(:mod:`rtml_cli.executor`: local processes or Dask); an ``online`` strategy is sequential and is
one task. The result is the serial run's, bit for bit, except timings:

* every fit is seeded by the run seed and its own time (:func:`rtml_cli.strategies.seeded`),
  so a span's fit is the same model in any process and order;
* a span whose retrain is skipped (a window with one class) is served by the previous model:
  once every span is back, such a span is run again with the previous span's fit time, and
  that fit is remade (not recorded twice);
* each strategy's timing sample is thinned to its budget once, before its spans are sent out,
  on the warm-up model (the serial run measures on the first span's model; only which events
  are timed can differ, and that depends on measured times in any case);
* calls, warnings and fits are put back together in span order, as the serial run made them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rtml_cli.config import StrategySpec
from rtml_cli.executor import Backend, payload
from rtml_cli.forgetting_run import forgetting_section
from rtml_cli.models import ModelBuilder
from rtml_cli.progress import StrategyProgress
from rtml_cli.spans import Span, SpanOut, calibrate_sample, make_sim, plan_spans, run_span
from rtml_cli.strategies import SimData, StrategyResult, View, sim_context, simulate
from rtml_cli.timing import CallLog


@dataclasses.dataclass
class Payload:
    """What every worker holds once: the label arrays, the views, the model and the strategies."""

    data: SimData
    views: dict[str, View]
    builder: ModelBuilder
    specs: list[StrategySpec]
    view_keys: list[str]
    fast: bool = True

    def view(self, si: int) -> View:
        return self.views[self.view_keys[si]]


# --------------------------------------------------------------------------- tasks (workers)
def task_strategy(
    p: Payload | None, si: int, sample: np.ndarray, budget_s: float | None
) -> StrategyResult:
    """A whole strategy in one task (``online``: its updates are sequential)."""
    p = payload(p)
    assert p is not None
    spec = p.specs[si]
    res = simulate(
        spec, p.data, p.view(si), p.builder, sample=sample, fast=p.fast, timing_budget_s=budget_s
    )
    if res.snapshots is not None:
        # score the snapshots here: the models themselves (a factory file's classes, say) may
        # not survive the trip back to the main process
        found = forgetting_section([spec], [p.view(si)], p.data, p.builder, [res], fast=p.fast)
        res.forgetting, res.snapshots = found.get(spec.name), None
    return res


def task_calibrate(p: Payload | None, si: int, sample: np.ndarray, budget_s: float) -> np.ndarray:
    """The strategy's timing sample thinned to its budget (measured on the warm-up model)."""
    p = payload(p)
    assert p is not None
    spec, view = p.specs[si], p.view(si)
    sim = make_sim(spec, p.data, view, p.builder, sample, timing_budget_s=budget_s)
    with sim_context(spec, view, p.builder, fast=p.fast):
        return calibrate_sample(sim)


def task_span(
    p: Payload | None, si: int, sp: Span, sample: np.ndarray | None, refit_at: int | None
) -> SpanOut:
    """One span: its fit (or the refit of the previous one) and its scores."""
    p = payload(p)
    assert p is not None
    spec, view, d = p.specs[si], p.view(si), p.data
    s0 = d.s0
    mask = np.zeros(len(d.t) - s0, dtype=bool)
    if sample is not None:
        mask[sp.a - s0 : sp.b - s0] = sample
    sim = make_sim(spec, d, view, p.builder, mask)
    with sim_context(spec, view, p.builder, fast=p.fast):
        return run_span(sim, sp, refit_at=refit_at)


# --------------------------------------------------------------------------- coordinator
class _Run:
    """The coordinator's state: what was sent, what came back."""

    def __init__(
        self,
        p: Payload,
        backend: Backend,
        sample: np.ndarray,
        budget_s: float | None,
        bars: StrategyProgress,
    ) -> None:
        self.p, self.backend, self.sample, self.budget_s, self.bars = (
            p,
            backend,
            sample,
            budget_s,
            bars,
        )
        self.pending: dict[Any, tuple[str, int, int]] = {}
        self.spans: dict[int, list[Span]] = {}
        self.samples: dict[int, np.ndarray | None] = {}
        self.outs: dict[int, dict[int, SpanOut]] = {}
        self.refits: dict[int, dict[int, SpanOut]] = {}
        self.waiting: dict[int, int] = {}
        self.done_events: dict[int, int] = {}
        self.results: dict[int, StrategyResult] = {}
        self.errors: list[tuple[tuple[int, int, int], BaseException]] = []
        self.abandoned: list[Any] = []

    def submit(self, what: str, si: int, k: int, fn: Any, *args: Any) -> None:
        self.pending[self.backend.submit(fn, *args)] = (what, si, k)

    def start(self) -> None:
        p = self.p
        # the long sequential tasks first, so they start while the spans fill the other workers
        order = sorted(range(len(p.specs)), key=lambda i: p.specs[i].kind != "online")
        for si in order:
            spec = p.specs[si]
            self.bars.start(spec.name)
            if spec.kind == "online":
                self.submit("strategy", si, 0, task_strategy, si, self.sample, self.budget_s)
                continue
            self.spans[si] = plan_spans(spec, p.data)
            self.outs[si], self.refits[si], self.done_events[si] = {}, {}, 0
            if spec.kind == "batch":  # serves its job's scores: no per-request timing
                self.samples[si] = None
                self.submit_spans(si)
            elif self.budget_s is not None:
                self.submit("calibrate", si, 0, task_calibrate, si, self.sample, self.budget_s)
            else:
                self.samples[si] = self.sample
                self.submit_spans(si)

    def _slice(self, si: int, sp: Span) -> np.ndarray | None:
        sample, s0 = self.samples[si], self.p.data.s0
        return None if sample is None else sample[sp.a - s0 : sp.b - s0]

    def submit_spans(self, si: int) -> None:
        spans = self.spans[si]
        self.waiting[si] = len(spans)
        # the latest spans train on the most rows: start them first for an even finish
        for sp in reversed(spans):
            self.submit("span", si, sp.k, task_span, si, sp, self._slice(si, sp), None)

    def handle(self, what: str, si: int, k: int, out: Any) -> None:
        spec = self.p.specs[si]
        if what == "strategy":
            self.results[si] = out
            self.bars.finished(spec.name, out.wall_s)
        elif what == "calibrate":
            self.samples[si] = out
            self.submit_spans(si)
        else:
            (self.outs if what == "span" else self.refits)[si][k] = out
            sp = self.spans[si][k]
            if out.score is not None:
                self.done_events[si] += sp.b - sp.a
                tick = self.bars.callback(spec.name)
                if tick is not None:
                    tick(self.done_events[si])
            self.waiting[si] -= 1
            if self.waiting[si] == 0:
                if what == "span":
                    self.submit_refits(si)
                else:
                    self.finish(si)

    def submit_refits(self, si: int) -> None:
        """Spans whose fits were all skipped are served by the previous span's model."""
        fit_at: int | None = None
        todo = []
        for sp in self.spans[si]:
            out = self.outs[si][sp.k]
            if out.fit_at is not None:
                fit_at = out.fit_at
            elif sp.b > sp.a:
                assert fit_at is not None  # the warm-up fit is never skipped (it raises)
                todo.append((sp, fit_at))
        self.waiting[si] = len(todo)
        for sp, at in todo:
            self.submit("refit", si, sp.k, task_span, si, sp, self._slice(si, sp), at)
        if not todo:
            self.finish(si)

    def finish(self, si: int) -> None:
        """The strategy's result from its spans, in span order (as the serial run makes it)."""
        p, d = self.p, self.p.data
        spec, s0 = p.specs[si], d.s0
        sim = make_sim(spec, d, p.view(si), p.builder, np.zeros(len(d.t) - s0, dtype=bool))
        log = CallLog()
        version, mtime = -1, d.W
        wall = cpu = 0
        for sp in self.spans[si]:
            out = self.outs[si][sp.k]
            log.extend_rows(out.calls)
            sim.warnings.extend(out.warnings)
            sim.fits.extend(out.fits)
            wall, cpu = wall + out.wall_ns, cpu + out.cpu_ns
            if out.fit_at is not None:
                version, mtime = version + 1, out.fit_at
            elif sp.b > sp.a:
                out = self.refits[si][sp.k]
                log.extend_rows(out.calls)
                wall, cpu = wall + out.wall_ns, cpu + out.cpu_ns
            if sp.b > sp.a:
                assert out.score is not None
                sim.score[sp.a - s0 : sp.b - s0] = out.score
                sim.version[sp.a - s0 : sp.b - s0] = version
                sim.mtime[sp.a - s0 : sp.b - s0] = mtime
        sim.log = log
        res = sim.result()
        res.wall_s, res.cpu_s = wall / 1e9, cpu / 1e9
        self.results[si] = res
        self.bars.finished(spec.name, res.wall_s)

    def loop(self) -> None:
        while self.pending:
            for fut in self.backend.wait(self.pending):
                what, si, k = self.pending.pop(fut, ("", -1, -1))
                if si < 0:
                    continue
                try:
                    out = self.backend.result(fut)
                except Exception as exc:
                    self.errors.append((_order(what, si, k), exc))
                    self.drop_after(min(e[0] for e in self.errors))
                    continue
                if not self.errors:  # once stopped, only errors of earlier tasks matter
                    self.handle(what, si, k, out)

    def drop_after(self, first: tuple[int, int, int]) -> None:
        """After an error: the tasks that come after it in the serial order are not needed
        (the serial run would have stopped before them); the earlier ones may still fail first."""
        late = [f for f, w in self.pending.items() if _order(*w) > first]
        for f in late:
            del self.pending[f]
        self.abandoned.extend(late)
        self.backend.cancel(late)


def _order(what: str, si: int, k: int) -> tuple[int, int, int]:
    """Where a task's work comes in the serial run: strategy, then calibration, then span."""
    return (si, 0 if what == "calibrate" else 1, k)


def run_parallel(
    p: Payload,
    backend: Backend,
    *,
    sample: np.ndarray,
    budget_s: float | None,
    bars: StrategyProgress,
) -> list[StrategyResult]:
    """Every strategy of ``p``, its spans spread over ``backend``'s workers; results in the
    order of ``p.specs``. The backend is closed on return."""
    run = _Run(p, backend, sample, budget_s, bars)
    try:
        run.start()
        run.loop()
    except BaseException:
        backend.close([*run.pending, *run.abandoned])
        raise
    if run.errors:
        # the error the serial run would have raised: the first in its order
        backend.close([*run.pending, *run.abandoned])
        raise min(run.errors, key=lambda e: e[0])[1]
    backend.close()
    return [run.results[i] for i in range(len(p.specs))]
