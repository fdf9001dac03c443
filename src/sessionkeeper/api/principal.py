"""Who is calling: a ``Principal`` (an admin, a key scoped to some agents, or open mode).

``api/auth.py`` makes one per request from its API key; ``api/deps.py`` hands it to the routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionkeeper.errors import Forbidden, InvalidInput

DEFAULT_AGENT = "main"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``agent_ids=None`` means every agent (an admin)."""

    name: str
    agent_ids: frozenset[str] | None = None
    key_id: str | None = None  # None: no key (open mode on loopback)

    @property
    def is_admin(self) -> bool:
        return self.agent_ids is None

    def can_see(self, agent_id: str) -> bool:
        return self.agent_ids is None or agent_id in self.agent_ids

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


OPEN = Principal(name="open (no API keys, loopback)")
