"""Webhook mode: an update's last reply rides in the HTTP response to Telegram's request
(bot/middlewares.ReplyInResponse), without changing what the citizen receives or in which order."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.methods import SendMessage
from aiogram.types import ErrorEvent, Message
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.middlewares import DbSessionMiddleware, ReplyInResponse
from bot.render import send_html
from bot.runtime import RecordingSession, UpdateFactory, make_bot, webhook_app
from bot.settings import Settings
from models.audit import AuditLog
from models.cases import new_case_number
from tests.conftest import BotHarness, HarnessMaker

SECRET = "test-webhook-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


async def serve(dp: Dispatcher, bot: Bot) -> TestClient[web.Request, web.Application]:
    app, _ = webhook_app(Settings(bot_token=None), bot, dp, secret=SECRET)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def post(client: TestClient[Any, Any], factory: UpdateFactory, text: str) -> dict[str, Any]:
    """Send one update as Telegram would; the method in the response as Telegram reads it: a JSON
    object with the method's name in "method" ({} if none)."""
    update = factory.message(text).model_dump(mode="json", exclude_none=True)
    r = await client.post("/telegram/webhook", data=json.dumps(update), headers=HEADERS)
    assert r.status == 200
    assert r.content_type == "application/json"
    reply: dict[str, Any] = await r.json()
    return reply


@pytest.fixture
async def webhook(make_harness: HarnessMaker) -> AsyncIterator[tuple[BotHarness, TestClient[Any, Any]]]:
    h = make_harness(reply_in_response=True)
    client = await serve(h.dp, h.bot)
    yield h, client
    await client.close()


async def test_card_comes_back_in_the_webhook_response_with_its_buttons(
    webhook: tuple[BotHarness, TestClient[Any, Any]],
) -> None:
    h, client = webhook
    reply = await post(client, h.updates, "结婚登记要带什么材料")
    assert reply["method"] == "sendMessage"
    assert reply["chat_id"] == h.updates.user_id
    assert "结婚登记" in reply["text"] and reply["parse_mode"] == "HTML"
    assert reply["reply_markup"]["inline_keyboard"]
    assert h.session.take() == []  # no Bot API call of its own


async def test_follow_up_still_knows_the_item_named_in_the_previous_answer(
    webhook: tuple[BotHarness, TestClient[Any, Any]],
) -> None:
    h, client = webhook
    await post(client, h.updates, "结婚登记要带什么")
    reply = await post(client, h.updates, "要多少钱")
    assert "结婚登记" in reply["text"]


async def test_a_plain_message_answer_comes_back_in_the_webhook_response_too(
    webhook: tuple[BotHarness, TestClient[Any, Any]],
) -> None:
    """Replies written with answer_html (the case-number step, prompts, refusals), not only cards."""
    h, client = webhook
    number = new_case_number(dt.date(2026, 3, 15))
    reply = await post(client, h.updates, f"我的件 {number}")
    assert reply["method"] == "sendMessage"
    assert reply["chat_id"] == h.updates.user_id
    assert number in reply["text"] and "手机号后 4 位" in reply["text"]
    assert reply["parse_mode"] == "HTML"
    # The step was remembered before the reply left: the next message is taken as the factor.
    again = await post(client, h.updates, "12")
    assert again["method"] == "sendMessage" and "后 4 位数字" in again["text"]
    assert h.session.take() == []  # no sendMessage of their own


# A tiny dispatcher of its own for the ordering rules: the production routers answer any command.
probe = Router()


@probe.message(Command("long"))
async def long_then_more(message: Message, bot: Bot) -> None:
    await send_html(bot, message.chat.id, "\n".join(f"第{n}行" + "字" * 60 for n in range(200)))
    await bot.send_message(message.chat.id, "之后的一条")


@probe.message(Command("crash"))
async def reply_then_crash(message: Message, bot: Bot) -> None:
    await send_html(bot, message.chat.id, "先回复")
    raise RuntimeError("boom")


@probe.message(Command("save"))
async def reply_then_commit_fails(message: Message, bot: Bot, session: AsyncSession) -> None:
    session.add(AuditLog(actor=None, action="probe", outcome="ok"))  # NOT NULL: the commit fails
    await send_html(bot, message.chat.id, "已保存")


async def swallow(event: ErrorEvent) -> bool:
    return True


@pytest.fixture
async def probe_server(
    db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]],
) -> AsyncIterator[tuple[RecordingSession, UpdateFactory, TestClient[Any, Any]]]:
    session = RecordingSession()
    bot = make_bot(Settings(bot_token=None), session=session)
    dp = Dispatcher(session_factory=db[1])  # /healthz on the webhook app reads it
    dp.update.outer_middleware(ReplyInResponse())
    dp.message.middleware(DbSessionMiddleware(db[1]))
    dp.errors.register(swallow)  # like handlers/errors.py: the failure is handled, Telegram gets 200
    dp.include_router(probe)
    client = await serve(dp, bot)
    yield session, UpdateFactory(bot, user_id=77), client
    await client.close()
    dp.sub_routers.clear()  # the module-level router may join the next test's dispatcher
    probe._parent_router = None


async def test_a_later_message_sends_the_deferred_reply_first_so_order_is_kept(
    probe_server: tuple[RecordingSession, UpdateFactory, TestClient[Any, Any]],
) -> None:
    session, factory, client = probe_server
    reply = await post(client, factory, "/long")
    sent = [s.method for s in session.take() if isinstance(s.method, SendMessage)]
    texts = [m.text for m in sent]
    assert len(texts) >= 3  # several parts of the long text, then the extra message
    assert texts[0].startswith("第0行") and "第199行" in texts[-2]
    assert texts[-1] == "之后的一条"
    assert reply == {}  # nothing left for the response


async def test_a_handler_failing_after_its_reply_still_delivers_the_reply(
    probe_server: tuple[RecordingSession, UpdateFactory, TestClient[Any, Any]],
) -> None:
    session, factory, client = probe_server
    await post(client, factory, "/crash")
    assert [s.method.text for s in session.take() if isinstance(s.method, SendMessage)] == ["先回复"]


async def test_a_reply_telling_of_a_change_whose_commit_failed_is_not_sent(
    probe_server: tuple[RecordingSession, UpdateFactory, TestClient[Any, Any]],
) -> None:
    """The handler answered "saved", then the update's commit failed: the citizen must not read
    "saved" (the error handler's apology is all they get)."""
    session, factory, client = probe_server
    reply = await post(client, factory, "/save")
    assert reply == {}
    assert [s.method.text for s in session.take() if isinstance(s.method, SendMessage)] == []
