"""Duplicate updates (webhook redeliveries, a batch fetched again after a restart) are answered once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models.crud import get_case, subscribe
from tests.conftest import HarnessMaker

Maker = Callable[..., Awaitable[Any]]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
STAFF = 801


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
    # …and a new process (a restarted bot sharing the database) drops it too.
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
