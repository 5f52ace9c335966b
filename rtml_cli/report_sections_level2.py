"""The report's sections for the level-2 decision: forgetting and cost (format-neutral).

Like :mod:`rtml_cli.report_layout`, each function takes the built report and returns
``(title, blocks)`` or ``None`` when the run has nothing to show (a run before the section's
data existed); :data:`rtml_cli.report_layout.SECTIONS` lists them in reading order. Blocks hold
raw user text; the renderers escape it.
"""

from __future__ import annotations

from typing import Any

from rtml_cli.report_level2 import forgetting_entry, forgetting_matrix, format_cpu_s
from rtml_cli.report_render import Block, Heatmap, Table, sparkline
from rtml_cli.report_schema import ForgettingSummary, Report
from rtml_cli.report_svg import finite, finite_values
from rtml_cli.report_values import format_count, format_metric, format_percent, metric_label

Section = tuple[str, list[Block]]

#: fewer labelled events than this in a block: its own forgetting is called noisy
SMALL_BLOCK = 100
#: cost numbers outside the table, said in words (others keep their key)
COST_LABELS = {
    "batch_job_cpu_s_estimate": (
        "CPU s a real batch job would spend scoring every active entity over the run (estimate)"
    ),
}


def _spark(values: list[float | None]) -> str:
    """A sparkline and its range (``▂▅█ 0.61–0.83``), ``n/a`` when no value is known."""
    fin = finite_values(values)
    if not fin:
        return "n/a"
    return f"{sparkline(values)} {format_metric(min(fin))}–{format_metric(max(fin))}"


def _block_counts(rep: Report, blocks: int) -> list[int]:
    """Labelled events per block, when the report's buckets are the forgetting blocks."""
    qot = rep["metrics"].get("quality_over_time")
    counts = qot.get("n") if isinstance(qot, dict) else None
    if not isinstance(counts, list) or len(counts) != blocks:
        return []
    return [int(c) for c in counts if finite(c)]


def _sampling_note(rep: Report, rows: list[ForgettingSummary]) -> str:
    """How many labelled events each block was scored on, and whether any was sampled (the run
    gives ``sampled_per_block`` only when it sampled)."""
    blocks = max((f["blocks"] for f in rows), default=0)
    counts = _block_counts(rep, blocks)
    spread = ""
    if counts:
        low, high = min(counts), max(counts)
        spread = (
            f"; every block has {low} labelled events"
            if low == high
            else f"; blocks have {low} to {high} labelled events"
        )
    caps = [c for f in rows if (c := f["sampled_per_block"]) is not None and finite(c)]
    if not caps:
        # a metric on fewer than ~100 events moves by several hundredths from chance alone
        noisy = (
            ". A block with few events gives a noisy forgetting of its own; the mean over blocks "
            "is steadier"
            if counts and min(counts) < SMALL_BLOCK
            else ""
        )
        return f"Every labelled event of each block is scored (no sampling){spread}{noisy}."
    cap = max(caps)
    text = f"Each snapshot is scored on at most {cap} labelled events per block"
    sampled = [f["sampled_blocks"] for f in rows if f["sampled_blocks"] is not None]
    if sampled and max(sampled) > 0:
        return (
            text + f": {max(sampled)} of {blocks} blocks had more and were scored on a seeded "
            "sample of them."
        )
    if sampled:
        return text + ": no block had more, so every labelled event was scored."
    return text + " (a seeded sample where a block has more)."


