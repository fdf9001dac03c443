"""What users hand us (files, streams, arguments), read safely, with errors that say what is wrong.

- Text must be UTF-8. An undecodable byte is reported by its value and offset ("byte 0xE9 at
  offset 3"), not as the lone surrogate (U+DCE9) that Python's ``surrogateescape`` makes of
  it when it decodes the command line or a standard stream.
- A leading UTF-8 byte order mark is an encoding signature, not content: it is dropped.
- JSON nested deeper than Python's parser can follow (it recurses once per level and stops
  at the interpreter's recursion limit) is reported as nested too deeply, not as a
  RecursionError.
- A file found by looking (an index entry, a directory listing) is read only if it is a
  regular file: a FIFO would block the reader until some writer comes (forever), a device
  may do anything when opened. Such a path is refused without being opened
  (``read_regular``).

Every failure is an ``InvalidInput`` whose message starts with what was being read.
Standard library only: the CLI imports this on its start-up path.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from sessionkeeper.errors import InvalidInput

__all__ = [
    "BOM",
    "NotRegular",
    "check_argument",
    "decode_utf8",
    "file_kind",
    "loads",
    "read_regular",
]

BOM = "\ufeff"
# What surrogateescape turns an undecodable byte 0x80-0xFF into.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def decode_utf8(data: bytes, what: str) -> str:
    """``data`` as text, a leading BOM dropped; InvalidInput naming the first byte that is
    not UTF-8 and its offset in ``data``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} is not UTF-8: byte 0x{data[exc.start]:02X} at offset {exc.start} "
            "cannot be decoded (convert the text to UTF-8 first, e.g. with iconv)",
            offset=exc.start,
        ) from None
    return text.removeprefix(BOM)


def check_argument(value: str, what: str) -> str:
    """A command-line argument, which Python decoded with ``surrogateescape``: InvalidInput
    naming the byte when it held bytes that are not UTF-8; else ``value`` unchanged."""
    if _ESCAPED_BYTE.search(value) is None:
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates: not from decoding bytes
        return value
    decode_utf8(data, what)
    return value


def loads(data: bytes | str, what: str) -> Any:
    """JSON from a user's file or stream: UTF-8 (a leading BOM dropped); InvalidInput when
    it is not UTF-8, not JSON, or nested too deeply to read."""
    text = decode_utf8(data, what) if isinstance(data, bytes) else data.removeprefix(BOM)
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply to be read") from None
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a directory``…: what a non-regular file is, for messages."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegular(InvalidInput):
    """A path that exists but is not a regular file (a FIFO, a device, a directory…)."""


def _refuse(path: Path, mode: int) -> NotRegular:
    return NotRegular(f"{path} is {file_kind(mode)}, not a regular file: not read", path=str(path))


def read_regular(path: Path) -> bytes:
    """The bytes of ``path`` (symlinks followed) if it is a regular file.

    NotRegular, without opening it, for anything else; FileNotFoundError if it is missing.
    The check is repeated on the open descriptor (opened non-blocking, so a FIFO swapped in
    after the first look cannot block us either).
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", closefd=True) as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(path, mode)
        os.set_blocking(fd, True)
        return handle.read()
