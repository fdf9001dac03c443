"""The chat page in a real headless Chromium: Markdown replies rendered safely, a failed model
call shown once with Retry, the agent picker under scoped keys, and the sidebar's search and
paging.

Runs as tests/test_browser.py does (a real server on a SQLite file, Debian's chromium through
Playwright); the model is tests/fakellm.py, a real local OpenAI-compatible server whose reply
or failure each test sets. Every test also fails on any console error: a script or style the
page's Content-Security-Policy refused shows there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakellm import FakeLLM, run_fake_llm
from sessionkeeper.store.core import Store
from test_browser import browser, db, running_server  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.browser

MARKDOWN_REPLY = """Here is the plan:

- first **step**
- second step

```python
print("hi")  # a comment
```

| name | value |
|------|-------|
| a    | 1     |

Run `make test`, see [the docs](https://example.com/docs).

<script>alert(1)</script>
<img src=x onerror="alert(2)">
[a trap](javascript:alert(3)) and ![pixel](https://tracker.example/p.png)"""


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm(reply="ok") as server:
        yield server


@pytest.fixture
def chat_server(tmp_path: Path, fake: FakeLLM) -> Iterator[tuple[str, str]]:
    """(base URL, database URL): a server whose model is ``fake``; no API keys (open)."""
    db_url = f"sqlite:///{tmp_path / 'chat.db'}"
    with running_server(db_url, llm_base_url=fake.base_url, llm_model="fake-model") as base:
        yield base, db_url


def watch(page: Any) -> tuple[list[str], list[str]]:
    """(console and page errors, dialogs shown): both must stay empty."""
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return errors, dialogs


async def _turns(store: Store) -> list[tuple[str, str, list[tuple[str, str]]]]:
    page = await store.list_sessions(limit=100)
    return [
        (
            s.session_id,
            s.agent_id,
            [(m.role, m.content) for m in await store.get_messages(s.session_id)],
        )
        for s in page.items
    ]


def test_a_markdown_reply_renders_and_html_from_the_model_stays_text(
    chat_server: tuple[str, str],
    fake: FakeLLM,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    base, db_url = chat_server
    fake.options.reply = MARKDOWN_REPLY
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    errors, dialogs = watch(page)
    page.goto(f"{base}/chat")
    page.fill("#input", "plan it")
    page.click("#send")
    reply = page.locator(".msg.assistant[data-state=done] .bubble")
    expect(reply).to_have_count(1)

    def check(bubble: Any) -> None:
        expect(bubble.locator("ul > li")).to_have_text(["first step", "second step"])
        expect(bubble.locator("li strong")).to_have_text("step")
        expect(bubble.locator("pre > code")).to_have_text('print("hi")  # a comment\n')
        expect(bubble.locator(".code-lang")).to_have_text("python")
        expect(bubble.locator("table td")).to_have_text(["a", "1"])
        expect(bubble.locator("p code")).to_have_text("make test")
        link = bubble.locator("a", has_text="the docs")
        expect(link).to_have_attribute("href", "https://example.com/docs")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
        # The model's HTML is text on the page, never elements.
        expect(bubble).to_contain_text("<script>alert(1)</script>")
        expect(bubble).to_contain_text('<img src=x onerror="alert(2)">')
        assert bubble.locator("script, img, iframe, [onerror]").count() == 0
        # No javascript: link, and no image fetched from elsewhere.
        expect(bubble).to_contain_text("[a trap](javascript:alert(3))")
        assert bubble.locator("a[href^='javascript']").count() == 0
        expect(bubble.locator("a", has_text="pixel")).to_have_attribute(
            "href", "https://tracker.example/p.png"
        )

    check(reply)
    # The code block's copy button puts exactly the code on the clipboard.
    reply.locator("button.copy-code").click()
    expect(reply.locator("button.copy-code")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'print("hi")  # a comment\n'

    # Stored as the model sent it; shown the same way from history and in the dashboard.
    ((sid, _agent, stored),) = db(db_url, _turns)
    assert stored == [("user", "plan it"), ("assistant", MARKDOWN_REPLY)]
    page.reload()
    check(page.locator(".msg.assistant .bubble"))
    page.goto(f"{base}/sessions?id={sid}")
    check(page.locator("#detail-messages .msg.assistant .bubble"))
    # What people type stays as typed.
    expect(page.locator("#detail-messages .msg.user .bubble")).to_have_text("plan it")
    page.wait_for_timeout(300)  # a late alert() would show now
    assert dialogs == [] and errors == []


def test_a_failed_model_call_shows_once_and_retry_answers_without_a_second_user_turn(
    chat_server: tuple[str, str],
    fake: FakeLLM,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    base, db_url = chat_server
    page = browser.new_page()
    errors, _ = watch(page)
    page.goto(f"{base}/chat")
    expect(page.locator("#model")).to_have_text("model: fake-model")

    # The model fails at once: the error once, no empty reply bubble, a Retry button.
    fake.options.fail_status = 503
    page.fill("#input", "are you there?")
    page.click("#send")
    expect(page.locator(".turn-error .retry")).to_be_visible()
    expect(page.get_by_text("the fake model is failing on purpose")).to_have_count(1)
    expect(page.locator(".msg.assistant")).to_have_count(0)
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator(".msg.user .bubble")).to_have_text(["are you there?"])
    ((sid, _agent, stored),) = db(db_url, _turns)
    assert stored == [("user", "are you there?")]

    # Retry: the reply comes; the user's message is stored once.
    fake.options.fail_status = None
    fake.options.reply = "Yes, here."
    page.click(".turn-error .retry")
    expect(page.locator(".msg.assistant[data-state=done] .bubble")).to_have_text("Yes, here.")
    expect(page.locator(".turn-error")).to_have_count(0)
    assert db(db_url, _turns)[0][2] == [("user", "are you there?"), ("assistant", "Yes, here.")]
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "are you there?"}]

    # Cut off mid-reply: the text stays, marked partial, the error shown once (on the reply).
    fake.options.reply = "one two three four five six seven eight"
    fake.options.abort_after = 2
    page.fill("#input", "count")
    page.click("#send")
    partial = page.locator(".msg.assistant[data-state=error]")
    expect(partial.locator(".badge.warn")).to_have_text("partial")
    expect(partial.locator(".bubble")).to_have_text("one two three four")
    expect(page.locator(".turn-error .retry")).to_be_visible()
    expect(page.locator(".turn-error .msg-error")).to_have_count(0)
    expect(page.locator(".msg-error")).to_have_count(1)
    expect(page.locator("#notice")).to_be_hidden()

    # After a reload the unanswered turn can still be retried; the answer replaces the partial.
    page.reload()
    expect(page.locator(".msg.assistant .badge.warn")).to_have_count(1)
    fake.options.abort_after = None
    page.click(".turn-error .retry")
    expect(page.locator(".msg.assistant[data-state=done] .bubble")).to_have_text(
        "one two three four five six seven eight"
    )
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".badge.warn")).to_have_count(0)
    assert db(db_url, _turns)[0][2] == [
        ("user", "are you there?"),
        ("assistant", "Yes, here."),
        ("user", "count"),
        ("assistant", "one two three four five six seven eight"),
    ]
    assert errors == []


