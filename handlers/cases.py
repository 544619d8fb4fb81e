"""The applicant's journey: "我的件办到哪了？"

/status <number>, /status then the number, or just a case number in a message -> the second factor
(last 4 digits of the phone given at acceptance) -> the status in plain words. The receipt's deep
link (/start c_<number>_<code>) binds the chat in one tap. /mycases lists the bound cases;
我已知晓 under a 一次性告知 is recorded here.

Nobody reads another person's case: "no such case" and "wrong factor" get the same reply, five
failures in ten minutes lock the user (models/lockout.py), and the buttons that act on a case
(订阅进度, 查看) work only for a chat that passed the check or is already subscribed, never on
callback data alone (it can be forged).
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter, or_f
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from jinja2 import Environment
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.notices_render import AckCb
from bot.render import answer_html, send_html
from bot.templates import render
from handlers.common import is_command, sender_id
from handlers.filters import refuse_and_audit
from models.cases import NUMBER_IN_TEXT_RE, Case, normalize_case_number, parse_start_param
from models.crud import (
    Ack,
    LookupOutcome,
    LookupResult,
    acknowledge_notice,
    bind_chat,
    chat_status,
    get_case,
    list_chat_cases,
    subscribe,
    unsubscribe,
    verify_lookup,
)
from models.notices import Subscription
from models.workdays import CHINA_TZ

router = Router(name=__name__)

VERIFIED_FOR = 30 * 60  # seconds a passed check lets this chat subscribe without asking again
MAX_LISTED = 20


class Lookup(StatesGroup):
    number = State()  # /status without a number: the next message is the number
    factor = State()  # number known: the next 4 digits are the second factor


class CaseCb(CallbackData, prefix="c1"):
    act: str  # 'sub' | 'unsub' | 'view'
    n: str


class Labels:
    SUBSCRIBE = "订阅进度"
    UNSUBSCRIBE = "取消订阅"
    REFRESH = "刷新进度"


def user_key(user_id: int) -> str:
    return f"tg:{user_id}"


# ---------------------------------------------------------------- filters


async def binding_payload(message: Message, command: CommandObject) -> bool | dict[str, Any]:
    """/start c_… from an acceptance receipt (a malformed one too: it gets the same refusal)."""
    args = command.args or ""
    if not args.startswith("c_"):
        return False
    return {"binding": parse_start_param(args)}


async def case_number_in_text(message: Message) -> bool | dict[str, Any]:
    """A message that carries a case number ("YC260315K7Q2MXAB3", "我的件 yc-260315-…")."""
    text = message.text or ""
    if text.startswith("/") or len(text) > 200:
        return False
    m = NUMBER_IN_TEXT_RE.search(text)
    if m is None:
        return False
    return {"number": normalize_case_number(m.group())}


# Every message handler here wants a command, a case number or a lookup step: anything else (most
# updates are questions) skips the router at once instead of failing each of its eight handlers.
router.message.filter(or_f(is_command, case_number_in_text, StateFilter(Lookup)))


_FACTOR_RE = re.compile(r"^[\d\s\-*＊]{1,20}$")


async def digits_only(message: Message) -> bool:
    return bool(_FACTOR_RE.match((message.text or "").strip()))


# ---------------------------------------------------------------- shared steps


async def ask_factor(message: Message, state: FSMContext, templates: Environment, number: str | None) -> None:
    if number is None:
        await state.set_state(None)
        await answer_html(message, render(templates, "cases/bad_number"))
        return
    await state.set_state(Lookup.factor)
    await state.update_data(lookup_number=number)
    await answer_html(message, render(templates, "cases/ask_factor", number=number))


async def mark_verified(state: FSMContext, number: str, data: dict[str, Any]) -> None:
    """Let this chat act on `number` for VERIFIED_FOR. `data`: the state's data as the handler read
    it, still current (one user's updates are handled one at a time), so nobody reads it twice."""
    now = time.time()
    verified = {n: t for n, t in (data.get("verified") or {}).items() if t > now}
    verified[number] = now + VERIFIED_FOR
    await state.set_data({**data, "verified": verified})


async def is_verified(state: FSMContext, number: str) -> bool:
    return float(((await state.get_data()).get("verified") or {}).get(number, 0)) > time.time()


async def is_subscribed(session: AsyncSession, case: Case, chat_id: int) -> bool:
    row = await session.exec(
        select(Subscription.id).where(
            col(Subscription.case_id) == case.id, col(Subscription.chat_id) == chat_id
        )
    )
    return row.first() is not None


def status_keyboard(number: str, subscribed: bool) -> InlineKeyboardMarkup:
    toggle = (
        InlineKeyboardButton(text=Labels.UNSUBSCRIBE, callback_data=CaseCb(act="unsub", n=number).pack())
        if subscribed
        else InlineKeyboardButton(text=Labels.SUBSCRIBE, callback_data=CaseCb(act="sub", n=number).pack())
    )
    refresh = InlineKeyboardButton(text=Labels.REFRESH, callback_data=CaseCb(act="view", n=number).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[toggle, refresh]])


