"""Lineage on the pages, in a real headless Chromium against a real server (issue 19 item 5):
the chat page's edit-and-resend (rewind to just before the message, send the edited text,
the earlier attempt kept and reached with the ‹ n/N › switcher) under a scoped key, and the
dashboard's lineage (parent, branches) and its usage and cost panel.

Runs as tests/test_browser_chat.py does: a real server on a SQLite file, Debian's chromium
through Playwright, tests/fakellm.py as the model (it answers "Reply to: <message>").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakellm import FakeLLM, run_fake_llm
from sessionkeeper.store.core import Store
from test_browser import browser, db, running_server  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.browser

# What Chromium logs to the console for any request answered 404.
NOT_FOUND = "Failed to load resource: the server responded with a status of 404 (Not Found)"


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm() as server:  # answers "Reply to: <the last user message>"
        yield server


def watch(page: Any) -> list[str]:
    """Console and page errors (must stay empty) and dialogs (none expected)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    return errors


async def _alpha_key(store: Store) -> str:
    _, token = await store.keys.create(agent_ids=["alpha"], name="alpha")
    return token


async def _conversations(store: Store) -> dict[str, Any]:
    page = await store.list_sessions(limit=100)
    return {
        s.session_id: (
            s.parent_session_id,
            s.fork_seq,
            [(m.seq, m.role, m.content) for m in await store.get_messages(s.session_id)],
        )
        for s in page.items
    }


def test_editing_an_earlier_message_resends_it_and_keeps_the_first_attempt(
    tmp_path: Path,
    fake: FakeLLM,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    db_url = f"sqlite:///{tmp_path / 'edit.db'}"
    token = db(db_url, _alpha_key)
    with running_server(db_url, llm_base_url=fake.base_url, llm_model="fake-model") as base:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.add_init_script(f"localStorage.setItem('sessionkeeper.apiKey', {token!r})")
        errors = watch(page)
        page.goto(f"{base}/chat")
        for n, text in enumerate(["one", "two", "three"], 1):
            page.fill("#input", text)
            page.press("#input", "Enter")
            expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(n)
        ((sid, (_, _, original)),) = db(db_url, _conversations).items()
        assert len(original) == 6
        users = page.locator(".msg.user")
        expect(page.locator(".variants")).to_have_count(0)  # one attempt each

        # Escape leaves the message as it was.
        users.nth(1).locator(".edit-msg").click()
        expect(page.locator(".edit-input")).to_be_focused()
        expect(page.locator(".edit-input")).to_have_value("two")
        page.keyboard.press("Escape")
        expect(page.locator(".edit-form")).to_have_count(0)
        expect(users.nth(1).locator(".bubble")).to_have_text("two")

        # Edit turn 2 of 3 from the keyboard: rewound to just before it, the new text sent.
        users.nth(1).locator(".edit-msg").focus()
        page.keyboard.press("Enter")
        page.fill(".edit-input", "two, edited")
        page.keyboard.press("Enter")
        expect(page.locator(".msg.assistant .bubble")).to_have_text(
            ["Reply to: one", "Reply to: two, edited"]
        )
        expect(users.locator(".bubble")).to_have_text(["one", "two, edited"])
        # The model saw the conversation up to the edited message, not the old turns.
        assert fake.requests[-1]["messages"] == [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "Reply to: one"},
            {"role": "user", "content": "two, edited"},
        ]
        turn2 = page.locator(".msg.user[data-seq='3']")
        expect(turn2.locator(".variant-pos")).to_have_text("2/2")
        expect(users.first.locator(".variants")).to_have_count(0)
        expect(page).to_have_url(f"{base}/chat?session={sid}")

        # Nothing deleted: the first attempt is a branch holding the whole old conversation.
        found = db(db_url, _conversations)
        assert set(found) - {sid} and len(found) == 2
        (branch,) = set(found) - {sid}
        assert found[branch] == (sid, 2, original)
        assert found[sid] == (
            None,
            None,
            original[:2] + [(3, "user", "two, edited"), (4, "assistant", "Reply to: two, edited")],
        )
        union = {m[1:] for _, _, msgs in found.values() for m in msgs}
        assert union == {m[1:] for m in original} | {
            ("user", "two, edited"),
            ("assistant", "Reply to: two, edited"),
        }

        # ‹ reaches the first attempt (by keyboard: the focus stays on the switcher) …
        turn2.locator(".variant-prev").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/chat?session={branch}")
        expect(users.locator(".bubble")).to_have_text(["one", "two", "three"])
        expect(turn2.locator(".variant-pos")).to_have_text("1/2")
        expect(turn2.locator(".variant-next")).to_be_focused()
        expect(turn2.locator(".variant-prev")).to_be_disabled()
        # … and › comes back.
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/chat?session={sid}")
        expect(users.locator(".bubble")).to_have_text(["one", "two, edited"])
        expect(turn2.locator(".variant-pos")).to_have_text("2/2")
        assert errors == []

        # A failed rewind is said like the page's other errors; the view stays as it was.
        db(db_url, lambda s: s.delete_session(sid))
        users.nth(1).locator(".edit-msg").click()
        page.fill(".edit-input", "two, again")
        page.click(".edit-send")
        expect(page.locator("#notice")).to_have_text(f"Edit failed: session {sid!r} not found")
        expect(page.locator(".edit-input")).to_have_value("two, again")
        assert len(db(db_url, _conversations)) == 1
        assert errors == [NOT_FOUND]  # what the browser itself logs for the rewind's 404


