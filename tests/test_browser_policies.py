"""The dashboard's retention policies panel in a real headless Chromium, against a real server
(issue 20, item 5): an admin key sets "delete after 1 day" for agent A through the form, sees
it listed, previews a run that names A's old session and not B's, then runs it; a server
error is shown; a key that is not an admin's never sees the panel.

Runs as tests/test_browser.py does (a real server on a SQLite file, Debian's chromium through
Playwright).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import rawdb
from sessionkeeper.store.core import Store
from test_browser import browser, db, running_server  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.browser


async def _plant(store: Store) -> dict[str, str]:
    """Keys (an admin's, one of agent A), and sessions: A's and B's idle for 3 days, A's new."""
    made: dict[str, str] = {}
    _, made["admin"] = await store.keys.create(admin=True, name="admin")
    _, made["agent"] = await store.keys.create(agent_ids=["A"], name="a-only")
    for name, agent in (("a_old", "A"), ("b_old", "B"), ("a_new", "A")):
        s = await store.create_session(agent_id=agent, session_id=f"{agent}-{name}")
        await store.add_message(s.session_id, "user", f"hello from {name}")
        made[name] = s.session_id
    then = rawdb.when(store, datetime.now(UTC) - timedelta(days=3))
    for sid in (made["a_old"], made["b_old"]):
        await rawdb.execute(
            store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", then, sid
        )
    return made


def _open(browser: Any, base: str, token: str, sent: list[tuple[str, str]]) -> Any:  # noqa: F811
    """The dashboard under a key; every request to the policies routes goes into ``sent``."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.add_init_script(f"localStorage.setItem('sessionkeeper.apiKey', {token!r})")
    page.on("request", lambda r: sent.append((r.method, r.url)) if "/policies" in r.url else None)
    page.goto(f"{base}/sessions")
    return page


def test_an_admin_sets_previews_and_runs_a_policy_others_never_see_it(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    db_url = f"sqlite:///{tmp_path / 'policies.db'}"
    made = db(db_url, _plant)
    with running_server(db_url) as base:
        sent: list[tuple[str, str]] = []
        page = _open(browser, base, made["admin"], sent)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        panel = page.locator("#policies")
        expect(panel).to_have_attribute("data-policies", "true")
        expect(panel).to_be_visible()
        expect(page.locator("#policy-list li")).to_have_text(
            ["No policy: every session is kept until deleted."]
        )
        result = page.locator("#policy-result")

        # A rule that is not a whole number is refused here; nothing is sent.
        page.fill("#policy-agent", "A")
        page.fill("#policy-after", "1.5")
        page.click("#policy-save")
        expect(result).to_have_text(
            "Delete after (days) must be a whole number from 1 to 36,600, or empty (off)."
        )
        expect(page.locator("#policy-after")).to_have_attribute("aria-invalid", "true")
        assert not [m for m, _ in sent if m == "PUT"]

        # A bad agent id: the server's error, in the notice style.
        page.fill("#policy-agent", "no spaces allowed")
        page.fill("#policy-after", "1")
        page.click("#policy-save")
        expect(result).to_have_class("notice error")
        expect(result).to_contain_text("Could not save the policy: ")
        expect(page.locator("#policy-agent")).to_have_attribute("aria-invalid", "true")

        # "Delete after 1 day" for A, through the form; listed in words.
        page.fill("#policy-agent", "A")
        page.click("#policy-save")
        expect(result).to_have_text("Policy of A saved: delete after 1 day.")
        row = page.locator("#policy-list li[data-agent-id='A']")
        expect(row.locator(".policy-rules-text")).to_have_text("delete after 1 day")
        expect(row.locator(".policy-when")).to_have_text("updated just now")
        assert [(p.agent_id, p.delete_after_days) for p in db(db_url, _policies)] == [("A", 1)]

        # The preview names A's old session, not B's (no policy) nor A's new one; keeps all.
        page.click("#policy-preview")
        expect(result).to_have_text("A run now would end 0 sessions and delete 1 session.")
        rule = page.locator(".policy-rule[data-agent-id='A'][data-rule='delete_after']")
        expect(rule).to_contain_text("A · delete after 1 day: would delete 1 session")
        expect(rule.locator(".policy-ids a")).to_have_text([made["a_old"]])
        listed = page.locator("#policy-rules").inner_text()
        assert made["b_old"] not in listed and made["a_new"] not in listed
        assert all(db(db_url, lambda s: _exist(s, made)).values())

        # Run now, behind a confirm: A's old session goes, the rest stay.
        page.once("dialog", lambda d: d.accept())
        page.click("#policy-run")
        expect(result).to_have_text("Ended 0 sessions, deleted 1 session.")
        assert db(db_url, lambda s: _exist(s, made)) == {
            "a_old": False,
            "b_old": True,
            "a_new": True,
        }
        assert ("POST", f"{base}/api/engine/policies/run?dry_run=true") in sent
        assert errors == []

        # A key of agent A is no admin: no panel, and the policies are never asked for.
        asked: list[tuple[str, str]] = []
        page = _open(browser, base, made["agent"], asked)
        expect(page.locator("#policies")).to_have_attribute("data-policies", "false")
        expect(page.locator("#policies")).to_be_hidden()
        assert asked == []


async def _policies(store: Store) -> Any:
    return await store.get_policies()


async def _exist(store: Store, made: dict[str, str]) -> dict[str, bool]:
    return {k: await store.session_exists(made[k]) for k in ("a_old", "b_old", "a_new")}
