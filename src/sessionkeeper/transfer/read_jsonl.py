"""Read a sessionkeeper JSONL export (the format in ``transfer.records``), in bounded memory.

Each session is read twice: a checking pass holds every line to the Store's rules (a bad line
anywhere fails the session before anything of it is written), then the writing pass reads its
lines again as the Store's streaming import consumes them. Memory holds a page of messages,
never a session; stdin is spooled to a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sessionkeeper import inputs
from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.models import MAX_MESSAGES_PAGE, Compaction, Message, Session
from sessionkeeper.store.validate import MAX_INT
from sessionkeeper.transfer.records import (
    Failed,
    Item,
    Skipped,
    Streamed,
    compaction_from_record,
    message_from_record,
    session_from_record,
)

CHECK_CHUNK = MAX_MESSAGES_PAGE  # messages checked against the Store's rules at a time


class SeqSet:
    """The seqs seen in one session, to refuse duplicates in bounded memory: a bitmap (seqs
    are usually 1..N: N/8 bytes), a set only for seqs too large for a small bitmap."""

    BITMAP_LIMIT = 1 << 26  # 8 MB of bitmap at most

    def __init__(self) -> None:
        self._bits = bytearray()
        self._large: set[int] = set()

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was already there."""
        if seq >= self.BITMAP_LIMIT:
            if seq in self._large:
                return False
            self._large.add(seq)
            return True
        byte, bit = divmod(seq, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        return True


@dataclass
class _Block:
    """One session of a JSONL file as found by the checking pass."""

    header: dict[str, Any]
    line: int  # the header's line number
    start: int  # byte offset just after the header line
    end: int  # byte offset of the next header (or of the end of the file)
    messages: int = 0
    tokens: int = 0
    last_seq: int = 0
    # (line number, byte offset, through_seq) of each compaction line: read again when written
    compactions: list[tuple[int, int, int]] = field(default_factory=list)
    error: str | None = None


def _no_count(_text: str) -> int:
    return 0


def _parse_line(raw: bytes, number: int) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why the line is not one: not UTF-8, not JSON, nested too
    deeply to read…)."""
    try:
        record = inputs.loads(raw, f"line {number}")
    except InvalidInput as exc:
        return None, exc.message
    if not isinstance(record, dict):
        return None, f"line {number} is not a JSON object"
    return record, None


def _lines(handle: IO[bytes], offset: int, number: int) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, line)`` from ``offset``; only ``\n`` ends a line (JSON
    escapes \r and \n inside strings, but not U+2028 or U+0085)."""
    handle.seek(offset)
    while True:
        raw = handle.readline()
        if not raw:
            return
        yield number, offset, raw
        offset += len(raw)
        number += 1


def _check_block(handle: IO[bytes], block: _Block) -> tuple[dict[str, Any] | None, int, int]:
    """The checking pass over one session: every line parsed and held to the Store's rules,
    nothing kept but counters. Returns the next header (record, offset, line) if any."""
    from sessionkeeper.store import verbatim

    session: Session | None = None
    try:
        session = session_from_record(block.header)
        verbatim.check(session, [])
    except SessionkeeperError as exc:
        block.error = exc.message
    seqs = SeqSet()
    cuts: set[int] = set()  # the compactions' through_seqs
    chunk: list[Message] = []

    def check_chunk() -> None:
        assert session is not None
        try:
            verbatim.check(session, chunk)
        except SessionkeeperError as exc:
            block.error = block.error or exc.message
        chunk.clear()

    for number, offset, raw in _lines(handle, block.start, block.line + 1):
        if not raw.strip():
            continue
        record, error = _parse_line(raw, number)
        if record is not None and record.get("type") == "session":
            block.end = offset
            _end_of_block(block, chunk, check_chunk)
            return record, offset, number
        if block.error is not None:
            continue  # already refused: only looking for the next header
        if record is None:
            block.error = error
        elif record.get("type") == "compaction":
            assert session is not None
            try:
                found = compaction_from_record(record, session, number)
                verbatim.check_compaction(session, found, MAX_INT, cuts)
            except SessionkeeperError as exc:
                block.error = exc.message
                continue
            block.compactions.append((number, offset, found.through_seq))
        elif record.get("type") != "message":
            block.error = f"line {number}: unknown record type {record.get('type')!r}"
        else:
            assert session is not None
            try:
                # A missing token count is computed when the message is written, not here:
                # the check needs none, and a refused file never loads the tokenizer.
                message = message_from_record(record, session, block.messages + 1, _no_count)
            except SessionkeeperError as exc:
                block.error = exc.message
                continue
            if not seqs.add(message.seq):
                block.error = (
                    f"session {session.session_id!r}: duplicate seq {message.seq} (line {number})"
                )
                continue
            block.messages += 1
            block.tokens += message.token_count
            block.last_seq = max(block.last_seq, message.seq)
            chunk.append(message)
            if len(chunk) >= CHECK_CHUNK:
                check_chunk()
    handle.seek(0, os.SEEK_END)
    block.end = handle.tell()
    _end_of_block(block, chunk, check_chunk)
    return None, block.end, -1


