"""The CLI's side of the terminal: colour decisions, progress and messages on stderr.

stdout carries only the report; everything meant for a person goes to stderr. `rich` is
imported only when a progress display is actually shown (stderr is a TTY), so that piped and CI
runs, and `modelguard --version`, never pay for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = [
    "ProgressCallback",
    "error",
    "is_tty",
    "progress_reporter",
    "wants_color",
    "write",
]

ProgressCallback = Callable[[int, int | None, str], None]
"""`progress(done_files, total_files_or_None, current_display_path)`, as `scan()` calls it."""

_PATH_WIDTH = 48


def is_tty(stream: TextIO) -> bool:
    """Return True when `stream` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # detached or closed streams
        return False


def wants_color(stream: TextIO) -> bool:
    """Return True when ANSI colour should be written to `stream`.

    Colour is off when `NO_COLOR` is set to a non-empty value (no-color.org), when `TERM` is
    `dumb`, or when the stream is not a terminal.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream)


def write(stream: TextIO, text: str) -> None:
    """Write `text` to `stream`, escaping what its encoding cannot represent.

    A reader that closed the pipe (`modelguard scan ... | head`) is not an error: the rest of
    the output is discarded and the exit code still reflects the scan.
    """
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:
            encoding = stream.encoding or "utf-8"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except BrokenPipeError:
        _silence(stream)


def _silence(stream: TextIO) -> None:
    # Python's documented recipe: point the descriptor at devnull so that the interpreter's
    # final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def error(message: str) -> None:
    """Print `modelguard: error: MESSAGE` on stderr."""
    write(sys.stderr, f"modelguard: error: {message}\n")


def _shorten(path: str) -> str:
    if len(path) <= _PATH_WIDTH:
        return path.ljust(_PATH_WIDTH)
    return "..." + path[-(_PATH_WIDTH - 3) :]


@contextmanager
def progress_reporter(enabled: bool) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback drawing a transient bar on stderr, or None when disabled.

    The caller decides `enabled` (stderr is a TTY and the user did not ask for quiet).
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from modelguard.report.text import printable

    console = Console(stderr=True)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("scanning", total=None)

        def update(done: int, total: int | None, path: str) -> None:
            # Paths come from scanned trees: escape control characters and rich markup.
            label = escape(_shorten(printable(path)))
            bar.update(task, completed=done, total=total, description=label)

        yield update


@contextmanager
def byte_progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a `(bytes done, bytes total)` callback drawing a transient bar on stderr, or None.

    The callback may be called from several threads (the hashing workers).
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def write_output(path: str | None, text: str) -> bool:
    """Write a report to `path`, or to stdout when None; return False (after saying why on
    stderr) when the file cannot be written."""
    if path is None:
        write(sys.stdout, text)
        return True
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        error(f"cannot write {path}: {exc.strerror or exc}")
        return False
    return True
