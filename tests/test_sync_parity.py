"""SyncStore is the Store, blocking: the same methods, signatures and results (issue 7, item 9)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper import SyncStore
from sessionkeeper.errors import SessionkeeperError
from sessionkeeper.models import Message, NewMessage, Session
from sessionkeeper.store.core import Store

NOT_BLOCKING = {"open", "from_engine", "upgrade", "close"}  # class methods, lifecycle differ


def _public_coroutines() -> list[str]:
    names = [
        name
        for name, member in inspect.getmembers(Store)
        if inspect.iscoroutinefunction(member)
        and not name.startswith("_")
        and name not in NOT_BLOCKING
    ]
    assert len(names) >= 20, names  # the list itself is sane (the test is not vacuous)
    return names


def test_every_public_coroutine_of_store_is_on_sync_store() -> None:
    missing = [name for name in _public_coroutines() if name not in vars(SyncStore)]
    assert missing == []
    for name in _public_coroutines():
        # Class-level access gives the descriptor, which wraps the Store method itself.
        wrapped = inspect.getattr_static(SyncStore, name).__wrapped__
        assert wrapped is getattr(Store, name), name


def test_sync_store_has_no_blocking_method_without_a_store_twin() -> None:
    descriptor = type(inspect.getattr_static(SyncStore, "ping"))
    blocking = [n for n, v in vars(SyncStore).items() if isinstance(v, descriptor)]
    assert sorted(blocking) == sorted(_public_coroutines())


def test_sync_signatures_are_the_store_signatures() -> None:
    sync = SyncStore.open("sqlite://")
    try:
        for name in _public_coroutines():
            params = list(inspect.signature(getattr(Store, name)).parameters.values())
            assert params[0].name == "self"
            expected = inspect.signature(getattr(Store, name)).replace(parameters=params[1:])
            assert inspect.signature(getattr(sync, name)) == expected, name
    finally:
        sync.close()


def test_sync_methods_take_the_store_arguments() -> None:
    """Calls bind as the async signature says: positional, keyword, and refused extras."""
    sync = SyncStore.open("sqlite://")
    try:
        sid = sync.create_session(session_id="pos").session_id
        message = sync.add_message(sid, "user", "positional", model="m")
        assert (message.seq, message.model) == (1, "m")
        with pytest.raises(TypeError):
            sync.add_message(sid, "user", "x", nosuch=1)  # type: ignore[call-arg]
    finally:
        sync.close()


def _callable_parts(revealed: str) -> tuple[str, str]:
    """mypy's ``def (params) -> ret`` (``-> None`` is left out) as (params, ret)."""
    assert revealed.startswith("def ("), revealed
    depth, end = 0, 4
    while True:  # the params may hold callables: find the ")" that closes them
        depth += {"(": 1, ")": -1}.get(revealed[end], 0)
        if depth == 0:
            break
        end += 1
    rest = revealed[end + 1 :]
    assert rest == "" or rest.startswith(" -> "), revealed
    return revealed[5:end], rest[4:] or "None"


