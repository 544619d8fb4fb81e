"""The notice worker against a scripted Bot API session: what reaches the chat, what is retried,
what fails for good, what expires; claims never hand one notice to two workers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage, TelegramMethod
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.runtime import RecordingSession, make_bot
from bot.settings import Settings
from models.cases import utc_now
from models.notices import Notice, enqueue_notice

DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
FAST = DeliveryConfig(rate=1000, chat_interval=0.0, backoff_base=0.01, backoff_max=0.05, poll_interval=0.02)


class ScriptedSession(RecordingSession):
    """Records sendMessage; raises the scripted errors for a chat first, in order."""

    def __init__(self, script: dict[int, list[Callable[[TelegramMethod[Any]], Exception]]] | None = None):
        super().__init__()
        self.script = script or {}

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:  # noqa: ASYNC109
        if isinstance(method, SendMessage):
            queue = self.script.get(int(method.chat_id), [])
            if queue:
                raise queue.pop(0)(method)
        return await super().make_request(bot, method, timeout)

    def sent(self) -> list[tuple[int, str]]:
        return [
            (int(s.method.chat_id), s.method.text) for s in self.requests if isinstance(s.method, SendMessage)
        ]


async def add(
    db: DB,
    chat_id: int,
    text: str,
    *,
    markup: dict[str, Any] | None = None,
    age: dt.timedelta = dt.timedelta(),
) -> int:
    async with db[1]() as s:
        n = enqueue_notice(
            session=s, chat_id=chat_id, kind="test", text=text, reply_markup=markup, now=utc_now() - age
        )
        await s.commit()
        assert n.id is not None
        return n.id


async def rows(db: DB) -> list[Notice]:
    async with db[1]() as s:
        return list((await s.exec(select(Notice).order_by(col(Notice.id)))).all())


async def run_until_settled(worker: DeliveryWorker, db: DB, wait_s: float = 10) -> list[Notice]:
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(int(wait_s / 0.02)):
            current = await rows(db)
            if all(n.status != "pending" for n in current):
                return current
            await asyncio.sleep(0.02)
        raise AssertionError(f"notices still pending: {[(n.id, n.last_error) for n in current]}")
    finally:
        worker.stop()
        await task


def worker(session: RecordingSession, db: DB, config: DeliveryConfig = FAST, **kw: Any) -> DeliveryWorker:
    return DeliveryWorker(make_bot(Settings(bot_token=None), session=session), db[1], config, **kw)


async def test_sends_stored_text_and_buttons_and_marks_sent(db: DB) -> None:
    markup = {"inline_keyboard": [[{"text": "我已知晓", "callback_data": "a1:7"}]]}
    await add(db, 11, "<b>办结通知</b>", markup=markup)
    await add(db, 12, "进度更新")
    session = ScriptedSession()
    done = await run_until_settled(worker(session, db), db)
    assert sorted(session.sent()) == [(11, "<b>办结通知</b>"), (12, "进度更新")]
    first = next(s for s in session.requests if isinstance(s.method, SendMessage) and s.method.chat_id == 11)
    assert first.method.reply_markup.inline_keyboard[0][0].text == "我已知晓"  # type: ignore[union-attr]
    assert [(n.status, n.attempts) for n in done] == [("sent", 1), ("sent", 1)]
    assert all(n.sent_at is not None for n in done)


async def test_network_and_server_errors_are_retried(db: DB) -> None:
    await add(db, 21, "a")
    session = ScriptedSession(
        {
            21: [
                lambda m: TelegramServerError(m, "Internal Server Error"),
                lambda m: TelegramNetworkError(m, "connection reset"),
            ]
        }
    )
    [n] = await run_until_settled(worker(session, db), db)
    assert session.sent() == [(21, "a")]
    assert n.status == "sent" and n.attempts == 3


async def test_blocked_user_fails_for_good_without_retry(db: DB) -> None:
    await add(db, 31, "a")
    await add(db, 32, "b")
    session = ScriptedSession(
        {31: [lambda m: TelegramForbiddenError(m, "Forbidden: bot was blocked by the user")]}
    )
    done = await run_until_settled(worker(session, db), db)
    assert [(n.chat_id, n.status) for n in done] == [(31, "failed"), (32, "sent")]
    assert "blocked" in (done[0].last_error or "") and done[0].attempts == 1
    assert session.sent() == [(32, "b")]


async def test_retry_after_is_honoured_without_losing_the_notice(db: DB) -> None:
    await add(db, 41, "a")
    w = worker(ScriptedSession({41: [lambda m: TelegramRetryAfter(m, "Too Many Requests", 1)]}), db)
    [n] = await run_until_settled(w, db)
    assert n.status == "sent"
    assert w.stats["retry_after"] == 1 and w.stats["sent"] == 1


async def test_old_notices_expire_instead_of_being_sent(db: DB) -> None:
    await add(db, 51, "stale", age=dt.timedelta(hours=73))
    await add(db, 52, "fresh", age=dt.timedelta(hours=71))
    session = ScriptedSession()
    done = await run_until_settled(worker(session, db), db)
    assert [(n.chat_id, n.status) for n in done] == [(51, "expired"), (52, "sent")]
    assert session.sent() == [(52, "fresh")]


async def test_one_chat_gets_its_notices_in_order_one_at_a_time(db: DB) -> None:
    for k in range(3):
        await add(db, 61, f"n{k}")
    await add(db, 62, "other")
    w = worker(ScriptedSession(), db, DeliveryConfig(rate=1000, chat_interval=60))
    first = await w.claim()
    # One per chat per claim, and the chat is then held back for chat_interval.
    assert sorted(c.chat_id for c in first) == [61, 62]
    assert [c.text for c in first if c.chat_id == 61] == ["n0"]
    assert await w.claim() == []


async def test_two_workers_never_claim_the_same_notice(db: DB) -> None:
    for k in range(40):
        await add(db, 1000 + k, f"n{k}")
    a, b = worker(ScriptedSession(), db), worker(ScriptedSession(), db)
    got_a, got_b = await asyncio.gather(a.claim(), b.claim())
    ids_a, ids_b = {c.id for c in got_a}, {c.id for c in got_b}
    assert not ids_a & ids_b


async def test_a_claim_left_by_a_dead_worker_is_sent_after_the_lease(db: DB) -> None:
    await add(db, 71, "in flight when the worker died")
    dead = worker(ScriptedSession(), db, DeliveryConfig(rate=1000, lease=30))
    assert len(await dead.claim()) == 1  # claimed, never sent, never marked: the process is gone
    session = ScriptedSession()
    too_soon = worker(session, db)
    assert await too_soon.claim() == []
    later = worker(session, db, now=lambda: utc_now() + dt.timedelta(seconds=31))
    [n] = await run_until_settled(later, db)
    assert n.status == "sent" and session.sent() == [(71, "in flight when the worker died")]
