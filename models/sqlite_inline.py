"""SQLite for the async engine, run on the event loop's own thread instead of aiosqlite's.

aiosqlite gives every connection a thread and hands each call (cursor, execute, fetch, close,
commit) over to it and back: two thread switches and a contended GIL per call. Under webhook load
that hand-over cost more CPU than the SQL itself: a third of the bot's CPU (bench/bench_load.py:
5.0 ms per update with aiosqlite, 3.3 ms inline, same traffic). SQLite answers an indexed read or a
small write in microseconds, so running it inline stalls the loop less than the hand-over did.

What inline execution must not do is *wait* on the loop's thread: SQLite's busy handler sleeps
until the holder of the write lock commits, and if the holder is another connection of this same
process, it can only commit once the loop runs again: a deadlock that lasts the busy timeout. So:

- one writer at a time per database file per event loop, queued on an asyncio lock taken before a
  transaction's first write and released when it ends (commit, rollback, close), so a second
  writer waits without blocking anyone;
- SQLite's own busy timeout is 0, and a statement that finds the file locked by *another process*
  (a second bot process, a CLI command) is retried after an asyncio sleep, for up to BUSY_TIMEOUT.

A big report query still runs on the loop's thread: it delays other updates for as long as SQLite
takes to scan (docs/operations.md). PostgreSQL is the database for heavy use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0  # seconds, as the thread-based driver waited (models/db.SQLITE_BUSY_TIMEOUT_MS)
# Short sleeps: another process's transactions take well under a millisecond, and every update of
# this process that wants to write waits behind the one sleeping here.
_FIRST_DELAY, _MAX_DELAY = 0.0002, 0.002
_READS = ("SELECT", "PRAGMA", "EXPLAIN")
_EXECUTES = frozenset({"execute", "executemany"})
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class WriteLock:
    """One writer at a time. Unlike asyncio.Lock, a free lock is taken at once even while others
    wait: asyncio.Lock keeps a released lock for its first waiter, idle until the loop gets round
    to running that waiter, a whole loop turn per write under load (waits of 30 ms on average at
    450 updates/s, bench/bench_load.py); here a writer that finds it free writes and releases
    within its step, and a woken waiter that finds it taken again waits at the head of the line."""

    def __init__(self) -> None:
        self.held = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, patience: float) -> None:
        if not self.held:
            self.held = True
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        first = False
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            (self._waiters.appendleft if first else self._waiters.append)(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0.0))
            except BaseException as e:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken, but leaving: the turn goes to the next in line
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                if isinstance(e, TimeoutError):
                    # What SQLite itself says after its busy timeout: callers already handle it.
                    raise sqlite3.OperationalError("database is locked") from None
                raise
            if not self.held:
                self.held = True
                return
            first = True

    def release(self) -> None:
        self.held = False
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


# One write lock per (event loop, database file): tests and worker processes run several loops.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WriteLock]] = (
    weakref.WeakKeyDictionary()
)


def _write_lock(database: str) -> WriteLock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(database)
    if lock is None:
        lock = per_loop[database] = WriteLock()
    return lock


def _may_write(sql: str) -> bool:
    # Anything but a read may take SQLite's write lock (DML, DDL, SAVEPOINT, BEGIN).
    return not sql.lstrip()[:7].upper().startswith(_READS)


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(e) or "busy" in str(e)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's Connection (so SQLAlchemy's aiosqlite dialect and aiosqlite's Cursor work
    unchanged) with every call made directly instead of through the worker thread."""

    def __init__(self, database: str, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)  # the thread object is made, never started
        self._database = database
        self._lock: WriteLock | None = None  # held while this connection is the writer

    def __await__(self) -> Any:
        return self._connect().__await__()

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        if not self._running or conn is None:
            raise ValueError("Connection closed")
        executes = args and isinstance(args[0], str) and getattr(fn, "__name__", "") in _EXECUTES
        try:
            if not executes or conn.in_transaction:
                return fn(*args, **kwargs)
            # A statement that may start a transaction.
            if self._lock is None and _may_write(args[0]):
                lock = _write_lock(self._database)
                await lock.acquire(BUSY_TIMEOUT)
                self._lock = lock
            return await self._retry_busy(conn, fn, args, kwargs)
        finally:
            self._release_if_done()

    async def _retry_busy(
        self, conn: sqlite3.Connection, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """A statement starting a transaction, retried while another process holds the file."""
        deadline, delay = 0.0, _FIRST_DELAY
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise
                if conn.in_transaction:
                    # The implicit BEGIN went through, the write did not: nothing to keep, and a
                    # retry inside it could never see the other process's commit.
                    conn.rollback()
                now = time.monotonic()
                deadline = deadline or now + BUSY_TIMEOUT
                if now >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)

    def _release_if_done(self) -> None:
        if self._lock is not None and (self._connection is None or not self._connection.in_transaction):
            lock, self._lock = self._lock, None
            lock.release()

    def stop(self) -> None:  # type: ignore[override]
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._release_if_done()

    async def close(self) -> None:
        self.stop()


async def connect(database: str) -> InlineConnection:
    """For create_async_engine(async_creator=...). Busy timeout 0: waits happen on the loop (above)."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, timeout=0, check_same_thread=False)

    return await InlineConnection(database, connector)


CHECKPOINT_EVERY = 1.0  # seconds


async def checkpoint_loop(database: str, stop: asyncio.Event, every: float = CHECKPOINT_EVERY) -> None:
    """Copy the WAL back into the database file from a thread, every second.

    Left to SQLite, the commit that takes the WAL past 1,000 pages does it, on the event loop of
    whichever process committed, with an fsync: a stall of every update in hand there, every dozen
    seconds under load (bench/bench_load.py). Checkpointed often from here (PASSIVE: never waits
    for a reader or writer), the WAL never reaches that size. Run by one process per database (the
    one running the services); a CLI command or a second bot is harmless, only redundant."""

    def checkpoint(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    conn = sqlite3.connect(database, timeout=0, check_same_thread=False)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            try:
                await asyncio.to_thread(checkpoint, conn)
            except sqlite3.Error as e:  # busy with another checkpoint, a disk hiccup: next second
                log.debug("checkpoint skipped: %s", e)
    finally:
        conn.close()
