"""An import: plan it (find the format, count the sessions), then run it through the Store.

``plan_import`` picks the reader for a path (``read_jsonl``, ``read_openclaw``, ``read_aria``);
``run_import`` writes every session it yields through ``Store.import_session`` (rows verbatim:
seq, timestamps, token counts as given; idempotent by session id, an existing session is
skipped unless ``replace``); ``run_foreign_import`` does the same for another store's database
(``foreign.py``). One bad session never stops the others.
No Typer here: the CLI drives these functions and draws the progress bar.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import InvalidInput, NotFound, SessionkeeperError
from sessionkeeper.inputs import file_kind
from sessionkeeper.models import Session
from sessionkeeper.transfer.read_aria import AriaSessionImport, aria_current
from sessionkeeper.transfer.read_jsonl import count_sessions, read_jsonl
from sessionkeeper.transfer.read_openclaw import OpenClawImport
from sessionkeeper.transfer.records import Failed, Item, Parsed, Replayed, Skipped, Streamed

if TYPE_CHECKING:
    from sessionkeeper.store.core import Store
    from sessionkeeper.transfer.foreign_reader import ForeignReader

IMPORT_FORMATS = ("jsonl", "openclaw", "aria-session")


@dataclass
class ImportSummary:
    format: str
    source: str
    imported: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    messages: int = 0
    current: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "imported_count": len(self.imported),
            "skipped_count": len(self.skipped),
            "failed_count": len(self.failed),
            "message_count": self.messages,
            "imported": self.imported,
            "skipped": self.skipped,
            "failed": self.failed,
            "warnings": self.warnings,
            "current": self.current,
        }


@dataclass
class ImportPlan:
    """What an import will read: its format, source, and (when known) how many sessions."""

    format: str
    path: Path
    total: int | None
    items: Callable[[Callable[[str], int]], Iterator[Item]]


def detect_format(path: Path) -> str:
    if is_stream(path) or path.is_file():
        return "jsonl"
    if not path.is_dir():
        raise NotFound(f"no such file or directory: {path}")
    if any((child / "sessions").is_dir() for child in path.iterdir()):
        return "openclaw"
    if any(path.glob("*.meta")):
        return "aria-session"
    if any(path.glob("*.jsonl")):
        return "jsonl"
    raise InvalidInput(f"cannot tell what {path} holds; give --format")


def plan_import(path: Path, fmt: str | None = None, *, agent: str | None = None) -> ImportPlan:
    """Look at ``path`` (a file, ``-`` for stdin, or a directory) and plan its import."""
    fmt = fmt or detect_format(path)
    if fmt not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown import format {fmt!r}: use {', '.join(IMPORT_FORMATS)}")
    if str(path) != "-" and not path.exists():
        raise NotFound(f"no such file or directory: {path}")
    if fmt == "jsonl":
        if path.is_dir():  # found by listing: only regular files are read
            found = sorted(path.glob("*.jsonl"))
            files = [f for f in found if f.is_file()]
            refused = [f for f in found if not f.is_file()]
        else:  # named: a file, or a stream (stdin, a FIFO, `<(…)`) read once and spooled
            files, refused = [path], []

        def jsonl_items(count: Callable[[str], int]) -> Iterator[Item]:
            for file in refused:
                yield Failed(str(file), f"{_kind(file)}, not a regular file: not read")
            for file in files:
                yield from read_jsonl(file, count, agent)

        total = None if is_stream(path) else sum(count_sessions(f) for f in files)
        return ImportPlan(fmt, path, total, jsonl_items)
    if not path.is_dir():
        raise InvalidInput(f"{fmt} import needs a directory, got the file {path}")
    if fmt == "openclaw":
        reader = OpenClawImport(path, agent=agent)
        return ImportPlan(fmt, path, reader.total(), reader.items)
    aria = AriaSessionImport(path, agent=agent or "main")
    return ImportPlan(fmt, path, aria.total(), aria.items)


def is_stream(path: Path) -> bool:
    """``-`` (stdin), or a named FIFO, device or ``/dev/fd/N`` (``import <(cat x.jsonl)``):
    input that can be read only once, as it comes."""
    if str(path) == "-":
        return True
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _kind(path: Path) -> str:
    try:
        return f"{path} is {file_kind(path.stat().st_mode)}"
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"


async def run_import(
    store: Store,
    plan: ImportPlan,
    *,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Write every session of ``plan``; one bad session never stops the others."""
    summary = ImportSummary(format=plan.format, source=str(plan.path))
    for item in plan.items(store.tokenizer.count):
        await _take(store, summary, item, replace, progress)
    if plan.format == "aria-session":
        summary.current = aria_current(plan.path)
    return summary