def _end_of_block(block: _Block, chunk: list[Message], check_chunk: Callable[[], None]) -> None:
    """What can only be checked once a session's lines are all read: its last messages,
    and that each compaction stands for seqs the session has."""
    if chunk and block.error is None:
        check_chunk()
    if block.error is not None:
        return
    for number, _, through in block.compactions:
        if through > block.last_seq:
            block.error = (
                f"line {number}: a compaction through seq {through}, past the session's last "
                f"message (seq {block.last_seq})"
            )
            return


def _block_messages(
    handle: IO[bytes], block: _Block, session: Session, count: Callable[[str], int]
) -> Iterator[Message]:
    """The writing pass over a checked session: its messages again, one at a time."""
    position = 0
    for number, offset, raw in _lines(handle, block.start, block.line + 1):
        if offset >= block.end:
            return
        if not raw.strip():
            continue
        record, error = _parse_line(raw, number)
        if record is None:  # the file changed between the two passes
            raise InvalidInput(f"{error} (the file changed during the import)")
        if record.get("type") == "compaction":
            continue  # read by _block_compactions, after the messages
        position += 1
        yield message_from_record(record, session, position, count)


def _block_compactions(handle: IO[bytes], block: _Block, session: Session) -> Iterator[Compaction]:
    """The writing pass over a checked session's compaction lines (after its messages)."""
    for number, offset, _ in block.compactions:
        handle.seek(offset)
        record, error = _parse_line(handle.readline(), number)
        if record is None:
            raise InvalidInput(f"{error} (the file changed during the import)")
        yield compaction_from_record(record, session, number)


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file, or a stream (stdin, a FIFO, ``<(…)``) spooled to a temporary file (read
    twice, so it must be seekable; spooled to disk, so memory stays bounded)."""
    if str(path) == "-":
        source: IO[bytes] | None = None
    else:
        source = path.open("rb")  # a named FIFO: given explicitly, so waited for
        if stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            with source:
                yield source
            return
    with tempfile.TemporaryFile() as spool, contextlib.ExitStack() as stack:
        if source is not None:
            stack.enter_context(source)
        shutil.copyfileobj(sys.stdin.buffer if source is None else source, spool, 1 << 20)
        spool.seek(0)
        yield spool


def read_jsonl(path: Path, count: Callable[[str], int], agent: str | None = None) -> Iterator[Item]:
    """Sessions of a sessionkeeper JSONL export, one item per session header.

    Each session is read twice: a checking pass (every line parsed and held to the Store's
    rules, so a bad line anywhere fails the session before anything of it is written), then,
    when the consumer writes it, ``Streamed.messages()`` reads its lines again. Memory holds
    a page of messages, never a session; stdin is spooled to a temporary file.
    """
    with _open_binary(path) as handle:
        pending: tuple[dict[str, Any] | None, int, int] | None = None
        stream = _lines(handle, 0, 1)
        while True:
            if pending is None:
                found = next(
                    ((n, o, r) for n, o, r in stream if r.strip()),
                    None,
                )
                if found is None:
                    return
                number, offset, raw = found
                record, error = _parse_line(raw, number)
                if record is None or record.get("type") != "session":
                    kind = None if record is None else record.get("type")
                    why = error or (
                        "message line before any session header"
                        if kind == "message"
                        else f"unknown record type {kind!r}"
                    )
                    yield Failed(f"{path}:{number}", why or "")
                    continue
                pending = (record, offset + len(raw), number)
            header, start, line = pending
            assert header is not None
            block = _Block(header, line, start, start)
            next_header, next_offset, next_line = _check_block(handle, block)
            yield _block_item(path, handle, block, agent, count)
            if next_header is None:
                return
            # the header line of the next session, found by the checking pass
            handle.seek(next_offset)
            raw = handle.readline()
            pending = (next_header, next_offset + len(raw), next_line)
            stream = _lines(handle, next_offset + len(raw), next_line + 1)


def _block_item(
    path: Path, handle: IO[bytes], block: _Block, agent: str | None, count: Callable[[str], int]
) -> Item:
    source = f"{path}:{block.line}"
    sid = block.header.get("session_id")
    sid = sid if isinstance(sid, str) else None
    if block.error is not None:
        return Failed(source, block.error, sid)
    if agent is not None and block.header.get("agent_id", "main") != agent:
        return Skipped(source, f"agent is not {agent}", sid)
    session = session_from_record(block.header)
    session.message_count, session.token_count = block.messages, block.tokens
    return Streamed(
        session,
        block.messages,
        lambda: _block_messages(handle, block, session, count),
        source,
        compactions=lambda: _block_compactions(handle, block, session),
    )


def count_sessions(path: Path) -> int:
    """Session headers in a JSONL file, for the progress bar (a cheap scan, no parsing)."""
    prefix = b'{"type":"session"'
    bom = inputs.BOM.encode()
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.removeprefix(bom).startswith(prefix))
