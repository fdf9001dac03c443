"""OpenClaw-style agents directories: the directory store (``directory``) and the gateway's
lock protocol for ``sessions.json`` (``locking``).

Pure standard library; nothing here imports the database layer, Typer or FastAPI.
"""
