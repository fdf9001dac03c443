"""Import from other stores (``import --from KIND SOURCE``): the kinds, and what a reader is.

One reader module per kind reads the source's tables directly (``sources.py``) and yields the
same ``Item``s as the file readers, each session whole (``Parsed``), in the shape the matching
sessionkeeper integration stores, so that integration reads it back as the source did.

How a re-run adds nothing: every source conversation maps to one deterministic session id,
its own id when it is a valid session id (``records.database_id``: else a stable hash of
the kind and the id), and an existing session is skipped, never merged (``--replace``
rewrites it). The source's identity is also kept in the session's metadata under
``imported_from`` (``{"kind", "source_id", …}``) for provenance.
"""

from __future__ import annotations

from sessionkeeper.errors import InvalidInput
from sessionkeeper.transfer.foreign_reader import ForeignReader

FOREIGN_KINDS = (
    "openai-sqlite",
    "openai-sqlalchemy",
    "langchain-postgres",
    "langgraph-sqlite",
    "langgraph-postgres",
    "adk",
)


async def open_reader(
    kind: str, source: str, *, table: str | None = None, agent: str | None = None
) -> ForeignReader:
    """The reader of ``kind`` on ``source`` (a file or URL), checked: the source exists and
    holds that kind's tables, else NotFound / InvalidInput and nothing was read."""
    if kind not in FOREIGN_KINDS:
        raise InvalidInput(f"unknown --from kind {kind!r}: use {', '.join(FOREIGN_KINDS)}")
    if table is not None and kind != "langchain-postgres":
        raise InvalidInput("--table is for --from langchain-postgres only")
    if kind == "adk" and agent is not None:
        raise InvalidInput(
            "--agent does not apply to --from adk: an ADK session's agent is its app"
        )
    agent = agent or "main"
    if kind in ("openai-sqlite", "openai-sqlalchemy"):
        from sessionkeeper.transfer import read_openai, sources

        src = await (
            sources.open_file(source) if kind == "openai-sqlite" else sources.open_url(source)
        )
        return await read_openai.OpenAIImport.open(kind, src, agent=agent)
    if kind == "langchain-postgres":
        if not table:
            raise InvalidInput("--from langchain-postgres needs --table NAME")
        from sessionkeeper.transfer import read_langchain, sources

        src = await sources.open_url(source)
        reader: ForeignReader = await read_langchain.LangchainImport.open(src, table, agent=agent)
        return reader
    if kind in ("langgraph-sqlite", "langgraph-postgres"):
        from sessionkeeper.transfer import read_langgraph, sources

        src = await (
            sources.open_file(source) if kind == "langgraph-sqlite" else sources.open_url(source)
        )
        graph: ForeignReader = await read_langgraph.LangGraphImport.open(kind, src, agent=agent)
        return graph
    from sessionkeeper.transfer import read_adk, sources

    adk: ForeignReader = await read_adk.AdkImport.open(await sources.open_url(source))
    return adk
