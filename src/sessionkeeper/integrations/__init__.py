"""Framework memory interfaces on top of the Store, each behind its own extra.

- :mod:`sessionkeeper.integrations.openai_agents` — ``SessionkeeperSession``, an OpenAI Agents
  SDK ``Session`` (``pip install 'sessionkeeper[openai-agents]'``).
- :mod:`sessionkeeper.integrations.langchain` — ``SessionkeeperChatMessageHistory``, a LangChain
  ``BaseChatMessageHistory`` (``pip install 'sessionkeeper[langchain]'``).
- :mod:`sessionkeeper.integrations.langgraph` — ``SessionkeeperSaver`` and
  ``AsyncSessionkeeperSaver``, LangGraph ``BaseCheckpointSaver``s whose threads are sessions
  (``pip install 'sessionkeeper[langgraph]'``).
- :mod:`sessionkeeper.integrations.adk` — ``SessionkeeperSessionService``, a Google ADK
  ``BaseSessionService``, and ``SessionkeeperMemoryService``, a ``BaseMemoryService`` over the
  store's search (``adk_memory.py``) (``pip install 'sessionkeeper[adk]'``).
- :mod:`sessionkeeper.integrations.pydantic_ai` — ``SessionkeeperMessageHistory``, a Pydantic
  AI message history (``pip install 'sessionkeeper[pydantic-ai]'``).

Each class derives from ``_binding.Bound`` (its Store, given or opened from a URL) and follows
one ``from_url`` rule: ``from_url([session_id,] url, *, <the constructor's own options>,
store_options=None)`` (docs/integrations.md).

What they store is an ordinary session (listed, searched, windowed, ended, purged, pruned):
``session_type`` names the framework, each framework object is kept whole in the message
metadata so it comes back exactly, and its text is the message content, so search and token
counts see what the model sees.

This package imports no framework itself; each module imports its own and, when it is
missing, says which extra to install.
"""

from __future__ import annotations
