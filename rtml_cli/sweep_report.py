"""``rtml report SWEEP_DIR``: the freshness curve of a sweep as tables, a chart and a verdict.

A folder holding ``sweep.json`` is a sweep (:func:`is_sweep`). :func:`build_sweep_report` reads
``sweep.json`` and ``curve.parquet`` (:mod:`rtml_cli.sweep_curve`; rebuilt from the cells when
an interrupted sweep left none) into one JSON-able dict:

    {"schema_version": 1, "kind": "sweep", "run": str, "table": str, "grid": {key: [values]},
     "baseline": str, "primary_metric": str, "higher_is_better": bool, "cost_metric": str,
     "cells": [sweep.json cells], "curve": [curve rows], "pareto": [{"cell", "strategy",
     "quality", "cost"}], "verdict": [str], "checks": [...], "exit_code": 0 | 1 | 3}

The quality of a point is its primary metric (AUC for a binary label, else MAE), its gain the
difference to the baseline (sign turned so that more is better) with the 95 % block-bootstrap
interval of the cell's own run; its cost ``compute_cpu_s`` (retrains, updates and serving, CPU
seconds over the scored span). A point is on the Pareto front when no other point has at least
its quality for at most its cost, and is better in one of them.

Checks (``--check``) name ``cell.strategy.column`` for any numeric column of the curve
(``c003.online.auc``, ``c000.batch.compute_cpu_s``) and aggregate with ``min(...)``,
``max(...)``, ``mean(...)`` (:mod:`rtml_cli.checks`), e.g. ``min(online.auc_diff_low) > 0``. A
failed cell's values are missing: a check that needs one is an error (exit 3).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rtml_cli import checks as checks_mod
from rtml_cli import report_render
from rtml_cli.durations import format_duration
from rtml_cli.errors import RunDirError, UsageError
from rtml_cli.escape import for_json
from rtml_cli.relevance import EQUIVALENT, GAIN, INCONCLUSIVE, LOSS, classify
from rtml_cli.report_render import Table
from rtml_cli.report_svg import finite
from rtml_cli.sweep import CURVE_FILE, SWEEP_FILE, SWEEP_FORMAT
from rtml_cli.sweep_curve import curve_frame
from rtml_cli.sweep_grid import APPLIES
from rtml_cli.sweep_schema import validate_curve, validate_sweep_doc

SCHEMA_VERSION = 1
COST = "compute_cpu_s"
_TEXT_COLUMNS = {"cell", "cell_id", "strategy", "kind", "baseline", "model_spec"}
_CADENCE_KEYS = ("retrain_every", "update_every")
#: Names a failed cell is known to lack when no cell finished (the curve has no columns).
FALLBACK_COLUMNS = tuple(
    f"{m}{d}"
    for m in ("auc", "accuracy", "log_loss", "f1", "brier", "mae", "rmse", "r2")
    for d in ("", "_diff", "_diff_low", "_diff_high")
) + ("n", "refresh_s", "compute_cpu_s", "predict_p99_ms", "events_per_s")
LABEL = {"auc": "AUC", "accuracy": "accuracy", "mae": "MAE", "rmse": "RMSE", "log_loss": "log loss"}


def is_sweep(path: str | Path) -> bool:
    """A folder written by ``rtml sweep`` (it holds ``sweep.json``)."""
    return (Path(path) / SWEEP_FILE).is_file()


def read_sweep(path: str | Path) -> tuple[dict[str, Any], pl.DataFrame]:
    """``sweep.json`` and the curve (RunDirError if either is damaged)."""
    p = Path(path)
    try:
        doc = json.loads((p / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(
            f"'{p / SWEEP_FILE}' cannot be read ({exc}). Rerun `rtml sweep`."
        ) from None
    if not (
        isinstance(doc, dict) and doc.get("kind") == "sweep" and isinstance(doc.get("cells"), list)
    ):
        raise RunDirError(f"'{p / SWEEP_FILE}' is not a sweep written by rtml. Rerun `rtml sweep`.")
    validate_sweep_doc(doc, where=f"'{p / SWEEP_FILE}'")
    if isinstance(doc.get("format"), int) and doc["format"] > SWEEP_FORMAT:
        raise RunDirError(
            f"sweep '{p}' has format {doc['format']}, newer than this rtml. Upgrade rtml."
        )
    try:
        if (p / CURVE_FILE).is_file():
            curve = pl.read_parquet(p / CURVE_FILE, glob=False)
        else:  # interrupted before the curve was written: what has finished so far
            curve = curve_frame(p, doc)
    except (pl.exceptions.PolarsError, OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RunDirError(
            f"the curve of sweep '{p}' cannot be read ({first}). Rerun `rtml sweep`."
        ) from None
    return doc, validate_curve(curve, where=f"the curve of sweep '{p}'")


def _first_metrics(p: Path, doc: Mapping[str, Any]) -> dict[str, Any]:
    for c in doc["cells"]:
        if c.get("status") == "ok":
            try:
                return dict(
                    json.loads((p / c["run_dir"] / "metrics.json").read_text(encoding="utf-8"))
                )
            except (OSError, ValueError):
                continue
    return {}


def primary(curve: pl.DataFrame) -> str:
    """AUC, else accuracy, else MAE, else RMSE: the first with a value in the curve."""
    for m in ("auc", "accuracy", "mae", "rmse"):
        if m in curve.columns and curve[m].drop_nulls().len():
            return m
    return "auc"


def _dur(seconds: Any) -> str:
    return format_duration(max(1, int(round(seconds * 1e6)))) if finite(seconds) else "-"


def describe(row: Mapping[str, Any]) -> str:
    """``online (update every 8 labels)``, ``batch (retrain every 1h)``, ``static``."""
    kind, name = row.get("kind"), str(row.get("strategy"))
    if kind in ("batch", "stream") and finite(row.get("retrain_every_s")):
        return f"{name} (retrain every {_dur(row['retrain_every_s'])})"
    if kind == "online" and finite(row.get("update_every_n")):
        n = int(row["update_every_n"])
        return f"{name} (update every {n} label{'s' * (n != 1)})"
    return name


def _context(row: Mapping[str, Any], grid: Sequence[str]) -> str:
    """The values of the keys that are not a cadence (model, label delay, window)."""
    return " ".join(f"{k}={row.get(k)}" for k in grid if k not in _CADENCE_KEYS)


def _gain(
    row: Mapping[str, Any], m: str, hib: bool
) -> tuple[float | None, float | None, float | None]:
    if row.get("strategy") == row.get("baseline"):
        return 0.0, None, None
    est, lo, hi = row.get(f"{m}_diff"), row.get(f"{m}_diff_low"), row.get(f"{m}_diff_high")
    if hib:
        return est, lo, hi
    neg = [None if not finite(v) else -v for v in (est, hi, lo)]
    return neg[0], neg[1], neg[2]


def pareto(rows: Sequence[Mapping[str, Any]], m: str, hib: bool) -> list[Mapping[str, Any]]:
    """The rows no other row dominates on (quality, cost)."""
    pts = [r for r in rows if finite(r.get(m)) and finite(r.get(COST))]

    def q(r: Mapping[str, Any]) -> float:
        return float(r[m]) if hib else -float(r[m])

    front = []
    for r in pts:
        dominated = any(
            q(o) >= q(r) and o[COST] <= r[COST] and (q(o) > q(r) or o[COST] < r[COST]) for o in pts
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r[COST])


def _ratio(a: float, b: float, whose: str = "the") -> str:
    """``1/24 of the compute``, ``0.78 of the compute`` or ``3.2× the compute``."""
    if b <= 0:
        return f"an unknown share of {whose} compute"
    r = a / b
    if r < 0.5:
        return f"1/{round(1 / r)} of {whose} compute" if r > 0 else f"none of {whose} compute"
    if r < 1:
        return f"{r:.2f} of {whose} compute"
    return f"{r:.2g}× {whose} compute"


def verdict(rep: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences from the numbers of the curve, most important first."""
    m, hib, base = rep["primary_metric"], rep["higher_is_better"], rep["baseline"]
    lab = LABEL.get(m, m)
    grid = list(rep["grid"])
    out: list[str] = []
    failed = [c for c in rep["cells"] if c.get("status") != "ok"]
    if failed:
        out.append(
            f"{len(failed)} of {len(rep['cells'])} cells failed and are left out: "
            + "; ".join(f"{c['alias']}: {c.get('error') or c.get('status')}" for c in failed[:3])
            + ("; …" if len(failed) > 3 else "")
        )
    base_kind = next((r.get("kind") for r in rows if r.get("strategy") == base), None)
    moved = [k for k in grid if (fits := APPLIES.get(k, ())) is None or base_kind in fits]
    if moved:
        cadence = any(k in _CADENCE_KEYS for k in moved)
        out.append(
            f"The baseline {base} itself changes with {', '.join(moved)}: each gain is against "
            "the baseline of its own cell"
            + ("; a static baseline (--baseline static) gives one reference." if cadence else ".")
        )
    scored = [r for r in rows if finite(r.get(m))]
    if not scored:
        return out + ["No cell has a value of the primary metric; see the cells below."]
    gains: list[tuple[Mapping[str, Any], float, float | None, float | None]] = []
    seen: set[tuple[Any, ...]] = set()
    for r in scored:
        g, lo, hi = _gain(r, m, hib)
        # cells that differ only in another kind's cadence repeat a strategy's setting
        setting = (r.get("strategy"), describe(r), _context(r, grid), r.get("train_window_s"))
        if r.get("strategy") != base and finite(g) and setting not in seen:
            seen.add(setting)
            gains.append((r, float(g), lo, hi))
    best = max(scored, key=lambda r: r[m] if hib else -r[m])
    ctx = _context(best, grid)
    out.append(
        f"Best {lab}: {describe(best)} in {best['cell']}{' (' + ctx + ')' if ctx else ''}: "
        f"{best[m]:.3f}"
        + (
            f", {_gain(best, m, hib)[0]:+.3f} over {base}"
            if best.get("strategy") != base and finite(_gain(best, m, hib)[0])
            else ""
        )
        + "."
    )
    if gains:
        top = max(gains, key=lambda g: g[1])
        r_top, g_top = top[0], top[1]
        if g_top > 0 and finite(r_top.get(COST)):
            cheaper = [g for g in gains if finite(g[0].get(COST)) and g[1] >= 0.9 * g_top
                       and g[0][COST] < r_top[COST]]  # fmt: skip
            if cheaper:
                q = min(cheaper, key=lambda g: g[0][COST])
                out.append(
                    f"{describe(q[0])} ({q[0]['cell']}) gets {q[1] / g_top:.2f} of the largest "
                    f"gain over {base} ({describe(r_top)} in {r_top['cell']}, {g_top:+.3f} {lab}) "
                    f"for {_ratio(q[0][COST], r_top[COST], 'its')} "
                    f"({q[0][COST]:.3g} vs {r_top[COST]:.3g} CPU s)."
                )
            else:
                text = (
                    f"Nothing cheaper than {describe(r_top)} ({r_top['cell']}) gets 0.9 of its "
                    f"gain over {base} ({g_top:+.3f} {lab}, {r_top[COST]:.3g} CPU s)"
                )
                # the cheapest point of the front that still gains: what a fraction of it costs
                front = {(r["cell"], r["strategy"]) for r in pareto([g[0] for g in gains], m, hib)}
                cheap = sorted((g for g in gains if (g[0]["cell"], g[0]["strategy"]) in front
                                and g[1] > 0 and finite(g[0].get(COST))
                                and g[0][COST] < r_top[COST]), key=lambda g: g[0][COST])  # fmt: skip
                if cheap:
                    c = cheap[0]
                    text += (
                        f"; {describe(c[0])} ({c[0]['cell']}) gets {c[1] / g_top:.2f} of it for "
                        f"{_ratio(c[0][COST], r_top[COST])} ({c[0][COST]:.3g} CPU s)"
                    )
                out.append(text + ".")
        # each gain read against the smallest difference that matters (rtml_cli/relevance.py);
        # a curve written before it has no min_effect: then only significance can speak (δ = 0)
        calls = []
        deltas = set()
        for r, g, lo, hi in gains:
            delta = r.get(f"{m}_diff_min_effect")
            delta = float(delta) if finite(delta) else 0.0
            deltas.add(delta)
            calls.append(classify(g, lo, hi, delta, higher_is_better=True))
        count = {c: calls.count(c) for c in (GAIN, LOSS, EQUIVALENT, INCONCLUSIVE)}
        within = f" (±{deltas.pop():g} {lab})" if len(deltas) == 1 else ""
        out.append(
            f"Against {base} on {lab}, of {len(gains)} settings {count[GAIN]} gain and "
            f"{count[LOSS]} lose beyond the smallest difference that matters{within}, "
            f"{count[EQUIVALENT]} make no practical difference and {count[INCONCLUSIVE]} are "
            "inconclusive."
        )
    # per strategy and context: from the slowest to the freshest refresh
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in scored:
        if finite(r.get("refresh_s")):
            groups.setdefault((str(r["strategy"]), _context(r, grid)), []).append(r)
    for (name, ctx), rs in groups.items():
        rs = sorted(rs, key=lambda r: -r["refresh_s"])
        if len({r["refresh_s"] for r in rs}) < 2:
            continue
        slow, fast = rs[0], rs[-1]
        out.append(
            f"{name}{' (' + ctx + ')' if ctx else ''}: {lab} {slow[m]:.3f} refreshing every "
            f"{_dur(slow['refresh_s'])} → {fast[m]:.3f} every {_dur(fast['refresh_s'])} "
            f"({fast[m] - slow[m]:+.3f})"
            + (
                f", for {_ratio(fast[COST], slow[COST])}."
                if finite(fast.get(COST)) and finite(slow.get(COST)) and slow[COST] > 0
                else "."
            )
        )
    return out


