"""The frameworks' own session test suites, unchanged, against our classes (issue 9).

For each framework this test takes the installed version's sdist from the package registry
(``pip download --no-binary :all:``, cached under ``~/.cache/sessionkeeper-tests/sdists`` or
``$SESSIONKEEPER_TEST_CACHE``; a failed download FAILS the test), extracts its ``tests/`` and
``pyproject.toml`` (its pytest settings) to a temporary directory as they are, and runs the
session test files with pytest in a subprocess, with ``framework_suite_plugin`` (beside this
file) loaded: it puts an adapter building our class in the place of the framework's own store
class, on a fresh SQLite file or PostgreSQL schema per test (``file_db_url``).

- OpenAI Agents SDK: tests/memory/test_session.py and test_session_limit.py, their
  ``SQLiteSession`` → ``SessionkeeperSession.from_url``;
- LangChain: tests/unit_tests/chat_history/test_chat_history.py and
  runnables/test_history.py, their ``InMemoryChatMessageHistory`` →
  ``SessionkeeperChatMessageHistory``.

Tests that exercise the framework class's internals, which our class does not have, are
deselected, each with its reason (``DESELECTED``); the count of deselected tests is checked, so
a renamed test fails here instead of silently running.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CACHE = (
    Path(os.environ.get("SESSIONKEEPER_TEST_CACHE", "~/.cache/sessionkeeper-tests")).expanduser()
    / "sdists"
)
SUBPROCESS_TIMEOUT_S = 300

_INTERNALS = "SQLiteSession internals our class has no counterpart for"


@dataclass(frozen=True)
class Suite:
    dist: str  # the distribution on the registry
    files: tuple[str, ...]  # test files, relative to the sdist's root
    deselected: dict[str, str] = field(default_factory=dict)  # node id → why
    pytest_args: tuple[str, ...] = ()
    adapter: str = ""  # the plugin's SESSIONKEEPER_SUITE (default: the suite's name)


AGENTS_SESSION = "tests/memory/test_session.py"
COMPACTION_SESSION = "tests/memory/test_openai_responses_compaction_session.py"
ENCRYPTED_SESSION = "tests/extensions/memory/test_encrypt_session.py"
POST_COMMIT = "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome"
ADVANCED_SESSION = "tests/extensions/memory/test_advanced_sqlite_session.py"
ADVANCED_DESELECTED: dict[str, str] = {}

SUITES = {
    "openai-agents": Suite(
        dist="openai-agents",
        files=(AGENTS_SESSION, "tests/memory/test_session_limit.py"),
        deselected={
            f"{AGENTS_SESSION}::{name}": why
            for name, why in {
                "test_sqlite_session_close_closes_worker_thread_connections": (
                    f"{_INTERNALS}: its per-thread sqlite3 connections (_connections)"
                ),
                "test_sqlite_session_reaps_connections_from_exited_worker_threads": (
                    f"{_INTERNALS}: its per-thread sqlite3 connections (_connections)"
                ),
                "test_sqlite_session_closes_retired_connections_before_the_next_allocation": (
                    f"{_INTERNALS}: _connections, and sqlite3.connect patched"
                ),
                "test_sqlite_session_keeps_connections_of_live_worker_threads": (
                    f"{_INTERNALS}: its per-thread sqlite3 connections (_connections)"
                ),
                "test_sqlite_session_closed_rejects_empty_add_items": (
                    "expects SQLiteSession's own 'SQLiteSession is closed' error; the Session "
                    "protocol has no close, and ours closes the store it opened (reopened on use)"
                ),
                "test_sqlite_session_pop_item_skips_corrupt_most_recent": (
                    f"{_INTERNALS}: writes a raw row via _locked_connection into messages_table"
                ),
                "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows": (
                    f"{_INTERNALS}: writes a raw row via _locked_connection into messages_table"
                ),
                "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows": (
                    f"{_INTERNALS}: writes a raw row via _locked_connection into messages_table"
                ),
                "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows": (
                    f"{_INTERNALS}: writes a raw row via _locked_connection into messages_table"
                ),
                "test_sqlite_session_file_lock_is_shared_across_instances": (
                    f"{_INTERNALS}: its process-local file locks (_lock, _file_lock_counts)"
                ),
                "test_sqlite_session_failed_add_items_releases_write_lock": (
                    f"{_INTERNALS}: probes its agent_sessions table with sqlite3 (ours refuses "
                    "the non-JSON item with InvalidInput before writing anything)"
                ),
                "test_sqlite_session_failed_clear_session_rolls_back": (
                    f"{_INTERNALS}: drops its agent_sessions table, reads _connections"
                ),
                "test_sqlite_session_failed_pop_item_releases_write_lock": (
                    f"{_INTERNALS}: drops its agent_messages table, reads _connections"
                ),
                "test_sqlite_session_rollback_failure_evicts_connection": (
                    f"{_INTERNALS}: injects a sqlite3.Connection via _connections/_get_connection"
                ),
                "test_sqlite_session_close_retries_quarantined_connection": (
                    f"{_INTERNALS}: _get_connection, _closed, _quarantined_connections"
                ),
                **{
                    f"{POST_COMMIT}[{op}]": (
                        f"{_INTERNALS}: pauses a sqlite3 commit injected via _get_connection "
                        "(ours: tests/integrations/test_openai_agents.py cancellation tests)"
                    )
                    for op in ("add", "pop", "clear")
                },
            }.items()
        },
    ),
    # The wrappers of an SDK session: OpenAIResponsesCompactionSession and EncryptedSession
    # over SessionkeeperSession, through the hooks SQLiteSession gives them (issue 19).
    "openai-agents-wrappers": Suite(
        dist="openai-agents",
        files=(COMPACTION_SESSION, ENCRYPTED_SESSION),
        adapter="openai-agents",
        deselected={
            **{
                f"{COMPACTION_SESSION}::TestOpenAIResponsesCompactionSession::{name}[{how}]": (
                    f"{_INTERNALS}: injects a pausing sqlite3 connection through "
                    "_connections_lock, _connections and _get_connection"
                )
                for name in (
                    "test_settled_pop_failure_invalidates_response_chain",
                    "test_settled_clear_failure_invalidates_response_chain",
                )
                for how in ("cancelled", "error")
            },
            **{
                f"{ENCRYPTED_SESSION}::"
                f"test_encrypted_pop_authentication_is_atomic_with_concurrent_mutations[{op}]": (
                    f"{_INTERNALS}: reads its agent_messages table and takes SQLite's write "
                    "lock with sqlite3 (ours: tests/integrations/test_openai_agents_wrappers.py)"
                )
                for op in ("append", "clear")
            },
            f"{ENCRYPTED_SESSION}::"
            "test_encrypted_session_scan_budget_does_not_turn_redis_negative_limit_into_history": (
                "a RedisSession over fakeredis (not installed): no SQLiteSession in it"
            ),
            f"{ENCRYPTED_SESSION}::test_encrypted_pop_wrong_key_preserves_row_identity": (
                f"{_INTERNALS}: compares the rows of its agent_messages table read with sqlite3 "
                "(ours: tests/integrations/test_openai_agents_wrappers.py)"
            ),
        },
    ),
    # AdvancedSQLiteSession's branches, turns and usage (issue 19): its own tests, with
    # SessionkeeperSession in its place (test_framework_suite_advanced.py runs it).
    "openai-agents-advanced": Suite(
        dist="openai-agents",
        files=(ADVANCED_SESSION,),
        deselected=ADVANCED_DESELECTED,
    ),
    "langchain": Suite(
        dist="langchain-core",
        files=(
            "tests/unit_tests/chat_history/test_chat_history.py",
            "tests/unit_tests/runnables/test_history.py",
        ),
        deselected={
            "tests/unit_tests/chat_history/test_chat_history.py::test_chat_history_deprecated"
            "[InMemoryChatMessageHistoryAdapter]": (
                "asserts InMemoryChatMessageHistory's own docstring (it says 'deprecated')"
            ),
        },
        # Its addopts also name syrupy's --snapshot-warn-unused and --durations=5: no snapshot
        # test is run here, so syrupy is not installed; the strictness options stay.
        pytest_args=("-o", "addopts=--strict-markers --strict-config"),
    ),
}


def _sdist(dist: str, version: str) -> Path:
    """The sdist of ``dist`` at ``version``, from the cache or downloaded into it."""
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    for name in (f"{stem}-{version}.tar.gz", f"{dist}-{version}.tar.gz"):
        if (CACHE / name).is_file():
            return CACHE / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as partial:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", f"{dist}=={version}", "-d", partial,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        found = sorted(Path(partial).glob("*.tar.gz"))
        if done.returncode != 0 or len(found) != 1:
            pytest.fail(
                f"could not download the sdist of {dist}=={version} (needed to run its own "
                f"session tests): {' '.join(command)} exited {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
                pytrace=False,
            )
        target = CACHE / found[0].name
        os.replace(found[0], target)  # whole or absent, for runs side by side
    return target


def _extract(sdist: Path, into: Path) -> None:
    """The sdist's tests/ and pyproject.toml, as they are, under ``into``."""
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            _, _, inner = member.name.partition("/")
            if inner == "pyproject.toml" or inner.startswith("tests/"):
                member.name = inner
                members.append(member)
        archive.extractall(into, members=members, filter="data")


