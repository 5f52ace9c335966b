"""The ``rtml compare`` command's library side: flags → :func:`~rtml_cli.compare.run_compare` →
notes on stderr, the summary table on stdout (the Typer options are in :mod:`rtml_cli.cli_compare`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtml_cli.compare import (
    DEFAULT_TIMING_BUDGET_S,
    DEFAULT_TIMING_SAMPLE,
    CompareResult,
    run_compare,
)
from rtml_cli.cost import DEFAULT_BATCH_LOOKBACK
from rtml_cli.errors import UsageError
from rtml_cli.io import Roles


def compare_cli(
    table: str,
    *,
    config: str | None,
    out: str | None,
    time_col: str | None,
    label_col: str | None,
    key_col: str | None,
    label_time_col: str | None,
    label_delay: str | None,
    features: list[str] | None,
    ignore: list[str],
    warmup: str | None,
    request_features: list[str] | None = None,
    feature: list[str] | None = None,
    calendar: list[str] | None = None,
    force: bool = False,
    model: str | None,
    strategies: str | None,
    baseline: str | None,
    jobs: int,
    timing_sample: str,
    min_effect: list[str] | None = None,
    dask: str | None = None,
    batch_lookback: str = DEFAULT_BATCH_LOOKBACK,
    seed: int,
    echo: Callable[[str], None],
) -> CompareResult:
    """The ``rtml compare`` command: flags → :func:`run_compare` → notes on stderr, summary on stdout."""
    budget: float | None = None
    if timing_sample.strip().lower() == "all":
        sample: int | None = None
    elif timing_sample.strip().lower() == "auto":
        sample, budget = DEFAULT_TIMING_SAMPLE, DEFAULT_TIMING_BUDGET_S
    else:
        try:
            sample = int(timing_sample)
        except ValueError:
            raise UsageError(
                "--timing-sample must be a number of events, 'auto' or 'all'. "
                f"Got {timing_sample!r}."
            ) from None
    roles = Roles(
        time=time_col,
        label=label_col,
        key=key_col,
        label_time=label_time_col,
        features=features,
        ignore=ignore,
        request_features=list(request_features or []),
    )
    res = run_compare(
        table,
        config=config,
        roles=roles,
        label_delay=label_delay,
        warmup=warmup,
        model=model,
        strategies=strategies,
        baseline=baseline,
        min_effect=min_effect,
        features=feature or (),
        calendar=calendar,
        out=out,
        force=force,
        jobs=jobs,
        dask=_dask_address(dask),
        batch_lookback=batch_lookback,
        timing_sample=sample,
        timing_budget_s=budget,
        seed=seed,
        progress=True,
        echo=echo,
    )
    render_summary(res)
    return res


def _dask_address(dask: str | None) -> str | None:
    """``--dask`` as given; an empty one is a mistake (a shell variable that was not set), not a
    request to run in process."""
    if dask is not None and not dask.strip():
        raise UsageError(
            "--dask (or RTML_DASK_ADDRESS) is empty. Give the scheduler's address, e.g. "
            "tcp://127.0.0.1:8786, or leave the option out to run in this process."
        )
    return dask


def render_summary(res: CompareResult) -> None:
    """The short per-strategy table (main metric, events/s, predict p99) on stdout."""
    from rich.console import Console
    from rich.table import Table

    from rtml_cli.escape import for_rich

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    # strategy names and the run path are user text: Rich would parse "[/b]" and pass ESC on
    run_dir = for_rich(res.run_dir)
    tab = Table(title=f"rtml compare → {run_dir}", title_justify="left")
    for col in ("strategy", "kind", res.main_metric, "events/s", "predict p99 ms", "sim wall s"):
        tab.add_column(col, justify="left" if col in ("strategy", "kind") else "right")
    for r in res.summary:
        tab.add_row(
            for_rich(r["strategy"]),
            for_rich(r["kind"]),
            fmt(r[res.main_metric], ".4f"),
            fmt(r["events_per_s"], ",.0f"),
            fmt(r["predict_p99_ms"], ".3f"),
            fmt(r["wall_s"], ".2f"),
        )
    console = Console(soft_wrap=False)
    console.print(tab)
    console.print(f"full report: rtml report {run_dir}")
