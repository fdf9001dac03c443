"""The ``sessionkeeper`` command line (also ``python -m sessionkeeper``).

One module per command group, merged into one Typer app by ``root``:

- ``root``: the app, the global ``--db`` option, ``main()``
- ``sessions``: new, current, switch, list, show, add, ask, end, delete, search
- ``admin``: stats, ghosts, prune, serve, db upgrade/vacuum
- ``transfer``: export, import
- ``fs``: fs list/delete/prune/stats/orphans/cleanup-after-delegation, skill
- ``keys``: keys create/list/revoke
- ``policy``: policy set/list/delete/run (retention policies)
- ``output``: the one place errors become exit codes; the ``--json`` and table helpers
- ``common``: the database choice, running the Store, the current session
- ``state``: the current session, remembered per database in the user data dir
- ``docs``: ``python -m sessionkeeper.cli.docs > docs/cli.md``

Startup is kept short: only Typer and Rich load at import; the Store, pydantic settings,
tiktoken, httpx, FastAPI and Alembic are imported by the commands using them.
"""

from sessionkeeper.cli.root import app, main

__all__ = ["app", "main"]
