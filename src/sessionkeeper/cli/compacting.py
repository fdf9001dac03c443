"""``sessionkeeper compact``: summarise a session's older messages now (``Store.compact_session``).

The summary is written by the chat model (``-m``, else the configured one: the same as
``ask``'s); it then stands in for those messages in the session's context window (what
``ask`` sends the model), and the messages themselves stay (``show``, ``export``,
``search``). ``ask`` also compacts by itself past a per-agent threshold
(``SESSIONKEEPER_COMPACT_AFTER_TOKENS``; see the README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.asking import ModelOpt, model_client
from sessionkeeper.cli.common import JsonOpt
from sessionkeeper.errors import Conflict

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.models import Compaction

app = typer.Typer()


@app.command()
def compact(
    session_id: Annotated[str | None, typer.Argument(help="Default: the current session.")] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            "-k",
            min=0,
            help="Tokens of the newest messages kept as they are "
            "(default: half of SESSIONKEEPER_MAX_CONTEXT_TOKENS).",
        ),
    ] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise the session's older messages into one summary the model sees in their place.

    The newest messages worth --keep tokens stay as they are (a tool call is never cut from
    its results); the older ones are kept too, for show, export and search."""
    from sessionkeeper.chat.compacting import summarizer

    chosen = common.target(session_id)
    sid = chosen.session_id
    cfg = common.settings()
    llm = model_client(cfg, model)
    kept = cfg.max_context_tokens // 2 if keep is None else keep

    async def work(store: Store) -> tuple[Compaction | None, Compaction | None]:
        try:
            # Said once the database answered: a missing or unreachable database first.
            if llm.is_echo:
                raise Conflict(
                    "no model is configured to write the summary: set "
                    "SESSIONKEEPER_LLM_BASE_URL and SESSIONKEEPER_LLM_MODEL, or give -m"
                )
            made = await store.compact_session(
                sid, keep_last_tokens=kept, summarize=summarizer(llm), model=llm.model
            )
            current = made if made is not None else await store.get_compaction(sid)
            return made, current
        finally:
            await llm.aclose()

    with common.current_must_exist(chosen):
        made, current = common.run(work)
    if as_json:
        out.emit_json(
            {
                "compacted": made is not None,
                "compaction": None if current is None else current.to_dict(),
            }
        )
    elif made is None:
        out.plain(f"Nothing to compact in {sid}: its messages fit {kept} tokens.")
    else:
        out.plain(
            f"Compacted {sid}: messages {made.from_seq}-{made.through_seq} "
            f"({made.compacted_tokens} tokens) now stand as a summary of "
            f"{made.token_count} tokens."
        )
