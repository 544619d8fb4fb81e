"""Plumbing shared by several handler modules (no routers here): who acted, which message a button
sits under, and the catalog entry a button names."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from jinja2 import Environment

from bot.render import Entry, EntryCb, edit_html, resolve
from bot.templates import render
from knowledge.schema import Catalog
from models.staff import Staff


def actor(staff: Staff) -> str:
    """The audit log's name for a staff member."""
    return f"staff:{staff.user_id}"


# A coroutine, not a magic F filter: aiogram runs sync filters in a worker thread, which costs more
# than the handler (bench/bench_dispatcher.py).
async def is_command(message: Message) -> bool:
    return (message.text or "").startswith("/")


def sender_id(message: Message) -> int:
    # Channel posts and anonymous admins carry no from_user; the chat stands for the sender then.
    return message.from_user.id if message.from_user else message.chat.id


def callback_message(callback: CallbackQuery | None) -> Message | None:
    """The bot message a button sits under, when it can still be edited (None: send anew)."""
    return callback.message if callback is not None and isinstance(callback.message, Message) else None


async def edit_pressed(
    bot: Bot, callback: CallbackQuery, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Replace the message under the pressed button (sent anew to the presser when it can't be)."""
    await edit_html(bot, callback_message(callback), callback.from_user.id, text, reply_markup)


async def pressed_entry(
    callback: CallbackQuery, callback_data: EntryCb, catalog: Catalog, templates: Environment
) -> Entry | None:
    """The catalog entry a button names, with the press answered; None (after an "expired" alert)
    when the catalog no longer has it."""
    e = resolve(catalog, callback_data)
    if e is None:
        await callback.answer(render(templates, "expired"), show_alert=True)
    else:
        await callback.answer()
    return e
