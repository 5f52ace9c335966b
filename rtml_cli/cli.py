"""The ``rtml`` command line: parse, call one library function, render, map errors to exit codes.

No logic lives here (DESIGN §4). Every command body is wrapped by :func:`_edge`, which turns
:class:`~rtml_cli.errors.RtmlError` into its exit code and prints warnings as one line each.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Annotated, Optional

import typer

from rtml_cli import __version__
from rtml_cli.errors import EXIT_INTERRUPTED, RtmlError, RtmlWarning

app = typer.Typer(
    name="rtml",
    help=(
        "What would moving this model from batch to streaming buy and cost? "
        "rtml replays your historical tables as event streams, simulates batch, stream, "
        "online and static deployments of a scikit-learn model, and reports the difference."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _err(text: str) -> None:
    typer.echo(text, err=True)


@contextlib.contextmanager
def _edge() -> Iterator[None]:
    """Turn library errors into exit codes and warnings into one stderr line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RtmlWarning)
        try:
            yield
        except RtmlError as exc:
            _flush_warnings(caught)
            _err(f"error: {exc}")
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            _flush_warnings(caught)
            _err("interrupted")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        _flush_warnings(caught)


def _flush_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        if issubclass(w.category, RtmlWarning):
            text = str(w.message)
            if text not in seen:
                seen.add(text)
                _err(f"warning: {text}")
        else:  # not ours: let Python show it as usual
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    caught.clear()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rtml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """rtml: batch vs streaming, measured on your own history."""


def main() -> None:
    """Console-script entry point (``rtml``)."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interrupt outside a command body
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
