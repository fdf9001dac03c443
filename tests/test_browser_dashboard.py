"""The sessions dashboard in a real headless Chromium: prune days checked before anything is
sent, a session exported as a download, a transcript's own link; and the pages' headers and
HEAD answers from a real uvicorn server.

Runs as tests/test_browser.py does (a real server on a SQLite file, Debian's chromium through
Playwright).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import rawdb
from sessionkeeper.store.core import Store
from sessionkeeper.transfer.export import export_sessions
from test_browser import browser, db, server  # noqa: F401  (browser, server: fixtures)

pytestmark = pytest.mark.browser


async def _plant(store: Store) -> tuple[str, str]:
    """A conversation, and one session idle for 40 days (prunable)."""
    s = await store.create_session(agent_id="ops", title="Deploy notes", session_id="ops:deploy")
    await store.add_message(s.session_id, "user", "How do I roll back?")
    await store.add_message(s.session_id, "assistant", "Run:\n\n```sh\nkubectl rollout undo\n```")
    old = await store.create_session(title="Forgotten")
    await store.add_message(old.session_id, "user", "anyone?")
    await rawdb.execute(
        store,
        "UPDATE sessions SET updated_at = ? WHERE session_id = ?",
        rawdb.when(store, datetime.now(UTC) - timedelta(days=40)),
        old.session_id,
    )
    return s.session_id, old.session_id


async def _jsonl(store: Store, sid: str) -> str:
    out = io.StringIO()
    await export_sessions(store, out, session_ids=[sid])
    return out.getvalue()


def test_prune_days_export_and_a_link_to_one_transcript(
    server: tuple[str, str],  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    base, db_url = server
    sid, old = db(db_url, _plant)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pruned: list[str] = []
    page.on("request", lambda r: pruned.append(r.url) if "/prune" in r.url else None)

    # A transcript's link opens the dashboard on it; the URL follows what is shown.
    page.goto(f"{base}/sessions?id={sid}")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("Deploy notes")
    expect(page.locator("#detail-messages .msg")).to_have_count(2)
    expect(page.locator("#detail-messages pre code")).to_have_text("kubectl rollout undo\n")
    expect(page.locator("#detail-link")).to_have_attribute("href", "/sessions?id=ops%3Adeploy")
    page.click("#detail-close")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page).to_have_url(f"{base}/sessions")  # waits: the URL follows the page's state
    page.wait_for_load_state("networkidle")  # closing reloads the table: click the new rows
    page.click(f"#rows tr[data-session-id='{sid}']")
    expect(page.locator("#detail")).to_be_visible()
    # A loaded machine (the suite runs on two workers) can take seconds to answer.
    expect(page).to_have_url(f"{base}/sessions?id=ops%3Adeploy", timeout=20_000)
    expect(page.locator("#detail-title")).to_have_text("Deploy notes")
    page.reload()
    expect(page.locator("#detail-title")).to_have_text("Deploy notes")

    # Export: the session as `sessionkeeper export` writes it, under its id's name.
    with page.expect_download() as download:
        page.click("#detail-export")
    file = download.value
    assert file.suggested_filename == "ops_deploy.jsonl"
    assert Path(file.path()).read_text() == db(db_url, lambda s: _jsonl(s, sid))

    # Prune: days must be whole, from 1; anything else is refused here, and nothing is sent.
    expect(page.locator("#purge-ghosts")).to_be_visible()  # open mode: an admin
    for bad in ("0.0001", "1.5", "0", "-2", "", "99999"):
        page.fill("#prune-days", bad)
        page.click("#prune-check")
        expect(page.locator("#maint-result")).to_have_text(
            "Days must be a whole number from 1 to 36,600."
        )
        expect(page.locator("#prune-days")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#prune-confirm")).to_be_hidden()
    assert pruned == []
    page.fill("#prune-days", "30")
    page.click("#prune-check")
    expect(page.locator("#maint-result")).to_have_text(
        "1 session (1 message) idle for more than 30 days would be deleted."
    )
    expect(page.locator("#prune-days")).to_have_attribute("aria-invalid", "false")
    assert len(pruned) == 1 and "dry_run=true" in pruned[0]
    assert db(db_url, lambda s: s.session_exists(old))
    assert errors == []


def test_pages_and_probes_answer_head_and_refuse_frames_from_a_real_server(
    server: tuple[str, str],  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    base, _ = server
    with httpx.Client(base_url=base) as client:
        for path in ("/healthz", "/readyz", "/chat", "/sessions"):
            head = client.head(path)
            assert head.status_code == 200 and head.content == b"", path
        for path in ("/chat", "/sessions", "/docs"):
            r = client.get(path)
            assert r.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path

    # In Chromium: another site's frame of the chat page stays empty.
    page = browser.new_page()
    page.set_content(f'<iframe id="f" src="{base}/chat" width="400" height="300"></iframe>')
    page.wait_for_timeout(1000)
    frame = page.frame_locator("#f")
    assert frame.locator("#composer").count() == 0
