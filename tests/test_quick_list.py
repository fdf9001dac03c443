"""The CLI's SQLAlchemy-free listing answers exactly as the Store does (SQLite only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessionkeeper.store import quick
from sessionkeeper.store.core import Store


@pytest.fixture
async def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'quick.db'}"
    store = await Store.open(url)
    try:
        for i in range(9):
            s = await store.create_session(
                session_id=f"q{i}",
                agent_id="alpha" if i % 3 else "beta",
                title=None if i == 4 else f"Title {i % 4}",
                session_type="cron" if i == 2 else "chat",
                metadata={"i": i} if i % 2 else None,
            )
            if i % 2:
                await store.add_message(s.session_id, "user", f"hello {i}")
        await store.end_session("q7")
    finally:
        await store.close()
    return url


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "last_message_at", "title"])
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize(
    "filters",
    [{}, {"agent_id": "alpha"}, {"session_type": "cron"}, {"status": "ended"}, {"offset": 4}],
)
async def test_quick_list_equals_store(seeded: str, sort: str, order: str, filters: dict) -> None:
    fast = quick.list_sessions(seeded, sort=sort, order=order, limit=3, **filters)
    store = await Store.open(seeded)
    try:
        slow = await store.list_sessions(sort=sort, order=order, limit=3, **filters)
    finally:
        await store.close()
    assert fast == slow


async def test_quick_list_declines_what_it_cannot_answer(tmp_path: Path, seeded: str) -> None:
    assert quick.list_sessions("postgresql://x@127.0.0.1/db") is None
    assert quick.list_sessions(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert quick.list_sessions(f"sqlite:///{empty}") is None


def test_cli_list_does_not_import_sqlalchemy(tmp_path: Path, seeded: str) -> None:
    probe = (
        "import sys\n"
        "from sessionkeeper.cli import main\n"
        f"sys.argv = ['sessionkeeper', '--db', {seeded!r}, 'list', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('SQLALCHEMY' if 'sqlalchemy' in sys.modules else 'LEAN', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert '"q8"' in done.stdout or '"q' in done.stdout, done.stderr
    assert done.stderr.strip().endswith("LEAN"), done.stderr
