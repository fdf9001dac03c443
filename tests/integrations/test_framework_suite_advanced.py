"""The OpenAI Agents SDK's own AdvancedSQLiteSession tests against SessionkeeperSession.

A file of its own (the suite is the longest of the frameworks'), so that ``pytest -n 2
--dist loadfile`` runs it beside test_framework_suites.py; how suites run, and why tests are
deselected: test_framework_suites.py.
"""

from __future__ import annotations

from pathlib import Path

from test_framework_suites import _run_suite


def test_openai_agents_advanced_session_suite(file_db_url: str, tmp_path: Path) -> None:
    """AdvancedSQLiteSession's branch, turn and usage tests pass on SessionkeeperSession."""
    _run_suite("openai-agents-advanced", file_db_url, tmp_path)
