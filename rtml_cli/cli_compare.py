"""``rtml compare``: simulate the deployments of one model and write a run directory."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml_cli.cli import CALENDAR, DURATION, _calendar, _csv_list, _edge, _either, _err, app

_COLUMNS = "Columns"
_INPUTS = "Model inputs"
_SIMULATION = "Model and strategies"


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
            metavar="PATH",
            help="rtml.toml to use. Default: the rtml.toml beside the table, if any (said on stderr).",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Run directory to write (default runs/<table>-<UTC time>).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace --out if it is an existing run directory (only once the new run is complete).",
        ),
    ] = False,
    time_col: Annotated[
        str | None,
        typer.Option(
            "--time-col",
            metavar="COLUMN",
            help="Event time column (default: inferred).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_col: Annotated[
        str | None,
        typer.Option(
            "--label-col",
            metavar="COLUMN",
            help="Label column (default: inferred).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    key_col: Annotated[
        str | None,
        typer.Option(
            "--key-col",
            metavar="COLUMN",
            help="Entity column (default: one global entity).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_time_col: Annotated[
        str | None,
        typer.Option(
            "--label-time-col",
            metavar="COLUMN",
            help="When each label became known.",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(
            "--label-delay",
            metavar=DURATION,
            show_default="0",
            help="Fixed label delay, e.g. '30m'.",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="COLUMNS",
            help="Columns never used as model inputs, e.g. leaks (comma-separated or repeated).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--inputs",
            metavar="COLUMNS",
            help="The model's input columns (comma-separated or repeated). Default: every column "
            "without another role, less those zero config leaves out (said on stderr).",
            rich_help_panel=_INPUTS,
        ),
    ] = None,
    inputs_alias: Annotated[list[str] | None, typer.Option("--features", hidden=True)] = None,
    request_inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--request-inputs",
            metavar="COLUMNS",
            help="Input columns known at request time: batch takes them from the event itself.",
            rich_help_panel=_INPUTS,
        ),
    ] = None,
    request_inputs_alias: Annotated[
        list[str] | None, typer.Option("--request-features", hidden=True)
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            metavar="SPEC",
            help="Windowed aggregate per key added to the inputs, point-in-time, repeatable: "
            "KEY:COLUMN:AGG:WINDOW[:NAME], e.g. 'user_id:click:mean:1h' or 'user_id:*:count:5m' "
            "(empty KEY: whole table). AGG: count sum mean min max std last count_distinct.",
            rich_help_panel=_INPUTS,
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            metavar=CALENDAR,
            parser=_calendar,
            help="Request-time calendar parts of the event time added to the inputs.",
            rich_help_panel=_INPUTS,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            show_default="sgd",
            help="Preset (logreg sgd hgb rf nb; regression: ridge linear sgd hgb rf; River: "
            "river-logreg river-ht river-hat river-arf, regression river-linear), an estimator "
            "class 'sklearn.linear_model:SGDClassifier' or 'river.linear_model:LogisticRegression' "
            "(nothing but an estimator class is called), "
            "or 'model.py:factory': a Python file rtml imports and runs, with your permissions; its "
            "model gets the raw inputs (strings as Python str).",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-s",
            metavar="STRATEGIES",
            show_default="batch:1d,stream:1d,online:1",
            help="Compact form: 'batch:1d,stream,online:1'. batch:R[:WINDOW] and stream:R retrain "
            "every R (1d if left out); online:K updates every K labels (1 if left out); static. "
            "Names: the kind, or kind_param when a kind repeats; 'name=kind:param' names one.",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="STRATEGY",
            show_default="the first strategy",
            help="Strategy the others are compared with.",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    min_effect: Annotated[
        list[str] | None,
        typer.Option(
            "--min-effect",
            metavar="METRIC=VALUE",
            show_default="auc=0.005, accuracy=0.005, mae=1%, ...",
            help="The smallest difference that matters, repeatable or comma-separated: absolute "
            "('auc=0.01') or relative to the reference's value ('mae=2%'). A difference is a gain "
            "or a loss only when its interval excludes 0 and it is larger than this; 'no "
            "practical difference' when its whole interval is within it. Overrides \\[report] "
            "min_effect.",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(
            "--warmup",
            metavar=f"{DURATION}|FRACTION",
            show_default="0.2",
            help="Warm-up: a duration ('7d') or a fraction of the events.",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Local worker processes: each retrain of a batch/stream strategy (with the "
            "events it serves) and each online strategy is a task; results are those of one "
            "process, bit for bit.",
            rich_help_panel=_SIMULATION,
        ),
    ] = 1,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            envvar="RTML_DASK_ADDRESS",
            help="Run the same tasks on the Dask scheduler at ADDRESS (e.g. tcp://host:8786; "
            "needs rtml\\[dask]); results as in one process.",
            rich_help_panel=_SIMULATION,
        ),
    ] = None,
    batch_lookback: Annotated[
        str,
        typer.Option(
            "--batch-lookback",
            metavar=DURATION,
            help="Cost of a keyed batch strategy: a real batch job scores every entity active "
            "in this window before each cutoff.",
            rich_help_panel=_SIMULATION,
        ),
    ] = "30d",
    timing_sample: Annotated[
        str,
        typer.Option(
            "--timing-sample",
            metavar="auto|all|N",
            help="Events per strategy whose latency is measured with a real single-row call: "
            "'auto' (a uniform sample of up to 2000, thinned to about 2 s of calls per strategy, "
            "at least 400), a number, or 'all'. batch serves precomputed scores: never timed per "
            "request.",
            rich_help_panel=_SIMULATION,
        ),
    ] = "auto",
    timing_alias: Annotated[str | None, typer.Option("--timing", hidden=True)] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            min=0,
            help="Seed for presets and the timing sample.",
            rich_help_panel=_SIMULATION,
        ),
    ] = 0,
) -> None:
    """Simulate batch, stream, online and static deployments of one model on a table; write a run directory.

    Zero config works: roles, task and model are inferred and stated on stderr. Render the run with `rtml report RUN_DIR`.
    """
    from rtml_cli.compare_command import compare_cli

    with _edge():
        inputs = _either(inputs, inputs_alias, "--inputs", "--features")
        request_inputs = _either(
            request_inputs, request_inputs_alias, "--request-inputs", "--request-features"
        )
        # --timing ALL is the older spelling of --timing-sample ALL
        if timing_alias is not None:
            timing_sample = timing_alias
        compare_cli(
            table,
            config=config,
            out=out,
            time_col=time_col,
            label_col=label_col,
            key_col=key_col,
            label_time_col=label_time_col,
            label_delay=label_delay,
            features=_csv_list(inputs) or None,
            ignore=_csv_list(ignore),
            request_features=_csv_list(request_inputs),
            feature=feature,
            calendar=_csv_list([calendar]) if calendar is not None else None,
            force=force,
            warmup=warmup,
            model=model,
            strategies=strategies,
            baseline=baseline,
            min_effect=min_effect,
            jobs=jobs,
            dask=dask,
            batch_lookback=batch_lookback,
            timing_sample=timing_sample,
            seed=seed,
            echo=_err,
        )
