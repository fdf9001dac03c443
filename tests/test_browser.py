"""The chat page and the sessions dashboard in a real headless Chromium, against a real server.

The app runs under uvicorn in a background thread on a temporary SQLite file, with the
offline echo model. Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright; no
browser is downloaded. The screenshots used in the README (docs/*.png) are rewritten when
SESSIONKEEPER_UPDATE_SCREENSHOTS=1; otherwise they go to a temporary directory, so a test run
leaves the working tree clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import rawdb
from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SESSIONKEEPER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = (
    Path(__file__).resolve().parent.parent / "docs"
    if os.environ.get("SESSIONKEEPER_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="sk-screens-"))
)


@contextlib.contextmanager
def running_server(db_url: str, **settings_: Any) -> Iterator[str]:
    """The base URL of a real sessionkeeper server on a free local port (``settings_``: more
    settings, e.g. ``llm_base_url`` of a tests/fakellm.py model)."""
    settings = Settings(database_url=db_url, maintenance=False, **settings_)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, database URL): a server on a fresh SQLite file, no API keys (open mode)."""
    db_url = f"sqlite:///{tmp_path / 'browser.db'}"
    with running_server(db_url) as base:
        yield base, db_url


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def db(db_url: str, work: Any) -> Any:
    """Run ``await work(store)`` against the database with a Store of our own (in a thread of
    its own: Playwright's sync API keeps an event loop running in this one)."""

    async def run() -> Any:
        store = await Store.open(db_url)
        try:
            return await work(store)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


async def _snapshot(store: Store) -> list[tuple[str, list[tuple[str, str]]]]:
    page = await store.list_sessions(limit=100)
    return [
        (s.session_id, [(m.role, m.content) for m in await store.get_messages(s.session_id)])
        for s in page.items
    ]


async def _plant(store: Store) -> str:
    """Some history for the dashboard, and one empty session 20 minutes old (a ghost)."""
    now = datetime.now(UTC)
    for agent, title, n, age in [
        ("ops", "Nightly backup report", 2, timedelta(days=1)),
        ("research", "Literature review: context windows", 3, timedelta(days=3)),
    ]:
        s = await store.create_session(agent_id=agent, title=title)
        for i in range(n):
            await store.add_message(s.session_id, "user", f"{title}: question {i + 1}")
            await store.add_message(s.session_id, "assistant", f"Answer {i + 1} about {title}.")
        then = rawdb.when(store, now - age)
        await rawdb.execute(
            store,
            "UPDATE sessions SET updated_at = ?, last_message_at = ? WHERE session_id = ?",
            then,
            then,
            s.session_id,
        )
    ghost = await store.create_session(agent_id="main")
    await rawdb.execute(
        store,
        "UPDATE sessions SET created_at = ? WHERE session_id = ?",
        rawdb.when(store, now - timedelta(minutes=20)),
        ghost.session_id,
    )
    return ghost.session_id


def test_chat_page_and_dashboard_in_chromium(server: tuple[str, str], browser: Any) -> None:
    from playwright.sync_api import expect

    base, db_url = server
    DOCS.mkdir(exist_ok=True)
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Visiting the chat page creates nothing.
    page.goto(f"{base}/chat")
    expect(page.locator("#model")).to_have_text("offline echo model — no LLM configured")
    page.wait_for_timeout(2000)
    assert db(db_url, _snapshot) == []

    # The first message creates exactly one session: the message and the echo reply.
    page.fill("#input", "Hello from the browser")
    page.click("#send")
    expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
    snap = db(db_url, _snapshot)
    assert len(snap) == 1
    sid, stored = snap[0]
    assert [role for role, _ in stored] == ["user", "assistant"]
    assert stored[0][1] == "Hello from the browser"
    assert stored[1][1].startswith("[echo model — no LLM configured] You said: Hello")
    assert page.url.endswith(f"/chat?session={sid}")

    # After a reload the conversation is in the sidebar and its transcript shows.
    page.reload()
    item = page.locator(f".session-item[data-session-id='{sid}']")
    expect(item).to_contain_text("Hello from the browser")
    expect(page.locator(".session-group h3").first).to_have_text("Today")
    expect(page.locator(".msg.user .bubble")).to_have_text(["Hello from the browser"])
    expect(page.locator(".msg.assistant .bubble")).to_contain_text(["You said: Hello"])

    page.fill("#input", "How is a context window chosen?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
    expect(page.locator(".msg.assistant")).to_have_count(2)
    ghost = db(db_url, _plant)
    page.reload()
    # The ghost has no messages: the chat sidebar lists conversations only.
    expect(page.locator(".session-item")).to_have_count(3)
    groups = page.locator(".session-group h3")
    expect(groups).to_have_text(["Today", "Yesterday", "This week"])
    page.screenshot(path=str(DOCS / "chat.png"))

    # The dashboard lists the session, counts the planted ghost and purges it.
    page.goto(f"{base}/sessions")
    row = page.locator(f"#rows tr[data-session-id='{sid}']")
    expect(row).to_contain_text("Hello from the browser")
    expect(page.locator("#st-ghosts")).to_have_text("1")
    expect(page.locator("#purge-ghosts")).to_have_text("Purge ghosts (1)")
    row.click()
    expect(page.locator("#detail-messages .msg")).to_have_count(4)
    page.wait_for_timeout(600)  # let the smooth scroll to the transcript finish
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(DOCS / "sessions.png"), full_page=True)

    page.click("#purge-ghosts")
    expect(page.locator("#maint-result")).to_have_text("Purged 1 ghost session.")
    expect(page.locator("#purge-ghosts")).to_have_text("Purge ghosts (0)")
    remaining = {s for s, _ in db(db_url, _snapshot)}
    assert ghost not in remaining and sid in remaining and len(remaining) == 3

    # Search narrows the table through the API's search= parameter.
    page.fill("#search", "backup")
    expect(page.locator("#rows tr.row")).to_have_count(1)
    expect(page.locator("#rows tr.row")).to_contain_text("Nightly backup report")
    assert errors == []


