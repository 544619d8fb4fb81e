"""The webhook response body (bot/dealer.json_reply) must make Telegram do exactly what a Bot API
call through aiogram's session would: same fields, the bot's defaults filled in the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyKeyboardRemove,
)

from bot.dealer import json_reply

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="办理流程", callback_data="f:item:12:proc"),
            InlineKeyboardButton(text="收费标准", callback_data="f:item:12:fee"),
        ],
        [InlineKeyboardButton(text="网上办理", url="https://example.org/apply")],
    ]
)


def as_session_sends(bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
    files: dict[str, Any] = {}
    params = bot.session.prepare_value(
        method.model_dump(warnings=False), bot=bot, files=files, _dumps_json=False
    )
    return {"method": method.__api_method__, **params}


MESSAGES = [
    SendMessage(chat_id=7001, text="<b>身份证补领</b>\n需要带：户口簿"),  # parse mode from the bot
    SendMessage(chat_id=7001, text="纯文本", parse_mode=None),
    SendMessage(chat_id=7001, text="请选择", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD),
    SendMessage(chat_id=-100123, text="话题里的回答", message_thread_id=42),
    SendMessage(chat_id=7001, text="已取消", reply_markup=ReplyKeyboardRemove()),
    SendMessage(chat_id=7001, text="链接", link_preview_options=LinkPreviewOptions(is_disabled=True)),
]


@pytest.mark.parametrize("defaults", [{"parse_mode": ParseMode.HTML}, {"link_preview_is_disabled": True}, {}])
@pytest.mark.parametrize("method", MESSAGES, ids=range(len(MESSAGES)))
def test_a_text_reply_in_the_body_is_what_the_bot_api_call_would_send(
    method: SendMessage, defaults: dict[str, Any]
) -> None:
    bot = Bot("123:abc", default=DefaultBotProperties(**defaults))
    body = json_reply(bot, method)
    assert body is not None
    assert json.loads(body) == as_session_sends(bot, method)


def test_the_bots_parse_mode_is_in_the_body_so_html_is_not_shown_as_tags() -> None:
    bot = Bot("123:abc", default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    body = json_reply(bot, SendMessage(chat_id=7001, text="<b>材料</b>"))
    assert body is not None
    assert json.loads(body)["parse_mode"] == "HTML"


def test_a_file_cannot_ride_in_the_body() -> None:
    bot = Bot("123:abc")
    photo = SendPhoto(chat_id=7001, photo=BufferedInputFile(b"\x89PNG", filename="map.png"))
    assert json_reply(bot, photo) is None


def test_no_reply_is_an_empty_object() -> None:
    assert json_reply(Bot("123:abc"), None) == b"{}"