def forgetting_section(rep: Report) -> Section | None:
    """Mean and worst forgetting per strategy; the matrix as a heatmap (HTML) and sparklines."""
    rows: list[ForgettingSummary] = list(rep.get("forgetting") or [])
    if not rows:
        return None
    table = []
    heatmaps: list[Block] = []
    for f in rows:
        matrix, ends = forgetting_matrix(forgetting_entry(rep["metrics"], f["strategy"]))
        worst = f["worst_block"]
        final = list(matrix[-1]) if matrix else []
        column = (
            [r[worst] if worst < len(r) else None for r in matrix[worst:]]
            if worst is not None
            else []
        )
        best_final = (
            f"{format_metric(f['best_on_worst'])} → {format_metric(f['final_on_worst'])}"
            if worst is not None
            else "n/a"
        )
        table.append([
            f["strategy"], f["kind"] or "", metric_label(f["metric"]), format_count(f["blocks"]),
            format_metric(f["mean"]), format_metric(f["max"]),
            (f["worst_block_end"] or "n/a")[:16], best_final, _spark(final), _spark(column),
        ])  # fmt: skip
        if matrix:
            heatmaps.append(
                Heatmap(
                    f"{f['strategy']}: {metric_label(f['metric'])} of the model at each block's "
                    "end (rows) on the events of each block up to it (columns)",
                    [e[:16] for e in ends] or [str(i) for i in range(len(matrix))],
                    [e[:10] for e in ends] or [str(i) for i in range(len(matrix))],
                    matrix,
                    xlabel="block ending",
                    ylabel="model at",
                    higher_is_better=f["higher_is_better"],
                )
            )
    headers = [
        "strategy", "kind", "metric", "blocks", "mean forgetting", "max forgetting",
        "worst block ends", "best → final on it", "final model on each block",
        "worst block, model by model",
    ]  # fmt: skip
    caption = (
        "Forgetting of a block = the best quality any model snapshot had on its events minus "
        "the final model's quality on them (positive: the final model forgot it). Snapshots are "
        "the model in use at the end of each block, scored with the features its events were "
        "served with."
    )
    blocks: list[Block] = [Table(headers, table, caption)]
    blocks.append(_sampling_note(rep, rows))
    return ("Forgetting", blocks + heatmaps)


def _number(x: Any, unit: str = "") -> str:
    return f"{x:.3g}{unit}" if finite(x) else "n/a"


def cost_section(rep: Report) -> Section | None:
    """CPU time per strategy: retraining per day of events, scoring jobs, requests, updates, and
    a keyed batch job's predictions made against the ones served."""
    rows = list(rep.get("cost") or [])
    if not rows:
        return None
    table = []
    other: list[str] = []
    for c in rows:
        made, used = c["predictions_made"], c["predictions_used"]
        share = used / made if finite(made) and finite(used) and made > 0 else None
        per_request = c["predict_cpu_ms_per_request"]
        table.append([
            c["strategy"], c["kind"] or "", format_cpu_s(c["cpu_s_per_day"]),
            format_cpu_s(c["retrain_cpu_s_per_day"]),
            format_cpu_s(c["score_job_cpu_s_per_cutoff"]),
            "lookup" if c["kind"] == "batch" and not finite(per_request) else _number(per_request),
            _number(c["update_cpu_ms_per_update"]),
            f"{made:,.0f}" if finite(made) else "n/a", f"{used:,.0f}" if finite(used) else "n/a",
            format_percent(share),
        ])  # fmt: skip
        other += [
            f"{c['strategy']}: {COST_LABELS.get(k, k)} = {_number(v)}"
            for k, v in c["other"].items()
        ]
    headers = [
        "strategy", "kind", "CPU s / day of events", "retrain CPU s / day",
        "scoring job CPU s / cutoff",
        "predict CPU ms / request", "update CPU ms / update", "batch predictions made",
        "used", "share used",
    ]  # fmt: skip
    derived = [c["strategy"] for c in rows if c["source"] != "cost"]
    lookbacks = sorted({c["batch_lookback"] for c in rows if c["batch_lookback"]})
    caption = (
        "Measured CPU time per day of scored events: retraining, scoring jobs, updates and, "
        "where the deployment calls the model per request, one call per event."
    )
    batch = [c for c in rows if c["kind"] == "batch"]
    if batch:
        caption += " A batch request is a lookup of a score its scoring job precomputed"
        if lookbacks:
            caption += (
                f": a real job scores every entity active in the look-back "
                f"({', '.join(lookbacks)}) at every cutoff, and only some of those scores are "
                "ever served (made vs used)."
            )
        elif any(c["source"] == "cost" for c in batch):  # the run counts jobs of keyed tables
            caption += " (the table has no entity key, so no per-entity job is counted)."
        else:
            caption += "."
    if derived:
        caption += (
            " This run has no cost section for "
            + ", ".join(derived)
            + ": those rows come from its timed calls."
        )
    blocks: list[Block] = [Table(headers, table, caption)]
    if other:
        blocks.append(other)
    return ("Cost", blocks)
