"""A chat on top of the Store: one turn (``turn``: user message in, streamed reply out) and
the OpenAI-compatible model client it talks to (``llm``). No HTTP here: ``api/routes/chat.py``
and the CLI's ``chat`` command drive it."""
