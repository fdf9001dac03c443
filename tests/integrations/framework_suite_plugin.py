"""A pytest plugin that runs a framework's own session tests against our classes.

Loaded by tests/integrations/test_framework_suites.py into a pytest subprocess that runs the
framework's test files, unchanged, from its sdist (``-p framework_suite_plugin``). Before the
test modules are imported it puts an adapter in the place of the store class they construct:

- ``SESSIONKEEPER_SUITE=openai-agents``: ``agents.SQLiteSession`` (and ``agents.memory.
  SQLiteSession``) becomes :class:`SQLiteSessionAdapter`, a
  :class:`~sessionkeeper.integrations.openai_agents.SessionkeeperSession` built by
  ``from_url`` on the test's database;
- ``SESSIONKEEPER_SUITE=langchain``: ``langchain_core.chat_history.InMemoryChatMessageHistory``
  becomes :class:`InMemoryChatMessageHistoryAdapter`, a
  :class:`~sessionkeeper.integrations.langchain.SessionkeeperChatMessageHistory` on the
  test's store, one store session per history object.

The database comes from ``SESSIONKEEPER_SUITE_DB``: ``sqlite`` (a fresh SQLite file per test:
the ``db_path`` the test gives ``SQLiteSession``, or a new file in the test's own temporary
directory), or a PostgreSQL URL (each test gets a fresh schema there, through ``search_path``).
The adapters only translate constructors and the synchronous ``close()``; every session
operation the tests make is our class's own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

SUITE = os.environ.get("SESSIONKEEPER_SUITE", "")
DATABASE = os.environ.get("SESSIONKEEPER_SUITE_DB", "")

# Where the current test's databases go: a directory (SQLite) or a URL (PostgreSQL).
_current: dict[str, Any] = {}


def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&search_path={schema}" if parts.query else f"search_path={schema}"
    return urlunsplit(parts._replace(query=query))


async def _create_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _sessionkeeper_database(tmp_path: Path) -> Iterator[None]:
    """A fresh database for each test: a directory for SQLite files, or a PostgreSQL schema."""
    if DATABASE.startswith("postgresql"):
        schema = f"suite_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_schema(DATABASE, schema))
        _current["url"] = _with_search_path(DATABASE, schema)
    else:
        _current["url"] = None
    _current["dir"] = tmp_path
    _current["store"] = None
    if SUITE == "langchain":
        # Opened here, before the test: the histories it builds share this store.
        from sessionkeeper import open_store
        from sessionkeeper.bridge import run_blocking

        _current["store"] = run_blocking(open_store(_database_url()))
    try:
        yield
    finally:
        store = _current.pop("store", None)
        if store is not None:
            from sessionkeeper.bridge import run_blocking

            run_blocking(store.close())
        _current.clear()


def _database_url(db_path: str | os.PathLike[str] | None = None) -> str:
    """The store URL for a database the test names (``db_path``), or a fresh one."""
    url = _current.get("url")
    if url is not None:
        return str(url)
    if db_path is None or str(db_path) == ":memory:":
        # SQLiteSession(":memory:") is one database per object: a new file here.
        db_path = Path(_current["dir"]) / f"memory-{uuid.uuid4().hex}.db"
    return f"sqlite:///{Path(db_path).resolve()}"


# ── OpenAI Agents SDK ─────────────────────────────────────────────────────────


def _agents_adapter() -> type:
    from sessionkeeper.bridge import run_blocking
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    class SQLiteSessionAdapter(SessionkeeperSession):
        """``SQLiteSession(session_id, db_path=":memory:", ..., session_settings=None)`` as a
        SessionkeeperSession on the store at the test's database (``from_url``)."""

        def __init__(
            self,
            session_id: str,
            db_path: str | os.PathLike[str] = ":memory:",
            sessions_table: str = "agent_sessions",
            messages_table: str = "agent_messages",
            session_settings: Any = None,
        ) -> None:
            _become(self, session_id, db_path, (sessions_table, messages_table), session_settings)

        def close(self) -> None:  # type: ignore[override]
            """SQLiteSession.close() is synchronous: close the store our class opened."""
            run_blocking(SessionkeeperSession.close(self))

    return SQLiteSessionAdapter


def _become(
    adapter: Any, session_id: str, db_path: Any, tables: tuple[str, str], settings: Any
) -> None:
    """Make ``adapter`` (an instance of a SessionkeeperSession subclass) the session
    ``from_url`` builds on the test's database; SQLite table names other than the SDK's
    defaults are refused (the store has none of its own)."""
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    if tables != ("agent_sessions", "agent_messages"):
        raise TypeError("the sessionkeeper store has no per-session table names")
    made = SessionkeeperSession.from_url(
        session_id, _database_url(db_path), session_settings=settings
    )
    vars(adapter).update(vars(made))  # that object, as an instance of the adapter's class