async def _keys(store: Store) -> dict[str, str]:
    made = {}
    for name, agents in (("alpha", ["alpha"]), ("two", ["alpha", "beta"])):
        _, made[name] = await store.keys.create(agent_ids=agents, name=name)
    _, made["admin"] = await store.keys.create(admin=True, name="admin")
    return made


def _with_key(browser: Any, base: str, token: str) -> Any:  # noqa: F811
    page = browser.new_page()
    page.add_init_script(f"localStorage.setItem('sessionkeeper.apiKey', {token!r})")
    page.goto(f"{base}/chat")
    return page


def test_the_page_starts_chats_for_the_keys_agents(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    db_url = f"sqlite:///{tmp_path / 'keys.db'}"
    keys = db(db_url, _keys)
    with running_server(db_url) as base:
        # A key of one agent: no picker; the chat is that agent's (was: 403 for "main").
        page = _with_key(browser, base, keys["alpha"])
        errors, dialogs = watch(page)
        expect(page.locator("#model")).to_contain_text("echo")
        page.fill("#input", "hello from alpha")
        page.click("#send")
        expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
        expect(page.locator("#agent-pick")).to_be_hidden()
        assert [(a, m[0][1]) for _, a, m in db(db_url, _turns)] == [("alpha", "hello from alpha")]

        # A key of two agents: the picker offers exactly them; the chosen one is sent.
        page = _with_key(browser, base, keys["two"])
        sent: list[Any] = []
        page.on(
            "request", lambda r: sent.append(r.post_data_json) if "chat/stream" in r.url else None
        )
        expect(page.locator("#agent-pick")).to_be_visible()
        expect(page.locator("#agent option")).to_have_text(["alpha", "beta"])
        page.select_option("#agent", "beta")
        page.fill("#input", "hello from beta")
        page.click("#send")
        expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
        assert sent == [{"content": "hello from beta", "agent_id": "beta"}]
        expect(page.locator("#agent-pick")).to_be_hidden()  # the open chat is beta's
        expect(page.locator("#conv-meta")).to_contain_text("beta")
        # Its sidebar lists its agents' conversations only.
        expect(page.locator(".session-item")).to_have_count(2)

        # An admin key: the agents that have sessions, and any other by name.
        page = _with_key(browser, base, keys["admin"])
        expect(page.locator("#agent option")).to_have_text(
            ["main", "alpha", "beta", "Other agent…"]
        )
        page.once("dialog", lambda d: d.accept("gamma"))
        page.select_option("#agent", label="Other agent…")
        expect(page.locator("#agent")).to_have_value("gamma")
        page.fill("#input", "hello from gamma")
        page.click("#send")
        expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
        agents = sorted(a for _, a, _ in db(db_url, _turns))
        assert agents == ["alpha", "beta", "gamma"]

        # The dashboard shows the maintenance buttons only to a key that may use them.
        for token, shown in ((keys["two"], False), (keys["admin"], True)):
            page = _with_key(browser, base, token)
            page.goto(f"{base}/sessions")
            expect(page.locator(".maintenance")).to_have_attribute(
                "data-maintenance", str(shown).lower()
            )
            assert page.locator("#purge-ghosts").is_visible() is shown
            assert page.locator("#prune-check").is_visible() is shown
        assert errors == [] and dialogs == []


async def _many(store: Store) -> None:
    for i in range(44):
        s = await store.create_session(title=f"Topic {i:02d}")
        await store.add_message(s.session_id, "user", f"question number {i}")
    s = await store.create_session(title="Fruit")
    await store.add_message(s.session_id, "user", "I like kiwis")


def test_the_sidebar_loads_in_pages_and_searches_on_the_server(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    db_url = f"sqlite:///{tmp_path / 'many.db'}"
    db(db_url, _many)
    with running_server(db_url) as base:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors, _ = watch(page)
        listed: list[str] = []
        page.on(
            "request",
            lambda r: listed.append(r.url) if "/api/engine/sessions?" in r.url else None,
        )
        page.goto(f"{base}/chat")
        expect(page.locator(".session-item")).to_have_count(30)
        expect(page.locator("#sidebar-more")).to_be_visible()
        assert "limit=30" in listed[0] and "cursor" not in listed[0]
        page.click("#sidebar-more")
        expect(page.locator(".session-item")).to_have_count(45)
        expect(page.locator("#sidebar-more")).to_be_hidden()
        assert "cursor=" in listed[-1]
        titles = page.locator(".session-title").all_inner_texts()
        assert len(set(titles)) == 45  # no session twice

        # Search asks the server (words in titles or messages), not the loaded list.
        page.fill("#sidebar-search", "kiwi")
        expect(page.locator(".session-item")).to_have_count(1)
        expect(page.locator(".session-item")).to_contain_text("Fruit")
        assert "search=kiwi" in listed[-1]
        page.fill("#sidebar-search", "number 7")
        expect(page.locator(".session-title")).to_have_text(["Topic 07"])
        page.fill("#sidebar-search", "durian")
        expect(page.locator("#sidebar-empty")).to_have_text("No conversation matches “durian”.")
        page.fill("#sidebar-search", "")
        expect(page.locator(".session-item")).to_have_count(30)
        assert errors == []
