"""The pages over HTTP (no browser): the headers that keep them out of other sites' frames
and their scripts to this server, HEAD on the pages and probes, and the package shipping
every file the pages load. The pages themselves run in Chromium in tests/test_browser*.py.
"""

from __future__ import annotations

import glob
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sessionkeeper.api import create_app
from sessionkeeper.api.pages import WEB_DIR
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    store = await Store.open("sqlite://")
    app = create_app(Settings(database_url="sqlite://", maintenance=False), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await store.close()


def csp(r: httpx.Response) -> dict[str, str]:
    policy = r.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.partition(" ")[2] for d in policy.split("; ")}


@pytest.mark.parametrize("path", ["/chat", "/sessions"])
async def test_pages_may_not_be_framed_and_run_only_scripts_from_here(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    policy = csp(r)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'" and "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"
    # Nothing inline for the policy to refuse: every script is a file of this server.
    assert "<script>" not in r.text and "style=" not in r.text and "onclick" not in r.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_may_not_be_framed_either(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    # Swagger UI starts from an inline script: only the framing rule, no script rule.
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"


async def test_api_answers_are_left_alone(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/engine/sessions")
    assert r.status_code == 200 and "x-frame-options" not in r.headers


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/chat", "/sessions"])
async def test_head_answers_like_get_without_the_body(client: httpx.AsyncClient, path: str) -> None:
    get = await client.get(path)
    head = await client.head(path)
    assert (head.status_code, get.status_code) == (200, 200), head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))


async def test_head_on_readyz_says_not_ready_too() -> None:
    app = create_app(Settings(database_url="sqlite://", maintenance=False))  # no store open
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        head = await c.head("/readyz")
        assert head.status_code == 503 and head.content == b""
        assert (await c.get("/readyz")).status_code == 503


def test_the_package_ships_every_file_the_pages_load() -> None:
    """pyproject's package-data must match every file under web/ (a `pip install .` without
    the vendored Markdown renderer would render nothing)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["sessionkeeper"]
    package = WEB_DIR.parent
    files = {p.relative_to(package).as_posix() for p in WEB_DIR.rglob("*") if p.is_file()}
    assert "web/vendor/markdown-it.min.js" in files and "web/vendor/LICENSE.markdown-it" in files
    # setuptools reads each pattern as a glob from the package's folder (* stops at a /).
    shipped = {f for p in patterns for f in glob.glob(p, root_dir=package, recursive=True)}
    assert sorted(files - shipped) == []