async def send_status(
    bot: Bot, chat_id: int, case: Case, *, session: AsyncSession, templates: Environment
) -> None:
    public, subscribed = await chat_status(session=session, case=case, chat_id=chat_id)
    text = render(templates, "cases/status", case=public, subscribed=subscribed)
    await send_html(bot, chat_id, text, status_keyboard(case.number, subscribed))


async def refuse(message: Message, result: LookupResult, templates: Environment) -> None:
    if result.outcome == LookupOutcome.LOCKED and result.locked_until is not None:
        until = result.locked_until.astimezone(CHINA_TZ).strftime("%H:%M")
        await answer_html(message, render(templates, "cases/locked", until=until))
    else:
        await answer_html(message, render(templates, "cases/denied"))


# ---------------------------------------------------------------- handlers


@router.message(CommandStart(deep_link=True), binding_payload)
async def deep_link(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    templates: Environment,
    binding: tuple[str, str] | None,
) -> None:
    """One tap on the receipt's link: the code proves the receipt is in hand; the chat subscribes."""
    user_id = sender_id(message)
    number, code = binding if binding is not None else ("", "")
    result = await bind_chat(
        session=session, number=number, code=code, chat_id=message.chat.id, user_key=user_key(user_id)
    )
    if not result.ok or result.case is None:
        await refuse(message, result, templates)
        return
    await state.set_state(None)
    await mark_verified(state, result.case.number, await state.get_data())
    await answer_html(message, render(templates, "cases/bound", number=result.case.number))
    await send_status(bot, message.chat.id, result.case, session=session, templates=templates)


async def not_private(message: Message) -> bool:
    return message.chat.type != "private"


# Before every lookup handler: a status (and the factor typed for it) must never be shown to a group.
@router.message(not_private, Command("status", "mycases"))
async def private_only(message: Message, templates: Environment) -> None:
    await answer_html(message, render(templates, "cases/private_only"))


@router.message(not_private, case_number_in_text)
async def number_in_group(message: Message) -> None:
    """Ignored: in a group a case number is conversation, not a request to this bot."""


@router.message(Command("status"))
async def status_cmd(
    message: Message, command: CommandObject, state: FSMContext, templates: Environment
) -> None:
    if command.args and command.args.strip():
        await ask_factor(message, state, templates, normalize_case_number(command.args.strip()))
        return
    await state.set_state(Lookup.number)
    await answer_html(message, render(templates, "cases/ask_number"))


@router.message(Command("mycases"))
async def my_cases(message: Message, session: AsyncSession, templates: Environment) -> None:
    cases = await list_chat_cases(session=session, chat_id=message.chat.id)
    shown = cases[:MAX_LISTED]
    rows = [
        [
            InlineKeyboardButton(
                text=f"{c.number} · {c.status_enum.label}",
                callback_data=CaseCb(act="view", n=c.number).pack(),
            )
        ]
        for c in shown
    ]
    await answer_html(
        message,
        render(templates, "cases/mycases", cases=shown, more=len(cases) - len(shown)),
        InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
    )


