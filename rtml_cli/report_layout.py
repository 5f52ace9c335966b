"""The report's sections, format-neutral: what each section shows, drawn by every renderer.

:func:`layout` turns a built :class:`~rtml_cli.report_schema.Report` into sections of blocks
(paragraphs, bullet lists, :class:`Table`, :class:`Series`, :class:`Curve`) that each renderer of
:mod:`rtml_cli.report_render` draws, so the terminal, Markdown and HTML outputs always say the
same thing. One function per section, listed in :data:`SECTIONS` in reading order: a new section
is one more function here (returning ``None`` when it has nothing to show) and one more entry in
the list; the renderers need no change unless it brings a new kind of block.

Blocks hold raw user text; the renderers escape it for their medium.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtml_cli.report_calls import PERSISTENCE, interval_text, practical_call, versus_reference
from rtml_cli.report_render import Block, Curve, Series, Table
from rtml_cli.report_schema import CapacityAtTraffic, Report
from rtml_cli.report_sections_level2 import cost_section, forgetting_section
from rtml_cli.report_svg import finite
from rtml_cli.report_values import (
    format_count,
    format_difference_of,
    format_epoch_minute,
    format_field,
    format_metric,
    format_ms,
    format_percent,
    format_seconds,
    format_signed,
    format_times_mean,
    format_value_of,
    metric_label,
    workers_phrase,
)
from rtml_cli.report_verdict import capacity_phrase

Section = tuple[str, list[Block]]


def layout(rep: Report) -> list[Section]:
    """Format-neutral sections of the report, in reading order."""
    sections = [section(rep) for section in SECTIONS]
    return [s for s in sections if s is not None]


def verdict_section(rep: Report) -> Section:
    return ("Verdict", [list(rep["verdict"])])


def checks_section(rep: Report) -> Section | None:
    if not rep["checks"]:
        return None
    rows = [[str(c["status"]).upper(), str(c["check"]), str(c["detail"])] for c in rep["checks"]]
    return ("Checks", [Table(["status", "check", "value"], rows)])


def _names(rep: Report) -> list[str]:
    return [s["name"] for s in rep["strategies"]]


def quality_section(rep: Report) -> Section:
    """Every metric per strategy, with the primary metric's difference to the baseline."""
    m = rep["metrics"]
    refs = list(rep.get("references") or [])
    names = _names(rep) + [r for r in refs if r not in _names(rep)]
    kinds: dict[str, str | None] = {s["name"]: s["kind"] for s in rep["strategies"]}
    kinds.update({r: "naive reference" for r in refs})
    metric, base = rep["primary_metric"], rep["baseline"]
    metric_names = list(m["metric_names"] or [])
    quality = m["quality"] or {}
    diffs = m.get("diff_to_baseline") or {}
    rows = []
    notes = []
    for n in names:
        q = quality.get(n)
        row = [n, kinds.get(n) or "", format_count(q.get("n") if q else None)]
        row += [format_metric(q.get(x) if q else None) for x in metric_names]
        to_baseline = diffs.get(n)
        d = to_baseline.get(metric) if to_baseline else None
        if n == base:
            row.append("baseline")
        elif d:
            interval = (
                f" [{format_metric(d.get('low'))}, {format_metric(d.get('high'))}]"
                if finite(d.get("low"))
                else ""
            )
            row.append(f"{format_signed(d.get('estimate'))}{interval}")
        else:
            row.append(format_signed(None))
        if PERSISTENCE in refs:
            row.append(_versus_persistence(rep, n))
        rows.append(row)
        notes += [f"{n}.{x}: {why}" for x, why in ((q.get("reasons") if q else None) or {}).items()]
    bucket = m.get("bucket") or {}
    boot = m.get("bootstrap") or {}
    level = boot.get("level")
    caption = (
        f"Δ{metric_label(metric)} vs {base} with a "
        f"{format_percent(level) if finite(level) else 'n/a'} "
        f"block-bootstrap interval ({format_count(boot.get('resamples'))} resamples over "
        f"{format_count(boot.get('blocks'))} time blocks of {bucket.get('text', '?')})."
    )
    headers = ["strategy", "kind", "events"] + [metric_label(x) for x in metric_names]
    headers.append(f"Δ{metric_label(metric)} vs {base}")
    if PERSISTENCE in refs:
        headers.append(f"Δ{metric_label(metric)} vs {PERSISTENCE}")
    if refs:
        caption += (
            f" {', '.join(refs)}: naive references (no model) scored under the same "
            "label-arrival rule; a strategy worth serving beats them."
        )
    blocks: list[Block] = [Table(headers, rows, caption)]
    if notes:
        blocks.append(["not computed: " + n for n in notes])
    return ("Quality", blocks)