def sweep_metrics(
    doc: Mapping[str, Any], curve: pl.DataFrame
) -> tuple[dict[str, float | None], dict[str, str]]:
    """``cell.strategy.column`` for every numeric curve column; a failed cell's are missing."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    numeric = [c for c, t in curve.schema.items() if t.is_numeric()] or list(FALLBACK_COLUMNS)
    for r in curve.iter_rows(named=True):
        if r.get("kind") == "reference":
            continue  # the naive references are not strategies (as in a run's checks)
        for c in numeric:
            if r["strategy"] == r.get("baseline") and "_diff" in c:
                continue  # the baseline has no difference to itself (as in a run's checks)
            name = f"{r['cell']}.{r['strategy']}.{c}"
            values[name] = r[c] if finite(r[c]) else None
            if values[name] is None:
                reasons[name] = f"no value in the run of cell {r['cell']}"
    for cell in doc["cells"]:
        if cell.get("status") == "ok":
            continue
        for s in doc.get("strategies") or []:
            for c in numeric:
                if s == doc.get("baseline") and "_diff" in c:
                    continue
                name = f"{cell['alias']}.{s}.{c}"
                values[name] = None
                reasons[name] = f"cell {cell['alias']} {cell.get('status')}: {cell.get('error')}"
    return values, reasons


def build_sweep_report(
    path: str | Path,
    run_b: str | Path | None = None,
    *,
    checks: Sequence[str] = (),
    traffic: str | None = None,
    slo: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Read a sweep and build its report dict (module docstring).

    Raises
    ------
    UsageError
        A second run, or capacity options (a sweep report has no capacity section); a check
        that does not parse or names an unknown metric.
    RunDirError
        A damaged sweep directory.
    """
    if run_b is not None:
        raise UsageError(
            f"'{path}' is a sweep: it is reported alone. Report one of its cells "
            f"('{Path(path) / 'cells' / '<cell>'}') beside another run instead."
        )
    given = [f for f, v in (("--traffic", traffic), ("--slo", slo), ("--workers", workers)) if v]
    if given:
        raise UsageError(
            f"{', '.join(given)}: a sweep report has no capacity section. Report a cell's run "
            "directory for capacity."
        )
    p = Path(path)
    doc, curve = read_sweep(p)
    first = _first_metrics(p, doc)
    m = primary(curve)
    hib = bool((first.get("higher_is_better") or {}).get(m, m in ("auc", "accuracy")))
    rows = [dict(r) for r in curve.iter_rows(named=True)]
    base = rows[0]["baseline"] if rows else doc.get("baseline")
    rep: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "sweep",
        "run": str(path),
        "table": doc.get("table"),
        "grid": doc.get("grid") or {},
        "baseline": base,
        "primary_metric": m,
        "higher_is_better": hib,
        "cost_metric": COST,
        "cells": doc["cells"],
        "curve": rows,
    }
    rep["pareto"] = [
        {"cell": r["cell"], "strategy": r["strategy"], "quality": r[m], "cost": r[COST]}
        for r in pareto(rows, m, hib)
    ]
    rep["verdict"] = verdict(rep, rows)
    values, reasons = sweep_metrics(doc, curve)
    results = checks_mod.evaluate_checks(list(checks), values, reasons)
    rep["checks"] = [r.to_dict() for r in results]
    rep["exit_code"] = checks_mod.exit_code(results)
    return rep


