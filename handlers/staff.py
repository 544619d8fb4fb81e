"""Staff in the bot: /cases, the case view and its buttons (开始审查 / 需补正 / 办结 / 不予许可 / 已领取).

`router` is gated once by RoleFilter (handlers/filters.py): its handlers only ever see active
staff and receive the `staff` row. `denied_router` (after it) gives everyone else a plain refusal
for the same commands and buttons, and audits the attempt.

A staff member sees and moves the cases their department has a step in; admins see every case.
The buttons shown are the ones the lifecycle allows right now (models.lifecycle.decide, dry run),
and each press carries the case version it was shown for: a double tap, or two colleagues pressing
the same button, becomes one event (the second is a replay of the same event_id).
需补正 opens a multi-select of the item's materials plus free text, then sends ONE 一次性告知.
Notices go through the outbox (apply_event writes them; the delivery worker sends them).
"""

from __future__ import annotations

import html
import re
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from jinja2 import Environment
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.notices_render import make_notice_renderer
from bot.render import DbId, answer_html, edit_html, send_html
from bot.templates import render
from handlers.cases import case_number_in_text
from handlers.common import actor, callback_message, sender_id
from handlers.filters import RoleFilter, refuse_and_audit
from knowledge.schema import Catalog
from models.cases import Case, CaseStep
from models.crud import EventOutcome, apply_event, get_case, get_steps, list_department_cases, to_public
from models.lifecycle import CaseStatus, Refused, StepState, decide
from models.staff import Staff, StaffRole

router = Router(name=__name__)
router.message.filter(RoleFilter())
router.callback_query.filter(RoleFilter())

denied_router = Router(name=f"{__name__}.denied")  # commands only: under handlers/__init__.commands

MAX_LISTED = 30
MAX_MATERIALS = 30  # buttons in the 需补正 multi-select; the rest can be typed as free text
MAX_EXTRA = 10  # free-text lines added to one 一次性告知

ACTIONS: dict[CaseStatus, str] = {
    CaseStatus.IN_REVIEW: "开始审查",
    CaseStatus.CORRECTION_REQUIRED: "需补正",
    CaseStatus.COMPLETED: "办结",
    CaseStatus.REJECTED: "不予许可",
    CaseStatus.PICKED_UP: "已领取",
}
CASE_LEVEL = frozenset({CaseStatus.PICKED_UP, CaseStatus.WITHDRAWN})


class StaffCb(CallbackData, prefix="w1"):
    act: str  # open | list | do | ask | fix | tog | txt | send | rej | back
    n: str = ""
    s: str = ""  # status word for do/ask
    v: DbId = 0  # case version the button was shown for; bounded so forged data can't overflow the DB
    i: int = -1  # material index for tog


class StaffFlow(StatesGroup):
    correction = State()  # choosing materials (data: fix={n, v, sel, extra})
    correction_text = State()  # typing a free-text line for the 一次性告知
    reject_reason = State()  # typing the reason for 不予许可 (data: rej={n, v})


class Labels:
    CONFIRM_COMPLETE = "确认办结并通知申请人"
    BACK = "返回"
    LIST = "返回列表"
    FREE_TEXT = "✏️ 补充其他材料或说明"
    SEND_CORRECTION = "📨 发送一次性告知"


# ---------------------------------------------------------------- permissions and views


async def load_case(session: AsyncSession, staff: Staff, number: str) -> tuple[Case, list[CaseStep]] | None:
    """The case if this staff member may see it (a step of their department, or an admin)."""
    case = await get_case(session=session, number=number)
    if case is None or case.id is None:
        return None
    steps = await get_steps(session=session, case_id=case.id)
    if staff.role != StaffRole.ADMIN.value and not any(s.department == staff.department for s in steps):
        # Another department's case: refused like a citizen's attempt, and on the record.
        await refuse_and_audit(
            session=session,
            user_id=staff.user_id,
            role=staff.role,
            action="case.other_department",
            target=number,
        )
        return None
    return case, steps


def event_department(staff: Staff, steps: list[CaseStep], status: CaseStatus) -> str | None:
    """Which step an event of this staff member moves: their department's, when it has one."""
    if status in CASE_LEVEL or staff.department is None:
        return None
    return staff.department if any(s.department == staff.department for s in steps) else None