def _run_suite(name: str, db_url: str, tmp_path: Path) -> None:
    suite = SUITES[name]
    version = importlib.metadata.version(suite.dist)
    root = tmp_path / f"{suite.dist}-{version}"
    _extract(_sdist(suite.dist, version), root)
    for file in suite.files:
        assert (root / file).is_file(), f"{suite.dist} {version}'s sdist has no {file}"

    report = tmp_path / "report.xml"
    command = [
        sys.executable, "-m", "pytest", *suite.files,
        "-p", "framework_suite_plugin", "-p", "no:cacheprovider",
        f"--rootdir={root}", "-c", str(root / "pyproject.toml"),
        "-q", "-rfEs", f"--junitxml={report}", *suite.pytest_args,
    ]  # fmt: skip
    for node in suite.deselected:
        command += ["--deselect", node]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # The plugin's directory first, then the caller's path (a worktree's src/ given by
    # PYTHONPATH must be the sessionkeeper the suite runs, not the installed one).
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        SESSIONKEEPER_SUITE=suite.adapter or name,
        SESSIONKEEPER_SUITE_DB=db_url,
    )
    done = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
    )
    output = f"{done.stdout[-20000:]}\n{done.stderr[-5000:]}"
    assert done.returncode == 0, f"{suite.dist} {version}'s own tests failed:\n{output}"

    totals = ET.parse(report).getroot()
    testsuite = totals if totals.tag == "testsuite" else totals.find("testsuite")
    assert testsuite is not None
    counts = {k: int(testsuite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, (counts, output)
    assert passed > 0, output
    deselected = re.search(r"(\d+) deselected", done.stdout)
    assert deselected is not None and int(deselected.group(1)) == len(suite.deselected), (
        f"every deselected node id must name a test of {suite.dist} {version}:\n{output}"
    )
    where = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    print(f"{suite.dist} {version} on {where}: {passed} passed, {len(suite.deselected)} deselected")


def test_openai_agents_session_suite(file_db_url: str, tmp_path: Path) -> None:
    """The OpenAI Agents SDK's own SQLiteSession tests pass on SessionkeeperSession."""
    _run_suite("openai-agents", file_db_url, tmp_path)


def test_openai_agents_wrapper_suites(file_db_url: str, tmp_path: Path) -> None:
    """The OpenAI Agents SDK's own OpenAIResponsesCompactionSession and EncryptedSession
    tests pass with SessionkeeperSession underneath (in SQLiteSession's place)."""
    _run_suite("openai-agents-wrappers", file_db_url, tmp_path)


def test_langchain_chat_history_suite(file_db_url: str, tmp_path: Path) -> None:
    """langchain-core's own chat history and RunnableWithMessageHistory tests pass on
    SessionkeeperChatMessageHistory."""
    _run_suite("langchain", file_db_url, tmp_path)


def test_a_failed_download_fails_with_its_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No sdist, no pass: a download that fails (here: pip exits 1, offline) fails the test,
    naming what it ran and what pip said, and leaves nothing in the cache."""
    monkeypatch.setattr(sys.modules[__name__], "CACHE", tmp_path)

    def pip_fails(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(subprocess, "run", pip_fails)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)could not download.*No matching"):
        _sdist("openai-agents", "0.0.0")
    assert list(tmp_path.iterdir()) == []
