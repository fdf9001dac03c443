"""Where sessionkeeper keeps its files by default (platformdirs only: cheap to import)."""

from __future__ import annotations

from pathlib import Path


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("sessionkeeper", appauthor=False))


def default_database_url() -> str:
    """The SQLite file used when no database is configured."""
    return f"sqlite:///{default_data_dir() / 'sessionkeeper.db'}"
