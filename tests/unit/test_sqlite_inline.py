"""The SQLite driver running on the event loop (models/sqlite_inline.py): concurrent writers of one
process queue instead of failing or freezing the loop, another process's lock is waited out, and a
lock that is never released ends in SQLite's usual error instead of a hang."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models import sqlite_inline
from models.db import async_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = async_engine(f"sqlite:///{tmp_path / 'inline.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"))
    yield engine
    await engine.dispose()


class Ticker:
    """Counts event-loop turns: a blocked loop stops counting."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    def stop(self) -> None:
        self.task.cancel()


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM t"))).scalar_one())


async def test_concurrent_writers_of_one_process_all_commit(engine: AsyncEngine) -> None:
    async def write(k: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": f"w{k}"})
            await asyncio.sleep(0.002)  # the write lock held across a real wait
            await conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": f"w{k}b"})

    await asyncio.gather(*(write(k) for k in range(30)))
    assert await count(engine) == 60


async def test_a_waiting_writer_does_not_stop_the_loop(engine: AsyncEngine) -> None:
    holder_in = asyncio.Event()

    async def holder() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('holder')"))
            holder_in.set()
            await asyncio.sleep(0.3)

    async def waiter() -> None:
        await holder_in.wait()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('waiter')"))

    ticker = Ticker()
    try:
        await asyncio.gather(holder(), waiter())
    finally:
        ticker.stop()
    assert await count(engine) == 2
    # 0.3 s at 5 ms a tick: the loop kept turning while the second writer waited.
    assert ticker.ticks >= 20


async def test_reads_go_on_while_a_write_is_open(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (who) VALUES ('open')"))
        # WAL: another connection reads the last committed state at once, no waiting.
        assert await asyncio.wait_for(count(engine), 1.0) == 0
    assert await count(engine) == 1


HOLD = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
c.execute("INSERT INTO t (who) VALUES ('other process')")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def hold_in_other_process(db: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), db, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


async def test_another_process_lock_is_waited_out_without_blocking(engine: AsyncEngine) -> None:
    db = str(engine.url.database)
    proc = hold_in_other_process(db, 0.4)
    ticker = Ticker()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('this process')"))
    finally:
        ticker.stop()
        proc.wait(10)
    async with engine.connect() as conn:
        who = sorted(r[0] for r in await conn.execute(text("SELECT who FROM t")))
    assert who == ["other process", "this process"]
    assert ticker.ticks >= 20


async def test_a_lock_never_released_ends_in_the_usual_error(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT", 0.2)
    proc = hold_in_other_process(str(engine.url.database), 1.5)
    try:
        with pytest.raises(Exception, match="database is locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who) VALUES ('too late')"))
    finally:
        proc.wait(10)
    # A writer of this process waiting on a holder that never lets go (it awaits that very
    # writer) gets the same error after the timeout instead of hanging the update forever.
    async with engine.begin() as outer:
        await outer.execute(text("INSERT INTO t (who) VALUES ('outer')"))
        with pytest.raises(Exception, match="database is locked"):
            async with engine.begin() as inner:
                await inner.execute(text("INSERT INTO t (who) VALUES ('inner')"))
    async with engine.connect() as conn:
        who = sorted(r[0] for r in await conn.execute(text("SELECT who FROM t")))
    assert who == ["other process", "outer"]


def test_busy_errors_are_told_from_others() -> None:
    assert sqlite_inline._is_busy(sqlite3.OperationalError("database is locked"))
    assert not sqlite_inline._is_busy(sqlite3.OperationalError("no such table: t"))


async def test_write_lock_admits_one_writer_at_a_time_and_serves_every_waiter() -> None:
    lock = sqlite_inline.WriteLock()
    inside, most, done = 0, 0, []

    async def writer(k: int) -> None:
        nonlocal inside, most
        await lock.acquire(5.0)
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0 if k % 2 else 0.001)  # holders that yield, like a busy retry
        inside -= 1
        done.append(k)
        lock.release()

    await asyncio.gather(*(writer(k) for k in range(50)))
    assert most == 1
    assert sorted(done) == list(range(50))
    # Free again: taken at once.
    await asyncio.wait_for(lock.acquire(5.0), 0.1)


async def test_checkpoints_move_committed_rows_into_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the loop below may copy pages back
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
    writer.executemany("INSERT INTO t (who) VALUES (?)", [(f"w{k}",) for k in range(500)])

    def rows_in_file_alone() -> int:
        # The main file without its -wal: what a checkpoint has written back so far.
        copy = tmp_path / "copy.db"
        copy.write_bytes(db.read_bytes())
        with sqlite3.connect(copy) as c:
            try:
                return int(c.execute("SELECT count(*) FROM t").fetchone()[0])
            except sqlite3.OperationalError:  # not even the table yet
                return 0

    assert rows_in_file_alone() == 0
    stop = asyncio.Event()
    task = asyncio.create_task(sqlite_inline.checkpoint_loop(str(db), stop, every=0.05))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if rows_in_file_alone() == 500:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    writer.close()
    assert rows_in_file_alone() == 500
