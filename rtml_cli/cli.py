"""The ``rtml`` command line: parse, call one library function, render, map errors to exit codes.

No logic lives here (docs/ARCHITECTURE.md). This module holds the Typer ``app``, the error edge
and the entry point; each command is declared in its own ``cli_<command>.py`` module. Every
command body is wrapped by :func:`_edge`, which turns :class:`~rtml_cli.errors.RtmlError` into its
exit code and prints warnings as one line each.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from rtml_cli import __version__
from rtml_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    RtmlError,
    RtmlWarning,
    UsageError,
)
from rtml_cli.escape import for_terminal


def _flags_without_type(params: list[Any]) -> list[Any]:
    """Help lists a flag without a value type: '--force', not '--force <bool>'."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class RtmlCommand(TyperCommand):
    """Every ``rtml`` command (set by :class:`RtmlTyper`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))


class RtmlGroup(TyperGroup):
    """``rtml`` itself and its command groups (``rtml export``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))


class RtmlTyper(typer.Typer):
    """A Typer whose commands are :class:`RtmlCommand` unless they say otherwise."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", RtmlCommand)
        return super().command(*args, **kwargs)


app = RtmlTyper(
    cls=RtmlGroup,
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
    """One line (or a few) on stderr, with user-derived control characters made visible."""
    typer.echo(for_terminal(text), err=True)


#: Environment variable that, like ``--debug``, prints the traceback of an internal error.
DEBUG_ENV = "RTML_DEBUG"
_debug = False

# OS errors a user's environment causes (a read-only folder, a full disk, a missing path):
# reported as bad input, never as a bug.
_USER_OS_ERRORS = {
    errno.ENOSPC,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EMFILE,
    errno.ENOTEMPTY,
}


def _debugging() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def _edge() -> Iterator[None]:
    """Turn library errors into exit codes and warnings into one stderr line each.

    Warnings are recorded while the command runs and shown only after the recording block has
    ended: showing a foreign warning inside it would record it again (an endless loop).
    """
    failure: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RtmlWarning)
        try:
            yield
        except GeneratorExit:
            raise
        except BaseException as exc:  # sorted below, once the warnings are shown
            failure = exc
        recorded = list(caught)
    _flush_warnings(recorded)
    if failure is None:
        return
    if isinstance(failure, typer.Exit):
        raise failure
    if isinstance(failure, RtmlError):
        _err(f"error: {failure}")
        raise typer.Exit(code=failure.exit_code) from None
    if isinstance(failure, KeyboardInterrupt):
        _err("interrupted")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    if isinstance(failure, SystemExit):
        # rtml never calls sys.exit inside a command: this came from user code (a factory,
        # a model) and must not pass for success or for a failed check.
        _err(
            f"error: code run on rtml's behalf called sys.exit({failure.code!r}); "
            "a model or factory must return or raise, not exit."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    if isinstance(failure, MemoryError):
        _err(
            "error: out of memory. Use a smaller input (fewer rows, a shorter --start/--end "
            "span, fewer strategies) or a machine with more memory."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    if isinstance(failure, OSError) and failure.errno in _USER_OS_ERRORS:
        where = f" '{failure.filename}'" if failure.filename else ""
        _err(
            f"error: cannot use{where}: {failure.strerror or failure}. "
            "Check the path, its permissions and the free disk space."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    _internal_error(failure)


def _internal_error(exc: BaseException) -> NoReturn:
    """A bug in rtml: one line and exit 70; the traceback only with --debug or RTML_DEBUG=1."""
    if _debugging():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    _err(
        f"internal error: {type(exc).__name__}{': ' + first if first else ''}\n"
        "This is a bug in rtml; please report it with the command you ran"
        + ("." if _debugging() else f" and the traceback (rerun with --debug or {DEBUG_ENV}=1).")
    )
    raise typer.Exit(code=EXIT_INTERNAL) from None


def _flush_warnings(caught: list[warnings.WarningMessage], *, limit: int = 20) -> None:
    """Show each distinct warning once; after ``limit`` distinct ones, only count the rest."""
    seen: set[tuple[type[Warning], str]] = set()
    hidden = 0
    for w in caught:
        text = str(w.message)
        if (w.category, text) in seen:
            continue
        seen.add((w.category, text))
        if len(seen) > limit:
            hidden += 1
        elif issubclass(w.category, RtmlWarning):
            _err(f"warning: {text}")
        else:  # not ours (a library's, a user model's): say whose it is
            _err(f"warning ({w.category.__name__}, {w.filename}:{w.lineno}): {text}")
    if hidden:
        _err(f"warning: {hidden} more distinct warnings not shown")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rtml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"Print the traceback of an internal error (exit 70); same as {DEBUG_ENV}=1.",
        ),
    ] = False,
) -> None:
    """rtml: batch vs streaming, measured on your own history.

    Exit codes: 0 ok, 1 a --check failed, 2 bad usage or input, 3 a metric a check needs could
    not be computed, 70 internal error (a bug in rtml), 130 interrupted.
    """
    global _debug
    _debug = debug


def _csv_list(values: list[str] | None) -> list[str]:
    """Values of a repeatable option that also takes comma-separated lists, blanks dropped."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


#: Help's value type of an option that takes a duration: '30m', '1h30m', '500ms', '1d', '2w', or a
#: plain number of seconds (parsed by rtml_cli.durations.parse_duration).
DURATION = "DURATION"

#: Help's value type of --calendar.
CALENDAR = "hour,dow"


def _calendar(value: str) -> str:
    """Parse --calendar ('hour', 'dow' or 'hour,dow') so a typo is caught with the other flags."""
    from rtml_cli.features import CALENDAR_PARTS

    parts = [p.strip() for p in value.split(",") if p.strip()]
    for part in parts:
        if part not in CALENDAR_PARTS:
            raise typer.BadParameter(
                f"{part!r} is not a calendar part. Allowed: {', '.join(CALENDAR_PARTS)}."
            )
    if not parts:
        raise typer.BadParameter(
            f"give one or more of {', '.join(CALENDAR_PARTS)}, comma-separated."
        )
    return ",".join(parts)


def _either(value: Any, alias_value: Any, name: str, alias: str) -> Any:
    """The value of an option or of its older spelling (a hidden alias); both at once is refused."""
    if value is not None and alias_value is not None:
        raise UsageError(f"{alias} is the older name of {name}: give {name} only.")
    return alias_value if value is None else value


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (kill, timeout, a cancelled CI job) ends a run like Ctrl-C: its cleanup runs
    # (temporary files removed, previous outputs kept) and it exits 130.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point (``rtml``)."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interrupt outside a command body
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)


# Each command lives in its own module (cli_<command>.py) and registers itself on ``app`` when
# imported; they import ``app`` and ``_edge`` from here, so these imports come last.
from rtml_cli import (  # noqa: E402
    cli_compare,  # noqa: F401
    cli_features,  # noqa: F401
    cli_replay,  # noqa: F401
    cli_report,  # noqa: F401
    cli_sample,  # noqa: F401
    cli_sweep,  # noqa: F401
)
