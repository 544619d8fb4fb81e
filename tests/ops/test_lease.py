"""One delivery worker per bot token: the database lease, two workers against one database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.runtime import RecordingSession, make_bot
from bot.settings import Settings
from models.cases import utc_now
from models.leases import Lease, delivery_lease_name, run_while_held
from models.notices import enqueue_notice

DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
TOKEN = "123456:LEASE-TEST"
TTL, BEAT = 1.0, 0.2


class Process:
    """What one bot process runs: its own bot session, lease and (while holding it) a worker."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.session = RecordingSession()
        self.bot = make_bot(Settings(bot_token=TOKEN), session=self.session)
        self.lease = Lease(factory, delivery_lease_name(TOKEN), ttl=TTL, renew_every=BEAT)
        self.factory = factory
        self.worker: DeliveryWorker | None = None
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        def work() -> DeliveryWorker:
            self.worker = DeliveryWorker(
                self.bot, self.factory, DeliveryConfig(rate=500, chat_interval=0, poll_interval=0.05)
            )
            return self.worker

        self.task = asyncio.create_task(
            run_while_held(
                self.lease, lambda: work().run(), lambda: self.worker and self.worker.stop(), self.stopping
            )
        )

    def sent(self) -> list[int]:
        return [int(s.method.chat_id) for s in self.session.requests if s.name == "SendMessage"]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task

    async def die(self) -> None:
        """kill -9: no release, no more renewals, no more sends."""

        async def no_release() -> None:
            return None

        self.lease.release = no_release  # type: ignore[method-assign]
        if self.worker is not None:
            self.worker.stop()
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def queue(factory: async_sessionmaker[AsyncSession], chats: range) -> None:
    async with factory() as s:
        for chat in chats:
            enqueue_notice(session=s, chat_id=chat, kind="status", text=f"通知 {chat}")
        await s.commit()


async def until(condition: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_a_live_lease_is_refused_to_a_second_holder_until_it_expires_or_is_released(db: DB) -> None:
    clock = [utc_now()]
    a = Lease(db[1], "delivery:x", holder="a", ttl=TTL, renew_every=BEAT, now=lambda: clock[0])
    b = Lease(db[1], "delivery:x", holder="b", ttl=TTL, renew_every=BEAT, now=lambda: clock[0])
    assert await a.acquire() and await a.acquire()  # taking and renewing
    assert not await b.acquire()
    clock[0] += dt.timedelta(seconds=TTL + 0.1)  # a stopped renewing
    assert await b.acquire()
    assert not await a.acquire() and not a.held
    await b.release()
    assert await a.acquire()
    assert (await b.current()) is not None and (await b.current()).holder == "a"  # type: ignore[union-attr]


async def test_two_workers_one_database_only_one_sends_and_nothing_twice(db: DB) -> None:
    one, two = Process(db[1]), Process(db[1])
    one.start()
    await until(lambda: one.lease.held)
    two.start()
    await queue(db[1], range(1000, 1060))
    await until(lambda: len(one.sent()) + len(two.sent()) >= 60)
    await asyncio.sleep(3 * BEAT)  # room for a wrongful second send
    await one.stop()
    await two.stop()
    assert sorted(one.sent()) == list(range(1000, 1060))
    assert two.sent() == []


async def test_when_the_holder_dies_the_other_takes_over_and_sends_the_rest_once(db: DB) -> None:
    one, two = Process(db[1]), Process(db[1])
    one.start()
    await until(lambda: one.lease.held)
    two.start()
    await queue(db[1], range(2000, 2020))
    await until(lambda: len(one.sent()) == 20)
    await one.die()
    died = time.monotonic()
    await queue(db[1], range(3000, 3020))
    await until(lambda: len(two.sent()) == 20, limit=10 * TTL)
    print(f"takeover after {time.monotonic() - died:.2f}s (lease {TTL}s, renewed every {BEAT}s)")
    await two.stop()
    sent = Counter(one.sent() + two.sent())
    assert sorted(sent) == [*range(2000, 2020), *range(3000, 3020)]
    assert max(sent.values()) == 1
    assert sorted(two.sent()) == list(range(3000, 3020))
