"""Helpers shared by the CLI tests (test_cli.py, test_skill.py…): isolation and invocation,
in-process (``make_invoke``: Typer's CliRunner) or as the real program in a subprocess
(``cli_argv``, ``subprocess_env``, ``run_cli``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionkeeper.cli import app

Invoke = Callable[..., Result]


def load_openclaw_builder() -> ModuleType:
    """tests/fixtures/openclaw/build.py (not a package: loaded by path)."""
    path = Path(__file__).parent / "fixtures" / "openclaw" / "build.py"
    spec = importlib.util.spec_from_file_location("openclaw_fixture_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def isolate_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh HOME / XDG_DATA_HOME and no sessionkeeper, OpenClaw or Aria settings."""
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
    for name in list(os.environ):
        if name.startswith(("SESSIONKEEPER_", "OPENCLAW_", "ARIA_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _check_shareable(db: str) -> None:
    from sessionkeeper.store.url import parse

    if parse(db).memory:
        raise ValueError(
            f"{db!r} is an in-memory database: each CLI invocation would get its own, "
            "empty one (use the file_db_url fixture)"
        )


def make_invoke(db_url: str | None) -> Invoke:
    """Run the CLI in-process; ``--db db_url`` first unless ``db=None`` is passed.

    Every invocation opens its own Store, so the URL must name a database that outlives
    one: a SQLite file or PostgreSQL (``file_db_url``), never in-memory SQLite.
    """
    if db_url:
        _check_shareable(db_url)
    runner = CliRunner()

    def invoke(*args: str, db: str | None = db_url, input: str | None = None) -> Result:
        if db:
            _check_shareable(db)
        argv = (["--db", db] if db else []) + list(args)
        return runner.invoke(app, argv, input=input)

    return invoke


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


# The installed console script: the real entry point (``sessionkeeper.cli:main``).
CLI = [str(Path(sys.executable).with_name("sessionkeeper"))]


def subprocess_env(user_env: dict[str, str], **extra: str) -> dict[str, str]:
    """This process's environment without sessionkeeper, OpenClaw or Aria settings, plus
    ``user_env`` (``isolate_user``'s) and ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SESSIONKEEPER_", "OPENCLAW_", "ARIA_"))
    }
    env.update(user_env)
    env.update(extra)
    return env


def run_cli(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    input: bytes | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """``sessionkeeper ARGV`` in a subprocess (bytes in and out: encodings are under test)."""
    return subprocess.run(
        [*CLI, *argv], env=env, input=input, capture_output=True, timeout=timeout, check=False
    )