def allowed_actions(case: Case, steps: list[CaseStep], staff: Staff) -> list[CaseStatus]:
    """The buttons the lifecycle accepts now, found by asking it (dry run), not by a copy of its rules."""
    states = [StepState(s.department, s.department_name, CaseStatus(s.status)) for s in steps]
    out = []
    for status in ACTIONS:
        try:
            decide(
                CaseStatus(case.status),
                states,
                status,
                event_department(staff, steps, status),
                note="-",
                missing_materials=["-"],
            )
        except Refused:
            continue
        out.append(status)
    return out


def case_keyboard(case: Case, steps: list[CaseStep], staff: Staff) -> InlineKeyboardMarkup:
    buttons = []
    for status in allowed_actions(case, steps, staff):
        act = {CaseStatus.CORRECTION_REQUIRED: "fix", CaseStatus.REJECTED: "rej", CaseStatus.COMPLETED: "ask"}
        cb = StaffCb(act=act.get(status, "do"), n=case.number, s=status.value, v=case.version)
        buttons.append(InlineKeyboardButton(text=ACTIONS[status], callback_data=cb.pack()))
    rows = [buttons[k : k + 3] for k in range(0, len(buttons), 3)]
    rows.append([InlineKeyboardButton(text=Labels.LIST, callback_data=StaffCb(act="list").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def case_view(
    session: AsyncSession, staff: Staff, case: Case, steps: list[CaseStep], templates: Environment
) -> tuple[str, InlineKeyboardMarkup]:
    from models.crud import get_history

    assert case.id is not None
    public = to_public(case, steps, await get_history(session=session, case_id=case.id))
    text = render(templates, "staff/case", case=public, staff=staff)
    return text, case_keyboard(case, steps, staff)


async def list_view(
    session: AsyncSession, staff: Staff, templates: Environment
) -> tuple[str, InlineKeyboardMarkup | None]:
    lines = await list_department_cases(session=session, department=staff.department, limit=MAX_LISTED)
    rows = [
        [
            InlineKeyboardButton(
                text=f"{line.case.number} · {CaseStatus(line.case.status).label}",
                callback_data=StaffCb(act="open", n=line.case.number).pack(),
            )
        ]
        for line in lines
    ]
    text = render(templates, "staff/cases", lines=lines, staff=staff, limit=MAX_LISTED)
    return text, InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def materials_for(catalog: Catalog, steps: list[CaseStep], staff: Staff) -> list[str]:
    """The 需补正 choices: materials of the items this staff member's department reviews."""
    mine = [s for s in steps if s.department == staff.department] or steps
    names: list[str] = []
    for step in mine:
        for item_name in step.items:
            item = catalog.item(item_name)
            for m in item.materials if item else []:
                if m.name not in names:
                    names.append(m.name)
    return names[:MAX_MATERIALS]


def correction_keyboard(
    number: str, version: int, names: list[str], selected: set[int]
) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=("☑️ " if k in selected else "⬜ ") + name,
                callback_data=StaffCb(act="tog", n=number, v=version, i=k).pack(),
            )
        ]
        for k, name in enumerate(names)
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=Labels.FREE_TEXT, callback_data=StaffCb(act="txt", n=number, v=version).pack()
            )
        ]
    )
    rows.append(
        [
            InlineKeyboardButton(
                text=Labels.SEND_CORRECTION, callback_data=StaffCb(act="send", n=number, v=version).pack()
            ),
            InlineKeyboardButton(text=Labels.BACK, callback_data=StaffCb(act="back", n=number).pack()),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def apply(
    *,
    session: AsyncSession,
    staff: Staff,
    case: Case,
    steps: list[CaseStep],
    status: CaseStatus,
    version: int,
    catalog: Catalog,
    templates: Environment,
    note: str | None = None,
    missing: list[str] | None = None,
) -> tuple[str, bool]:
    """Apply one staff decision; (short result text for the staff member, whether it changed the case)."""
    dep = event_department(staff, steps, status)
    result = await apply_event(
        session=session,
        number=case.number,
        status=status.value,
        actor=actor(staff),
        # Same case version + same action + same department = the same decision: a double tap or a
        # colleague pressing the same button is a replay, not a second event.
        event_id=f"tg:{case.number}:{version}:{status.value}:{dep or '-'}",
        catalog=catalog,
        render=make_notice_renderer(templates),
        department=dep,
        note=note,
        missing_materials=missing,
    )
    if result.outcome == EventOutcome.APPLIED:
        return render(templates, "staff/applied", label=status.label, notices=result.notices), True
    if result.outcome == EventOutcome.DUPLICATE:
        return render(templates, "staff/duplicate"), False
    return render(templates, "staff/refused", reason=result.reason or ""), False


async def show_case(
    bot: Bot,
    callback: CallbackQuery | None,
    chat_id: int,
    session: AsyncSession,
    staff: Staff,
    number: str,
    templates: Environment,
) -> bool:
    loaded = await load_case(session, staff, number)
    if loaded is None:
        await send_html(bot, chat_id, render(templates, "staff/not_yours"))
        return False
    text, kb = await case_view(session, staff, *loaded, templates)
    await edit_html(bot, callback_message(callback), chat_id, text, kb)  # no button: sent anew
    return True


# ---------------------------------------------------------------- commands and messages


@router.message(Command("cases"))
async def cases_cmd(
    message: Message, state: FSMContext, session: AsyncSession, staff: Staff, templates: Environment
) -> None:
    await state.set_state(None)
    text, kb = await list_view(session, staff, templates)
    await answer_html(message, text, kb)


@router.message(StateFilter(StaffFlow.correction_text), F.text, ~F.text.startswith("/"))
async def correction_text(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    fix = dict((await state.get_data()).get("fix") or {})
    extra = [*fix.get("extra", []), *[ln.strip() for ln in (message.text or "").splitlines() if ln.strip()]]
    fix["extra"] = extra[:MAX_EXTRA]
    await state.update_data(fix=fix)
    await state.set_state(StaffFlow.correction)
    await _send_correction_picker(bot, None, message.chat.id, session, staff, fix, catalog, templates)


@router.message(StateFilter(StaffFlow.reject_reason), F.text, ~F.text.startswith("/"))
async def reject_reason(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    rej = dict((await state.get_data()).get("rej") or {})
    await state.set_state(None)
    loaded = await load_case(session, staff, str(rej.get("n", "")))
    if loaded is None:
        await answer_html(message, render(templates, "staff/not_yours"))
        return
    case, steps = loaded
    text, _ = await apply(
        session=session,
        staff=staff,
        case=case,
        steps=steps,
        status=CaseStatus.REJECTED,
        version=int(rej.get("v", 0)),
        catalog=catalog,
        templates=templates,
        note=(message.text or "").strip(),
    )
    await answer_html(message, text)
    await show_case(bot, None, message.chat.id, session, staff, case.number, templates)


@router.message(case_number_in_text)
async def staff_number(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    templates: Environment,
    number: str | None,
) -> None:
    """Staff sending a case number get their view of it (no second factor: they are authorised)."""
    await show_case(bot, None, message.chat.id, session, staff, number or "", templates)


# ---------------------------------------------------------------- buttons


@router.callback_query(StaffCb.filter())
async def staff_button(
    callback: CallbackQuery,
    callback_data: StaffCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    cb, chat_id = callback_data, callback.from_user.id
    if cb.act == "list":
        await callback.answer()
        await state.set_state(None)
        text, kb = await list_view(session, staff, templates)
        await edit_html(bot, callback_message(callback), chat_id, text, kb)
        return
    loaded = await load_case(session, staff, cb.n)
    if loaded is None:
        await callback.answer(render(templates, "staff/not_yours"), show_alert=True)
        return
    case, steps = loaded
    if cb.act in ("open", "back"):
        await callback.answer()
        await state.set_state(None)
        await show_case(bot, callback, chat_id, session, staff, case.number, templates)
    elif cb.act == "ask":  # 办结 asks once: the applicant is told to come, it cannot be taken back
        await callback.answer()
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=Labels.CONFIRM_COMPLETE,
                        callback_data=StaffCb(act="do", n=case.number, s=cb.s, v=cb.v).pack(),
                    ),
                    InlineKeyboardButton(
                        text=Labels.BACK, callback_data=StaffCb(act="back", n=case.number).pack()
                    ),
                ]
            ]
        )
        await edit_html(
            bot,
            callback_message(callback),
            chat_id,
            render(templates, "staff/confirm_complete", number=case.number),
            kb,
        )
    elif cb.act == "do":
        try:
            status = CaseStatus(cb.s)
        except ValueError:
            await callback.answer(render(templates, "expired"), show_alert=True)
            return
        text, _ = await apply(
            session=session,
            staff=staff,
            case=case,
            steps=steps,
            status=status,
            version=cb.v,
            catalog=catalog,
            templates=templates,
        )
        await callback.answer(_plain(text), show_alert=True)
        await show_case(bot, callback, chat_id, session, staff, case.number, templates)
    elif cb.act == "rej":
        await callback.answer()
        await state.set_state(StaffFlow.reject_reason)
        await state.update_data(rej={"n": case.number, "v": cb.v})
        await send_html(bot, chat_id, render(templates, "staff/ask_reason", number=case.number))
    elif cb.act == "fix":
        await callback.answer()
        fix = {"n": case.number, "v": cb.v, "sel": [], "extra": []}
        await state.set_state(StaffFlow.correction)
        await state.update_data(fix=fix)
        await _send_correction_picker(bot, callback, chat_id, session, staff, fix, catalog, templates)
    elif cb.act in ("tog", "txt", "send"):
        await _correction_button(callback, cb, bot, state, session, staff, case, steps, catalog, templates)
    else:
        await callback.answer(render(templates, "expired"), show_alert=True)


async def _correction_button(
    callback: CallbackQuery,
    cb: StaffCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    case: Case,
    steps: list[CaseStep],
    catalog: Catalog,
    templates: Environment,
) -> None:
    chat_id = callback.from_user.id
    fix: dict[str, Any] = dict((await state.get_data()).get("fix") or {})
    if fix.get("n") != case.number or fix.get("v") != cb.v:
        # The selection lives in the FSM; a button from an older picker must not send a stale list.
        await callback.answer(render(templates, "staff/picker_stale"), show_alert=True)
        return
    names = materials_for(catalog, steps, staff)
    if cb.act == "tog":
        selected = set(fix.get("sel", []))
        if 0 <= cb.i < len(names):
            selected ^= {cb.i}
        fix["sel"] = sorted(selected)
        await state.update_data(fix=fix)
        await callback.answer()
        await _send_correction_picker(bot, callback, chat_id, session, staff, fix, catalog, templates)
    elif cb.act == "txt":
        await callback.answer()
        await state.set_state(StaffFlow.correction_text)
        await send_html(bot, chat_id, render(templates, "staff/ask_free_text"))
    else:  # send
        missing = [names[k] for k in fix.get("sel", []) if 0 <= k < len(names)] + list(fix.get("extra", []))
        if not missing:
            await callback.answer(render(templates, "staff/nothing_selected"), show_alert=True)
            return
        text, changed = await apply(
            session=session,
            staff=staff,
            case=case,
            steps=steps,
            status=CaseStatus.CORRECTION_REQUIRED,
            version=cb.v,
            catalog=catalog,
            templates=templates,
            missing=missing,
        )
        await callback.answer(_plain(text), show_alert=True)
        await state.set_state(None)
        await state.update_data(fix=None)
        await show_case(bot, callback, chat_id, session, staff, case.number, templates)


async def _send_correction_picker(
    bot: Bot,
    callback: CallbackQuery | None,
    chat_id: int,
    session: AsyncSession,
    staff: Staff,
    fix: dict[str, Any],
    catalog: Catalog,
    templates: Environment,
) -> None:
    loaded = await load_case(session, staff, str(fix.get("n", "")))
    if loaded is None:
        await send_html(bot, chat_id, render(templates, "staff/not_yours"))
        return
    case, steps = loaded
    names = materials_for(catalog, steps, staff)
    selected = set(fix.get("sel", []))
    text = render(
        templates, "staff/correction", case=case, names=names, selected=selected, extra=fix.get("extra", [])
    )
    kb = correction_keyboard(case.number, int(fix.get("v", 0)), names, selected)
    await edit_html(bot, callback_message(callback), chat_id, text, kb)


def _plain(html_text: str) -> str:
    # Callback alerts are plain text of at most 200 characters.
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))[:200]


# ---------------------------------------------------------------- everyone else


@denied_router.message(Command("cases"))
async def cases_denied(message: Message, session: AsyncSession, role: str, templates: Environment) -> None:
    await refuse_and_audit(session=session, user_id=sender_id(message), role=role, action="/cases")
    await answer_html(message, render(templates, "staff/denied"))


@denied_router.callback_query(StaffCb.filter())
async def button_denied(
    callback: CallbackQuery, callback_data: StaffCb, session: AsyncSession, role: str, templates: Environment
) -> None:
    await refuse_and_audit(
        session=session,
        user_id=callback.from_user.id,
        role=role,
        action=f"button:{callback_data.act}",
        target=callback_data.n,
    )
    await callback.answer(render(templates, "staff/denied"), show_alert=True)