# --------------------------------------------------------------------------- rendering


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if finite(v) else "n/a"


def _interval(row: Mapping[str, Any], m: str) -> str:
    if row.get("strategy") == row.get("baseline"):
        return "baseline"
    est, lo, hi = row.get(f"{m}_diff"), row.get(f"{m}_diff_low"), row.get(f"{m}_diff_high")
    if not finite(est):
        return "n/a"
    return f"{est:+.3f} [{_f(lo)}, {_f(hi)}]" if finite(lo) and finite(hi) else f"{est:+.3f}"


def sections(rep: Mapping[str, Any], chart_token: str | None = None) -> report_render.Sections:
    """The report as format-neutral sections (user text raw; the renderers escape it)."""
    m, base = rep["primary_metric"], rep["baseline"]
    lab = LABEL.get(m, m)
    grid = list(rep["grid"])
    out: report_render.Sections = [("Verdict", [list(rep["verdict"])])]
    if rep["checks"]:
        rows = [
            [str(c["status"]).upper(), str(c["check"]), str(c["detail"])] for c in rep["checks"]
        ]
        out.append(("Checks", [Table(["status", "check", "value"], rows)]))
    curve_rows = [
        [str(r["cell"]), *(str(r.get(k)) for k in grid), str(r["strategy"]), _dur(r.get("refresh_s")),
         _f(r.get(m)), _interval(r, m), _f(r.get(COST), 2), _f(r.get("predict_p99_ms"), 2)]
        for r in rep["curve"]
    ]  # fmt: skip
    blocks: list[report_render.Block] = []
    if chart_token is not None:
        blocks.append(chart_token)
    blocks.append(
        Table(
            [
                "cell",
                *grid,
                "strategy",
                "refresh",
                lab,
                f"vs {base} [95 %]",
                "compute CPU s",
                "predict p99 ms",
            ],  # fmt: skip
            curve_rows,
            caption=f"refresh: retrain period (batch, stream) or mean time between online "
            f"updates; compute: CPU seconds of retrains, updates and serving over the scored "
            f"span; intervals: block bootstrap of each cell's run against {base}.",
        )
    )
    out.append((f"Freshness curve: {lab} against refresh", blocks))
    front = [
        [r["cell"], str(r["strategy"]), _f(r["quality"]), _f(r["cost"], 2)] for r in rep["pareto"]
    ]
    out.append(
        (
            f"Pareto front: {lab} against compute",
            [
                Table(
                    ["cell", "strategy", lab, "compute CPU s"],
                    front,
                    caption="no other point has better quality for less compute",
                )
            ],  # fmt: skip
        )
    )
    cost_cols = sorted({c for r in rep["curve"] for c in r if c.startswith("cost_")})
    if cost_cols:
        out.append(("Cost", [Table(["cell", "strategy", *cost_cols],
                                   [[str(r["cell"]), str(r["strategy"]), *(_f(r.get(c), 4) for c in cost_cols)]
                                    for r in rep["curve"]])]))  # fmt: skip
    cells = [
        [c["alias"], " ".join(f"{k}={v}" for k, v in c["params"].items()),
         "PASS" if c["status"] == "ok" else "FAIL", str(c.get("error") or ""), str(c["run_dir"])]
        for c in rep["cells"]
    ]  # fmt: skip
    out.append(
        ("Cells", [Table(["cell", "parameters", "status", "error", "run directory"], cells)])
    )
    return out


