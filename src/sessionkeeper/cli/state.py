"""The CLI's per-user "current session" memory (what aria-session's ``current`` symlink did).

One small JSON file in the user data dir (platformdirs), ``{"version": 1, "current": {db: id}}``,
keyed by database so that ``--db`` switches memories with the store. The key is the URL with
any password removed (the file must not hold secrets) and a relative SQLite path made absolute
(``sqlite:///chat.db`` means a different file in every directory).

Writes are atomic (temp file + rename), so a reader never sees half a file; two CLI calls
racing on ``switch`` end with one of the two choices, which is all "current" can mean.
Standard library only: this is on the path of every fast CLI command.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sessionkeeper.paths import default_data_dir

STATE_FILE = "state.json"
_PASSWORD_RE = re.compile(r"^(?P<scheme>[^:/]+://)(?P<user>[^:@/]*):[^@/]*@")


def data_dir() -> Path:
    return default_data_dir()


def state_path() -> Path:
    return data_dir() / STATE_FILE


def database_key(url: str) -> str:
    """The key a database is remembered under: no password, absolute SQLite paths."""
    key = _PASSWORD_RE.sub(r"\g<scheme>\g<user>@", url.strip())
    scheme, sep, rest = key.partition(":///")
    if sep and scheme.split("+")[0] == "sqlite" and rest and not rest.startswith(":memory:"):
        path, q, query = rest.partition("?")
        if not os.path.isabs(path):
            path = os.path.abspath(path)
        key = f"sqlite:///{path}{q}{query}"
    return key


class CurrentSession:
    """Read and write the remembered current session, per database."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_path()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, RecursionError):
            # A missing or damaged file means "no current session", not a failure: the
            # memory is a convenience and is rebuilt by the next `new` or `switch`.
            return {"version": 1, "current": {}}
        if not isinstance(data, dict) or not isinstance(data.get("current"), dict):
            return {"version": 1, "current": {}}
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, database_url: str) -> str | None:
        value = self._load()["current"].get(database_key(database_url))
        return value if isinstance(value, str) and value else None

    def set(self, database_url: str, session_id: str) -> None:
        data = self._load()
        data["current"][database_key(database_url)] = session_id
        self._save(data)

    def clear(self, database_url: str, session_id: str | None = None) -> bool:
        """Forget the current session (only if it is ``session_id``, when given)."""
        data = self._load()
        key = database_key(database_url)
        found = data["current"].get(key)
        if found is None or (session_id is not None and found != session_id):
            return False
        del data["current"][key]
        self._save(data)
        return True