async def run_foreign_import(
    store: Store,
    reader: ForeignReader,
    *,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    """``run_import`` for another store's database (``import --from KIND``)."""
    summary = ImportSummary(format=reader.kind, source=reader.label)
    async for item in reader.items(store.tokenizer.count):
        await _take(store, summary, item, replace, progress)
    return summary


async def _take(
    store: Store,
    summary: ImportSummary,
    item: Item,
    replace: bool,
    progress: Callable[[str], None] | None,
) -> None:
    """Write one item (or record why not) in ``summary``."""
    if isinstance(item, Failed):
        summary.failed.append(
            {"session_id": item.session_id, "source": item.source, "error": item.error}
        )
    elif isinstance(item, Skipped):
        summary.skipped.append(
            {"session_id": item.session_id, "source": item.source, "reason": item.reason}
        )
    elif isinstance(item, Replayed):
        await _replay(store, summary, item, replace)
    else:
        sid = item.session.session_id
        summary.warnings += [f"{sid}: {w}" for w in item.warnings]
        try:
            done = await _write(store, item, replace)
        except SessionkeeperError as exc:
            summary.failed.append({"session_id": sid, "source": item.source, "error": exc.message})
        else:
            if done:
                summary.imported.append(sid)
                summary.messages += (
                    item.message_count if isinstance(item, Streamed) else len(item.messages)
                )
            else:
                summary.skipped.append(
                    {
                        "session_id": sid,
                        "source": item.source,
                        "reason": "already in the database (use --replace to overwrite)",
                    }
                )
    if progress is not None:
        session = getattr(item, "session", None)
        progress(session.session_id if isinstance(session, Session) else item.source)


async def _replay(store: Store, summary: ImportSummary, item: Replayed, replace: bool) -> None:
    """Write a ``Replayed`` session: skipped when it exists (unless ``replace``: deleted
    first), removed again when its writing fails, so a session is imported whole or not."""
    sid = item.session_id

    async def remove(store: Store) -> object:
        await store.delete_session(sid)
        return None

    exists = item.exists or (lambda store: store.session_exists(sid))
    drop = item.remove or remove
    if await exists(store):
        if not replace:
            summary.skipped.append(
                {
                    "session_id": sid,
                    "source": item.source,
                    "reason": "already in the database (use --replace to overwrite)",
                }
            )
            return
        await drop(store)
    try:
        messages = await item.write(store)
    except SessionkeeperError as exc:
        with contextlib.suppress(NotFound):
            await drop(store)
        summary.failed.append({"session_id": sid, "source": item.source, "error": exc.message})
        return
    summary.warnings += [f"{sid}: {w}" for w in item.warnings]
    summary.imported.append(sid)
    summary.messages += messages


async def _write(store: Store, item: Parsed | Streamed, replace: bool) -> bool:
    """``Store.import_session`` for a parsed session; for a streamed one, the Store's
    streaming import (memory: a chunk of messages, not the session)."""
    if isinstance(item, Parsed):
        return await store.import_session(item.session, item.messages, replace=replace)
    if not replace and await store.session_exists(item.session.session_id):
        return False  # skipped without reading the lines again
    return await store.import_session_stream(
        item.session, item.messages(), compactions=item.compactions(), replace=replace
    )
