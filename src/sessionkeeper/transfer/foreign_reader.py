"""What an importer of another store (``import --from``) is: the reader protocol and its counts.

(The kinds, and which reader reads each, are in ``foreign.py``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sessionkeeper.transfer.records import Item

Count = Callable[[str], int]


@dataclass
class Counts:
    """What a source holds: conversations, and the rows each becomes (``--dry-run``)."""

    sessions: int = 0
    messages: int = 0
    other: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, int]:
        return {"sessions": self.sessions, "messages": self.messages, **self.other}


class ForeignReader(Protocol):
    kind: str
    label: str

    async def count(self) -> Counts: ...

    def items(self, count: Count) -> AsyncIterator[Item]: ...

    async def close(self) -> None: ...
