"""The chat page, the sessions dashboard and a transcript at a phone's width (390×844).

Nothing may lay out past the viewport's right edge: the document does not scroll sideways,
and no element's box reaches past the right edge unless an ancestor that fits the viewport
scrolls sideways on purpose. The controls must be reachable: inside the viewport
once scrolled to, and not covered by anything. The data is chosen to push: titles, ids,
agent ids, session types, model names and error texts at their longest, messages with long
unbroken strings. The same data at 1280 px keeps the desktop layout (the sidebar beside the
conversation, the table with its header, maintenance in two columns) and overflows nothing.

Runs as in test_browser.py (real server, Debian's chromium through Playwright). The narrow
screenshots go to docs/chat-narrow.png and docs/sessions-narrow.png when
SESSIONKEEPER_UPDATE_SCREENSHOTS=1, else to a temporary directory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import rawdb
from sessionkeeper.store.core import Store
from test_browser import DOCS, browser, db, server  # noqa: F401  (browser, server: fixtures)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ECHO = "offline echo model — no LLM configured"

UNBROKEN = "x" * 300
LONG_ID = "0123456789abcdef" * 8  # 128 characters, the longest id, nowhere to break
LONG_AGENT = "a" * 64  # the longest label
LONG_TYPE = "type/" + "t" * 59
LONG_MODEL = "provider/" + "m" * 119  # 128 characters, the longest model name
LONG_TITLE = "T" * 200  # the longest title, no space in it
LONG_WORDS = " ".join(["Supercalifragilistic"] * 9)

# Every element whose box reaches past the viewport's right edge (by more than half a pixel)
# unless an ancestor that itself fits scrolls sideways on purpose (overflow-x auto/scroll).
# Clipping does not excuse it: the chat page's body clips, and what it cuts off is lost.
# And every scrolling box that does scroll sideways, but for those meant to (SIDEWAYS_OK):
# a box scrolling vertically (the transcripts) computes overflow-x auto as well.
# (The sessions table; a reply's code blocks and tables, whose lines are kept whole.)
SIDEWAYS_OK = ".table-wrap, .md pre, .md-table"
OVERFLOWING = """
(sidewaysOk) => {
  const vw = window.innerWidth;
  const fits = (e) => e.getBoundingClientRect().right <= vw + 0.5;
  const contained = (e) => {
    for (let p = e.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      const scrolls = ["auto", "scroll"].includes(getComputedStyle(p).overflowX);
      if (scrolls && p !== document.body && fits(p)) return true;
    }
    return false;
  };
  const name = (e) => {
    const cls = typeof e.className === "string" ? e.className.trim() : "";
    return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
      (cls ? "." + cls.split(/\\s+/).join(".") : "");
  };
  const out = [];
  const sideways = [];
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (!r.width && !r.height) continue;
    if (r.right > vw + 0.5 && !contained(e)) out.push(name(e) + " right=" + Math.round(r.right));
    const scrolls = ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
    if (scrolls && e.scrollWidth > e.clientWidth + 1 && !e.matches(sidewaysOk)) {
      sideways.push(name(e) + " scrollWidth=" + e.scrollWidth + " clientWidth=" + e.clientWidth);
    }
  }
  return {
    innerWidth: vw,
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    overflowing: out,
    sideways: sideways,
  };
}
"""

# Scroll the element into view, then: its box, and whether a click at its centre reaches it.
REACH = """
(e) => {
  e.scrollIntoView({ block: "center", inline: "nearest" });
  const r = e.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
    height: r.height, vw: window.innerWidth, vh: window.innerHeight,
    hit: !!hit && (hit === e || e.contains(hit)) };
}
"""


def assert_fits(page: Any, where: str, width: int) -> None:
    got = page.evaluate(OVERFLOWING, SIDEWAYS_OK)
    # A mobile viewport widens itself to fit a too-wide page: that is an overflow too.
    assert got["innerWidth"] == width, f"{where}: {got}"
    assert got["scrollWidth"] <= width, f"{where}: {got}"
    assert got["bodyScrollWidth"] <= width, f"{where}: {got}"
    assert got["overflowing"] == [], f"{where}: {got['overflowing'][:20]}"
    assert got["sideways"] == [], f"{where}: {got['sideways'][:20]}"


def assert_reachable(page: Any, where: str, *selectors: str) -> None:
    for selector in selectors:
        node = page.locator(selector)
        assert node.count() == 1 and node.is_visible(), f"{where}: {selector} is not visible"
        box = node.evaluate(REACH)
        inside = (
            box["width"] > 0
            and box["height"] > 0
            and box["left"] >= -0.5
            and box["right"] <= box["vw"] + 0.5
            and box["top"] >= -0.5
            and box["bottom"] <= box["vh"] + 0.5
        )
        assert inside and box["hit"], f"{where}: {selector} cannot be reached: {box}"


async def _plant(store: Store) -> dict[str, str]:
    """Plausible history with long strings in it, and one session with everything at its
    longest. Returns the ids of the conversations the test opens."""
    now = datetime.now(UTC)
    extreme = await store.create_session(
        agent_id=LONG_AGENT, title=LONG_TITLE, session_type=LONG_TYPE, session_id=LONG_ID
    )
    await store.add_message(extreme.session_id, "user", "Please look at this: " + UNBROKEN)
    await store.add_message(
        extreme.session_id,
        "assistant",
        "Here it is:\nhttps://example.com/" + "path/" * 60 + "\n" + LONG_WORDS,
        model=LONG_MODEL,
        metadata={"partial": True, "error": "upstream said: " + "e" * 200},
    )
    await store.add_message(extreme.session_id, "tool", '{"result": "' + "r" * 400 + '"}')
    await store.add_message(extreme.session_id, "system", "    " + "indented " * 40)

    history = [
        (
            "ops",
            "Nightly backup report",
            timedelta(days=1),
            [
                ("user", "Did last night's backup finish?"),
                ("assistant", "Yes: 14.2 GB in 6 min 12 s, checksum verified."),
            ],
        ),
        (
            "research",
            LONG_WORDS,
            timedelta(days=3),
            [
                ("user", "Summarise the thread."),
                ("assistant", "Nine words, all the same, no room to spare."),
            ],
        ),
        (
            "deploy-bot",
            "Staging deploy failed: image pull error",
            timedelta(hours=2),
            [
                (
                    "user",
                    "Why did the staging deploy fail? The log says:\n"
                    "ErrImagePull registry.internal.example.com/platform/"
                    "sessionkeeper-api@sha256:" + "9f86d081884c7d659a2feaa0c55ad015" * 2,
                ),
                (
                    "assistant",
                    "The digest isn't in the registry: the build pushed "
                    "sessionkeeper-api:2024.06.1-rc3 but the manifest pins a digest from the "
                    "previous build. Re-run the pipeline's `pin` step, then retry the rollout:\n\n"
                    "```sh\nkubectl -n staging set image deploy/sessionkeeper-api api="
                    "registry.internal.example.com/platform/sessionkeeper-api:2024.06.1-rc3\n"
                    "```\n\n"
                    "| build | tag | digest |\n|---|---|---|\n"
                    "| 184467 | 2024.06.1-rc3 | sha256:"
                    + "9f86d081884c7d659a2feaa0c55ad015"
                    * 2
                    + " |\n\n"
                    "https://ci.example.com/platform/sessionkeeper/-/pipelines/184467/jobs/"
                    "9921733/artifacts/browse/build/manifests/staging/",
                ),
                ("user", "Done, it's rolling out now. Thanks!"),
                (
                    "assistant",
                    "Good. Watch `kubectl rollout status deploy/sessionkeeper-api "
                    "-n staging`; it should settle in about a minute.",
                ),
            ],
        ),
    ]
    ids = {"extreme": extreme.session_id}
    for agent, title, age, messages in history:
        s = await store.create_session(agent_id=agent, title=title)
        for role, content in messages:
            await store.add_message(s.session_id, role, content)
        then = rawdb.when(store, now - age)
        await rawdb.execute(
            store,
            "UPDATE sessions SET updated_at = ?, last_message_at = ? WHERE session_id = ?",
            then,
            then,
            s.session_id,
        )
        ids[agent] = s.session_id
    slack = await store.create_session(
        agent_id="slack-bridge", session_id="slack:T024BE7LD:C024BE91L:1718131200.000100"
    )
    await store.add_message(slack.session_id, "user", "ping from #platform-oncall")
    await store.create_session(agent_id="main")  # no messages: the "empty" badge
    return ids


def _phone(chromium: Any, mobile: bool) -> Any:
    if mobile:  # what a phone does: the meta viewport counts, touch, a zoomed-out fallback
        return chromium.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    return chromium.new_page(viewport=PHONE)  # a desktop browser window made narrow


@pytest.mark.parametrize("mobile", [True, False], ids=["phone", "narrow-window"])
def test_pages_fit_a_phone(server: tuple[str, str], browser: Any, mobile: bool) -> None:  # noqa: F811
    from playwright.sync_api import expect

    base, db_url = server
    ids = db(db_url, _plant)
    DOCS.mkdir(exist_ok=True)
    width = PHONE["width"]
    errors: list[str] = []
    page = _phone(browser, mobile)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: d.dismiss())

    # The chat page: the conversation list is a drawer, closed until "Chats" opens it.
    page.goto(f"{base}/chat")
    expect(page.locator("#model")).to_have_text(ECHO)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#sidebar")).to_be_hidden()
    page.wait_for_timeout(300)  # the session list has loaded (in the hidden drawer)
    assert_fits(page, "/chat", width)
    expect(page.locator("#agent-pick")).to_be_visible()  # open mode: any agent
    assert_reachable(
        page,
        "/chat",
        "#show-sidebar",
        "#input",
        "#send",
        "#agent",
        "nav a[href='/sessions']",
        "#api-key",
    )

    page.click("#show-sidebar")
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator(".session-item")).to_have_count(5)  # the empty session is not listed
    assert page.get_attribute("#show-sidebar", "aria-expanded") == "true"
    assert_fits(page, "/chat, the list open", width)
    extreme_item = f".session-item[data-session-id='{ids['extreme']}']"
    assert_reachable(
        page, "/chat, the list open", "#new-chat", "#hide-sidebar", "#sidebar-search", extreme_item
    )
    page.click("#hide-sidebar")
    expect(page.locator("#sidebar")).to_be_hidden()
    page.click("#show-sidebar")
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).to_be_hidden()

    # Opening a conversation from the list closes the list.
    page.click("#show-sidebar")
    page.click(extreme_item)
    expect(page.locator("#sidebar")).to_be_hidden()
    expect(page.locator(".msg")).to_have_count(4)
    expect(page.locator("#conv-actions")).to_be_visible()
    assert page.url.endswith(f"/chat?session={ids['extreme']}")
    assert_fits(page, "/chat, the longest session", width)
    assert_reachable(
        page,
        "/chat, the longest session",
        "#show-sidebar",
        "#rename",
        "#export",
        "#end",
        "#delete",
        "#input",
        "#send",
    )

    # A long unbroken message sent from the phone, and its reply.
    page.fill("#input", "and " + "y" * 500)
    page.click("#send")
    expect(page.locator(".msg.assistant[data-state=done]")).to_have_count(1)
    expect(page.locator(".msg")).to_have_count(6)
    assert_fits(page, "/chat, after sending", width)

    page.goto(f"{base}/chat?session={ids['deploy-bot']}")
    expect(page.locator(".msg")).to_have_count(4)
    assert_fits(page, "/chat, a plausible conversation", width)
    if mobile:
        page.screenshot(path=str(DOCS / "chat-narrow.png"))

    # The dashboard: cards, maintenance, the table as one block per session.
    page.goto(f"{base}/sessions")
    expect(page.locator("#rows tr.row")).to_have_count(6)
    expect(page.locator("#st-sessions")).to_have_text("6")
    assert_fits(page, "/sessions", width)
    row = f"#rows tr[data-session-id='{ids['extreme']}']"
    assert_reachable(
        page,
        "/sessions",
        "#search",
        "#filter-agent",
        "#filter-status",
        "#refresh",
        "#purge-ghosts",
        "#prune-check",
        "#prune-days",
        "#prev",
        "#next",
        row,
    )

    # The transcript of the longest session.
    page.click(row)
    expect(page.locator("#detail-messages .msg")).to_have_count(6)
    expect(page.locator("#detail-meta")).to_contain_text(ids["extreme"])
    page.wait_for_timeout(600)  # the smooth scroll to the transcript
    assert_fits(page, "/sessions, a transcript", width)
    assert_reachable(
        page,
        "/sessions, a transcript",
        "#detail-open",
        "#detail-link",
        "#detail-export",
        "#detail-end",
        "#detail-delete",
        "#detail-close",
    )
    page.click("#prune-check")
    expect(page.locator("#maint-result")).to_be_visible()
    assert_fits(page, "/sessions, a maintenance result", width)
    page.fill("#search", "x" * 120)
    expect(page.locator("#rows .empty-row")).to_be_visible()
    assert_fits(page, "/sessions, nothing found for a long search", width)
    page.fill("#search", "")
    expect(page.locator("#rows tr.row")).to_have_count(6)

    page.click(f"#rows tr[data-session-id='{ids['deploy-bot']}']")
    expect(page.locator("#detail-messages .msg")).to_have_count(4)
    page.wait_for_timeout(600)
    assert_fits(page, "/sessions, a plausible transcript", width)
    page.evaluate("window.scrollTo(0, 0)")
    if mobile:
        page.screenshot(path=str(DOCS / "sessions-narrow.png"), full_page=True)

    # The longest model name in the top bar (a configured model, not the echo one).
    page.route(
        "**/api/engine/chat/model",
        lambda route: route.fulfill(json={"model": LONG_MODEL, "echo": False, "label": LONG_MODEL}),
    )
    for path in ("/sessions", f"/chat?session={ids['extreme']}"):
        page.goto(base + path)
        expect(page.locator("#model")).to_have_text("model: " + LONG_MODEL)
        page.wait_for_timeout(300)
        assert_fits(page, f"{path}, a long model name", width)
        assert_reachable(page, path, "#api-key", "nav a[href='/chat']")
    assert errors == []


def test_same_data_at_1280_px(server: tuple[str, str], browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    base, db_url = server
    ids = db(db_url, _plant)
    width = DESKTOP["width"]
    page = browser.new_page(viewport=DESKTOP)

    page.goto(f"{base}/chat?session={ids['extreme']}")
    expect(page.locator(".msg")).to_have_count(4)
    expect(page.locator(".session-item")).to_have_count(5)
    # The sidebar is beside the conversation, always shown; no drawer buttons.
    expect(page.locator("#show-sidebar")).to_be_hidden()
    expect(page.locator("#hide-sidebar")).to_be_hidden()
    sidebar = page.locator("#sidebar").bounding_box()
    conversation = page.locator(".conversation").bounding_box()
    assert sidebar is not None and conversation is not None
    assert sidebar["x"] == 0 and sidebar["width"] == 280
    assert conversation["x"] == 280 and conversation["y"] == sidebar["y"]
    # The actions stay in one row beside the title.
    actions = ("#rename", "#export", "#end", "#delete")
    tops = {round(page.locator(s).bounding_box()["y"]) for s in actions}
    assert len(tops) == 1
    assert_fits(page, "/chat at 1280 px", width)

    page.goto(f"{base}/sessions")
    expect(page.locator("#rows tr.row")).to_have_count(6)
    expect(page.locator("#sessions-table thead")).to_be_visible()
    by_agent = page.locator(".by-agent").bounding_box()
    maint = page.locator(".maint-actions").bounding_box()
    assert by_agent is not None and maint is not None
    assert by_agent["y"] == maint["y"] and maint["x"] > by_agent["x"] + by_agent["width"]
    cards = {round(page.locator(".card").nth(i).bounding_box()["y"]) for i in range(5)}
    assert len(cards) == 1  # five cards in one row
    page.click(f"#rows tr[data-session-id='{ids['extreme']}']")
    expect(page.locator("#detail-messages .msg")).to_have_count(4)
    assert_fits(page, "/sessions at 1280 px", width)
