"""One exception hierarchy for every face of sessionkeeper.

The REST API maps these to HTTP statuses and the CLI to exit codes, each in one place
(``api/errors.py`` and ``cli/output.py``). Nothing else should decide what a failure means.
"""

from __future__ import annotations


class SessionkeeperError(Exception):
    """Base class: every error sessionkeeper raises on purpose is one of these."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(SessionkeeperError):
    """The session (or message) does not exist, or is not visible to the caller."""

    code = "not_found"


class InvalidInput(SessionkeeperError):
    """A bad argument: unknown role, malformed id, out-of-range limit, unknown sort field…"""

    code = "invalid_input"


class TooLarge(InvalidInput):
    """Content over a hard limit. Never truncated: the write is refused as a whole."""

    code = "too_large"


class Conflict(SessionkeeperError):
    """The request collides with existing state (duplicate id, duplicate resend…)."""

    code = "conflict"


class Forbidden(SessionkeeperError):
    """The caller is authenticated but may not do this."""

    code = "forbidden"


class Unauthorized(SessionkeeperError):
    """No credentials, or credentials that are unknown or revoked."""

    code = "unauthorized"


class SchemaMismatch(SessionkeeperError):
    """The database schema is older or newer than this version of sessionkeeper."""

    code = "schema_mismatch"


class Unavailable(SessionkeeperError):
    """A dependency (database, model server) is not answering."""

    code = "unavailable"


class DatabaseError(SessionkeeperError):
    """The database failed in a way that is not the caller's input nor a passing outage.

    A bug or a damaged database: reported as a server error, with the driver's message.
    """

    code = "database_error"


class IdempotencyKeyReused(InvalidInput):
    """An idempotency key sent again with a different request: the key already stands for
    another write (REST 422, as the IETF Idempotency-Key draft says), so nothing is written."""

    code = "idempotency_key_reused"
