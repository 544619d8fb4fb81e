"""Announcements for citizens (网上公告): /news shows the latest, /subscribe_news and
/unsubscribe_news opt in and out of receiving them (through the paced notice outbox)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from jinja2 import Environment
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import answer_html
from bot.supervision_render import NewsCb
from bot.templates import render
from knowledge.schema import Catalog
from models.feedback import Announcement
from models.supervision import latest_announcements, subscribe_news, unsubscribe_news

router = Router(name=__name__)  # commands only: grouped under handlers/__init__.commands

LATEST = 5


@router.message(Command("news"))
async def news(message: Message, session: AsyncSession, catalog: Catalog, templates: Environment) -> None:
    items = await latest_announcements(session=session, limit=LATEST)
    buttons = [
        [InlineKeyboardButton(text=f"📎 {a.document_name or '附件'}", callback_data=NewsCb(id=a.id).pack())]
        for a in items
        if a.document_file_id and a.id is not None
    ]
    await answer_html(
        message,
        render(templates, "feedback/news", items=items, center=catalog.center),
        InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None,
    )


@router.message(Command("subscribe_news"))
async def subscribe(message: Message, session: AsyncSession, templates: Environment) -> None:
    added = await subscribe_news(session=session, chat_id=message.chat.id)
    await answer_html(
        message, render(templates, "feedback/news_subscription", subscribed=True, changed=added)
    )


@router.message(Command("unsubscribe_news"))
async def unsubscribe(message: Message, session: AsyncSession, templates: Environment) -> None:
    removed = await unsubscribe_news(session=session, chat_id=message.chat.id)
    await answer_html(
        message, render(templates, "feedback/news_subscription", subscribed=False, changed=removed)
    )


@router.callback_query(NewsCb.filter())
async def attachment(
    callback: CallbackQuery, callback_data: NewsCb, bot: Bot, session: AsyncSession, templates: Environment
) -> None:
    ann = await session.get(Announcement, callback_data.id)
    if ann is None or not ann.document_file_id:
        await callback.answer(render(templates, "expired"), show_alert=True)
        return
    await callback.answer()
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    await bot.send_document(chat_id, ann.document_file_id, caption=ann.document_name or None)
