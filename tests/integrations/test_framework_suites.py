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
- OpenAI Agents SDK: tests/extensions/memory/test_advanced_sqlite_session.py, its
  ``AdvancedSQLiteSession`` → ``SessionkeeperSession.from_url`` (run by
  test_framework_suite_advanced.py);
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
_ADV = "AdvancedSQLiteSession internals our class has no counterpart for"
_ADVANCED_REASONS = {
    # Its SQLite tables, read or written with SQL (ours are the store's sessions/messages).
    f"{_ADV}: reads or writes its message_structure / turn_usage / branch_reservations "
    "tables with SQL": (
        "test_advanced_session_respects_custom_table_names",
        "test_tool_usage_reads_legacy_shell_and_patch_names",
        "test_branch_reservations_migrate_existing_populated_branches",
        "test_legacy_branch_ids_are_backfilled_before_destructive_operations",
        "test_legacy_destructive_noops_leave_database_unlocked",
        "test_delete_branch_removes_branch_only_messages",
        "test_delete_branch_keeps_messages_still_referenced_by_another_branch",
        "test_orphan_cleanup_uses_set_based_delete_for_many_messages",
        "test_get_items_limit_skips_corrupt_newest_rows",
        "test_concurrent_add_items_preserves_message_structure_for_file_db",
        "test_clear_session_removes_structure_and_usage_metadata",
        "test_pop_item_removes_its_structure_row",
        "test_pop_item_removes_turn_usage_only_when_turn_emptied",
        "test_pop_item_respects_current_branch_and_keeps_shared_messages",
        "test_pop_item_deletes_shared_copied_message_only_when_unreferenced",
        "test_store_run_usage_skips_when_current_branch_has_no_turn",
        "test_clear_session_resets_current_branch_to_main",
        "test_default_read_does_not_initialize_clear_generation_table",
        "test_pop_item_rolls_back_on_failure_after_earlier_delete",
        "test_clear_session_rolls_back_on_failure_after_earlier_delete",
        "test_failed_usage_write_rolls_back_cached_connection",
    ),
    # Its structure-table ownership checks (sessions_table / messages_table, create_tables).
    f"{_ADV}: its per-file structure-table ownership (custom sessions_table/messages_table)": (
        "test_structure_initialization_failure_invalidates_connection",
        "test_structure_tables_reject_a_second_base_table_pair",
        "test_structure_tables_reject_changed_sessions_with_shared_messages",
        "test_structure_tables_reject_changed_messages_with_shared_sessions",
        "test_structure_tables_accept_equivalent_identifier_casing",
        "test_structure_tables_accept_quoted_custom_session_table",
        "test_identifier_resolution_leaves_connection_authorized",
        "test_structure_tables_reject_distinct_non_ascii_identifiers",
        "test_no_create_session_rejects_a_database_without_an_owner",
        "test_no_create_session_rejects_owner_metadata_without_base_tables",
        "test_structure_tables_reject_an_ownerless_layout",
        "test_structure_tables_reject_malformed_owner_layouts",
        "test_structure_tables_accept_equivalent_child_column_casing",
        "test_concurrent_structure_table_claims_leave_one_coherent_owner",
    ),
    # Its private methods overridden or patched to inject failures.
    f"{_ADV}: overrides _insert_structure_metadata / _reserve_branch_id or patches "
    "_update_turn_usage_internal to inject a failure": (
        "test_add_items_rolls_back_messages_when_structure_metadata_fails",
        "test_add_items_can_retry_after_structure_metadata_failure",
        "test_add_items_failure_preserves_existing_history",
        "test_add_items_rolls_back_partial_structure_metadata_write",
        "test_failed_branch_reservation_rolls_back_and_allows_retry",
        "test_usage_tracking_failure_identity_follows_model_data_policy",
        "test_queued_turn_mutation_releases_later_usage_capture",
    ),
    # Its sqlite3 connections and worker threads, paused or gated by name.
    f"{_ADV}: pauses its sqlite3 connections (_connections, _get_connection) or gates its "
    "worker functions by name through asyncio.to_thread": (
        "test_add_items_rollback_failure_invalidates_connection",
        "test_post_commit_cancellation_propagates_after_known_mutation_outcome",
        "test_auxiliary_mutation_cancellation_waits_for_commit",
        "test_pop_item_uses_branch_snapshot_when_branch_switches_concurrently",
        "test_stale_switch_after_clear_does_not_repoint_to_deleted_branch",
        "test_stale_create_branch_after_clear_does_not_repoint",
        "test_clear_before_branch_transaction_prevents_stale_reservation",
        "test_store_run_usage_cancellation_during_capture_waits_for_commit",
        "test_store_run_usage_keeps_target_while_capture_is_waiting",
        "test_store_run_usage_keeps_turn_when_history_changes_during_capture",
        "test_add_captures_coherent_branch_after_clear_publication",
        "test_queued_add_keeps_selected_branch",
        "test_queued_append_cannot_resurrect_deleted_branch",
        "test_turn_ordering_survives_reuse_on_another_event_loop",
        "test_stale_store_run_usage_skipped_when_turn_removed_by_pop",
        "test_stale_store_run_usage_not_recorded_against_reused_turn_number",
        "test_store_run_usage_survives_unrelated_branch_deletion",
        "test_switch_validation_cancellation_waits_for_generation_commit",
    ),
    # Child processes running a subclass that instruments its SQLite transactions.
    f"{_ADV}: child processes instrument its BEGIN IMMEDIATE / _locked_connection": (
        "test_branch_allocation_is_serialized_across_processes",
        "test_pop_item_claim_is_unique_across_processes",
    ),
    f"{_ADV}: holds its process-local database lock (_lock)": (
        "test_store_run_usage_waits_for_database_lock_off_event_loop",
    ),
    "expects its own 'is closed' error; ours closes the store it opened (reopened on use)": (
        "test_advanced_sqlite_session_closed_rejects_empty_add_items",
    ),
    "names a session 'search', an id the store reserves (a route of its REST API)": (
        "test_find_turns_by_content_filters_session_and_branch",
    ),
}
# Each test id, with its parameters (the deselected count is checked against this).
_ADVANCED_IDS = {
    "test_legacy_branch_ids_are_backfilled_before_destructive_operations": (
        "clear", "delete", "pop"),
    "test_legacy_destructive_noops_leave_database_unlocked": ("missing_delete", "empty_pop"),
    "test_structure_tables_accept_quoted_custom_session_table": ("False", "True"),
    "test_structure_tables_reject_an_ownerless_layout": ("False", "True"),
    "test_structure_tables_accept_equivalent_child_column_casing": ("False", "True"),
    "test_structure_tables_reject_malformed_owner_layouts": tuple(
        f"message_foreign_keys{n}-FOREIGN KEY (session_id) REFERENCES {table}(session_id)-"
        f"{error}-{create}"
        for n, table, error in (
            (0, "agent_sessions", "exactly one owner foreign key"),
            (1, "agent_sessions", "already belongs"),
            (2, "wrong_sessions", "already belongs"),
        )
        for create in ("False", "True")
    ),
    "test_usage_tracking_failure_identity_follows_model_data_policy": (
        "True-False", "False-True", "False-False"),
    "test_queued_turn_mutation_releases_later_usage_capture": ("failure", "cancel"),
    "test_post_commit_cancellation_propagates_after_known_mutation_outcome": (
        "add", "pop", "clear"),
    "test_auxiliary_mutation_cancellation_waits_for_commit": (
        "create_branch", "delete_branch", "cleanup", "usage"),
    "test_store_run_usage_keeps_target_while_capture_is_waiting": ("switch", "clear"),
    "test_store_run_usage_keeps_turn_when_history_changes_during_capture": (
        "append", "replace"),
    "test_add_captures_coherent_branch_after_clear_publication": ("clear", "refresh"),
    "test_queued_add_keeps_selected_branch": (
        "switch-1", "switch-2", "clear-1", "clear-2"),
    "test_queued_append_cannot_resurrect_deleted_branch": ("False", "True"),
    "test_branch_allocation_is_serialized_across_processes": (
        "1-None", "1-shared_branch", "3-None", "3-shared_branch"),
}  # fmt: skip
ADVANCED_DESELECTED: dict[str, str] = {
    f"{ADVANCED_SESSION}::{name}{f'[{param}]' if param else ''}": why
    for why, names in _ADVANCED_REASONS.items()
    for name in names
    for param in _ADVANCED_IDS.get(name, (None,))
}

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
