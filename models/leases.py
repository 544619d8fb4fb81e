"""Exactly-once bookkeeping shared by every bot process through the database.

- `WorkerLease`: one row per singleton job (the notice delivery worker of one bot token). The
  holder renews it every few seconds; a second process sees a live lease and waits, and takes over
  once the holder stops renewing (crash, kill -9, network split) and the lease has expired. Works the
  same on SQLite and PostgreSQL: one conditional UPDATE decides, so two contenders cannot both win.
  Expiry is judged by the contenders' own clocks, so machines must keep time (NTP); the margin
  between renewal and expiry absorbs ordinary drift.
- `ProcessedUpdate`: Telegram update ids already taken in, so a webhook redelivery or an update
  fetched again after a restart is not answered twice. Telegram keeps an update at most 24 hours,
  so older ids are purged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cases import utc_column, utc_now

log = logging.getLogger(__name__)

UPDATE_KEEP = dt.timedelta(hours=24)  # Telegram drops undelivered updates after 24 h


class WorkerLease(SQLModel, table=True):
    __tablename__ = "worker_leases"

    name: str = Field(max_length=64, primary_key=True)  # 'delivery:<token hash>'
    holder: str = Field(max_length=128)  # host:pid:random of the process holding it
    acquired_at: dt.datetime = utc_column()
    expires_at: dt.datetime = utc_column()


class ProcessedUpdate(SQLModel, table=True):
    __tablename__ = "processed_updates"

    bot_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    seen_at: dt.datetime = utc_column(index=True)


def token_hash(token: str) -> str:
    """Identifies a bot token without storing it: the lease table must not leak credentials."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def delivery_lease_name(token: str) -> str:
    return f"delivery:{token_hash(token)}"


def new_holder_id() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    expires_at: dt.datetime

    def live(self, now: dt.datetime) -> bool:
        return self.expires_at > now


async def read_lease(*, session: AsyncSession, name: str) -> LeaseInfo | None:
    row = await session.get(WorkerLease, name)
    return None if row is None else LeaseInfo(row.name, row.holder, row.expires_at)


