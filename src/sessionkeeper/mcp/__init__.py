"""The MCP server: agents reach their past sessions through the Model Context Protocol.

- ``tools.py``: what each tool does, over a Store and a caller (a ``Principal``), with no MCP
  import: the store-level tests call these directly on every database.
- ``recall.py``: the ``recall`` tool's passages (search hits, their neighbours, deduplicated,
  within a token budget).
- ``server.py``: the ``MCPServer`` (official ``mcp`` SDK): the tools' names, descriptions and
  JSON schemas, and errors as MCP tool errors with the REST API's wording.
- ``stdio.py``: ``sessionkeeper mcp`` (stdio, the local user's whole database).
- ``http.py``: the same server on ``serve`` at ``/mcp`` (streamable HTTP, scoped by API key).

Nothing here is imported by the CLI or the API until it is used (the ``mcp`` SDK is heavy).
"""
