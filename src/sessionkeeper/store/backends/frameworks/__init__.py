"""Storage of framework state, one part per framework and database, built by each backend.

``checkpoints_base.py`` / ``adk_base.py`` hold a part's rows and protocol (``CheckpointPart``,
``AdkPart``); ``sqlite_*.py`` / ``postgres_*.py`` run its SQL on the backend's own connections.
Tables keyed by session (``session_tables``) go with their session; a part marks the sessions
it holds state for (``sessions.held_by``), so the ghost rule never names its tables, and says
which of its tables may hold rows of a session it does not mark (``ghost_tables``: deleted
with a ghost).
"""
