"""Blocking calls into the async Store: the one bridge of SyncStore and the integrations.

Callers that cannot await (scripts, REPLs, threads; LangChain's ``history.messages``,
LangGraph's ``invoke``) hand a coroutine to one of two functions:

- :func:`run_blocking` runs it on one event loop on a daemon thread, shared by the process,
  and waits. The Store keeps its connections per event loop, so they are kept across calls
  (a fresh loop per call would open fresh connections per call). It works from a plain
  function, from any thread, and from inside a running event loop (whose thread it blocks
  meanwhile: ``asyncio.run`` cannot be nested, a hand-over can). A coroutine runs there to
  its end even if the waiting thread is interrupted (``KeyboardInterrupt``), so a write is
  never left half done; every write goes this way.
- :func:`run_read` runs a *read* where no event loop runs on a private loop of the calling
  thread, kept for the thread's life (so the store's connections for it are kept too), and
  closed with the thread. That skips the hand-over to the shared thread (about 0.1–0.5 ms,
  more on a busy machine). Interrupted, the read is cancelled (nothing to finish). Inside a
  running loop it is :func:`run_blocking`.

After ``fork`` the child gets no thread: a new shared loop is started there on first use, and
a thread's private loop of the parent is left alone (a new one is made).

Why not anyio's ``BlockingPortal`` (what SyncStore used): a portal is a loop thread per
portal, non-daemon, which SyncStore had to close at exit; it knows nothing of fork and
cannot give the per-thread read path, so the integrations needed a second bridge beside it.
Its ``call`` also costs more: handing over a coroutine that does nothing took 199 µs with
``portal.call``, 133 µs with :func:`run_blocking`, 24 µs with :func:`run_read` (median of
alternating blocks of 2,000, one process, 2 vCPUs at load 4.3, 2026-12).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_blocking", "run_read"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None
_local = threading.local()


def _stop() -> None:
    loop = _loop
    if loop is not None and _pid == os.getpid() and loop.is_running():
        loop.call_soon_threadsafe(loop.stop)


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="sessionkeeper-sync", daemon=True
            )
            thread.start()
            if _pid is None:
                atexit.register(_stop)
            _loop, _pid = loop, os.getpid()
        return _loop


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the shared loop and wait for its result (see the module docstring)."""
    loop = _shared_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a blocking sessionkeeper call was made on its own background loop (it would wait "
            "for itself); await the async method there"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


class _ThreadLoop:
    """A thread's private event loop, closed when the thread ends (its thread-local goes)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        weakref.finalize(self, _close_idle, self.loop, self.pid)


def _close_idle(loop: asyncio.AbstractEventLoop, pid: int) -> None:
    # The store terminates the pools of closed loops the next time it makes one.
    if pid == os.getpid() and not loop.is_running() and not loop.is_closed():
        loop.close()


def _thread_loop() -> asyncio.AbstractEventLoop:
    own: _ThreadLoop | None = getattr(_local, "loop", None)
    if own is None or own.pid != os.getpid() or own.loop.is_closed():
        own = _local.loop = _ThreadLoop()  # after fork: the parent's loop is left alone
    return own.loop


def run_read(coro: Coroutine[Any, Any, T]) -> T:
    """Run a read ``coro`` to its result: on the calling thread's private loop when no event
    loop runs in this thread, else as :func:`run_blocking` does."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return run_blocking(coro)
    loop = _thread_loop()
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():  # interrupted (KeyboardInterrupt): leave nothing pending
            task.cancel()
            with contextlib.suppress(BaseException):  # the first exception is the one raised
                loop.run_until_complete(task)
        raise