def _versus_persistence(rep: Report, name: str) -> str:
    """``+0.004 [-0.002, +0.010] inconclusive``: a strategy against persistence, with its call."""
    if name == PERSISTENCE:
        return "reference"
    metric = rep["primary_metric"]
    d = versus_reference(rep["metrics"], name, PERSISTENCE, metric)
    if d is None or not finite(d.get("estimate")):
        return format_signed(None)
    hib = bool((rep["metrics"].get("higher_is_better") or {}).get(metric, True))
    call = practical_call(d, hib)
    return f"{format_signed(d.get('estimate'))}{interval_text(d)}" + (f" {call}" if call else "")


def quality_over_time_section(rep: Report) -> Section:
    m, metric = rep["metrics"], rep["primary_metric"]
    over_time = m.get("quality_over_time") or {}
    per_strategy = over_time.get("strategies") or {}
    shown = _names(rep) + [r for r in rep.get("references") or [] if r in per_strategy]
    lines = {n: list((per_strategy.get(n) or {}).get(metric) or []) for n in shown}
    span = m.get("span") or {}
    bucket = (m.get("bucket") or {}).get("text") or "bucket"
    title = (
        f"{metric_label(metric)} per {bucket} "
        f"({str(span.get('start') or '')[:16]} → {str(span.get('end') or '')[:16]})"
    )
    starts = [str(x) for x in over_time.get("start") or []]
    return ("Quality over time", [Series(title, starts, lines, metric_label(metric))])


def freshness_section(rep: Report) -> Section:
    """Staleness, feature and model age per strategy; quality by staleness bucket."""
    m, metric, names = rep["metrics"], rep["primary_metric"], _names(rep)
    freshness = m.get("freshness") or {}
    rows = []
    for n in names:
        f: dict[str, Any] = dict(freshness.get(n) or {})
        st, fa, ma = (f.get(k) or {} for k in ("staleness_s", "feature_age_s", "model_age_s"))
        rows.append([
            n, format_seconds(st.get("mean")), format_seconds(st.get("p90")),
            format_seconds(st.get("max")), format_seconds(fa.get("mean")),
            format_seconds(fa.get("p90")), format_seconds(ma.get("mean")),
            format_seconds(ma.get("p90")), format_count(f.get("cold_start", 0)),
        ])  # fmt: skip
    headers = [
        "strategy", "staleness mean", "p90", "max", "feature age mean", "p90",
        "model age mean", "p90", "cold starts",
    ]  # fmt: skip
    blocks: list[Block] = [Table(headers, rows)]
    by_staleness = m.get("quality_by_staleness") or {}
    staleness_rows = [
        [n, str(b.get("label")), format_count(b.get("n")), format_metric(b.get(metric))]
        for n in names
        for b in by_staleness.get(n) or []
    ]
    if any(len(by_staleness.get(n) or []) > 1 for n in names):
        blocks.append(
            Table(
                ["strategy", "staleness", "events", metric_label(metric)],
                staleness_rows,
                "Quality by staleness bucket: does older served data score worse?",
            )
        )
    return ("Freshness", blocks)