def _advanced_adapter() -> type:
    from sessionkeeper.bridge import run_blocking
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    class AdvancedSQLiteSessionAdapter(SessionkeeperSession):
        """``AdvancedSQLiteSession(session_id=..., db_path=":memory:", create_tables=False,
        logger=None, session_settings=None, **kwargs)`` as a SessionkeeperSession on the
        store at the test's database (``from_url``). ``create_tables`` has nothing to do
        (the store's schema is its migrations'); ``logger`` is where it logs."""

        def __init__(
            self,
            *,
            session_id: str,
            db_path: str | os.PathLike[str] = ":memory:",
            create_tables: bool = False,
            logger: Any = None,
            session_settings: Any = None,
            sessions_table: str = "agent_sessions",
            messages_table: str = "agent_messages",
        ) -> None:
            _become(self, session_id, db_path, (sessions_table, messages_table), session_settings)
            if logger is not None:
                self._logger = logger

        def close(self) -> None:  # type: ignore[override]
            """AdvancedSQLiteSession.close() is synchronous: close the store our class
            opened."""
            run_blocking(SessionkeeperSession.close(self))

    return AdvancedSQLiteSessionAdapter


# ── LangChain ─────────────────────────────────────────────────────────────────


# Where our store blocks its event loop knowingly. LangChain's suite watches langchain_core's
# calls for blocking ones (its conftest's ``blockbuster`` fixture) and allows its own known ones
# with ``can_block_in`` (langsmith's config read); these are ours:
_BLOCKING_BY_DESIGN = [
    # the SQLite backend runs small hot reads inline on the calling thread (a hand-over to
    # a reader thread costs more than the query);
    ("sessionkeeper/store/backends/sqlite_threads.py", "_inline_read"),
    # asyncpg, opening a connection, reads its arguments' files: ~/.pgpass (when no password
    # is given) and where ~/.postgresql's certificates would be (stat, abspath).
    ("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args"),
]


@pytest.fixture(autouse=True)
def _sessionkeeper_blocking_allowances(request: pytest.FixtureRequest) -> None:
    if "blockbuster" not in request.fixturenames:
        return
    blockbuster = request.getfixturevalue("blockbuster")
    for function in blockbuster.functions.values():
        for filename, name in _BLOCKING_BY_DESIGN:
            function.can_block_in(filename, name)


def _test_store() -> Any:
    """The current test's Store (opened before the test, closed after it)."""
    store = _current.get("store")
    if store is None:
        raise RuntimeError("no sessionkeeper store for this test")
    return store


def _langchain_adapter() -> type:
    from langchain_core.messages import BaseMessage

    from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory

    class InMemoryChatMessageHistoryAdapter(SessionkeeperChatMessageHistory):
        """``InMemoryChatMessageHistory(messages=[...])`` as a SessionkeeperChatMessageHistory:
        each object its own new store session, as each in-memory history is its own list."""

        def __init__(self, messages: Sequence[BaseMessage] | None = None) -> None:
            super().__init__(f"lc-{uuid.uuid4().hex}", store=_test_store())
            if messages:
                self.add_messages(messages)

        def __eq__(self, other: object) -> bool:
            # InMemoryChatMessageHistory is a pydantic model: equal when its messages are.
            if not isinstance(other, SessionkeeperChatMessageHistory):
                return NotImplemented
            return bool(self.messages == other.messages)

        __hash__ = None  # type: ignore[assignment]

        def __repr__(self) -> str:
            return f"InMemoryChatMessageHistory(messages={self.messages!r})"

    return InMemoryChatMessageHistoryAdapter


def pytest_configure(config: pytest.Config) -> None:
    """Substitute the framework's class before any test module imports it."""
    if not DATABASE:
        raise pytest.UsageError("SESSIONKEEPER_SUITE_DB is not set")
    if SUITE == "openai-agents":
        import agents
        import agents.extensions.memory.encrypt_session as encrypt_session
        import agents.memory
        import agents.memory.openai_responses_compaction_session as compaction_session

        adapter = _agents_adapter()
        agents.SQLiteSession = adapter  # type: ignore[attr-defined]
        agents.memory.SQLiteSession = adapter  # type: ignore[attr-defined]
        # The wrappers that treat a SQLiteSession specially (EncryptedSession pops through
        # its _pop_item_with_validation) name the class in their own modules: there too.
        for module in (encrypt_session, compaction_session):
            if hasattr(module, "SQLiteSession"):
                module.SQLiteSession = adapter
    elif SUITE == "openai-agents-advanced":
        import agents.extensions.memory
        import agents.extensions.memory.advanced_sqlite_session as advanced

        adapter = _advanced_adapter()
        agents.extensions.memory.AdvancedSQLiteSession = adapter  # type: ignore[attr-defined]
        advanced.AdvancedSQLiteSession = adapter  # type: ignore[misc]
    elif SUITE == "langchain":
        import langchain_core.chat_history

        langchain_core.chat_history.InMemoryChatMessageHistory = (  # type: ignore[misc]
            _langchain_adapter()
        )
    else:
        raise pytest.UsageError(
            f"SESSIONKEEPER_SUITE={SUITE!r}: openai-agents, openai-agents-advanced or langchain"
        )


def pytest_report_header(config: pytest.Config) -> str:
    where = "PostgreSQL" if DATABASE.startswith("postgresql") else "SQLite"
    return f"sessionkeeper framework suite: {SUITE} on {where}"
