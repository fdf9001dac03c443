"""Alembic: its environment (``env.py``) and the schema's revisions (``versions/``)."""