def compute_section(rep: Report) -> Section:
    """Timed calls per strategy and kind, and throughput."""
    compute = rep["metrics"].get("compute") or {}
    names = _names(rep)
    rows = []
    for n in names:
        c = compute.get(n)
        if not c:
            continue
        single = c.get("predict_single_row")
        entries = [("predict (1 row)", single)] + list((c.get("kinds") or {}).items())
        single_count = single.get("count") if single else None
        for label, calls in entries:
            if not calls or (label == "predict" and calls.get("count") == single_count):
                continue  # every predict call was a single-row one: same numbers twice
            wall = calls.get("wall_ms") or {}
            total = calls.get("wall_total_s")
            rows.append([
                n, str(label), format_count(calls.get("count")), format_ms(wall.get("p50")),
                format_ms(wall.get("p90")), format_ms(wall.get("p99")),
                format_ms(wall.get("p99.9")), format_ms(wall.get("max")),
                format_ms((calls.get("cpu_ms") or {}).get("p50")),
                f"{total:.3g}" if finite(total) else "n/a",
            ])  # fmt: skip
    throughput = []
    for n in names:
        c = compute.get(n)
        per_s = format_metric(c.get("events_per_s") if c else None, 0)
        throughput.append(f"{n}: {per_s} events/s")
    headers = [
        "strategy", "call", "calls", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
        "CPU p50 ms", "total s",
    ]  # fmt: skip
    caption = (
        "predict (1 row): real single-row calls, i.e. the per-event latency including "
        "the model library's per-call overhead; other rows are whole calls."
    )
    return (
        "Compute",
        [
            Table(headers, rows, caption),
            ["throughput (scored events / busy time): " + "; ".join(throughput)],
        ],
    )


def _capacity_summary(strategy: str, level: str, r: CapacityAtTraffic, slo: float) -> str:
    """Workers needed, latency at each worker count and the busiest windows, in sentences."""
    need = r.get("workers_needed")
    peak_minute, peak_hour = r.get("peak_minute") or {}, r.get("peak_hour") or {}
    phrases = [capacity_phrase(level, w, slo) for w in r.get("by_workers") or []]
    needed = (
        f"{workers_phrase(need)} needed for p99 ≤ {slo:g} ms"
        if need
        else f"no worker count meets p99 ≤ {slo:g} ms"
    )
    return (
        f"{strategy} at {level} traffic: {needed}"
        + (f" ({r['reason']})" if r.get("reason") else "")
        + ". "
        + "; ".join(p[0].upper() + p[1:] if i == 0 else p for i, p in enumerate(phrases))
        + f". Arrivals: mean {format_ms(r.get('rate_per_s'))}/s; busiest minute "
        f"{format_epoch_minute(peak_minute.get('start_us'))} at "
        f"{format_ms(peak_minute.get('rate_per_s'))}/s "
        f"({format_times_mean(peak_minute.get('x_mean'))} the mean); busiest hour "
        f"{format_epoch_minute(peak_hour.get('start_us'))} at "
        f"{format_ms(peak_hour.get('rate_per_s'))}/s "
        f"({format_times_mean(peak_hour.get('x_mean'))}), on the data's own clock."
    )


