"""Writing output files: atomic replacement of regular files, direct writes to everything else.

``open_output(path)`` is what ``export -o`` (and anything else that writes a user-named file)
uses:

- ``-``, ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` write to the
  already-open descriptor (never reopened: an append redirection stays an append, a pipe
  stays a pipe).
- A path that exists and is not a regular file (a FIFO, a character device such as
  ``/dev/null``, a socket) is opened and written directly: renaming a temp file onto it would
  replace the device node or the FIFO with a plain file.
- A regular file, or a path that does not exist yet, is written to a temp file beside it and
  renamed onto it once complete (readers see the old file or the new one, never half of one;
  a failed export leaves the old file as it was). A symlink is written through: its target
  is replaced, the link stays. The replaced file keeps its permission bits (and its owner,
  where we may set it); a new file gets the usual ``0666 & ~umask``.

``atomic_text`` is the rename half alone, for files we own (OpenClaw's ``sessions.json``).
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_text", "fsync_dir", "open_output", "standard_stream"]

_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_text(
    path: Path,
    *,
    durable: bool = True,
    new_mode: int | None = None,
    encoding: str = "utf-8",
    newline: str | None = "\n",
) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` only once completely written.

    ``path`` must not be a symlink (resolve it first: ``os.replace`` would replace the link).
    The replaced file keeps its mode and, best effort, its owner; a new file gets
    ``new_mode`` (default ``0666 & ~umask``). ``durable``: fsync the data and the directory.
    """
    path = Path(path)
    try:
        old: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as handle:
            if old is not None:
                os.fchmod(handle.fileno(), stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):  # only root may give files away
                        os.fchown(handle.fileno(), old.st_uid, old.st_gid)
            else:
                os.fchmod(handle.fileno(), 0o666 & ~_umask() if new_mode is None else new_mode)
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def standard_stream(path: str) -> int | None:
    """The descriptor a path names without reopening it (``-`` and ``/dev/stdout`` are 1)."""
    if path in ("-", "/dev/stdout"):
        return 1
    if path == "/dev/stderr":
        return 2
    match = _FD_PATH.match(path)
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def open_output(path: Path | str, *, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Write text to ``path`` the way its kind of file needs (see the module docstring)."""
    text = str(path)
    fd = standard_stream(text)
    if fd is not None:
        if fd == 1:
            yield sys.stdout
            sys.stdout.flush()
            return
        with os.fdopen(os.dup(fd), "w", encoding=encoding, newline="\n") as handle:
            yield handle
        return
    target = Path(text).expanduser()
    try:
        info: os.stat_result | None = os.stat(target)  # follows symlinks
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(21, "is a directory", str(target))
    if info is not None and not stat.S_ISREG(info.st_mode):
        # FIFO, device, socket…: write in place; no temp file, no rename.
        with open(target, "w", encoding=encoding, newline="\n") as handle:
            yield handle
        return
    real = Path(os.path.realpath(target))  # through symlinks: replace the target, keep the link
    if not real.parent.is_dir():
        raise FileNotFoundError(2, "no such directory", str(real.parent))
    with atomic_text(real, encoding=encoding) as handle:
        yield handle
