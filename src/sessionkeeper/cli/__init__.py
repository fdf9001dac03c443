"""The ``sessionkeeper`` command line (also ``python -m sessionkeeper``).

One module per command group, merged into one Typer app by ``root``:

- ``root``: the app, the global ``--db`` option, running it (``run``)
- ``sessions``: new, current, switch, list, show, add, pop, rename, end, reopen, delete, search
- ``asking``: ask and chat, the commands that talk to the model
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
tiktoken, httpx, FastAPI and Alembic are imported by the commands using them. This module
itself imports nothing (``app`` is loaded when first asked for), so ``main`` is in charge
before any of that loads: a Ctrl-C during start-up exits 130 with one line, no traceback.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time (mypy knows it)
if TYPE_CHECKING:
    from typing import Any

    from sessionkeeper.cli.root import app

__all__ = ["app", "main"]

INTERRUPTED = 130


def main() -> None:
    """The ``sessionkeeper`` command (the console script and ``python -m sessionkeeper``)."""
    try:
        from sessionkeeper.cli.root import run
    except KeyboardInterrupt:  # Ctrl-C while the command line was still loading
        sys.stderr.write("error: interrupted\n")
        sys.exit(INTERRUPTED)
    run()


def __getattr__(name: str) -> Any:
    if name == "app":
        from sessionkeeper.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
