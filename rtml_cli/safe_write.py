"""Writing a user's output file without ever losing the file that was there.

Rules (shared by ``rtml replay --to FILE`` and ``rtml sample``):

- an output that is one of the inputs (same file by device and inode, whatever its spelling:
  hard link, symbolic link, ``./x/../T``) is refused before anything is opened, and so is a
  target inside a folder or glob that is read as input;
- an existing output is refused without ``--force``; ``--force`` replaces a regular file only
  (never a folder, a symbolic link or a device);
- the bytes go to a temporary file beside the target (``.NAME.tmp-PID``, same folder, so the
  rename is atomic) that is renamed over the target (:func:`os.replace`) only once complete.
  A failed or interrupted run removes its temporary file and leaves the target as it was.

Examples
--------
>>> temp_path(Path("out/events.ndjson"), pid=7).as_posix()
'out/.events.ndjson.tmp-7'
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from rtml_cli.errors import UsageError


def temp_path(path: Path, *, pid: int | None = None) -> Path:
    """The temporary name beside ``path`` that its bytes are written to first."""
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


def refuse_input_as_output(
    target: str | Path, inputs: Iterable[str | Path], *, pattern: str | None = None
) -> None:
    """Raise :class:`UsageError` when writing ``target`` would write into the input.

    ``inputs`` are the input files, or a folder whose files are all input; ``pattern`` is the
    input glob when the input was given as one (a new file matching it joins the input set).
    Files are compared by device and inode (:func:`os.path.samefile`), never by name.
    """
    out = Path(target)
    fix = "Write the output to another path."
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if _inside(out, p):
                raise UsageError(
                    f"output '{target}' is inside the input folder '{item}': it would become "
                    f"part of the table it is made from. {fix}"
                )
        elif _same_file(out, p):
            raise UsageError(
                f"output '{target}' is the input file '{item}' (the same file on disk): "
                f"writing it would destroy the input. {fix}"
            )
    if pattern is not None:
        real = os.path.join(os.path.realpath(out.parent or "."), out.name)
        pats = {os.path.abspath(pattern), os.path.join(os.path.realpath("."), pattern)}
        if any(fnmatch.fnmatch(real, p) or fnmatch.fnmatch(os.path.abspath(out), p) for p in pats):
            raise UsageError(
                f"output '{target}' matches the input glob '{pattern}': it would become part "
                f"of the table it is made from. {fix}"
            )


def table_inputs(table: str | Path) -> tuple[list[str], str | None]:
    """The files (and folder) a table argument reads, and its glob pattern if it is one.

    A missing or unreadable table gives no files: it is reported when it is read.
    """
    from rtml_cli.errors import InputError
    from rtml_cli.io import _expand

    source = str(table)
    pattern = source if any(ch in source for ch in "*?[") else None
    inputs: list[str] = [source] if Path(source).is_dir() else []
    try:
        inputs += _expand(source)[0]
    except InputError:
        pass
    return inputs, pattern


def refuse_table_as_output(target: str | Path, table: str | Path) -> list[str]:
    """:func:`refuse_input_as_output` for the files of a table argument; returns those files."""
    inputs, pattern = table_inputs(table)
    refuse_input_as_output(target, inputs, pattern=pattern)
    return inputs


def refuse_existing(target: str | Path, *, force: bool, what: str = "output") -> None:
    """Raise :class:`UsageError` for an existing ``target`` that ``--force`` may not replace."""
    p = Path(target)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(
            f"cannot use {what} '{target}': {exc.strerror or exc}. Check the path."
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"{what} '{target}' is a symbolic link; rtml does not replace links or write "
            "through them. Pass the real path, or another name."
        )
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UsageError(
            f"{what} '{target}' is {kind}; rtml only ever replaces a regular file, even with "
            "--force. Pass a file name."
        )
    if not force:
        raise UsageError(
            f"{what} '{target}' already exists. Pass --force to replace it, or write to "
            "another path."
        )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` regular files beside ``path`` whose process is gone.

    A killed run (SIGKILL, a cancelled CI job) cannot remove its own temporary file; the next
    run writing the same target does. Only names of exactly that form, regular files (never a
    link or folder) and dead process ids are touched.
    """
    prefix = f".{path.name}.tmp-"
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent if str(path.parent) else "."))
    except OSError:
        return removed
    for entry in entries:
        rest = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
        if not rest.isdigit() or int(rest) == os.getpid() or pid_alive(int(rest)):
            continue
        if entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


class AtomicFile:
    """A file written under a temporary name and renamed over ``path`` only when complete.

    ``open()`` creates the temporary file (exclusively: never an existing file); ``commit()``
    renames it into place; ``discard()`` removes it and leaves ``path`` as it was. Calling
    ``discard()`` after ``commit()`` (or twice) does nothing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.committed = False
        self._created = False

    def open(self) -> Path:
        """Create the empty temporary file and return its path (raises OSError).

        Temporary files of this target left by runs that were killed (their process is gone)
        are removed first; those of a running process are left alone.
        """
        remove_stale_temps(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)  # a leftover of a killed run with the same process id
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:  # name the user's target, not rtml's temporary name
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        os.close(fd)
        self._created = True
        return self.tmp

    def commit(self) -> None:
        """Rename the complete temporary file over the target."""
        os.replace(self.tmp, self.path)
        self.committed = True
        self._created = False

    def discard(self) -> None:
        """Remove the temporary file (the target keeps its previous content)."""
        if self._created:
            self._created = False
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it over ``path`` if the block completes.

    Any exception (``KeyboardInterrupt`` too) removes the temporary file and propagates.
    """
    f = AtomicFile(path)
    f.open()
    try:
        yield f.tmp
        f.commit()
    finally:
        f.discard()
