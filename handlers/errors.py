"""Nothing crashes the dispatcher: every handler error is logged once (with the update id) and the
user gets a short apology; bad input (empty, huge, emoji-only, stickers, photos…) gets a short
clear reply instead of reaching the matcher."""

from __future__ import annotations

import logging
import re

from aiogram import Bot, Router
from aiogram.enums import ParseMode
from aiogram.filters import Filter
from aiogram.types import ErrorEvent, Message
from jinja2 import Environment

from bot.render import answer_html, chat_of
from bot.templates import render
from handlers.guide import MAX_QUESTION, in_private_chat
from knowledge.schema import Catalog

log = logging.getLogger(__name__)
router = Router(name=__name__)
router.message.filter(in_private_chat)  # stickers and chatter in a group are not for the bot

# Something a question could be made of: CJK, letters, digits. Emoji and punctuation alone are not.
_MEANINGFUL = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)


@router.errors()
async def on_error(event: ErrorEvent, bot: Bot, templates: Environment, catalog: Catalog) -> bool:
    update = event.update
    # exc_info carries the traceback once; the runtime's log formatter masks phone/ID numbers.
    log.error("update %s failed: %r", update.update_id, event.exception, exc_info=event.exception)
    chat_id = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None:
        chat_id = chat_of(update.callback_query)
        try:
            await update.callback_query.answer()
        except Exception:  # noqa: BLE001 - apologising must never raise a second error
            log.debug("could not answer callback of update %s", update.update_id)
    if chat_id is not None:
        try:
            phone = catalog.center.phones[0].number
            await bot.send_message(
                chat_id, render(templates, "error", phone=phone), parse_mode=ParseMode.HTML
            )
        except Exception:  # noqa: BLE001
            log.debug("could not apologise for update %s", update.update_id)
    return True


class BadText(Filter):
    """Matches text that is no question; passes the reason to the handler."""

    async def __call__(self, message: Message) -> bool | dict[str, object]:
        text = message.text
        if text is None:
            return False
        if text.startswith("/"):
            return False  # commands have their own handlers and the unknown-command reply
        stripped = text.strip()
        if not stripped:
            return {"reason": "empty", "length": 0}
        if len(stripped) > MAX_QUESTION:
            return {"reason": "too_long", "length": len(stripped)}
        if not _MEANINGFUL.search(stripped):
            return {"reason": "unreadable", "length": len(stripped)}
        return False


@router.message(BadText())
async def bad_text(message: Message, templates: Environment, reason: str, length: int) -> None:
    await answer_html(message, render(templates, "bad_input", reason=reason, length=length))


# Stickers, photos, voice, files, locations, contacts… anything not text. Contacts carry phone
# numbers: never echoed, never logged.
async def has_no_text(message: Message) -> bool:
    return message.text is None  # an async filter: aiogram runs sync ones in a thread


@router.message(has_no_text)
async def not_text(message: Message, templates: Environment) -> None:
    await answer_html(message, render(templates, "unsupported"))
