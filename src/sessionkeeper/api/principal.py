"""Who is calling: a ``Principal`` (an admin, a key scoped to some agents, perhaps to some
users of them, or open mode).

``api/auth.py`` makes one per request from its API key; ``api/deps.py`` hands it to the routes.
A key scoped to users sees a session only when both its agent and its user are in scope: a
session without a user, or of another user, is out of scope exactly like another agent's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionkeeper.errors import Forbidden, InvalidInput
from sessionkeeper.models import Session

DEFAULT_AGENT = "main"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``agent_ids=None`` means every agent (an admin); ``user_ids=None``
    every user of those agents."""

    name: str
    agent_ids: frozenset[str] | None = None
    key_id: str | None = None  # None: no key (open mode on loopback)
    user_ids: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.agent_ids is None and self.user_ids is None

    def can_see(self, agent_id: str) -> bool:
        return self.agent_ids is None or agent_id in self.agent_ids

    def can_see_user(self, user_id: str | None) -> bool:
        return self.user_ids is None or (user_id is not None and user_id in self.user_ids)

    def can_see_session(self, session: Session) -> bool:
        """Whether the session is in the caller's scope (its agent and its user)."""
        return self.can_see(session.agent_id) and self.can_see_user(session.user_id)

    def require_agent(self, agent_id: str) -> None:
        """Creating a session for an agent outside the caller's scope is refused (403)."""
        if not self.can_see(agent_id):
            raise Forbidden(f"this key may not act for agent {agent_id!r}", agent_id=agent_id)

    def default_agent(self) -> str:
        """The agent of a new session that names none (a create or a chat without
        ``agent_id``): "main" when the caller may act for it, else the key's one agent. A key
        of several agents, none of them "main", must say which (InvalidInput, 422)."""
        if self.can_see(DEFAULT_AGENT):
            return DEFAULT_AGENT
        assert self.agent_ids is not None  # an admin can see "main"
        if len(self.agent_ids) == 1:
            return next(iter(self.agent_ids))
        names = ", ".join(repr(a) for a in sorted(self.agent_ids))
        raise InvalidInput(
            f"this key acts for several agents ({names}): say which in agent_id",
            field="agent_id",
        )

    def agent_for(self, agent_id: str | None) -> str:
        """The agent a new session gets: ``agent_id`` if given (403 outside the scope), else
        ``default_agent()``."""
        if agent_id is None:
            return self.default_agent()
        self.require_agent(agent_id)
        return agent_id

    @property
    def scope(self) -> list[str] | None:
        """The Store's ``agent_ids`` argument: None for all agents, else the allowed ones."""
        return None if self.agent_ids is None else sorted(self.agent_ids)

    # ── users ───────────────────────────────────────────────────────────────

    @property
    def user_scope(self) -> list[str] | None:
        """The Store's ``user_ids`` argument: None for every user, else the allowed ones."""
        return None if self.user_ids is None else sorted(self.user_ids)

    def require_user(self, user_id: str | None) -> None:
        """Giving a session a user outside the caller's scope (or none, under a key scoped to
        users) is refused (403): the key could no longer see it."""
        if not self.can_see_user(user_id):
            raise Forbidden(
                "this key may not act for "
                + ("sessions without a user" if user_id is None else f"user {user_id!r}"),
                user_id=user_id,
            )

    def default_user(self) -> str | None:
        """The user of a new session that names none: None (no user), or under a key scoped
        to users its one user. A key of several users must say which (InvalidInput, 422)."""
        if self.user_ids is None:
            return None
        if len(self.user_ids) == 1:
            return next(iter(self.user_ids))
        names = ", ".join(repr(u) for u in sorted(self.user_ids))
        raise InvalidInput(
            f"this key acts for several users ({names}): say which in user_id",
            field="user_id",
        )

    def user_for(self, user_id: str | None) -> str | None:
        """The user a new session gets: ``user_id`` if given (403 outside the scope), else
        ``default_user()``."""
        if user_id is None:
            return self.default_user()
        self.require_user(user_id)
        return user_id


OPEN = Principal(name="open (no API keys, loopback)")
