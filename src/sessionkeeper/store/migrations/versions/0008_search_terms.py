"""Search: both databases index the terms the store's analyser gives (``store/terms.py``).

Before, each database analysed text itself (SQLite: FTS5's ``porter unicode61``; PostgreSQL:
the default parser over a ``regexp_replace`` of the content, ``unaccent``, Snowball) and
they disagreed: words with combining marks were split on PostgreSQL, NFD text was missed on
SQLite, ß/ł/ligatures/fullwidth/final sigma differed, and the generated column cost every
append on PostgreSQL. Now:

- SQLite: ``messages_fts`` is an FTS5 index with the ``ascii`` tokenizer (terms are split at
  spaces and otherwise taken as they are) whose external content is the view
  ``messages_terms``: each message's terms, from the function ``sessionkeeper_terms`` that
  every connection of the store registers. An append only notes its message in
  ``messages_unindexed``; the store indexes the noted messages in batches, and always before
  a search reads the index (``backends/sqlite_index.py``). Triggers keep index and notes in
  step with ``messages``.
- PostgreSQL: ``messages.tsv`` is a plain ``tsvector`` column the store writes with each
  row; the GIN index stays. The ``sessionkeeper`` text search configuration and its
  dictionary go (nothing uses them).
- ``search_index`` records which analyser built the index. This migration leaves it empty:
  the store builds the index when it opens (``Store.open``), and again whenever its analyser
  (or Python's Unicode version) differs from the one recorded.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE_UP = [
    "DROP TRIGGER messages_fts_ai",
    "DROP TRIGGER messages_fts_ad",
    "DROP TRIGGER messages_fts_au",
    "DROP TABLE messages_fts",
    """CREATE VIEW messages_terms AS
           SELECT rowid AS message_rowid, sessionkeeper_terms(content) AS terms FROM messages""",
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
           terms, content='messages_terms', content_rowid='message_rowid', tokenize='ascii')""",
    # An append only notes its message; the store moves the notes into the index in
    # batches (backends/sqlite_index.py). A deleted or changed message leaves the index now
    # if it was in it, else just its note.
    "CREATE TABLE messages_unindexed (message_rowid INTEGER PRIMARY KEY)",
    """CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
           INSERT INTO messages_unindexed (message_rowid) VALUES (new.rowid);
       END""",
    """CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, terms)
           SELECT 'delete', old.rowid, sessionkeeper_terms(old.content)
           WHERE NOT EXISTS (SELECT 1 FROM messages_unindexed WHERE message_rowid = old.rowid);
           DELETE FROM messages_unindexed WHERE message_rowid = old.rowid;
       END""",
    """CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, terms)
           SELECT 'delete', old.rowid, sessionkeeper_terms(old.content)
           WHERE NOT EXISTS (SELECT 1 FROM messages_unindexed WHERE message_rowid = old.rowid);
           INSERT OR IGNORE INTO messages_unindexed (message_rowid) VALUES (new.rowid);
       END""",
]

_SQLITE_DOWN = [
    "DROP TRIGGER messages_fts_ai",
    "DROP TRIGGER messages_fts_ad",
    "DROP TRIGGER messages_fts_au",
    "DROP TABLE messages_unindexed",
    "DROP TABLE messages_fts",
    "DROP VIEW messages_terms",
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
           content, content='messages', content_rowid='rowid',
           tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
           INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
       END""",
    """CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content)
           VALUES ('delete', old.rowid, old.content);
       END""",
    """CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
           INSERT INTO messages_fts(messages_fts, rowid, content)
           VALUES ('delete', old.rowid, old.content);
           INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
       END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]

_PG_UP = [
    "DROP INDEX ix_messages_tsv",
    "ALTER TABLE messages DROP COLUMN tsv",
    "ALTER TABLE messages ADD COLUMN tsv tsvector",
    "CREATE INDEX ix_messages_tsv ON messages USING gin (tsv)",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS sessionkeeper",
    "DROP TEXT SEARCH DICTIONARY IF EXISTS sessionkeeper_porter",
]

# Back to revision 0006's column, without ``unaccent`` (the extension may not be there).
_PG_DOWN = [
    "CREATE TEXT SEARCH DICTIONARY sessionkeeper_porter (TEMPLATE = snowball, Language = porter)",
    "CREATE TEXT SEARCH CONFIGURATION sessionkeeper (PARSER = default)",
    "ALTER TEXT SEARCH CONFIGURATION sessionkeeper ADD MAPPING FOR asciiword, word, numword, "
    "asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart, int, uint, float, "
    "sfloat, version WITH sessionkeeper_porter",
    "DROP INDEX ix_messages_tsv",
    "ALTER TABLE messages DROP COLUMN tsv",
    """ALTER TABLE messages ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
           to_tsvector('sessionkeeper', regexp_replace(content, '[^[:alnum:]]+', ' ', 'g'))
       ) STORED""",
    "CREATE INDEX ix_messages_tsv ON messages USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table("search_index", sa.Column("analyser", sa.String(200), nullable=False))
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_UP if postgres else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("search_index")
