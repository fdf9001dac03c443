"""How the SQLite backend runs work: connections, the writer thread, errors.

- One writer thread owns the writing connection and runs submitted functions in order, each
  inside ``BEGIN IMMEDIATE … COMMIT`` (``write_txn``): taking the write lock first makes
  writers in other processes queue on ``busy_timeout`` instead of deadlocking on a
  read-to-write upgrade, and the commit's fsync never runs on an event loop.
- The WAL is kept small (the rule, measured, is in the README under "SQLite"): SQLite's
  automatic checkpoint copies it into the database every 1,000 pages and the next write
  starts it over, cut to ``journal_size_limit``; when the writer has been idle for
  IDLE_CHECKPOINT_S it runs ``wal_checkpoint(TRUNCATE)``, and between writes, when the WAL
  has passed WAL_CHECKPOINT_BYTES (checked at most every CHECKPOINT_EVERY_S), it checkpoints
  too: PASSIVE first, which waits for no one, then TRUNCATE (a short busy wait) only if the
  PASSIVE one copied every frame. Checkpoints wait at most CHECKPOINT_BUSY_MS for readers:
  a reader holding an old snapshot must not stall the next append.
- A snapshot pins the WAL: SQLite cannot copy frames a reader's snapshot does not include,
  nor start the WAL over while a reader uses it. The store's own reads each end their
  snapshot before they return (an autocommit statement read to its end, or ``read_txn``'s
  BEGIN … COMMIT), so only a connection outside the store (a sqlite3 shell left in a
  transaction, a backup, a long report) can hold one for long; the WAL then grows by every
  write until it ends, and the writer logs a warning at WAL_WARN_BYTES and each doubling.
- Writer connections run with ``secure_delete`` on: deleted content is overwritten with
  zeros, so no byte of a deleted (or forgotten) row stays in the file's free space.
- Errors are translated in one place: every touch of the driver (connecting, the PRAGMAs,
  every statement, on the writer, the readers and the calling thread alike) runs inside
  ``translating()``, whose ``translate`` turns sqlite3 failures into the store's errors:
  busy past the wait → Unavailable, duplicate key → Conflict, read-only → Forbidden, a file
  that cannot be opened or used (its directory removed, a disk error) → Unavailable, bad
  values → InvalidInput. No sqlite3 exception leaves this module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sessionkeeper.errors import (
    Conflict,
    DatabaseError,
    Forbidden,
    InvalidInput,
    SessionkeeperError,
    Unavailable,
)
from sessionkeeper.store.terms import TERMS_FUNCTION, index_text
from sessionkeeper.store.url import DatabaseConfig

T = TypeVar("T")

logger = logging.getLogger(__name__)

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
IDLE_CHECKPOINT_S = 1.0
CHECKPOINT_BUSY_MS = 50
# Under steady writes the WAL peaks at 5-10 MB (tests/test_wal.py): past this, a checkpoint
# has been missed (a reader's snapshot, or readers overlapping without a gap), so the writer
# checkpoints between writes instead of waiting to be idle.
WAL_CHECKPOINT_BYTES = 16 * 1024 * 1024
CHECKPOINT_EVERY_S = 1.0
# Twice that, and the checkpoints could not shrink it: a reader is pinning it (warned).
WAL_WARN_BYTES = 2 * WAL_CHECKPOINT_BYTES
READER_THREADS = 2
INLINE_BUDGET_S = 0.001  # listings and search try the calling thread for this long first


# ── errors ──────────────────────────────────────────────────────────────────


class Busy(Exception):
    """The inline reader met a lock: retry on a reader thread."""


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# What the driver raises: sqlite3's own errors, and the values it cannot bind.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OverflowError, UnicodeEncodeError)
# SQLITE_READONLY_DBMOVED: the file was removed or renamed under an open connection.
_DBMOVED = getattr(sqlite3, "SQLITE_READONLY_DBMOVED", 1032)


def translate(exc: BaseException) -> SessionkeeperError:
    """A sqlite3 (or encoding, or file system) failure as the store's own error type."""
    if isinstance(exc, SessionkeeperError):
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"the database refused a duplicate: {text}")
    if isinstance(exc, sqlite3.OperationalError):
        lower = text.lower()
        if is_busy(exc):
            return Unavailable(f"the SQLite database is locked by another writer ({text}); retry")
        if getattr(exc, "sqlite_errorcode", None) == _DBMOVED:
            return Unavailable(f"the SQLite database file was moved or removed: {text}")
        if "readonly" in lower or "read-only" in lower:
            return Forbidden(f"the SQLite database is read-only: {text}")
        if "unable to open" in lower or "disk i/o" in lower or "disk is full" in lower:
            return Unavailable(f"cannot use the SQLite database: {text}")
        return DatabaseError(f"SQLite: {text}")
    if isinstance(exc, OverflowError):
        return InvalidInput(f"a number is out of range for the database: {text}")
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput(f"text is not valid Unicode: {text}")
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"SQLite: {text}")
    if isinstance(exc, OSError):
        return Unavailable(f"cannot use the SQLite database: {text}")
    return DatabaseError(f"SQLite: {type(exc).__name__}: {text}")


