"""Welcome, help and the directory: /start, /help, /center, /windows, /departments (browse)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from jinja2 import Environment

from bot.render import (
    PAGE_SIZE,
    DeptCb,
    NavCb,
    answer_html,
    chat_of,
    department_items_keyboard,
    departments_keyboard,
    edit_html,
    nav_keyboard,
    send_html,
)
from bot.templates import render
from handlers.common import callback_message
from knowledge.schema import Catalog

router = Router(name=__name__)  # commands only: grouped under handlers/__init__.commands


async def send_welcome(message: Message, *, catalog: Catalog, templates: Environment) -> None:
    first_name = message.from_user.first_name if message.from_user else ""
    text = render(templates, "start", center=catalog.center, first_name=first_name)
    await answer_html(message, text, nav_keyboard("depts", "center", "windows", "help"))


# deep_link=False: `/start <payload>` belongs to whoever understands the payload (case binding,
# issue 4); the guide router answers any payload nobody claimed.
@router.message(CommandStart(deep_link=False))
async def start(message: Message, catalog: Catalog, templates: Environment) -> None:
    await send_welcome(message, catalog=catalog, templates=templates)


def help_text(templates: Environment) -> str:
    return render(templates, "help")


def center_text(catalog: Catalog, templates: Environment) -> str:
    return render(templates, "center", center=catalog.center)


def windows_text(catalog: Catalog, templates: Environment) -> str:
    windows = sorted(catalog.windows, key=lambda w: w.number)
    return render(templates, "windows", center=catalog.center, windows=windows)


def departments_view(
    catalog: Catalog, templates: Environment, query: str = ""
) -> tuple[str, InlineKeyboardMarkup]:
    query = " ".join(query.split())[:20]
    found = [d.id for d in catalog.departments if query and query in d.name]
    text = render(templates, "departments", query=query, found=bool(found))
    return text, departments_keyboard(catalog, only=found or None)


# Commands that take no argument answer normally and ignore any junk after them.
@router.message(Command("help"))
async def help_cmd(message: Message, templates: Environment) -> None:
    await answer_html(message, help_text(templates))


@router.message(Command("center"))
async def center_cmd(message: Message, bot: Bot, catalog: Catalog, templates: Environment) -> None:
    await send_html(bot, message.chat.id, center_text(catalog, templates))


@router.message(Command("windows"))
async def windows_cmd(message: Message, bot: Bot, catalog: Catalog, templates: Environment) -> None:
    await send_html(bot, message.chat.id, windows_text(catalog, templates))


@router.message(Command("departments"))
async def departments_cmd(
    message: Message, command: CommandObject, catalog: Catalog, templates: Environment
) -> None:
    text, kb = departments_view(catalog, templates, command.args or "")
    await answer_html(message, text, kb)


@router.callback_query(NavCb.filter(F.to.in_({"depts", "back", "center", "windows", "help"})))
async def nav(
    callback: CallbackQuery, callback_data: NavCb, bot: Bot, catalog: Catalog, templates: Environment
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    to = callback_data.to
    if to == "back":
        text, kb = departments_view(catalog, templates)
        await edit_html(bot, callback_message(callback), chat_id, text, kb)
    elif to == "depts":
        text, kb = departments_view(catalog, templates)
        await send_html(bot, chat_id, text, kb)
    elif to == "center":
        await send_html(bot, chat_id, center_text(catalog, templates))
    elif to == "windows":
        await send_html(bot, chat_id, windows_text(catalog, templates))
    else:
        await send_html(bot, chat_id, help_text(templates))


@router.callback_query(DeptCb.filter())
async def department(
    callback: CallbackQuery, callback_data: DeptCb, bot: Bot, catalog: Catalog, templates: Environment
) -> None:
    dept = catalog.department(callback_data.id)
    if dept is None:
        await callback.answer(render(templates, "expired"), show_alert=True)
        return
    await callback.answer()
    items = catalog.items_of(dept.name)
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(callback_data.p, 0), pages - 1)
    text = render(templates, "department_items", department=dept, total=len(items), page=page, pages=pages)
    kb = department_items_keyboard(catalog, dept.id, dept.name, page)
    # Browsing edits one message in place instead of filling the chat with lists.
    await edit_html(bot, callback_message(callback), chat_of(callback), text, kb)
