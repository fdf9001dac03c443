"""The Aria skill-runner surface: ``run_skill.py session_manager <function> '<json_args>'``.

``sessionkeeper skill session_manager FUNCTION 'JSON_ARGS'`` calls :func:`run_skill`, which
dispatches to :class:`~sessionkeeper.openclaw.directory.OpenClawStore` and returns the seed's JSON.

The two-layer delete: when a database is configured, every session the filesystem layer
deletes is also marked ended in the database (history kept, as the seed's PATCH did) by
:class:`DatabaseMarker`, the store's ``on_deleted`` callback. It ends the database session
whose id is the filesystem sessionId, or else those whose ``metadata.aria_session_id`` is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sessionkeeper import inputs
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.models import SESSION_ID_RE

if TYPE_CHECKING:
    from sessionkeeper import SyncStore
    from sessionkeeper.openclaw.directory import OpenClawStore
    from sessionkeeper.openclaw.locking import LockWait

SKILL_NAME = "session_manager"


class DatabaseMarker:
    """``on_deleted`` callback for OpenClawStore: mark the matching database session ended.

    OpenClawStore is synchronous, so this uses the blocking :class:`SyncStore` (the one sync
    bridge over the async Store), opened on the first call only, so commands that delete
    nothing never touch the database.
    """

    def __init__(self, database_url: str, *, encoding: str = "cl100k_base") -> None:
        self.database_url = database_url
        self.encoding = encoding
        self._store: SyncStore | None = None

    def _ensure(self) -> SyncStore:
        if self._store is None:
            from sessionkeeper import SyncStore

            self._store = SyncStore.open(self.database_url, encoding=self.encoding)
        return self._store

    def __call__(self, fs_session_id: str) -> bool:
        store = self._ensure()
        if SESSION_ID_RE.fullmatch(fs_session_id):
            try:
                store.end_session(fs_session_id)
            except NotFound:
                pass
            else:
                return True
        ended = False
        for session in store.find_by_aria_session_id(fs_session_id):
            with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to end
                store.end_session(session.session_id)
                ended = True
        return ended

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def __enter__(self) -> DatabaseMarker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_fs_store(
    root: Path | str | None = None,
    on_deleted: Callable[[str], bool] | None = None,
    *,
    on_lock_wait: LockWait | None = None,
) -> OpenClawStore:
    from sessionkeeper.openclaw.directory import OpenClawStore, default_root

    return OpenClawStore(
        root if root is not None else default_root(),
        on_deleted=on_deleted,
        on_lock_wait=on_lock_wait,
    )


def _number(args: dict[str, Any], name: str, default: float) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    return value


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false, got {value!r}")
    return value


def _session_id(args: dict[str, Any]) -> str:
    value = args.get("session_id")
    if not isinstance(value, str) or not value:
        raise InvalidInput("session_id is required (a string)")
    return value


FUNCTIONS: dict[str, tuple[frozenset[str], Callable[[OpenClawStore, dict[str, Any]], Any]]] = {
    "list_sessions": (
        frozenset({"agent"}),
        lambda fs, a: fs.list_sessions(a.get("agent") or None),
    ),
    "delete_session": (
        frozenset({"session_id"}),
        lambda fs, a: fs.delete_session(_session_id(a)),
    ),
    "prune_sessions": (
        frozenset({"max_age_minutes", "dry_run"}),
        lambda fs, a: fs.prune_sessions(_number(a, "max_age_minutes", 60), _flag(a, "dry_run")),
    ),
    "get_session_stats": (
        frozenset({"stale_minutes"}),
        lambda fs, a: fs.get_session_stats(_number(a, "stale_minutes", 60)),
    ),
    "cleanup_after_delegation": (
        frozenset({"session_id"}),
        lambda fs, a: fs.cleanup_after_delegation(_session_id(a)),
    ),
}


def parse_args(raw: str | None) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    args = inputs.loads(raw, "ARGS")  # not JSON, nested too deeply…
    if not isinstance(args, dict):
        raise InvalidInput('arguments must be a JSON object, e.g. \'{"agent": "main"}\'')
    return args


def call(fs: OpenClawStore, function: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one skill function on ``fs``; raises SessionkeeperError subclasses on bad calls."""
    if function not in FUNCTIONS:
        raise InvalidInput(f"unknown function {function!r}: expected one of {', '.join(FUNCTIONS)}")
    allowed, run = FUNCTIONS[function]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise InvalidInput(f"{function}: unknown argument(s) {', '.join(unknown)}")
    result: dict[str, Any] = run(fs, args)
    return result


def run_skill(
    skill: str,
    function: str,
    raw_args: str | None,
    *,
    root: Path | str | None = None,
    database_url: str | None = None,
    encoding: str = "cl100k_base",
) -> dict[str, Any]:
    """``run_skill.py``'s job: the function's JSON result (errors raise, for the caller's map)."""
    if skill != SKILL_NAME:
        raise NotFound(f"unknown skill {skill!r}: only {SKILL_NAME!r} is provided")
    args = parse_args(raw_args)
    if database_url is None:
        return call(open_fs_store(root), function, args)
    with DatabaseMarker(database_url, encoding=encoding) as marker:
        return call(open_fs_store(root, marker), function, args)
