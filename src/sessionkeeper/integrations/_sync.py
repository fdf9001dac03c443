"""Blocking calls into the async Store for frameworks with synchronous methods.

LangChain calls ``history.messages`` and ``history.add_messages`` from plain functions, and
sometimes from inside a running event loop (``RunnableWithMessageHistory`` builds its history
synchronously even under ``ainvoke``). ``asyncio.run`` cannot be nested in a running loop, and a
fresh loop per call would open fresh database connections per call. So blocking calls go to one
event loop on a daemon thread, shared by the process, where the store keeps its connections
for that loop; the caller's thread waits for the result.

After ``fork`` the child gets no thread: a new one is started there on first use.

A blocking *read* called where no event loop runs (the common case: ``history.messages`` in a
plain function) skips that hand-over (about half a millisecond on a busy machine): it runs on a
private event loop of the calling thread (:func:`run_read`), kept for the thread's life, so the
store's connections for that loop are kept too, as on the shared loop. Writes stay on the shared
loop, where they run to their end even if the waiting thread is interrupted.
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

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None
_local = threading.local()


def _stop() -> None:
    loop = _loop
    if loop is not None and _pid == os.getpid() and loop.is_running():
        loop.call_soon_threadsafe(loop.stop)


def _background_loop() -> asyncio.AbstractEventLoop:
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
    """Run ``coro`` on the shared background loop and wait for its result."""
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a blocking sessionkeeper call was made on its own background loop; "
            "use the async method (aget_messages, aadd_messages, aclear) there"
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
