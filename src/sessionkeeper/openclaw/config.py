"""Each agent's main session, by OpenClaw's own rule and its config (``openclaw.json``).

OpenClaw's rule, from its source (github.com/openclaw/openclaw):

- ``src/routing/session-key.ts``, ``buildAgentMainSessionKey``: the main session of an agent
  is the key ``agent:<agentId>:<mainKey>``, with ``normalizeAgentId`` (trimmed, lower-cased;
  other characters than ``a-z 0-9 _ -`` collapsed to ``-``) and ``normalizeMainKey`` (trimmed,
  lower-cased, default ``DEFAULT_MAIN_KEY = "main"``).
- ``src/config/sessions/main-session.ts``: ``resolveAgentMainSessionKey`` takes mainKey from
  the config's ``session.mainKey``; ``canonicalizeMainSessionAlias`` reads ``main``, the bare
  mainKey and ``agent:<agentId>:main`` as that same session; with ``session.scope: "global"``
  the main session is the key ``global``.
- ``src/config/paths.ts``: the config is ``$OPENCLAW_CONFIG_PATH``, else ``openclaw.json``
  in the state directory, the one that holds ``agents/``; it is JSON5.

So ``fs delete``, ``prune`` and ``orphans`` protect, in every agent, each key OpenClaw would
read as that agent's main session. A config that exists but cannot be read is an error
(deleting blind could hit a main session under a custom mainKey).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sessionkeeper import inputs
from sessionkeeper.errors import InvalidInput

__all__ = ["CONFIG_NAME", "DEFAULT_MAIN_KEY", "MainSessionRule", "config_path", "read_rule"]

DEFAULT_MAIN_KEY = "main"
DEFAULT_AGENT_ID = "main"
CONFIG_NAME = "openclaw.json"
CONFIG_ENV = "OPENCLAW_CONFIG_PATH"
_VALID_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.IGNORECASE)
_INVALID_CHARS = re.compile(r"[^a-z0-9_-]+")


def normalize_agent_id(value: str) -> str:
    """OpenClaw's ``normalizeAgentId`` (src/routing/session-key.ts)."""
    trimmed = value.strip()
    if not trimmed:
        return DEFAULT_AGENT_ID
    if _VALID_ID.fullmatch(trimmed):
        return trimmed.lower()
    collapsed = _INVALID_CHARS.sub("-", trimmed.lower()).strip("-")[:64]
    return collapsed or DEFAULT_AGENT_ID


def normalize_main_key(value: object) -> str:
    """OpenClaw's ``normalizeMainKey`` (src/routing/session-key.ts)."""
    trimmed = value.strip() if isinstance(value, str) else ""
    return trimmed.lower() if trimmed else DEFAULT_MAIN_KEY


@dataclass(frozen=True)
class MainSessionRule:
    """How OpenClaw names each agent's main session: ``session.mainKey``, ``session.scope``."""

    main_key: str = DEFAULT_MAIN_KEY
    global_scope: bool = False
    source: str | None = None  # the config file it was read from, if any

    def keys(self, agent: str) -> frozenset[str]:
        """Every index key (lower-cased) OpenClaw reads as ``agent``'s main session."""
        agent_id = normalize_agent_id(agent)
        keys = {
            f"agent:{agent_id}:{self.main_key}",
            f"agent:{agent_id}:{DEFAULT_MAIN_KEY}",
            DEFAULT_MAIN_KEY,
            self.main_key,
        }
        if self.global_scope:
            keys.add("global")
        return frozenset(keys)

    def is_main(self, agent: str, key: str) -> bool:
        return key.strip().lower() in self.keys(agent)


def config_path(root: Path) -> Path:
    """Where OpenClaw's config is for the agents root ``root``: ``$OPENCLAW_CONFIG_PATH``,
    else ``openclaw.json`` beside ``root`` (in the state directory that holds it)."""
    override = os.environ.get(CONFIG_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(root).expanduser().parent / CONFIG_NAME


def read_rule(root: Path) -> MainSessionRule:
    """The main-session rule of the OpenClaw that owns ``root`` (defaults without a config).

    InvalidInput when the config exists but cannot be read, or names a mainKey or scope of
    the wrong type: without it, a custom main session could not be told apart.
    """
    path = config_path(root)
    try:
        raw = inputs.read_regular(path)
    except FileNotFoundError:
        return MainSessionRule()
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from exc
    except InvalidInput as exc:
        raise _unreadable(path, exc.message) from None
    import json5

    try:
        config = json5.loads(inputs.decode_utf8(raw, str(path)))
    except InvalidInput as exc:
        raise _unreadable(path, exc.message) from None
    except RecursionError:
        raise _unreadable(path, "nested too deeply") from None
    except ValueError as exc:
        raise _unreadable(path, f"not valid JSON5: {exc}") from None
    session = config.get("session") if isinstance(config, dict) else None
    if session is None:
        return MainSessionRule(source=str(path))
    if not isinstance(session, dict):
        raise _unreadable(path, "session is not an object")
    main_key, scope = session.get("mainKey"), session.get("scope")
    if main_key is not None and not isinstance(main_key, str):
        raise _unreadable(path, f"session.mainKey is not a string: {main_key!r}")
    return MainSessionRule(normalize_main_key(main_key), scope == "global", str(path))


def _unreadable(path: Path, why: str) -> InvalidInput:
    return InvalidInput(
        f"cannot read OpenClaw's config {path} ({why}): it says which session of each agent "
        f"is its main session, which is never deleted; fix it, or point ${CONFIG_ENV} at "
        "the right file",
        path=str(path),
    )