def _chart_lines(rep: Mapping[str, Any]) -> dict[str, list[Any]]:
    m, hib, grid = rep["primary_metric"], rep["higher_is_better"], list(rep["grid"])
    lines: dict[str, list[Any]] = {}
    for r in rep["curve"]:
        if r.get("strategy") == rep["baseline"] or not finite(r.get("refresh_s")):
            continue
        ctx = _context(r, grid)
        g, lo, hi = _gain(r, m, hib)
        pts = lines.setdefault(f"{r['strategy']}{' ' + ctx if ctx else ''}", [])
        # cells that differ only in another kind's cadence repeat this strategy's point
        if all(p[0] != r["refresh_s"] for p in pts):
            pts.append((r["refresh_s"], g, lo, hi, r.get(COST)))
    return lines


def render_sweep(
    rep: Mapping[str, Any], fmt: str, *, color: bool = False, width: int | None = None
) -> str:
    """Render a sweep report in one of the report formats."""
    head = f"rtml sweep report — {rep['run']}"
    if fmt == "terminal":
        return report_render.render_terminal(head, sections(rep), color=color, width=width)
    if fmt == "markdown":
        return report_render.render_markdown(head, sections(rep), folded=("Cells",))
    if fmt == "html":
        from rtml_cli.sweep_svg import freshness_chart

        token = f"rtmlsweepchart{secrets.token_hex(8)}"
        html = report_render.render_html(head, sections(rep, token))
        lab = LABEL.get(rep["primary_metric"], rep["primary_metric"])
        svg = freshness_chart(_chart_lines(rep), ylabel=f"{lab} gain over {rep['baseline']}")
        return html.replace(f"<p>{token}</p>", svg, 1)
    if fmt == "json":
        from rtml_cli.report_build import json_safe

        text = json.dumps(
            json_safe(rep), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
        )
        return for_json(text) + "\n"
    if fmt == "junit":
        from rtml_cli.report_formats import render_junit

        return render_junit(rep)  # type: ignore[arg-type]  # needs only run and checks
    raise UsageError(f"Unknown report format {fmt!r}.")