@router.message(case_number_in_text)
async def bare_number(
    message: Message, state: FSMContext, templates: Environment, number: str | None
) -> None:
    await ask_factor(message, state, templates, number)


@router.message(StateFilter(Lookup.number), F.text)
async def number_after_status(message: Message, state: FSMContext, templates: Environment) -> None:
    await ask_factor(message, state, templates, normalize_case_number((message.text or "").strip()))


@router.message(StateFilter(Lookup.factor), digits_only)
async def factor(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, templates: Environment
) -> None:
    digits = "".join(ch for ch in message.text or "" if ch.isdigit())
    if len(digits) != 4:
        # Not counted as a failure: the user misunderstood the question, nobody guessed anything.
        await answer_html(message, render(templates, "cases/ask_factor_again"))
        return
    data = await state.get_data()
    number = str(data.get("lookup_number") or "")
    user_id = sender_id(message)
    result = await verify_lookup(session=session, number=number, factor=digits, user_key=user_key(user_id))
    if not result.ok or result.case is None:
        if result.outcome == LookupOutcome.LOCKED:
            await state.set_state(None)
        await refuse(message, result, templates)
        return
    await state.set_state(None)
    await mark_verified(state, result.case.number, data)
    await send_status(bot, message.chat.id, result.case, session=session, templates=templates)


@router.callback_query(CaseCb.filter())
async def case_button(
    callback: CallbackQuery,
    callback_data: CaseCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    templates: Environment,
) -> None:
    chat_id = callback.from_user.id
    case = await get_case(session=session, number=callback_data.n)
    subscribed = case is not None and await is_subscribed(session, case, chat_id)
    allowed = case is not None and (subscribed or await is_verified(state, case.number))
    if case is None or not allowed:
        # Same words whether the case exists or not: a forged button learns nothing.
        await callback.answer(render(templates, "cases/verify_first"), show_alert=True)
        return
    if callback_data.act == "sub":
        await subscribe(session=session, case=case, chat_id=chat_id)
        await callback.answer(render(templates, "cases/subscribed"), show_alert=True)
        await _update_keyboard(callback, case.number, subscribed=True)
    elif callback_data.act == "unsub":
        await unsubscribe(session=session, case=case, chat_id=chat_id)
        await callback.answer(render(templates, "cases/unsubscribed"))
        await _update_keyboard(callback, case.number, subscribed=False)
    else:
        await callback.answer()
        await send_status(bot, chat_id, case, session=session, templates=templates)


async def _update_keyboard(callback: CallbackQuery, number: str, *, subscribed: bool) -> None:
    if isinstance(callback.message, Message):
        try:
            await callback.message.edit_reply_markup(reply_markup=status_keyboard(number, subscribed))
        except Exception:  # noqa: BLE001 - an old message that cannot be edited keeps its buttons
            pass


@router.callback_query(AckCb.filter())
async def acknowledge(
    callback: CallbackQuery, callback_data: AckCb, session: AsyncSession, role: str, templates: Environment
) -> None:
    """我已知晓 under a 一次性告知: recorded once; the notice must have been sent to this chat.
    Anyone else (a forwarded notice, a forged button) gets words that say nothing about the notice
    or the case, and the attempt is audited like other refusals."""
    chat_id = callback.from_user.id
    recorded = await acknowledge_notice(session=session, event_pk=callback_data.e, chat_id=chat_id)
    if recorded is Ack.NOT_RECIPIENT:
        await refuse_and_audit(
            session=session,
            user_id=chat_id,
            role=role,
            action="notice.ack",
            target=str(callback_data.e),
            kind="citizen.denied",
        )
        await callback.answer(render(templates, "cases/ack_denied"), show_alert=True)
        return
    await callback.answer(render(templates, "cases/acknowledged" if recorded else "cases/ack_again"))
    if recorded and isinstance(callback.message, Message):
        try:
            await callback.message.edit_reply_markup(reply_markup=None)
        except Exception:  # noqa: BLE001 - the press is recorded either way
            pass
