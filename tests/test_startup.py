"""Start-up cost: a store at the current schema opens and answers without SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessionkeeper.store.core import Store


@pytest.fixture
async def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'startup.db'}"
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