def capacity_section(rep: Report) -> Section:
    """End-to-end latency by worker count, per per-event strategy and traffic level."""
    capacity = rep.get("capacity")
    if not capacity:
        return (
            "Capacity",
            ["No per-event strategy with timed single-row predict calls: capacity not computed."],
        )
    slo = capacity["slo_ms"]
    rows, said = [], []
    for s, per in capacity["strategies"].items():
        for level, r in per.items():
            if r.get("reason") and not r.get("by_workers"):
                said.append(f"{s} at {level} traffic: {r.get('reason')}.")
                continue
            for w in r.get("by_workers") or []:
                latency = w.get("latency_ms") or {}
                rows.append([
                    s, level, format_count(w.get("workers")), format_ms(latency.get("p50")),
                    format_ms(latency.get("p99")), format_ms(latency.get("p99.9")),
                    format_ms(latency.get("max")), format_ms(w.get("peak_hour_p99_ms")),
                    format_percent(w.get("utilization")), "yes" if w.get("meets_slo") else "no",
                ])  # fmt: skip
            said.append(_capacity_summary(s, level, r, slo))
    headers = [
        "strategy", "traffic", "workers", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
        "busiest-hour p99 ms", "utilization", f"p99 ≤ {slo:g} ms",
    ]  # fmt: skip
    blocks: list[Block] = [
        Table(
            headers,
            rows,
            "End-to-end latency (queueing + service) of a FIFO queue fed with the historical "
            "arrivals and the measured single-row predict times.",
        ),
        said,
    ]
    curves = {
        f"{s} at {level} traffic": [
            (float(w["workers"]), float(p99))
            for w in r.get("by_workers") or []
            if finite(w.get("workers")) and finite(p99 := (w.get("latency_ms") or {}).get("p99"))
        ]
        for s, per in capacity["strategies"].items()
        for level, r in per.items()
    }
    if any(len(v) > 1 for v in curves.values()):
        blocks.append(
            Curve(
                "End-to-end p99 latency by number of workers",
                "workers",
                "p99 latency (ms)",
                {k: v for k, v in curves.items() if v},
                hline=slo,
                logy=True,
            )
        )
    return ("Capacity", blocks)


def run_section(rep: Report) -> Section:
    """Where the run came from: data, model, versions, resources, warnings."""
    m, man = rep["metrics"], rep.get("manifest", {})
    table = man.get("table", {}) or {}
    model = man.get("model", {}) or {}
    versions = man.get("versions", {}) or {}
    scored = man.get("scored_events", (m.get("span") or {}).get("events"))
    fields = [
        ["data", format_field(table.get("source"))],
        ["rows", format_field(table.get("rows"))],
        ["fingerprint", format_field(table.get("fingerprint"))],
        ["task", format_field(man.get("task", m.get("task")))],
        ["model", format_field(model.get("repr") or model.get("spec"))],
        ["warm-up ends", format_field(man.get("warmup_end"))],
        ["scored events", format_field(scored)],
        ["created", format_field(man.get("created"))],
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "n/a"],
    ]
    if finite(man.get("peak_memory_mb")):
        fields.append(["peak memory", f"{man['peak_memory_mb']:.0f} MB"])
    phases = man.get("timings") or {}
    if isinstance(phases, dict) and phases:
        fields.append(
            ["compare phases", ", ".join(f"{k} {format_metric(v, 2)}" for k, v in phases.items())]
        )
    blocks: list[Block] = [Table(["field", "value"], fields)]
    if man.get("warnings"):
        blocks.append(["warning: " + str(w) for w in man["warnings"]])
    return ("Run", blocks)


def run_b_section(rep: Report) -> Section | None:
    """Run A beside run B (``rtml report A B``)."""
    run_b = rep.get("run_b")
    if not run_b:
        return None
    rows = [
        [
            r["strategy"],
            metric_label(r["metric"]),
            format_value_of(r["metric"], r["a"]),
            format_value_of(r["metric"], r["b"]),
            format_difference_of(r["metric"], r["diff"]),
        ]
        for r in run_b["rows"]
    ]
    table = Table(
        ["strategy", "metric", "A", "B", "B − A"], rows, f"A = {rep['run']}, B = {run_b['run']}"
    )
    return ("Run A vs run B", [list(run_b["verdict"]), table])


#: Every section in reading order; a section function returns None to leave itself out.
SECTIONS: list[Callable[[Report], Section | None]] = [
    verdict_section,
    checks_section,
    quality_section,
    quality_over_time_section,
    forgetting_section,
    freshness_section,
    compute_section,
    cost_section,
    capacity_section,
    run_section,
    run_b_section,
]