async def _lineage(store: Store) -> tuple[str, str, str]:
    s = await store.create_session(title="Trip", session_id="trip")
    for text in ["Plan a trip", "Lisbon?", "Yes, 3 days", "Day 1: Alfama"]:
        await store.add_message(s.session_id, "user", text)
    # What the first message cost: it stays with "trip" (copies carry no usage).
    await store.set_usage(
        s.session_id, 1, {"input_tokens": 1000, "output_tokens": 100, "model": "gpt-4o"}
    )
    fork = await store.fork_session(s.session_id, at_seq=2, new_session_id="porto", title="Porto")
    done = await store.rewind_session(s.session_id, 1)
    assert done.branch is not None
    return s.session_id, fork.session_id, done.branch.session_id


def test_the_dashboard_shows_lineage_usage_and_cost(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    db_url = f"sqlite:///{tmp_path / 'lineage.db'}"
    sid, fork, branch = db(db_url, _lineage)
    with running_server(db_url) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = watch(page)
        usage: list[int] = []
        page.on("response", lambda r: usage.append(r.status) if r.url.endswith("/usage") else None)
        page.goto(f"{base}/sessions?id={sid}")
        lineage = page.locator("#detail-lineage")
        expect(lineage.locator(".lineage-count")).to_have_text("2 branches:")
        expect(lineage.locator(".lineage-branches li")).to_have_text(
            [
                "porto · from message #2 · 2 messages · Porto",
                f"{branch} · from message #1 · 4 messages · Trip",
            ]
        )
        expect(lineage.locator(".lineage-parent")).to_have_count(0)
        # Usage and cost, priced by the server (gpt-4o is in the price table).
        panel = page.locator("#detail-usage")
        expect(panel).to_have_attribute("data-state", "shown")
        expect(panel.locator(".usage-cost")).to_have_text(re.compile(r"^\$0\.\d+$"))
        expect(panel.locator(".usage-table tbody td").first).to_have_text("gpt-4o")
        expect(panel).to_contain_text("1,000 input tokens")
        # The forks are marked in the table; a branch's link opens it with its parent.
        expect(page.locator(f"#rows tr[data-session-id='{fork}'] .badge.fork")).to_have_count(1)
        expect(page.locator(f"#rows tr[data-session-id='{sid}'] .badge.fork")).to_have_count(0)
        lineage.locator("a", has_text="porto").click()
        expect(page).to_have_url(f"{base}/sessions?id=porto")
        expect(page.locator("#detail-title")).to_have_text("Porto")
        expect(lineage.locator(".lineage-parent")).to_have_text("Forked from trip at message #2")
        expect(lineage.locator(".lineage-count")).to_have_count(0)
        # A fork's copies carry no usage: the cost was paid once, by "trip".
        expect(panel).to_contain_text("Usage: none recorded.")
        lineage.locator(".lineage-parent a").click()
        expect(page.locator("#detail-title")).to_have_text("Trip")
        expect(page.locator("#detail-messages .msg")).to_have_count(1)
        expect(panel.locator(".usage-cost")).to_have_count(1)
        assert set(usage) == {200} and len(usage) >= 3 and errors == []
