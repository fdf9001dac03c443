"""A blocking wrapper over the async Store, for scripts, REPLs and threads.

Each method hands its Store coroutine to :func:`sessionkeeper.bridge.run_blocking` (the
bridge the framework integrations use too): it runs on the process's shared event loop,
on a daemon thread, and the caller waits, so any number of threads may share one SyncStore,
and it works from inside a running event loop too. Every call, reads included, goes to that
one loop: reads on per-thread loops (the integrations' fast path) would give each thread its
own connections, and a SyncStore shared by a hundred threads would open a hundred pools.
Results are the very same objects the async API returns (a test checks that every public
coroutine of Store is here with the same signature).
"""

from __future__ import annotations

import atexit
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from sessionkeeper.bridge import run_blocking
from sessionkeeper.store.core import Store

P = ParamSpec("P")
R = TypeVar("R")


class _Blocking(Generic[P, R]):
    """A Store coroutine method, called blocking: typed with the method's own parameters."""

    def __init__(self, method: Callable[Concatenate[Store, P], Coroutine[Any, Any, R]]) -> None:
        self.method = method
        functools.update_wrapper(self, method)  # type: ignore[arg-type]
        # The bound call's signature: the method's without ``self`` (for help() and inspect).
        signature = inspect.signature(method)
        self.bound_signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    @overload
    def __get__(self, obj: None, owner: type[SyncStore]) -> _Blocking[P, R]: ...
    @overload
    def __get__(self, obj: SyncStore, owner: type[SyncStore]) -> Callable[P, R]: ...
    def __get__(
        self, obj: SyncStore | None, owner: type[SyncStore]
    ) -> _Blocking[P, R] | Callable[P, R]:
        if obj is None:
            return self
        method = self.method
        store = obj.store

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return run_blocking(method(store, *args, **kwargs))

        call.__name__ = call.__qualname__ = method.__name__
        call.__doc__ = method.__doc__
        call.__signature__ = self.bound_signature  # type: ignore[attr-defined]
        return call


class SyncStore:
    """``with SyncStore.open("sqlite:///chat.db") as store: store.add_message(...)``"""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._closed = False
        # A script that forgets close() still closes the store (its writes flushed, its
        # SQLite threads ended) before the shared loop stops at exit.
        atexit.register(self.close)

    @classmethod
    def open(cls, url: str | None = None, **kwargs: Any) -> SyncStore:
        """As ``Store.open`` (same arguments), blocking."""
        return cls(run_blocking(Store.open(url, **kwargs)))

    @staticmethod
    def upgrade(url: str, target: str = "head") -> tuple[str | None, str]:
        """As ``Store.upgrade``, blocking: migrate the database at ``url``."""
        return run_blocking(Store.upgrade(url, target))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        run_blocking(self.store.close())

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.store.dialect

    ping = _Blocking(Store.ping)
    schema_revision = _Blocking(Store.schema_revision)
    database_role = _Blocking(Store.database_role)
    vacuum = _Blocking(Store.vacuum)
    create_session = _Blocking(Store.create_session)
    get_session = _Blocking(Store.get_session)
    session_exists = _Blocking(Store.session_exists)
    list_sessions = _Blocking(Store.list_sessions)
    update_session = _Blocking(Store.update_session)
    change_metadata = _Blocking(Store.change_metadata)  # change stays a plain callable
    end_session = _Blocking(Store.end_session)
    delete_session = _Blocking(Store.delete_session)
    find_by_aria_session_id = _Blocking(Store.find_by_aria_session_id)
    add_message = _Blocking(Store.add_message)
    add_messages = _Blocking(Store.add_messages)
    get_messages = _Blocking(Store.get_messages)
    delete_message = _Blocking(Store.delete_message)
    pop_message = _Blocking(Store.pop_message)
    clear_messages = _Blocking(Store.clear_messages)
    search_messages = _Blocking(Store.search_messages)
    search_with_neighbours = _Blocking(Store.search_with_neighbours)
    context_window = _Blocking(Store.context_window)
    compact_session = _Blocking(Store.compact_session)  # summarize stays an async callable
    get_compaction = _Blocking(Store.get_compaction)
    get_compactions = _Blocking(Store.get_compactions)
    ghost_sessions = _Blocking(Store.ghost_sessions)
    delete_ghost_sessions = _Blocking(Store.delete_ghost_sessions)
    delete_expired_idempotency_keys = _Blocking(Store.delete_expired_idempotency_keys)
    prune_old_sessions = _Blocking(Store.prune_old_sessions)
    get_stats = _Blocking(Store.get_stats)
    # usage and cost
    set_usage = _Blocking(Store.set_usage)
    get_usage = _Blocking(Store.get_usage)
    usage_totals = _Blocking(Store.usage_totals)
    import_session = _Blocking(Store.import_session)
    import_session_stream = _Blocking(Store.import_session_stream)
    # lineage
    fork_session = _Blocking(Store.fork_session)
    rewind_session = _Blocking(Store.rewind_session)
    list_branches = _Blocking(Store.list_branches)
    # retention policies
    set_policy = _Blocking(Store.set_policy)
    get_policies = _Blocking(Store.get_policies)
    delete_policy = _Blocking(Store.delete_policy)
    run_policies = _Blocking(Store.run_policies)
    forget_user = _Blocking(Store.forget_user)
