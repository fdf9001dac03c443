"""OpenClaw-compatible lock and atomic rewrite for a JSON index file (``sessions.json``).

OpenClaw's gateway rewrites ``<agent>/sessions/sessions.json`` every time a session is touched.
Anyone else who edits that file must use the same protocol, or one of the two writers silently
loses the other's update (the seed skill did exactly that). The protocol, in order:

1. **Take** ``sessions.json.lock`` beside the index with a create-exclusive open
   (``O_CREAT | O_EXCL``): exactly one process can create it. The holder writes
   ``{"pid": ..., "createdAt": <ISO time>}`` inside so a waiter can say who is blocking it.
2. **Wait** if it exists: poll (every 25 ms by default) for up to ``timeout`` seconds (10 s), then
   give up with :class:`~sessionkeeper.errors.Conflict` naming the lock file and its holder.
   A wait longer than ``notice_after`` (0.2 s: the gateway's own writes are shorter) is
   reported once through ``on_wait`` (the CLI says on stderr whom it waits for).
3. **Break** a lock whose mtime is older than ``stale_after`` (30 s): its holder crashed. The file
   is first *renamed* to a unique name (only one breaker can win that rename), re-checked, then
   removed; if the renamed file turns out to be fresh (someone re-took the lock between our
   ``stat`` and ``rename``) it is linked back (``link`` fails rather than overwrite a newer lock).
4. **Inside** the lock: re-read the index (never trust a copy read before the lock), modify it,
   write a unique temp file in the same directory (``mkstemp``), ``fsync`` it, ``os.replace`` it
   onto the index (atomic: readers see the old or the new file, never half of one), ``fsync`` the
   directory so the rename survives a crash.
5. **Release** in ``finally``: remove the lock file, but only if it is still ours (same content:
   pid and creation time to the microsecond).

Lock holders must stay short (well under ``stale_after``): nothing slow happens under the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sessionkeeper import inputs
from sessionkeeper.atomic import atomic_text, fsync_dir
from sessionkeeper.errors import Conflict, InvalidInput

__all__ = [
    "IndexLock",
    "LockWait",
    "atomic_write_json",
    "describe_holder",
    "fsync_dir",
    "lock_path_for",
    "read_holder",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_STALE_AFTER = 30.0
DEFAULT_POLL_INTERVAL = 0.025
DEFAULT_NOTICE_AFTER = 0.2

# Told once when a lock is waited for: (lock file, its holder as read_holder gives it, timeout).
LockWait = Callable[[Path, "dict[str, Any] | None", float], None]


def lock_path_for(index_path: Path) -> Path:
    """The lock file guarding ``index_path``: ``sessions.json`` → ``sessions.json.lock``."""
    return index_path.with_name(index_path.name + ".lock")


def read_holder(lock_path: Path) -> dict[str, Any] | None:
    """The ``{"pid", "createdAt"}`` payload of a lock file, or None if absent or unreadable
    (anything but a regular file is not even opened: a FIFO would block)."""
    try:
        data = inputs.loads(inputs.read_regular(lock_path), str(lock_path))
    except (OSError, InvalidInput):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 4242 since 2026-…`` (what the lock file says), or ``an unknown holder``."""
    if not holder:
        return "an unknown holder"
    since = f" since {holder['createdAt']}" if holder.get("createdAt") else ""
    return f"pid {holder.get('pid')}{since}"


class IndexLock:
    """Context manager holding ``<index>.lock`` by the OpenClaw protocol (see module docstring)."""

    def __init__(
        self,
        index_path: Path,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stale_after: float = DEFAULT_STALE_AFTER,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_wait: LockWait | None = None,
        notice_after: float = DEFAULT_NOTICE_AFTER,
    ) -> None:
        self.index_path = Path(index_path)
        self.lock_path = lock_path_for(self.index_path)
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll_interval = poll_interval
        self.on_wait = on_wait
        self.notice_after = notice_after
        self._payload: bytes | None = None

    # -- acquire ---------------------------------------------------------------------------
    def acquire(self) -> None:
        start = time.monotonic()
        deadline = start + self.timeout
        noticed = self.on_wait is None
        while True:
            if self._try_create():
                return
            self._break_if_stale()
            now = time.monotonic()
            if now >= deadline:
                break
            if not noticed and now - start >= self.notice_after:
                noticed = True
                assert self.on_wait is not None
                self.on_wait(self.lock_path, read_holder(self.lock_path), self.timeout)
            time.sleep(self.poll_interval)
        if self._try_create():  # one last chance after the final sleep
            return
        holder = read_holder(self.lock_path)
        who = describe_holder(holder)
        raise Conflict(
            f"Timed out after {self.timeout:g}s waiting for {self.lock_path} (held by {who})",
            lock_path=str(self.lock_path),
            holder=holder,
        )

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            payload = {"pid": os.getpid(), "createdAt": datetime.now(UTC).isoformat()}
            self._payload = json.dumps(payload).encode("utf-8")
            os.write(fd, self._payload)
        finally:
            os.close(fd)
        return True

    def _break_if_stale(self) -> None:
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return
        if time.time() - st.st_mtime <= self.stale_after:
            return
        aside = self.lock_path.with_name(
            f"{self.lock_path.name}.stale.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        )
        try:
            os.rename(self.lock_path, aside)
        except FileNotFoundError:
            return  # another waiter broke it first
        try:
            moved = os.stat(aside)
            if time.time() - moved.st_mtime <= self.stale_after:
                # We took a lock someone acquired after our stat: put it back if the slot is free.
                with contextlib.suppress(OSError):
                    os.link(aside, self.lock_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)

    # -- release ---------------------------------------------------------------------------
    def release(self) -> None:
        if self._payload is None:
            return
        try:
            if inputs.read_regular(self.lock_path) == self._payload:
                os.unlink(self.lock_path)
        except (FileNotFoundError, inputs.NotRegular):  # gone, or not ours any more
            pass
        finally:
            self._payload = None

    def __enter__(self) -> IndexLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as indented JSON: temp file, fsync, rename, fsync dir.

    Keeps the permission bits (and, where allowed, the owner) of the file it replaces
    (``mkstemp`` alone would leave 0600). ``path`` itself is replaced: callers that allow a
    symlinked index resolve it first (``OpenClawStore`` checks the target is in its root).
    """
    with atomic_text(Path(path)) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
