"""``rtml compare``: simulate the deployments of one model and write a run directory."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml_cli.cli import _csv_list, _edge, _err, app


@app.command()
def compare(
    table: Annotated[
        str,
        typer.Argument(help="Event table: Parquet (file, folder, glob), CSV, NDJSON or Arrow IPC."),
    ],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="rtml.toml to use. Default: the rtml.toml beside the table, if any (said on stderr).",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", help="Run directory to write (default runs/<table>-<UTC time>)."
        ),
    ] = None,
    time_col: Annotated[
        str | None, typer.Option("--time-col", help="Event time column (default: inferred).")
    ] = None,
    label_col: Annotated[
        str | None, typer.Option("--label-col", help="Label column (default: inferred).")
    ] = None,
    key_col: Annotated[
        str | None, typer.Option("--key-col", help="Entity column (default: one global entity).")
    ] = None,
    label_time_col: Annotated[
        str | None, typer.Option("--label-time-col", help="When each label became known.")
    ] = None,
    label_delay: Annotated[
        str | None, typer.Option("--label-delay", help="Fixed label delay, e.g. '30m' (default 0).")
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option("--features", help="Feature columns (comma-separated or repeated)."),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Columns never used as features, e.g. leaks."),
    ] = None,
    request_features: Annotated[
        list[str] | None,
        typer.Option(
            "--request-features",
            help="Features known at request time: batch takes them from the event itself.",
        ),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            help="Windowed aggregate per key, point-in-time, repeatable: KEY:COLUMN:AGG:WINDOW[:NAME], "
            "e.g. 'user_id:click:mean:1h' or 'user_id:*:count:5m' (empty KEY: whole table). "
            "AGG: count sum mean min max std last count_distinct.",
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            help="Request-time calendar features of the event time: 'hour', 'dow' or 'hour,dow'.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace --out if it is an existing run directory (only once the new run is complete).",
        ),
    ] = False,
    warmup: Annotated[
        str | None,
        typer.Option(
            "--warmup",
            help="Warm-up: a duration ('7d') or a fraction of events (0.2, the default).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Preset (logreg sgd hgb rf nb; regression: ridge linear sgd hgb rf), an estimator "
            "class 'sklearn.linear_model:SGDClassifier' (nothing but an estimator class is called), "
            "or 'model.py:factory': a Python file rtml imports and runs, with your permissions; its "
            "model gets the raw features (strings as Python str). Default: sgd.",
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-s",
            help="Compact form: 'batch:1d,stream,online:1'. batch:R[:WINDOW] and stream:R retrain "
            "every R (default 1d); online:K updates every K labels (default 1); static. Names: the kind, or "
            "kind_param when a kind repeats; 'name=kind:param' names one. Default: batch:1d,stream:1d,online:1.",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Strategy the others are compared with (default: the first)."
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Strategies simulated in parallel processes.")
    ] = 1,
    timing_sample: Annotated[
        str,
        typer.Option(
            "--timing-sample",
            help="Events per strategy whose latency is measured with a real single-row call: "
            "'auto' (a uniform sample of up to 2000, thinned to about 2 s of calls per strategy, "
            "at least 400), a number, or 'all'. batch serves precomputed scores: never timed per "
            "request.",
        ),
    ] = "auto",
    timing: Annotated[
        str | None,
        typer.Option(
            "--timing",
            help="'all': time every event with a real single-row call (= --timing-sample all).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed for presets and the timing sample.")
    ] = 0,
) -> None:
    """Simulate batch, stream, online and static deployments of one model on a table; write a run directory.

    Zero config works: roles, task and model are inferred and stated on stderr. Render the run with `rtml report RUN_DIR`.
    """
    from rtml_cli.compare import compare_cli

    with _edge():
        compare_cli(
            table,
            config=config,
            out=out,
            time_col=time_col,
            label_col=label_col,
            key_col=key_col,
            label_time_col=label_time_col,
            label_delay=label_delay,
            features=_csv_list(features) or None,
            ignore=_csv_list(ignore),
            request_features=_csv_list(request_features),
            feature=feature,
            calendar=_csv_list([calendar]) if calendar is not None else None,
            force=force,
            warmup=warmup,
            model=model,
            strategies=strategies,
            baseline=baseline,
            jobs=jobs,
            timing_sample=timing or timing_sample,
            seed=seed,
            echo=_err,
        )
