"""Blocking calls into the async Store for frameworks with synchronous methods.

LangChain calls ``history.messages`` and ``history.add_messages`` from plain functions, and
sometimes from inside a running event loop (``RunnableWithMessageHistory`` builds its history
synchronously even under ``ainvoke``). ``asyncio.run`` cannot be nested in a running loop, and a
fresh loop per call would open fresh database connections per call. So blocking calls go to one
event loop on a daemon thread, shared by the process, where the store keeps its connections
for that loop; the caller's thread waits for the result.

After ``fork`` the child gets no thread: a new one is started there on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


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
