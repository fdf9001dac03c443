"""Dependencies shared by the routers, as ``Annotated`` aliases (``StoreDep``, ``PrincipalDep``…).

Every route learns *who is asking* from ``get_principal`` (the API key in
``Authorization: Bearer``, resolved by ``api/auth.py``) and reaches a session only through
``visible_session`` / ``visible_session_id``:

- a key scoped to agents sees other agents' sessions as *not existing* (404, never 403, so
  ids cannot be probed), and a key scoped to users of its agents other users' sessions (and
  sessions without a user) alike;
- listings, search and stats pass ``principal.scope`` and ``principal.user_scope`` to the
  Store as their scope;
- creating a session for an agent outside the scope is 403: no existing resource is named,
  so nothing is revealed, and "not found" would be a lie about a POST;
- set-wide maintenance (ghost purge, prune) and /metrics require an admin (``AdminDep``; 403
  otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sessionkeeper.api.principal import Principal
from sessionkeeper.api.schemas import SessionIdText, documented
from sessionkeeper.config import Settings
from sessionkeeper.errors import Forbidden, NotFound, Unavailable
from sessionkeeper.models import Session
from sessionkeeper.store.core import Store

if TYPE_CHECKING:
    from sessionkeeper.api.auth import Authenticator


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise Unavailable("the session store is not open (the app's lifespan has not started)")
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]


# Declares the scheme in the OpenAPI document (Swagger UI's "Authorize"); the header itself is
# read and checked by api/auth.py, which also answers a malformed one.
API_KEY = HTTPBearer(
    scheme_name="APIKey",
    description="An API key (`sessionkeeper keys create`). Not needed while the server runs "
    "open: no keys configured, loopback only.",
    auto_error=False,
)


# Where api/limits.py leaves the caller it authenticated before reading a request's body,
# so the key is verified once per request.
PRINCIPAL_SCOPE_KEY = "sessionkeeper.principal"


async def authenticate(request: Request) -> Principal:
    """The caller, from the request's headers alone (never its body)."""
    auth: Authenticator = request.app.state.auth
    return await auth.authenticate(request, get_store(request))


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY)],
) -> Principal:
    """The caller, from its API key (401 without a valid one, unless the server runs open)."""
    known = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(known, Principal):
        return known
    return await authenticate(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
# The Store checks the id (422 naming session_id); the path convertor (api/routing.py) keeps
# /sessions/stats and its siblings for their own routes.
SessionIdPath = Annotated[SessionIdText, Path(description="The session's id.")]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this operation spans every agent and needs an admin key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def visible_session(
    session_id: SessionIdPath, store: StoreDep, principal: PrincipalDep
) -> Session:
    """The session, if it exists and the caller may see it; otherwise NotFound (404)."""
    session = await store.get_session(session_id)
    if not principal.can_see_session(session):
        raise NotFound(f"session {session_id!r} not found")
    return session


async def visible_session_id(
    session_id: SessionIdPath, store: StoreDep, principal: PrincipalDep
) -> str:
    """The session id, checked like ``visible_session``, for routes whose Store call reports an
    unknown session itself: an admin skips the extra read; a scoped caller pays for it."""
    if not principal.is_admin:
        await visible_session(session_id, store, principal)
    return session_id


VisibleSession = Annotated[Session, Depends(visible_session)]
VisibleSessionId = Annotated[str, Depends(visible_session_id)]


# What the Store accepts (store/idempotency.py), bare or quoted; an HTTP header value has no
# leading or trailing space, so a bare key starts and ends with a visible character.
IDEMPOTENCY_KEY_PATTERN = r'^([!-~]([ -~]{0,253}[!-~])?|"[ -~]{1,255}")$'


def idempotency_key(
    key: Annotated[
        str | None,
        documented({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}),
        Header(
            alias="Idempotency-Key",
            description=(
                "Makes the write safe to retry (IETF draft-ietf-httpapi-idempotency-key-header, "
                "as Stripe uses it): 1-255 printable ASCII characters, bare or as a quoted "
                'string (`"k"` and `k` are the same key). A retry with the same key and the '
                "same body answers what the first request stored (same session, same seq) "
                "and stores nothing; the same key with another body is a 422 "
                "(`idempotency_key_reused`). Scoped by session for appends and by agent for "
                "creates; kept at least 24 hours."
            ),
        ),
    ] = None,
) -> str | None:
    """The request's ``Idempotency-Key``, unquoted when sent as a Structured Field string
    (the IETF draft's form); the Store checks it (``store/idempotency.py``)."""
    if key is not None and len(key) >= 2 and key[0] == key[-1] == '"':
        return key[1:-1]
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
