"""Moving sessions in and out of a Store: export formats, and readers of what can be imported.

- ``records``: the JSONL record shapes every format shares, and the items readers yield.
- ``export``: sessions out, as JSONL or Markdown (``export_sessions``).
- ``read_jsonl``, ``read_openclaw``, ``read_aria``: sessions in, one reader per source
  (a JSONL export, an OpenClaw agents root, an aria-session cache).
- ``imports``: ``plan_import`` picks the reader, ``run_import`` writes through the Store.

No Typer here (the CLI's ``export`` / ``import`` commands drive these functions), and nothing
below the Store: every write goes through ``Store.import_session``.
"""
