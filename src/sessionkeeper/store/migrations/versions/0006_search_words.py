"""Search: PostgreSQL indexes the words SQLite's FTS5 indexes, stemmed the same way.

Before, PostgreSQL's ``english`` configuration dropped stop words ("the", "and", "or" found
nothing there and everything on SQLite), stemmed with Porter2 where FTS5 uses Porter, and its
parser kept URLs, hosts and e-mail addresses whole where FTS5 splits them into words. Now:

- text search configuration ``sessionkeeper``: the default parser, every word and number
  type mapped to ``unaccent`` (accents folded, as FTS5's ``remove_diacritics`` does; when the
  server offers that extension and this role may create it) then a Snowball ``porter``
  dictionary without a stop-word list;
- ``messages.tsv`` is rebuilt from the content with each run of characters other than
  letters and digits made a space (what FTS5's ``unicode61`` tokenizer splits at), so both
  databases see the same words. The table is rewritten once (the column is generated).

SQLite is unchanged.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WORD_TYPES = (
    "asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part, "
    "hword_numpart, int, uint, float, sfloat, version"
)

_UPGRADE = [
    "CREATE TEXT SEARCH DICTIONARY sessionkeeper_porter (TEMPLATE = snowball, Language = porter)",
    "CREATE TEXT SEARCH CONFIGURATION sessionkeeper (PARSER = default)",
    f"ALTER TEXT SEARCH CONFIGURATION sessionkeeper ADD MAPPING FOR {_WORD_TYPES} "
    "WITH {dictionaries}",
    "DROP INDEX ix_messages_tsv",
    "ALTER TABLE messages DROP COLUMN tsv",
    """ALTER TABLE messages ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
           to_tsvector('sessionkeeper', regexp_replace(content, '[^[:alnum:]]+', ' ', 'g'))
       ) STORED""",
    "CREATE INDEX ix_messages_tsv ON messages USING gin (tsv)",
]

_DOWNGRADE = [
    "DROP INDEX ix_messages_tsv",
    "ALTER TABLE messages DROP COLUMN tsv",
    """ALTER TABLE messages ADD COLUMN tsv tsvector
           GENERATED ALWAYS AS (to_tsvector('english', content)) STORED""",
    "CREATE INDEX ix_messages_tsv ON messages USING gin (tsv)",
    "DROP TEXT SEARCH CONFIGURATION sessionkeeper",
    "DROP TEXT SEARCH DICTIONARY sessionkeeper_porter",
]


def _unaccent() -> str | None:
    """The ``unaccent`` dictionary, schema-qualified (the extension may live in a schema not
    on this store's search_path), created if needed: it is a trusted extension, so a
    database owner may create it. None when the server does not offer it or it cannot be
    created here."""
    bind = op.get_bind()
    found = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
    ).first()
    if found is None:
        return None
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS unaccent"))
            schema = bind.execute(
                sa.text(
                    "SELECT quote_ident(n.nspname) FROM pg_extension e "
                    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent'"
                )
            ).scalar_one()
            bind.execute(sa.text(f"SELECT '{schema}.unaccent'::regdictionary"))
    except sa.exc.DBAPIError:
        return None
    return f"{schema}.unaccent"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    unaccent = _unaccent()
    dictionaries = f"{unaccent}, sessionkeeper_porter" if unaccent else "sessionkeeper_porter"
    for statement in _UPGRADE:
        op.execute(statement.replace("{dictionaries}", dictionaries))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
