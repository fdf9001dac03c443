"""The schema revision this code needs (no imports: read on the CLI's fast paths too).

Bump together with a new migration in migrations/versions/; a test checks they agree.
"""

SCHEMA_REVISION = "0011"
