"""Moving sessions in and out of a Store: export formats, and readers of what can be imported.

- ``records``: the JSONL record shapes every format shares, and the items readers yield.
- ``export``: sessions out, as JSONL or Markdown (``export_sessions``).
- ``read_jsonl``, ``read_openclaw``, ``read_aria``: sessions in, one reader per source
  (a JSONL export, an OpenClaw agents root, an aria-session cache).
- ``imports``: ``plan_import`` picks the reader, ``run_import`` writes through the Store
  (``run_foreign_import`` for another store's database).
- ``foreign``: ``import --from KIND``, the kinds and ``open_reader``; ``foreign_reader`` what
  such a reader is; ``sources``: read-only connections to the source database (sqlite3,
  asyncpg); one reader per kind: ``read_openai`` (Agents SDK sessions), ``read_langchain``
  (langchain-postgres), ``read_langgraph`` (checkpointers), ``read_adk`` (ADK database).

No Typer here (the CLI's ``export`` / ``import`` commands drive these functions), and nothing
below the Store: every write goes through ``Store.import_session`` (a LangGraph thread or
an ADK session through its integration's own Store calls).
"""
