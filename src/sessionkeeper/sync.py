"""A blocking wrapper over the async Store, for scripts and REPLs.

The async Store runs on an event loop in a background thread (an anyio blocking portal);
each method here submits a call and waits. Results are the very same objects the async
API returns (a test checks the two agree).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from sessionkeeper.store.sql import Store

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[..., R]:
    name = method.__name__

    @functools.wraps(method)
    def call(self: SyncStore, *args: Any, **kwargs: Any) -> R:
        bound = getattr(self.store, name)
        result: R = self._portal.call(functools.partial(bound, *args, **kwargs))
        return result

    return call


class SyncStore:
    """``with SyncStore.open("sqlite:///chat.db") as store: store.add_message(...)``"""

    def __init__(self, store: Store, portal: BlockingPortal, cm: AbstractContextManager[Any]):
        self.store = store
        self._portal = portal
        self._cm = cm

    @classmethod
    def open(cls, url: str | None = None, **kwargs: Any) -> SyncStore:
        cm = start_blocking_portal()
        portal = cm.__enter__()
        try:
            store = portal.call(functools.partial(Store.open, url, **kwargs))
        except BaseException:
            cm.__exit__(None, None, None)
            raise
        return cls(store, portal, cm)

    def close(self) -> None:
        try:
            self._portal.call(self.store.close)
        finally:
            self._cm.__exit__(None, None, None)

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    create_session = _blocking(Store.create_session)
    get_session = _blocking(Store.get_session)
    list_sessions = _blocking(Store.list_sessions)
    update_session = _blocking(Store.update_session)
    end_session = _blocking(Store.end_session)
    delete_session = _blocking(Store.delete_session)
    add_message = _blocking(Store.add_message)
    add_messages = _blocking(Store.add_messages)
    get_messages = _blocking(Store.get_messages)
    delete_message = _blocking(Store.delete_message)
    search_messages = _blocking(Store.search_messages)
    context_window = _blocking(Store.context_window)
    delete_ghost_sessions = _blocking(Store.delete_ghost_sessions)
    prune_old_sessions = _blocking(Store.prune_old_sessions)
    get_stats = _blocking(Store.get_stats)
    import_session = _blocking(Store.import_session)
