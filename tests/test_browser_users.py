"""The sessions dashboard's user column and its user and metadata filters, in a real headless
Chromium against a real server (as tests/test_browser.py runs them)."""

from __future__ import annotations

from typing import Any

import pytest

from sessionkeeper.store.core import Store
from test_browser import browser, db, server  # noqa: F401  (browser, server: fixtures)

pytestmark = pytest.mark.browser


async def _plant(store: Store) -> None:
    for sid, user, team in (
        ("ada-1", "ada", "red"),
        ("ada-2", "ada", "blue"),
        ("bob-1", "bob", "red"),
        ("nobody", None, "red"),
    ):
        await store.create_session(
            session_id=sid, title=f"Chat {sid}", user_id=user, metadata={"team": team}
        )
        await store.add_message(sid, "user", f"hello from {sid}")


def test_the_user_column_and_the_user_and_metadata_filters(
    server: tuple[str, str],  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    base, db_url = server
    db(db_url, _plant)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "status of 422" not in m.text  # the refused filter below
            else None
        ),
    )
    rows = page.locator("#rows tr.row")

    def shown() -> list[str]:
        return sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.sessionId)"))

    page.goto(f"{base}/sessions")
    expect(rows).to_have_count(4)
    expect(page.locator("#rows tr[data-session-id='ada-1'] td.cell-user")).to_have_text("ada")
    expect(page.locator("#rows tr[data-session-id='nobody'] td.cell-user")).to_have_text("—")

    page.fill("#filter-user", "ada")
    expect(rows).to_have_count(2)
    assert shown() == ["ada-1", "ada-2"]
    expect(page.locator("#page-info")).to_have_text("1–2 of 2")

    page.fill("#filter-meta", "team=red")  # with the user filter: ada's red sessions
    expect(rows).to_have_count(1)
    assert shown() == ["ada-1"]
    page.fill("#filter-user", "")
    expect(rows).to_have_count(3)
    assert shown() == ["ada-1", "bob-1", "nobody"]
    page.fill("#filter-meta", '{"team": "blue"}')
    expect(rows).to_have_count(1)

    # A filter the page cannot read, or one the server refuses: said, and marked.
    page.fill("#filter-meta", "team")
    expect(page.locator("#notice")).to_contain_text("Metadata filter: use key=value")
    expect(page.locator("#filter-meta")).to_have_attribute("aria-invalid", "true")
    page.fill("#filter-meta", "team=[1]")
    expect(page.locator("#notice")).to_contain_text("string, number, true, false or null")
    expect(page.locator("#filter-meta")).to_have_attribute("aria-invalid", "true")
    page.fill("#filter-meta", "")
    expect(rows).to_have_count(4)
    expect(page.locator("#filter-meta")).to_have_attribute("aria-invalid", "false")

    page.click("#rows tr[data-session-id='bob-1']")
    expect(page.locator("#detail-meta")).to_contain_text("bob-1 · main · user bob · chat")
    assert errors == []