class Lease:
    """A named lease held by this process. `acquire()` takes it, or renews it when already ours."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        name: str,
        *,
        holder: str | None = None,
        ttl: float = 15.0,
        renew_every: float = 5.0,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        if renew_every >= ttl:
            raise ValueError("renew_every must be shorter than ttl")
        self.factory, self.name = factory, name
        self.holder = holder or new_holder_id()
        self.ttl, self.renew_every, self.now = ttl, renew_every, now
        # Monotonic deadline of our own lease: past it we must assume a rival may hold it.
        self.valid_until = 0.0

    @property
    def held(self) -> bool:
        return time.monotonic() < self.valid_until

    async def acquire(self) -> bool:
        """One attempt: True when this process holds the lease for the next `ttl` seconds."""
        started = time.monotonic()
        now = self.now()
        expires = now + dt.timedelta(seconds=self.ttl)
        async with self.factory() as session:
            # Ours, or expired: the WHERE clause is the whole election, atomic on both backends.
            result = await session.exec(
                update(WorkerLease)
                .where(
                    col(WorkerLease.name) == self.name,
                    (col(WorkerLease.holder) == self.holder) | (col(WorkerLease.expires_at) <= now),
                )
                .values(holder=self.holder, expires_at=expires)
            )
            won = bool(getattr(result, "rowcount", 0))
            if not won:
                try:
                    await session.exec(
                        insert(WorkerLease).values(
                            name=self.name, holder=self.holder, acquired_at=now, expires_at=expires
                        )
                    )
                    won = True
                except IntegrityError:
                    await session.rollback()  # a live lease of someone else: not ours
                    return self._lost()
            await session.commit()
        if won:
            # Counted from before the round trip: our view never outlives the row's expiry.
            self.valid_until = started + self.ttl
        return won

    def _lost(self) -> bool:
        self.valid_until = 0.0
        return False

    async def release(self) -> None:
        """Hand over at once (clean shutdown): a waiting process need not wait for expiry."""
        self.valid_until = 0.0
        async with self.factory() as session:
            await session.exec(
                update(WorkerLease)
                .where(col(WorkerLease.name) == self.name, col(WorkerLease.holder) == self.holder)
                .values(expires_at=self.now())
            )
            await session.commit()

    async def current(self) -> LeaseInfo | None:
        async with self.factory() as session:
            return await read_lease(session=session, name=self.name)


async def run_while_held(
    lease: Lease,
    start: Callable[[], Coroutine[Any, Any, None]],
    stop_work: Callable[[], None],
    stopping: asyncio.Event,
) -> None:
    """Run `start()` only while `lease` is ours; wait for it otherwise, until `stopping` is set.

    `start()` is called anew after each takeover (a job stopped by `stop_work()` does not restart
    itself). The job is told to stop when the lease cannot be renewed before it runs out, so two
    processes never run it at once even when the database was unreachable for a while.
    """
    told_waiting = False
    while not stopping.is_set():
        try:
            won = await lease.acquire()
        except Exception as e:  # noqa: BLE001 - a database hiccup: try again on the next beat
            log.warning("lease %s: cannot reach the database (%s)", lease.name, type(e).__name__)
            won = False
        if not won:
            if not told_waiting:
                info = await _safe_current(lease)
                log.info(
                    "another worker holds the lease %s (%s); waiting",
                    lease.name,
                    info.holder if info else "unknown",
                )
                told_waiting = True
            await _sleep_or_stop(stopping, lease.renew_every)
            continue
        told_waiting = False
        log.info("lease %s acquired by %s", lease.name, lease.holder)
        job = asyncio.create_task(start())
        try:
            await _keep(lease, job, stopping)
        finally:
            stop_work()
            await asyncio.wait({job})
            try:
                await lease.release()
            except Exception:  # noqa: BLE001 - it then simply expires
                log.warning("lease %s: release failed; it expires in %.0fs", lease.name, lease.ttl)


async def _keep(lease: Lease, job: asyncio.Task[None], stopping: asyncio.Event) -> None:
    """Renew on every beat while the job runs; return when it must stop."""
    while not job.done() and not stopping.is_set():
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({job, stop}, timeout=lease.renew_every, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if job.done() or stopping.is_set():
            return
        try:
            # A renewal that hangs past our lease's end counts as failed: a rival may hold it by then.
            left = max(0.05, lease.valid_until - time.monotonic())
            if not await asyncio.wait_for(lease.acquire(), left):
                log.warning("lease %s taken over by another worker; stopping", lease.name)
                return
        except Exception as e:  # noqa: BLE001 - keep going while our lease is still valid
            log.warning("lease %s: renewal failed (%s)", lease.name, type(e).__name__)
            if not lease.held:
                log.warning("lease %s ran out without renewal; stopping", lease.name)
                return


async def _safe_current(lease: Lease) -> LeaseInfo | None:
    try:
        return await lease.current()
    except Exception:  # noqa: BLE001 - only for the log line
        return None


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass


# ---------------------------------------------------------------- update ids


def _first_sight_statement(dialect: str) -> Any:
    table = ProcessedUpdate.__table__  # type: ignore[attr-defined]
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING names the rows that went in (psycopg gives no usable rowcount here).
    return insert_(table).on_conflict_do_nothing().returning(table.c.bot_id, table.c.update_id)


# Built once per dialect: executed with a list of rows it stays one cached compiled statement
# (SQLAlchemy's insertmanyvalues), where a .values([...]) per batch was rebuilt and compiled every
# time, the largest part of the ledger's cost under load (py-spy on bench/bench_load.py).
_FIRST_SIGHT = {name: _first_sight_statement(name) for name in ("sqlite", "postgresql")}


async def first_sights(
    *, conn: AsyncConnection, keys: list[tuple[int, int]], now: dt.datetime | None = None
) -> list[bool]:
    """Record many (bot id, update id) pairs in the connection's transaction; for each, whether it
    was new. One commit (the caller's) for a whole batch: on SQLite the commit is what costs."""
    now = now or utc_now()
    stmt = _FIRST_SIGHT["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    result = await conn.execute(stmt, [{"bot_id": b, "update_id": u, "seen_at": now} for b, u in keys])
    inserted = {(int(b), int(u)) for b, u in result.all()}
    fresh: list[bool] = []
    for key in keys:  # the same id twice in one batch: only its first occurrence is new
        fresh.append(key in inserted)
        inserted.discard(key)
    return fresh


async def newest_update(*, conn: AsyncConnection, bot_id: int) -> int:
    """The highest update id recorded for the bot, 0 when none."""
    newest = await conn.scalar(
        select(func.max(col(ProcessedUpdate.update_id))).where(col(ProcessedUpdate.bot_id) == bot_id)
    )
    return int(newest or 0)


async def update_recorded(*, conn: AsyncConnection, bot_id: int, update_id: int) -> bool:
    found = await conn.scalar(
        select(col(ProcessedUpdate.update_id)).where(
            col(ProcessedUpdate.bot_id) == bot_id, col(ProcessedUpdate.update_id) == update_id
        )
    )
    return found is not None


async def purge_updates(*, conn: AsyncConnection, now: dt.datetime | None = None) -> int:
    cutoff = (now or utc_now()) - UPDATE_KEEP
    result = await conn.execute(delete(ProcessedUpdate).where(col(ProcessedUpdate.seen_at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
