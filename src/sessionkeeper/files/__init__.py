"""Filesystem stores: OpenClaw-style agents directories (:mod:`sessionkeeper.files.openclaw`).

Pure standard library; nothing here imports the database layer, Typer or FastAPI.
"""
