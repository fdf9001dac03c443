"""API-key authentication: who is calling, decided per request from ``Authorization: Bearer``.

Rules (tested in tests/test_auth.py):

- A request carrying ``Authorization: Bearer <token>`` is always verified against the
  ``api_keys`` table (``ApiKeys.verify``: one primary-key read, digest compared in constant
  time). Nothing is cached between requests, so a revoked key stops working on its next
  request. Unknown, malformed or revoked → 401 with ``WWW-Authenticate: Bearer``.
- An admin key is the all-agents ``Principal``; a scoped key sees only its agent ids (other
  agents' sessions are 404, see ``api/deps.py``), and a key scoped to users only those users'
  sessions of its agents (others' are 404 alike).
- A request without a key is refused (401) unless the server runs *open*: no active key in
  the database AND the configured host is a loopback address AND the request comes from a
  loopback client (the last check guards against the app being served on another interface
  than its settings say, e.g. by running uvicorn by hand).
- Open mode is decided at start-up (``check_open``, from the lifespan and from ``serve``,
  which refuses a non-loopback host with no keys) and re-checked lazily: a keyless request
  looks at ``any_active()`` at most every ``recheck_seconds``, and a valid key seen on any
  request ends open mode at once. Leaving open mode is one-way for the life of the process:
  revoking every key does not silently re-open a running server (a restart does).
"""

from __future__ import annotations

import ipaddress
import logging
import time

from fastapi import Request

from sessionkeeper.api.principal import OPEN, Principal
from sessionkeeper.errors import Forbidden, Unauthorized
from sessionkeeper.store.core import Store
from sessionkeeper.store.keys import ApiKey

logger = logging.getLogger(__name__)

OPEN_WARNING = "no API keys configured: running open on loopback only"
CREATE_KEY_HINT = "create one with `sessionkeeper keys create --admin`"


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a LAN address…) is not."""
    if host is None:
        return False
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_open(host: str, has_active_keys: bool) -> bool:
    """Whether a server on ``host`` runs open (without keys); Forbidden if it must not start."""
    if has_active_keys:
        return False
    if not is_loopback(host):
        raise Forbidden(
            f"no API keys configured: refusing to serve on {host} without authentication; "
            f"{CREATE_KEY_HINT} (and give its token to clients as 'Authorization: Bearer …'), "
            "or bind to 127.0.0.1",
            host=host,
        )
    return True


def principal_for(key: ApiKey) -> Principal:
    return Principal(
        name=key.name or f"key {key.key_id}",
        agent_ids=None if key.admin else frozenset(key.agent_ids),
        key_id=key.key_id,
        user_ids=None if key.user_ids is None else frozenset(key.user_ids),
    )


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected 'Authorization: Bearer <API key>'")
    return token


class Authenticator:
    """One per app (``app.state.auth``); holds only the open/closed decision, never keys."""

    def __init__(self, host: str, *, recheck_seconds: float = 2.0) -> None:
        self.host = host
        self.loopback = is_loopback(host)
        self.recheck_seconds = recheck_seconds
        # None: not checked yet; False: no active key at the last check; True: keys exist
        # (a latch: once True it stays True).
        self._keys_exist: bool | None = None
        self._checked_at = float("-inf")

    @property
    def is_open(self) -> bool:
        """True while running open (as of the last check)."""
        return self.loopback and self._keys_exist is False

    async def startup(self, store: Store) -> bool:
        """Decide open mode when the app starts; says so in the log. Forbidden: must not run."""
        has_keys = await store.keys.any_active()
        is_open = check_open(self.host, has_keys)
        self._record(has_keys)
        if is_open:
            logger.warning("%s (%s)", OPEN_WARNING, CREATE_KEY_HINT)
        return is_open

    async def authenticate(self, request: Request, store: Store) -> Principal:
        header = request.headers.get("authorization")
        if header:
            key = await store.keys.verify(bearer_token(header))
            self._record(True)  # a valid key exists, so open mode (if any) is over
            return principal_for(key)
        if await self._still_open(store) and _from_loopback(request):
            return OPEN
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>'")

    async def _still_open(self, store: Store) -> bool:
        if not self.loopback or self._keys_exist:
            return False
        if time.monotonic() - self._checked_at >= self.recheck_seconds:
            self._record(await store.keys.any_active())
        return self._keys_exist is False

    def _record(self, has_keys: bool) -> None:
        if has_keys and self._keys_exist is False:
            logger.warning("an API key exists now: requests without a key are refused")
        self._keys_exist = bool(self._keys_exist) or has_keys
        self._checked_at = time.monotonic()


def _from_loopback(request: Request) -> bool:
    client = request.client
    # No client address: a Unix socket or an in-process transport, both local.
    return client is None or not client.host or is_loopback(client.host)