def test_mypy_sees_the_store_signatures_on_sync_store(tmp_path: Path) -> None:
    """Each SyncStore method types as the Store coroutine's parameters, returning its result."""
    names = _public_coroutines()
    lines = [
        "from sessionkeeper.store.core import Store",
        "from sessionkeeper.sync import SyncStore",
    ]
    lines.append("def check(a: Store, s: SyncStore) -> None:")
    for name in names:
        lines.append(f"    reveal_type(a.{name})")
        lines.append(f"    reveal_type(s.{name})")
    probe = tmp_path / "probe_sync_types.py"
    probe.write_text("\n".join(lines) + "\n")
    mypy = Path(sys.executable).with_name("mypy")
    done = subprocess.run(
        [str(mypy), "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), str(probe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    revealed = re.findall(r'Revealed type is "(.*)"', done.stdout)
    assert len(revealed) == 2 * len(names), done.stdout + done.stderr
    for i, name in enumerate(names):
        async_type, sync_type = revealed[2 * i], revealed[2 * i + 1]
        a_params, a_ret = _callable_parts(async_type)
        s_params, s_ret = _callable_parts(sync_type)
        assert "*Any" not in s_params, f"{name}: {sync_type}"
        assert s_params == a_params, f"{name}: {sync_type} vs {async_type}"
        coroutine = re.fullmatch(r"typing\.Coroutine\[Any, Any, (.*)\]", a_ret)
        assert coroutine is not None, async_type
        assert s_ret == coroutine.group(1), f"{name}: returns {s_ret}, not {coroutine.group(1)}"


# ── the same operations give the same results ──────────────────────────────

_TIMES = ("created_at", "updated_at", "ended_at", "last_message_at", "cutoff", "newest_activity")


def _plain(value: Any, sid: str | None = None, *, times: bool = False) -> Any:
    """A comparable form: dataclasses as dicts; with ``sid``, the twin's id abstracted, and
    with ``sid`` or ``times``, the timestamps taken from the clock at call time."""
    times = times or sid is not None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            k: ("<time>" if times and k in _TIMES and v is not None else _plain(v, sid))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(v, sid, times=times) for v in value]
    if sid and isinstance(value, str):
        return value.replace(sid, "<sid>")
    return value


def _outcome(call: Callable[[], Any], sid: str | None = None, *, times: bool = False) -> Any:
    try:
        return ("ok", _plain(call(), sid, times=times))
    except SessionkeeperError as exc:
        message = str(exc).replace(sid, "<sid>") if sid else str(exc)
        return ("error", type(exc).__name__, message, exc.details)


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _script(sid: str) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Writes (and the reads between them) for one twin session."""
    imported = Session(
        f"{sid}-imp", "twin", "imported", "chat", "ended", {"from": "file"},
        T0, T0, T0, T0, 0, 0,
    )  # fmt: skip
    imported_messages = [
        Message(f"{sid}-imp", 3, "user", "imported words", None, None, 2, {}, T0),
        Message(f"{sid}-imp", 7, "assistant", "imported reply", "a", "m", 2, {"x": 1}, T0),
    ]
    return [
        ("create_session", (), {"session_id": sid, "agent_id": "twin", "title": "Twin",
                                "metadata": {"k": [1, 2]}, "session_type": "chat"}),
        ("add_message", (sid, "system", "be brief"), {"created_at": T0}),
        ("add_message", (sid, "user", "hello twin"),
         {"model": "m", "metadata": {"a": 1}, "created_at": T0 + timedelta(seconds=1)}),
        ("add_messages", (sid, [
            NewMessage("assistant", "hi there", created_at=T0 + timedelta(seconds=2)),
            {"role": "tool", "content": "{}", "metadata": {"tool_call_id": "c1"},
             "created_at": T0 + timedelta(seconds=3)},
        ]), {}),
        ("get_messages", (sid,), {"last": 3}),
        ("get_messages", (sid,), {"after_seq": 1, "limit": 2}),
        ("context_window", (sid, 12), {"reserve": 2}),
        ("update_session", (sid,), {"title": "Twin 2", "metadata": None}),
        ("delete_message", (sid, 2), {}),
        ("pop_message", (sid,), {}),
        ("end_session", (sid,), {}),
        ("end_session", (sid,), {}),
        ("get_session", (sid,), {}),
        ("clear_messages", (sid,), {}),
        ("add_message", (sid, "user", "after clear"), {"created_at": T0}),
        ("get_messages", (sid,), {}),
        ("add_message", (sid, "bogus", "x"), {}),
        ("add_message", (sid, "user", "x" * 100_001), {}),
        ("delete_message", (sid, 999), {}),
        ("get_session", (f"{sid}-missing",), {}),
        ("import_session", (imported, imported_messages), {}),
        ("import_session", (imported, imported_messages), {}),
        ("get_messages", (f"{sid}-imp",), {}),
        ("add_message", (f"{sid}-imp", "user", "continues at 8"), {"created_at": T0}),
        ("delete_session", (f"{sid}-imp",), {}),
        ("delete_session", (f"{sid}-imp",), {}),
    ]  # fmt: skip


def test_sync_and_async_give_identical_results(db_url: str) -> None:
    with SyncStore.open(db_url) as sync:
        store = sync.store  # the async Store on the same database, used from this thread

        def run(name: str, *args: Any, **kwargs: Any) -> Any:
            return asyncio.run(getattr(store, name)(*args, **kwargs))

        # Writes on twin sessions: one through each API, step by step.
        for (name, s_args, s_kw), (_, a_args, a_kw) in zip(
            _script("twin-sync"), _script("twin-async"), strict=True
        ):
            via_sync = _outcome(partial(getattr(sync, name), *s_args, **s_kw), "twin-sync")
            via_async = _outcome(partial(run, name, *a_args, **a_kw), "twin-async")
            assert via_sync == via_async, name

        # Reads of one database state: exactly equal, down to the timestamps.
        reads: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("get_session", ("twin-sync",), {}),
            ("get_messages", ("twin-async",), {"limit": 500}),
            ("list_sessions", (), {"agent_id": "twin"}),
            ("list_sessions", (), {"sort": "title", "order": "asc", "limit": 1}),
            ("list_sessions", (), {"search": "twin", "with_total": False}),
            ("list_sessions", (), {"status": "ended", "session_type": "chat"}),
            ("search_messages", ("clear",), {}),
            ("search_messages", ("after",), {"session_id": "twin-sync"}),
            ("context_window", ("twin-sync", 100), {}),
            ("get_stats", (), {}),
            ("get_stats", (), {"agent_ids": ["twin"]}),
            ("find_by_aria_session_id", ("nothing-here",), {}),
            ("prune_old_sessions", (), {"days": 1, "dry_run": True}),
            ("delete_ghost_sessions", (), {"older_than_minutes": 10**6}),
            ("schema_revision", (), {}),
            ("ping", (), {}),
            ("database_role", (), {}),
            ("vacuum", (), {}),
            ("list_sessions", (), {"sort": "nope"}),
            ("search_messages", ("",), {}),
        ]
        for name, args, kwargs in reads:
            # A prune's cutoff is "now - days", taken at each call.
            clock = name == "prune_old_sessions"
            via_sync = _outcome(partial(getattr(sync, name), *args, **kwargs), times=clock)
            via_async = _outcome(partial(run, name, *args, **kwargs), times=clock)
            assert via_sync == via_async, name
        assert _outcome(lambda: sync.get_session("twin-sync"))[0] == "ok"

        # The twins end in the same state.
        assert _plain(sync.get_session("twin-sync"), "twin-sync") == _plain(
            run("get_session", "twin-async"), "twin-async"
        )


def test_a_script_that_forgets_close_still_exits(tmp_path: Path) -> None:
    script = (
        "from sessionkeeper import SyncStore\n"
        f"store = SyncStore.open('sqlite:///{tmp_path / 'forgot.db'}')\n"
        "store.create_session()\n"
        "raise SystemExit(0)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", script], timeout=8, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the interpreter did not exit within 8 s")
    assert done.returncode == 0, done.stderr
