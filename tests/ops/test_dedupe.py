"""Duplicate updates (webhook redeliveries, a batch fetched again after a restart) are answered once."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.middlewares import DbUpdateLedger
from models.crud import get_case, subscribe
from models.db import async_engine, prepare_database, session_factory
from models.leases import Lease, newest_update, update_recorded
from tests.conftest import HarnessMaker

Maker = Callable[..., Awaitable[Any]]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
STAFF = 801
PG_URL = os.environ.get("TEST_DATABASE_URL")


async def test_a_redelivered_question_is_answered_once(make_harness: HarnessMaker) -> None:
    h = make_harness(dedupe=True)
    update = h.updates.message("开饭馆要办什么证")
    first = await h.feed(update)
    assert h.texts(first)
    assert await h.feed(update) == []
    # A new update with the same words is a new question and gets its answer.
    assert h.texts(await h.say("开饭馆要办什么证")) == h.texts(first)


async def test_same_staff_callback_delivered_twice_applies_once_and_answers_once(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    new = await new_case()
    async with db[1]() as s:
        await subscribe(session=s, case=new.case, chat_id=9100)
    number = new.case.number
    h = make_harness(user_id=STAFF, dedupe=True)
    await h.say(number)
    view = h.last[-1].message
    button = view.reply_markup.inline_keyboard[0][0]  # type: ignore[union-attr]
    assert button.text == "开始审查"
    press = h.updates.callback(button.callback_data or "", view)
    first = await h.feed(press)
    assert any("审查中" in a for a in h.alerts())
    # Telegram delivers the same update again (timeout, restart): nothing is sent, nothing applied.
    assert await h.feed(press) == []
    # …and after a restart (the bot stops, a new process shares the database) it is dropped too.
    await h.dp.emit_shutdown()
    restarted = make_harness(user_id=STAFF, dedupe=True)
    assert await restarted.feed(press) == []
    assert [n.kind for n in await queued()] == ["in_review"]
    async with db[1]() as s:
        case = await get_case(session=s, number=number)
    assert case is not None and case.status == "in_review"
    assert len([x for x in first if x.name == "AnswerCallbackQuery"]) == 1


async def test_without_dedupe_the_console_accepts_restarted_update_ids(make_harness: HarnessMaker) -> None:
    # The local console numbers its updates from 1 in every run: they must not be taken for duplicates.
    h = make_harness()
    update = h.updates.message("/help")
    assert h.texts(await h.feed(update))
    assert h.texts(await h.feed(update))


def _backends() -> list[Any]:
    pg = pytest.param(
        PG_URL,
        marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")],
    )
    return ["sqlite", pg]


@pytest.mark.parametrize("backend", _backends())
async def test_ledger_and_lease_agree_across_processes_on_each_backend(
    backend: str | None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}" if backend == "sqlite" else str(backend)
    engine = async_engine(url)
    try:
        await prepare_database(engine)
        bot_id = secrets.randbelow(2**40)  # a shared PostgreSQL database keeps other runs' ids
        one = DbUpdateLedger(engine)
        # The same update twice at once in one process (a redelivery while the first is in hand).
        # Which of two copies wins depends on when each one's database read returns (PostgreSQL).
        ids = (5, 6, 5, 6, 7)
        answers = await asyncio.gather(*(one.first_time(bot_id, u) for u in ids))
        taken = {u: sum(a for i, a in zip(ids, answers, strict=True) if i == u) for u in ids}
        assert taken == {5: 1, 6: 1, 7: 1}  # each id new exactly once
        await one.drain()  # the process stops
        # A restarted process sharing the database: what the first took in stays taken, whether
        # older or newer than the ids it sees first; new ids are new.
        two = DbUpdateLedger(engine)
        answers = [await two.first_time(bot_id, u) for u in (9, 5, 7, 8, 6, 4, 9)]
        assert answers == [True, False, False, True, False, True, False]
        await two.drain()
        async with engine.connect() as conn:
            assert await newest_update(conn=conn, bot_id=bot_id) == 9
            for u in (4, 5, 6, 7, 8, 9):
                assert await update_recorded(conn=conn, bot_id=bot_id, update_id=u)
        name = f"delivery:{bot_id}"
        a, b = (Lease(session_factory(engine), name, ttl=5, renew_every=1) for _ in range(2))
        assert sorted(await asyncio.gather(a.acquire(), b.acquire())) == [False, True]
    finally:
        await engine.dispose()


async def test_ledger_remembers_past_its_memory_by_asking_the_database(tmp_path: Path) -> None:
    engine = async_engine(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        await prepare_database(engine)
        ledger = DbUpdateLedger(engine)
        ledger.MEMORY = 3
        assert [await ledger.first_time(1, u) for u in range(1, 7)] == [True] * 6
        await ledger.drain()
        # 1-3 have left memory; the database still knows them, and a gap below memory is new.
        assert [await ledger.first_time(1, u) for u in (1, 2, 6, 3)] == [False] * 4
        assert await ledger.first_time(1, 0)
    finally:
        await engine.dispose()