@contextlib.contextmanager
def translating(*also: type[Exception]) -> Iterator[None]:
    """The one guard around the driver: what it raises (and ``also``) leaves as
    ``translate`` says. Used for connecting, the PRAGMAs and every statement."""
    try:
        yield
    except (*DRIVER_ERRORS, *also) as exc:
        raise translate(exc) from exc


def guarded(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    with translating():
        return fn(conn)


# ── connections and threads ────────────────────────────────────────────────


def connect(cfg: DatabaseConfig, busy_ms: int, *, writer: bool) -> sqlite3.Connection:
    """A connection with the store's PRAGMAs (readers: ``query_only``); failures translated."""
    with translating():
        return _connect(cfg, busy_ms, writer=writer)


def _connect(cfg: DatabaseConfig, busy_ms: int, *, writer: bool) -> sqlite3.Connection:
    if cfg.memory:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(
            cfg.sqlite_uri(),
            uri=True,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            timeout=busy_ms / 1000,
            check_same_thread=False,
        )
    # The search index's triggers and view call the store's analyser (migration 0008).
    conn.create_function(TERMS_FUNCTION, 1, index_text, deterministic=True)
    pragmas = [f"busy_timeout={busy_ms}", "foreign_keys=ON"]
    if writer and not cfg.memory and cfg.sqlite_params.get("mode") != "ro":
        pragmas += [
            "journal_mode=WAL",
            "synchronous=FULL",
            f"journal_size_limit={JOURNAL_SIZE_LIMIT}",
        ]
    if writer:
        # Deleted and overwritten content is zeroed, freed pages too: a forgotten user leaves
        # no bytes behind (sqlite_forget.py). Debian's SQLite has it on by default, others
        # not. Cost, measured interleaved: an append +5% (median), batches and deletes
        # within the noise.
        pragmas.append("secure_delete=ON")
    else:
        pragmas.append("query_only=ON")
    # Switching a new file to WAL takes an exclusive lock without consulting the busy
    # handler: several processes opening one new database at once retry it until the wait.
    deadline = time.monotonic() + busy_ms / 1000
    try:
        for pragma in pragmas:
            while True:
                try:
                    conn.execute(f"PRAGMA {pragma}")
                    break
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
    except BaseException:
        conn.close()
        raise
    return conn


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _identity(path: str | None) -> tuple[int, int] | None:
    """(device, inode) of the database file; None in memory or when there is no file."""
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class Writer:
    """One thread, one connection; runs submitted functions in order; checkpoints when idle."""

    def __init__(
        self, cfg: DatabaseConfig, idle_work: Callable[[sqlite3.Connection], Any] | None = None
    ) -> None:
        self._cfg = cfg
        self._idle_work = idle_work  # a write transaction's work, run when idle
        self._busy_ms = int(cfg.timeout * 1000)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wrote = False
        self.conn = connect(cfg, self._busy_ms, writer=True)
        self._current_busy_ms = self._busy_ms
        # Absolute: the process may change its directory after opening the store.
        self._path = None if cfg.memory or cfg.path is None else os.path.abspath(cfg.path)
        self._file = _identity(self._path)
        self._wal = None if self._path is None else f"{self._path}-wal"
        self._next_wal_check = 0.0
        self._warn_at = WAL_WARN_BYTES
        self._thread = threading.Thread(target=self._run, name="sk-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], deadline: float | None = None
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn``; ``deadline`` (time.monotonic) bounds its wait for the write lock."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((future, fn, deadline))
        return future

    def _wait_until(self, deadline: float | None) -> bool:
        """Set the busy wait to end at ``deadline``; False if it has passed already.

        The caller gives up at deadline + 1 s: a write must have failed on its lock by then,
        or it could commit after its caller was told it had not.
        """
        busy_ms = self._busy_ms
        if deadline is not None:
            busy_ms = min(busy_ms, int((deadline - time.monotonic()) * 1000))
            if busy_ms <= 0:
                return False
        if busy_ms != self._current_busy_ms:
            self.conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            self._current_busy_ms = busy_ms
        return True

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_CHECKPOINT_S)
            except queue.Empty:
                self._idle()
                continue
            if item is None:
                self._idle()  # closing: what is noted gets indexed, the WAL checkpointed
                break
            future, fn, deadline = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with translating():
                    if not self._wait_until(deadline):
                        raise Unavailable("the SQLite write queue was busy past the timeout; retry")
                    self._check_file()
                    result = fn(self.conn)
                future.set_result(result)
                self._wrote = True
            except BaseException as exc:  # handed to the awaiting caller
                future.set_exception(exc)
            self._after_write()
        self.conn.close()

    def _check_file(self) -> None:
        """Refuse to write when the database file was removed or replaced under the open
        connection: SQLite would go on writing to the unlinked file, and every write it
        acknowledged would be lost with it (a stat per write, ~2 µs beside the commit)."""
        if self._file is not None and _identity(self._path) != self._file:
            raise Unavailable(
                f"the SQLite database file {self._path} was removed or replaced while the "
                "store was open; nothing was written (open the store again)"
            )

    def _idle(self) -> None:
        if not self._wrote:
            return
        if self._idle_work is not None:
            try:
                # A short wait for the write lock: another process writing now will leave
                # the work for the next idle moment rather than hold up queued writes.
                self.conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
                write_txn(self._idle_work)(self.conn)
            except sqlite3.Error:
                return  # busy or failing: try again at the next idle moment
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                    self._current_busy_ms = self._busy_ms
        if self._cfg.memory:
            self._wrote = False
            return
        # A reader held an old snapshot (or the checkpoint failed): try again when idle.
        self._wrote = not self._checkpoint("TRUNCATE")
        if self._wrote:
            self._warn_if_pinned()

    def _after_write(self) -> None:
        """Between writes: checkpoint a WAL that has grown past WAL_CHECKPOINT_BYTES."""
        if self._wal is None or time.monotonic() < self._next_wal_check:
            return
        self._next_wal_check = time.monotonic() + CHECKPOINT_EVERY_S
        if _size(self._wal) <= WAL_CHECKPOINT_BYTES:
            return
        # PASSIVE waits for no one; TRUNCATE only when it copied every frame, so no reader
        # is pinning the WAL and TRUNCATE's wait is for short reads to end, at most 50 ms.
        if not (self._checkpoint("PASSIVE") and self._checkpoint("TRUNCATE")):
            self._warn_if_pinned()

    def _checkpoint(self, mode: str) -> bool:
        """Run ``wal_checkpoint(mode)`` with a short busy wait; True if it did all it does
        (PASSIVE: copied every frame; TRUNCATE: also emptied the WAL)."""
        try:
            self.conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
            # (busy, frames in the WAL, frames copied): busy is reported, not raised.
            busy, log, copied = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return not busy and log == copied
        except sqlite3.Error:
            return False
        finally:
            # Never fails in practice (no file access); if it did, the next write sets it.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                self._current_busy_ms = self._busy_ms

    def _warn_if_pinned(self) -> None:
        """Say so when a reader's snapshot has kept the WAL growing (each doubling once)."""
        if self._wal is None:
            return
        size = _size(self._wal)
        if size < WAL_WARN_BYTES:
            self._warn_at = WAL_WARN_BYTES
        elif size >= self._warn_at:
            self._warn_at = size * 2
            logger.warning(
                "the SQLite WAL %s is %d MB and cannot be checkpointed: a connection outside "
                "this store holds a read transaction open (a sqlite3 shell inside BEGIN, a "
                "backup, a long report). It grows with every write until that reader ends.",
                self._wal,
                size // 2**20,
            )

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def write_txn(
    fn: Callable[[sqlite3.Connection], T], *, foreign_keys: bool = True
) -> Callable[[sqlite3.Connection], T]:
    """``fn`` in one write transaction; ``foreign_keys=False`` skips their checks for it
    (the pragma only changes outside a transaction, so it is set around it)."""

    def run(conn: sqlite3.Connection) -> T:
        if not foreign_keys:
            conn.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        finally:
            if not foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")

    return run


def read_txn(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Several SELECTs on one snapshot."""

    def run(conn: sqlite3.Connection) -> T:
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    return run


def _hand_over(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[T],
    future: concurrent.futures.Future[T],
) -> None:
    """On the thread that finished ``future``: pass it to the loop that waits for it."""
    with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, waiter, future)


def _settle(waiter: asyncio.Future[T], future: concurrent.futures.Future[T]) -> None:
    if waiter.done():  # the caller was cancelled, or gave up on queued work
        return
    if future.cancelled():
        waiter.cancel()
    elif (exc := future.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(future.result())


def _give_up(
    future: concurrent.futures.Future[Any], waiter: asyncio.Future[Any], timeout: float
) -> None:
    """Past the deadline: work still queued is cancelled and the caller told to retry."""
    if not waiter.done() and future.cancel():
        waiter.set_exception(
            Unavailable(f"the SQLite database did not answer within {timeout:g} s; retry")
        )


class Runner:
    """Where each kind of work runs: writes on the writer, hot reads inline, others on readers.

    Hot reads run on the calling thread with ``busy_timeout=0``: in WAL mode a reader waits
    for no one, so the inline path costs only the query (a thread hand-over would cost as
    much as the query itself). If SQLite ever answers busy there (WAL recovery after a
    crash), the read is retried on a reader thread that waits properly. In memory there is
    one connection, the writer's, and everything runs on its thread.
    """

    def __init__(
        self, cfg: DatabaseConfig, idle_work: Callable[[sqlite3.Connection], Any] | None = None
    ) -> None:
        self.cfg = cfg
        self.timeout = cfg.timeout
        self._writer = Writer(cfg, idle_work)
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._inline: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()
        if not cfg.memory:
            try:
                self._inline = connect(cfg, 0, writer=False)
            except BaseException:
                self._writer.close()
                raise
            self._readers = concurrent.futures.ThreadPoolExecutor(
                READER_THREADS, thread_name_prefix="sk-sqlite-reader"
            )

    async def close(self) -> None:
        self._writer.close()
        if self._readers is not None:
            self._readers.shutdown()
        for conn in self._reader_conns:
            conn.close()
        if self._inline is not None:
            self._inline.close()

    # ── running work ────────────────────────────────────────────────────────

    async def _wait(self, future: concurrent.futures.Future[T], *, bounded: bool = True) -> T:
        """The outcome of work handed to a thread, on the calling loop.

        The thread that ran it hands it over with one ``call_soon_threadsafe``: a hand-over
        through ``asyncio.wrap_future``, ``shield`` and ``asyncio.timeout`` cost ~30 µs more
        (bench/README.md, "Hand-overs"). Bounded, the work waits for a lock only until its
        deadline (submit + timeout), so by timeout + 1 s it has either failed busy or is
        running; still queued then, it is cancelled and the caller told to retry. Running,
        its outcome is the truth, whatever it is (a 503 for a write that then commits would
        make a retrying client store it twice), and a cancelled caller does not stop it.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(functools.partial(_hand_over, loop, waiter))
        timer = (
            loop.call_later(self.timeout + 1, _give_up, future, waiter, self.timeout)
            if bounded
            else None
        )
        try:
            return await waiter
        except asyncio.CancelledError:
            if not bounded:
                future.cancel()  # only if still queued: a running one goes on
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        bounded: bool = True,
        foreign_keys: bool = True,
    ) -> T:
        deadline = time.monotonic() + self.timeout
        work = write_txn(fn, foreign_keys=foreign_keys)
        return await self._wait(self._writer.submit(work, deadline), bounded=bounded)

    def _reader_run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # opened on first use (a removed file fails here: translated too)
            conn = connect(self.cfg, int(self.timeout * 1000), writer=False)
            self._local.conn = conn
            self._reader_conns.append(conn)
        return guarded(fn, conn)

    async def _read(
        self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False, budget: bool = False
    ) -> T:
        """Run a read: ``inline`` on the calling thread; ``budget`` inline too, but past
        INLINE_BUDGET_S interrupted and run again on a reader thread; else on a reader."""
        if self._readers is None:  # in memory: the writer's connection is the database
            return await self._wait(self._writer.submit(fn))
        if (
            (inline or budget)
            and self._inline is not None
            and self._inline_lock.acquire(blocking=False)
        ):
            conn = self._inline
            if budget:
                # A listing or search is usually well under a millisecond, less than the
                # hand-over to a thread; the rare long one must not hold the loop.
                stop = time.perf_counter() + INLINE_BUDGET_S
                conn.set_progress_handler(lambda: time.perf_counter() > stop, 1000)
            try:
                return self._inline_read(fn, conn)
            except Busy:
                pass
            finally:
                if budget:
                    conn.set_progress_handler(None, 0)
                self._inline_lock.release()
        return await self._wait(self._readers.submit(self._reader_run, fn))

    @staticmethod
    def _inline_read(fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        # ``translating()`` written out: this is every inline read's path.
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                with translating():
                    conn.execute("ROLLBACK")
            if is_busy(exc) or "interrupted" in str(exc):
                raise Busy from exc
            raise translate(exc) from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