async def _stale_and_chat(store: Store) -> tuple[str, str]:
    """One session idle for 40 days (prunable) and one recent conversation."""
    old = await store.create_session(title="Forgotten thread")
    await store.add_message(old.session_id, "user", "anyone there?")
    await rawdb.execute(
        store,
        "UPDATE sessions SET updated_at = ? WHERE session_id = ?",
        rawdb.when(store, datetime.now(UTC) - timedelta(days=40)),
        old.session_id,
    )
    recent = await store.create_session(title="Recent talk")
    await store.add_message(recent.session_id, "user", "hi")
    return old.session_id, recent.session_id


def test_chat_actions_and_prune_in_chromium(server: tuple[str, str], browser: Any) -> None:
    from playwright.sync_api import expect

    base, db_url = server
    old, recent = db(db_url, _stale_and_chat)
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    # The rename prompt gets a new title; the end and delete confirmations are accepted.
    page.on("dialog", lambda d: d.accept("Renamed talk") if d.type == "prompt" else d.accept())

    # Open a conversation, then "New chat" only clears the view.
    page.goto(f"{base}/chat?session={recent}")
    expect(page.locator(".msg.user .bubble")).to_have_text(["hi"])
    page.click("#new-chat")
    expect(page.locator("#empty-state")).to_be_visible()
    assert page.url.endswith("/chat")
    page.wait_for_timeout(500)
    count = db(db_url, lambda s: s.list_sessions())
    assert count.total == 2

    # Rename, end (the composer is then disabled), delete.
    page.click(f".session-item[data-session-id='{recent}']")
    page.click("#rename")
    expect(page.locator("#conv-title")).to_have_text("Renamed talk")
    page.click("#end")
    expect(page.locator("#input")).to_be_disabled()
    got = db(db_url, lambda s: s.get_session(recent))
    assert got.title == "Renamed talk" and got.status == "ended"
    page.click("#delete")
    expect(page.locator("#notice")).to_have_text("Conversation deleted.")
    expect(page.locator(f".session-item[data-session-id='{recent}']")).to_have_count(0)

    # Prune: a dry run first says what would go; only the confirm button deletes.
    page.goto(f"{base}/sessions")
    expect(page.locator("#st-stale")).to_have_text("1")
    page.click("#prune-check")
    expect(page.locator("#maint-result")).to_have_text(
        "1 session (1 message) idle for more than 30 days would be deleted."
    )
    assert db(db_url, lambda s: s.get_session(old)).session_id == old  # still there
    page.click("#prune-confirm")
    expect(page.locator("#maint-result")).to_have_text("Pruned 1 session (1 message).")
    assert db(db_url, lambda s: s.list_sessions()).total == 0


async def _admin_key(store: Store) -> str:
    _, token = await store.keys.create(admin=True, name="browser")
    return token


def test_pages_ask_once_for_an_api_key_and_send_it(tmp_path: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    pytest.importorskip("sessionkeeper.api.auth", reason="the API-key layer is not in this tree")

    db_url = f"sqlite:///{tmp_path / 'keys.db'}"
    token = db(db_url, _admin_key)
    with running_server(db_url) as base:
        page = browser.new_page()
        prompts: list[str] = []

        def answer(dialog: Any) -> None:
            prompts.append(dialog.message)
            dialog.accept(token)

        page.on("dialog", answer)
        sent: list[str | None] = []
        page.on(
            "request",
            lambda r: (
                sent.append(r.headers.get("authorization")) if "/api/engine/" in r.url else None
            ),
        )
        page.goto(f"{base}/chat")
        expect(page.locator("#model")).to_have_text("offline echo model — no LLM configured")
        expect(page.locator("#sidebar-empty")).to_be_visible()  # the list loaded too
        page.fill("#input", "with a key")
        page.click("#send")
        expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
        assert len(prompts) == 1 and "API key" in prompts[0]
        assert page.evaluate("localStorage.getItem('sessionkeeper.apiKey')") == token
        assert sent[-1] == f"Bearer {token}"

        # Remembered: another page asks nothing and every call carries the key.
        sent.clear()
        page.goto(f"{base}/sessions")
        expect(page.locator("#st-sessions")).to_have_text("1")
        assert len(prompts) == 1 and sent and set(sent) == {f"Bearer {token}"}
