"""The management office and department staff in the bot: tickets, announcements, the evaluation
report and the catalog's gaps.

Three routers, gated once each (handlers/filters.RoleFilter), never by an `if` in a handler:
- `router` (admins): /complaints (assign, reply, close), /announce (preview → confirm → one
  outbox notice per subscriber), /report (PNG chart + HTML document), /unanswered (attach a
  question to an item as a new alias — the catalog file is edited and reloaded — or dismiss it).
- `staff_router` (any staff): /tickets — their department's rectification tickets (record the
  callback and the fix) and complaints passed to them (reply).
- `denied_router`: the same commands and buttons from anyone else get a plain refusal, audited.
A department's staff pressing another department's ticket (a forged or stale button) is refused by
models/supervision.py with Forbidden, in the same words as a missing ticket, and audited here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from jinja2 import Environment
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import answer_html, edit_html, send_html
from bot.report import Period, build_report, matcher_attributor, render_chart, render_html
from bot.supervision_render import AdminCb, department_name, make_supervision_renderer
from bot.templates import render
from handlers.common import actor, callback_message, edit_pressed, is_command, sender_id
from handlers.feedback import Fresh
from handlers.filters import RoleFilter, audit_refusal, refuse_and_audit
from knowledge.loader import CatalogError, load_catalog
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.cases import utc_now
from models.crud import InputError
from models.feedback import MAX_TEXT, REASON_LABELS, Announcement, Complaint, ComplaintStatus, Rectification
from models.questions import UnansweredQuestion
from models.staff import Staff, StaffRole
from models.supervision import (
    Forbidden,
    assign_complaint,
    close_complaint,
    dismiss_question,
    list_complaints,
    list_rectifications,
    mark_question_attached,
    open_questions,
    publish_announcement,
    record_callback,
    record_fix,
    reply_complaint,
    report_rows,
    visible_complaint,
    visible_rectification,
)
from models.workdays import default_calendar, local_date

log = logging.getLogger(__name__)

router = Router(name=__name__)
router.message.filter(RoleFilter(StaffRole.ADMIN))
router.callback_query.filter(RoleFilter(StaffRole.ADMIN))

staff_router = Router(name=f"{__name__}.staff")
staff_router.message.filter(RoleFilter())
staff_router.callback_query.filter(RoleFilter())

denied_router = Router(name=f"{__name__}.denied")  # commands only: under handlers/__init__.commands

ADMIN_COMMANDS = ("complaints", "announce", "report", "unanswered")
STAFF_COMMANDS = ("tickets",)
STAFF_ACTS = frozenset({"tk", "c", "re", "ph", "rc", "rf"})  # what department staff may press
LISTED = 20
QUESTIONS = 10
CANDIDATES = 5


class AdminFlow(StatesGroup):
    reply = State()  # data ad={n}
    outcome = State()  # data ad={n}
    fix = State()  # data ad={n}
    announce = State()  # waiting for the text (or a document with a caption)
    preview = State()  # data ann={text, doc, name}
    alias_item = State()  # data ad={q}: typing an item name for a question


def scope(staff: Staff) -> str | None:
    """The department whose tickets this staff member acts on; None: every department (admins)."""
    return None if staff.role == StaffRole.ADMIN.value else staff.department


def msg(templates: Environment, key: str, **kw: Any) -> str:
    return render(templates, "admin/msg", key=key, **kw)


async def refuse_press(
    callback: CallbackQuery, session: AsyncSession, staff: Staff, error: InputError
) -> None:
    """Answer a refused button with the model's reason; a permission refusal is also audited."""
    await audit_refusal(session=session, user_id=staff.user_id, role=staff.role, error=error)
    await callback.answer(str(error), show_alert=True)


def _b(text: str, cb: AdminCb) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=cb.pack())


def _kb(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[r for r in rows if r])


async def is_text(message: Message) -> bool:
    return message.text is not None and not message.text.startswith("/")


@staff_router.message(
    StateFilter(AdminFlow.reply, AdminFlow.outcome, AdminFlow.fix, AdminFlow.alias_item), is_command
)
async def command_leaves_the_flow(message: Message, state: FSMContext) -> None:
    """A command ends a pending reply/outcome/fix prompt: the next free text is not sent to anyone."""
    await state.set_state(None)
    raise SkipHandler


# ---------------------------------------------------------------- complaints


def complaint_keyboard(c: Complaint, staff: Staff) -> InlineKeyboardMarkup:
    admin = staff.role == StaffRole.ADMIN.value
    open_ = c.status != ComplaintStatus.CLOSED.value
    first: list[InlineKeyboardButton] = []
    if open_ and admin:
        first.append(_b("转办", AdminCb(act="as", n=c.number)))
    if open_:
        first.append(_b("答复", AdminCb(act="re", n=c.number)))
    if open_ and admin:
        first.append(_b("办结", AdminCb(act="cl", n=c.number)))
    extra = [_b(f"查看照片（{len(c.photos)}）", AdminCb(act="ph", n=c.number))] if c.photos else []
    back = [_b("返回列表", AdminCb(act="list" if admin else "tk"))]
    return _kb(first, extra, back)


async def show_complaint(
    bot: Bot,
    callback: CallbackQuery | None,
    chat_id: int,
    c: Complaint,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    text = render(
        templates,
        "admin/complaint",
        c=c,
        status=ComplaintStatus(c.status).label,
        dept=lambda key: department_name(catalog, key),
    )
    await edit_html(bot, callback_message(callback), chat_id, text, complaint_keyboard(c, staff))


async def complaints_view(
    session: AsyncSession, catalog: Catalog, templates: Environment
) -> tuple[str, InlineKeyboardMarkup | None]:
    items = await list_complaints(session=session, limit=LISTED)
    rows = [
        [_b(f"{c.number} · {ComplaintStatus(c.status).label}", AdminCb(act="c", n=c.number))] for c in items
    ]
    text = render(
        templates,
        "admin/complaints",
        items=items,
        today=local_date(utc_now()),
        label=lambda c: ComplaintStatus(c.status).label,
        dept=lambda key: department_name(catalog, key),
    )
    return text, _kb(*rows) if rows else None


@router.message(Command("complaints"))
async def complaints_cmd(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await state.set_state(None)
    text, kb = await complaints_view(session, catalog, templates)
    await send_html(bot, message.chat.id, text, kb)


@router.callback_query(AdminCb.filter(F.act == "list"))
async def complaints_list(
    callback: CallbackQuery, bot: Bot, session: AsyncSession, catalog: Catalog, templates: Environment
) -> None:
    await callback.answer()
    text, kb = await complaints_view(session, catalog, templates)
    await edit_pressed(bot, callback, text, kb)


@router.callback_query(AdminCb.filter(F.act == "as"))
async def assign_pick(
    callback: CallbackQuery, callback_data: AdminCb, bot: Bot, catalog: Catalog, templates: Environment
) -> None:
    await callback.answer()
    buttons = [_b(d.name, AdminCb(act="ad", n=callback_data.n, d=d.id)) for d in catalog.departments]
    rows = [buttons[k : k + 2] for k in range(0, len(buttons), 2)]
    rows.append([_b("返回", AdminCb(act="c", n=callback_data.n))])
    await edit_pressed(bot, callback, msg(templates, "assign_pick", number=callback_data.n), _kb(*rows))


@router.callback_query(AdminCb.filter(F.act == "ad"))
async def assign(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    dep = catalog.department(callback_data.d)
    if dep is None:
        await callback.answer(render(templates, "expired"), show_alert=True)
        return
    try:
        c = await assign_complaint(
            session=session,
            number=callback_data.n,
            department=dep.id,
            actor=actor(staff),
            render=make_supervision_renderer(templates, catalog),
        )
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer(f"已转办{dep.name}")
    await show_complaint(bot, callback, callback.from_user.id, c, staff, catalog, templates)


@router.callback_query(AdminCb.filter(F.act == "cl"))
async def close_start(
    callback: CallbackQuery, callback_data: AdminCb, bot: Bot, state: FSMContext, templates: Environment
) -> None:
    await callback.answer()
    await state.set_state(AdminFlow.outcome)
    await state.update_data(ad={"n": callback_data.n, "at": time.time()})
    await send_html(bot, callback.from_user.id, msg(templates, "outcome_prompt", number=callback_data.n))


# ---------------------------------------------------------------- /tickets (any staff)


@staff_router.message(Command("tickets"))
async def tickets_cmd(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await state.set_state(None)
    text, kb = await tickets_view(session, staff, catalog, templates)
    await send_html(bot, message.chat.id, text, kb)


@staff_router.callback_query(AdminCb.filter(F.act == "tk"))
async def tickets_button(
    callback: CallbackQuery,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await callback.answer()
    text, kb = await tickets_view(session, staff, catalog, templates)
    await send_html(bot, callback.from_user.id, text, kb)


async def tickets_view(
    session: AsyncSession, staff: Staff, catalog: Catalog, templates: Environment
) -> tuple[str, InlineKeyboardMarkup | None]:
    mine = scope(staff)
    rects = await list_rectifications(session=session, department=mine, limit=LISTED)
    complaints = await list_complaints(session=session, department=mine, limit=LISTED) if mine else []
    rows: list[list[InlineKeyboardButton]] = []
    for line in rects:
        r = line.rectification
        buttons = []
        if r.status == "open":
            buttons.append(_b(f"已回访 {r.number}", AdminCb(act="rc", n=r.number)))
        buttons.append(_b(f"登记整改 {r.number}", AdminCb(act="rf", n=r.number)))
        rows.append(buttons)
    rows += [[_b(f"投诉 {c.number}", AdminCb(act="c", n=c.number))] for c in complaints]
    text = render(
        templates,
        "admin/tickets",
        rects=rects,
        complaints=complaints,
        department=department_name(catalog, mine) if mine else "全部部门",
        today=local_date(utc_now()),
        dept=lambda key: department_name(catalog, key),
        reason=lambda code: REASON_LABELS.get(code or "", ""),
    )
    return text, _kb(*rows) if rows else None


@staff_router.callback_query(AdminCb.filter(F.act == "c"))
async def complaint_open(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    try:
        c = await visible_complaint(
            session=session, number=callback_data.n, scope=scope(staff), action="complaint.view"
        )
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer()
    await show_complaint(bot, None, callback.from_user.id, c, staff, catalog, templates)


@staff_router.callback_query(AdminCb.filter(F.act == "ph"))
async def complaint_photos(
    callback: CallbackQuery, callback_data: AdminCb, bot: Bot, session: AsyncSession, staff: Staff
) -> None:
    try:
        c = await visible_complaint(
            session=session, number=callback_data.n, scope=scope(staff), action="complaint.photos"
        )
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer()
    for file_id in c.photos:
        await bot.send_photo(callback.from_user.id, file_id, caption=c.number)


@staff_router.callback_query(AdminCb.filter(F.act.in_({"re", "rf"})))
async def text_start(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    templates: Environment,
) -> None:
    reply = callback_data.act == "re"
    # Checked at the press, not only when the text arrives: nobody writes a reply for nothing.
    try:
        if reply:
            await visible_complaint(
                session=session, number=callback_data.n, scope=scope(staff), action="complaint.reply"
            )
        else:
            await visible_rectification(
                session=session, number=callback_data.n, scope=scope(staff), action="rectification.fix"
            )
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer()
    await state.set_state(AdminFlow.reply if reply else AdminFlow.fix)
    await state.update_data(ad={"n": callback_data.n, "at": time.time()})
    key = "reply_prompt" if reply else "fix_prompt"
    await send_html(bot, callback.from_user.id, msg(templates, key, number=callback_data.n, limit=MAX_TEXT))


@router.message(StateFilter(AdminFlow.outcome), is_text, Fresh("ad"))
@staff_router.message(StateFilter(AdminFlow.reply, AdminFlow.fix), is_text, Fresh("ad"))
async def prompt_answered(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    """The text typed at an outcome (admins only), reply or fix prompt, for the ticket the prompt
    was for. A refusal leaves the prompt open, so the text can be corrected and sent again."""
    number = str(((await state.get_data()).get("ad") or {}).get("n", ""))
    text, by, notices = message.text or "", actor(staff), make_supervision_renderer(templates, catalog)
    prompt = await state.get_state()
    ticket: Complaint | Rectification
    try:
        if prompt == AdminFlow.outcome.state:
            done = "closed"
            ticket = await close_complaint(
                session=session, number=number, outcome=text, actor=by, render=notices
            )
        elif prompt == AdminFlow.reply.state:
            done = "replied"
            ticket = await reply_complaint(
                session=session, number=number, text=text, actor=by, scope=scope(staff), render=notices
            )
        else:
            done = "fixed"
            ticket = await record_fix(
                session=session, number=number, actor=by, scope=scope(staff), note=text, render=notices
            )
    except InputError as e:
        await audit_refusal(session=session, user_id=staff.user_id, role=staff.role, error=e)
        if isinstance(e, Forbidden):  # e.g. passed to another department meanwhile: no retry helps
            await state.set_state(None)
        await answer_html(message, msg(templates, "refused", reason=str(e)))
        return
    await state.set_state(None)
    await answer_html(message, msg(templates, done, number=ticket.number))


@staff_router.callback_query(AdminCb.filter(F.act == "rc"))
async def callback_done(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    try:
        rect = await record_callback(
            session=session, number=callback_data.n, actor=actor(staff), scope=scope(staff)
        )
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer(msg(templates, "called_back", number=rect.number))
    text, kb = await tickets_view(session, staff, catalog, templates)
    await edit_pressed(bot, callback, text, kb)


# ---------------------------------------------------------------- announcements


@router.message(Command("announce"))
async def announce_cmd(
    message: Message, command: CommandObject, state: FSMContext, catalog: Catalog, templates: Environment
) -> None:
    if command.args and command.args.strip():
        await _preview(message, state, catalog, templates, command.args.strip(), None, None)
        return
    await state.set_state(AdminFlow.announce)
    await answer_html(message, msg(templates, "announce_prompt"))


@router.message(StateFilter(AdminFlow.announce), F.document | F.text)
async def announce_draft(
    message: Message, state: FSMContext, catalog: Catalog, templates: Environment
) -> None:
    if message.text is not None and message.text.startswith("/"):
        await state.set_state(None)
        await answer_html(message, msg(templates, "announce_cancelled"))
        return
    doc = message.document
    text = (message.text if doc is None else message.caption) or ""
    if not text.strip():
        await answer_html(message, msg(templates, "announce_need_text"))
        return
    await _preview(
        message,
        state,
        catalog,
        templates,
        text.strip(),
        doc.file_id if doc else None,
        doc.file_name if doc else None,
    )


async def _preview(
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
    text: str,
    doc: str | None,
    name: str | None,
) -> None:
    await state.set_state(AdminFlow.preview)
    await state.update_data(ann={"text": text, "doc": doc, "name": name})
    # The preview is the very text subscribers will get (same renderer, same template).
    draft = Announcement(
        text=text, document_file_id=doc, document_name=name, created_by=0, created_at=utc_now()
    )
    rendered = make_supervision_renderer(templates, catalog)("announcement", {"announcement": draft})
    assert rendered is not None
    await answer_html(message, msg(templates, "announce_preview_head"))
    await answer_html(message, rendered.text)
    await answer_html(
        message,
        msg(templates, "announce_confirm"),
        _kb([_b("确认发布", AdminCb(act="pub")), _b("取消", AdminCb(act="x"))]),
    )


@router.callback_query(AdminCb.filter(F.act.in_({"pub", "x"})))
async def announce_confirm(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await callback.answer()
    ann = (await state.get_data()).get("ann")
    in_preview = await state.get_state() == AdminFlow.preview.state
    await state.set_state(None)
    await state.update_data(ann=None)
    if callback_data.act == "x" or not ann or not in_preview:
        key = "announce_cancelled" if callback_data.act == "x" else "announce_expired"
        await edit_pressed(bot, callback, msg(templates, key))
        return
    try:
        published = await publish_announcement(
            session=session,
            text=str(ann["text"]),
            user_id=staff.user_id,
            render=make_supervision_renderer(templates, catalog),
            document_file_id=ann.get("doc"),
            document_name=ann.get("name"),
        )
    except InputError as e:
        await send_html(bot, callback.from_user.id, msg(templates, "refused", reason=str(e)))
        return
    text = msg(templates, "published", recipients=published.recipients)
    await edit_pressed(bot, callback, text)


# ---------------------------------------------------------------- /report


@router.message(Command("report"))
async def report_cmd(
    message: Message,
    command: CommandObject,
    bot: Bot,
    session: AsyncSession,
    catalog: Catalog,
    matcher: Matcher,
    templates: Environment,
) -> None:
    today = local_date(utc_now())
    try:
        period = Period.parse(command.args or f"{today:%Y-%m}")
    except ValueError as e:
        await answer_html(message, msg(templates, "refused", reason=str(e)))
        return
    rows = await report_rows(session=session, start=period.start, end=period.end)
    report = build_report(
        rows,
        catalog=catalog,
        period=period,
        as_of=today,
        calendar=default_calendar(),
        attribute=matcher_attributor(catalog, matcher),
    )
    # matplotlib and the page take tens of milliseconds: keep them off the event loop.
    png = await asyncio.to_thread(render_chart, report)
    page = await asyncio.to_thread(render_html, report, templates, png)
    caption = msg(templates, "report_caption", report=report)
    await bot.send_photo(
        message.chat.id, BufferedInputFile(png, f"report-{period.slug}.png"), caption=caption
    )
    await bot.send_document(
        message.chat.id,
        BufferedInputFile(page.encode("utf-8"), f"report-{period.slug}.html"),
        caption=msg(templates, "report_document", label=period.label),
    )


# ---------------------------------------------------------------- /unanswered: catalog gaps


async def unanswered_view(
    session: AsyncSession, templates: Environment
) -> tuple[str, InlineKeyboardMarkup | None]:
    questions = await open_questions(session=session, limit=QUESTIONS)
    rows = [
        [_b(f"归入事项 {n}", AdminCb(act="qa", i=q.id or 0)), _b(f"忽略 {n}", AdminCb(act="qd", i=q.id or 0))]
        for n, q in enumerate(questions, 1)
    ]
    # SQLite hands back these timestamps without their zone; they were written in UTC.
    seen = [(q, q.last_seen if q.last_seen.tzinfo else q.last_seen.replace(tzinfo=dt.UTC)) for q in questions]
    return render(templates, "admin/unanswered", questions=seen), _kb(*rows) if rows else None


@router.message(Command("unanswered"))
async def unanswered_cmd(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, templates: Environment
) -> None:
    await state.set_state(None)
    text, kb = await unanswered_view(session, templates)
    await send_html(bot, message.chat.id, text, kb)


@router.callback_query(AdminCb.filter(F.act == "qd"))
async def question_dismiss(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    session: AsyncSession,
    staff: Staff,
    templates: Environment,
) -> None:
    try:
        q = await dismiss_question(session=session, question_id=callback_data.i, actor=actor(staff))
    except InputError as e:
        await refuse_press(callback, session, staff, e)
        return
    await callback.answer(msg(templates, "dismissed", text=q.text[:40]))
    text, kb = await unanswered_view(session, templates)
    await edit_pressed(bot, callback, text, kb)


@router.callback_query(AdminCb.filter(F.act == "qa"))
async def question_candidates(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    catalog: Catalog,
    matcher: Matcher,
    templates: Environment,
) -> None:
    q = await session.get(UnansweredQuestion, callback_data.i)
    if q is None:
        await callback.answer(msg(templates, "question_gone"), show_alert=True)
        return
    await callback.answer()
    names = [m.name for m in matcher.search(q.text, limit=CANDIDATES * 2).matches if m.kind == "item"]
    index = {it.name: k for k, it in enumerate(catalog.items)}
    rows = [
        [_b(name, AdminCb(act="qi", i=q.id or 0, k=index[name]))]
        for name in names[:CANDIDATES]
        if name in index
    ]
    rows.append([_b("返回", AdminCb(act="qb"))])
    await state.set_state(AdminFlow.alias_item)
    await state.update_data(ad={"q": q.id, "at": time.time()})
    await edit_pressed(bot, callback, msg(templates, "alias_pick", text=q.text), _kb(*rows))


@router.callback_query(AdminCb.filter(F.act == "qb"))
async def question_back(
    callback: CallbackQuery, bot: Bot, state: FSMContext, session: AsyncSession, templates: Environment
) -> None:
    await callback.answer()
    await state.set_state(None)
    text, kb = await unanswered_view(session, templates)
    await edit_pressed(bot, callback, text, kb)


@router.callback_query(AdminCb.filter(F.act == "qi"))
async def question_attach_button(
    callback: CallbackQuery,
    callback_data: AdminCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    dispatcher: Dispatcher,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await callback.answer()
    item = catalog.items[callback_data.k].name if 0 <= callback_data.k < len(catalog.items) else ""
    await state.set_state(None)
    text = await attach(session, staff, dispatcher, catalog, callback_data.i, item, templates)
    await edit_pressed(bot, callback, text)


@router.message(StateFilter(AdminFlow.alias_item), is_text, Fresh("ad"))
async def question_attach_typed(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    staff: Staff,
    dispatcher: Dispatcher,
    catalog: Catalog,
    templates: Environment,
) -> None:
    qid = int(((await state.get_data()).get("ad") or {}).get("q", 0))
    await state.set_state(None)
    await answer_html(
        message,
        await attach(session, staff, dispatcher, catalog, qid, (message.text or "").strip(), templates),
    )


async def attach(
    session: AsyncSession,
    staff: Staff,
    dispatcher: Dispatcher,
    catalog: Catalog,
    question_id: int,
    item_name: str,
    templates: Environment,
) -> str:
    """Add the question as an alias of the item in its YAML file, reload catalog and matcher into
    the running dispatcher, record the decision. Returns the reply text."""
    q = await session.get(UnansweredQuestion, question_id)
    if q is None:
        return msg(templates, "question_gone")
    if catalog.item(item_name) is None:
        return msg(templates, "refused", reason=f"目录中没有事项「{item_name[:40]}」")
    alias = " ".join(q.text.split())
    try:
        path, new_catalog = add_alias_and_reload(catalog, item_name, alias)
    except AliasError as e:
        return msg(templates, "refused", reason=str(e))
    # Workflow data is what the next update's handlers receive: the new catalog answers at once.
    dispatcher["catalog"] = new_catalog
    dispatcher["matcher"] = Matcher(new_catalog)
    await mark_question_attached(
        session=session, question_id=question_id, item=item_name, alias=alias, actor=actor(staff)
    )
    log.info("alias %r added to %s (%s) by %s", alias, item_name, path.name, actor(staff))
    return msg(templates, "attached", alias=alias, item=item_name, file=path.name)


# ---------------------------------------------------------------- catalog file edit (aliases)


class AliasError(Exception):
    """The alias cannot be added; str() is a Chinese sentence for the admin."""


def _flow(values: list[str]) -> str:
    """A YAML flow sequence of strings, quoted only where YAML needs it."""
    return str(yaml.safe_dump(values, default_flow_style=True, allow_unicode=True, width=1 << 20)).strip()


def _line_after(text: str, node: yaml.Node) -> int:
    """Offset just past the line on which `node` ends (a block node ends at column 0 of the next)."""
    end = node.end_mark.index
    if node.end_mark.column == 0 and end > 0:
        end -= 1
    nl = text.find("\n", end)
    return len(text) if nl < 0 else nl + 1


def insert_alias(text: str, item_name: str, alias: str) -> str | None:
    """`text` (an items/*.yaml file) with `alias` appended to the item's aliases, comments and
    layout kept; None when the item is not in this file."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.SequenceNode):
        return None
    for entry in root.value:
        if not isinstance(entry, yaml.MappingNode):
            continue
        fields = {k.value: v for k, v in entry.value if isinstance(k, yaml.ScalarNode)}
        name = fields.get("name")
        if not isinstance(name, yaml.ScalarNode) or name.value != item_name:
            continue
        aliases = fields.get("aliases")
        if isinstance(aliases, yaml.SequenceNode) and not aliases.flow_style and aliases.value:
            at = _line_after(text, aliases.value[-1])
            indent = " " * aliases.start_mark.column
            line = f"{indent}- {_flow([alias])[1:-1]}\n"
            return text[:at] + ("" if text[:at].endswith("\n") else "\n") + line + text[at:]
        if aliases is not None:  # flow list, empty list or empty value: rewrite it in flow style
            old = [str(v.value) for v in aliases.value] if isinstance(aliases, yaml.SequenceNode) else []
            a, b = aliases.start_mark.index, aliases.end_mark.index
            if isinstance(aliases, yaml.ScalarNode) and not aliases.value:
                # `aliases:` with nothing after it: the empty scalar sits right after the colon.
                return text[:a] + " " + _flow([alias]) + text[b:]
            return text[:a] + _flow([*old, alias]) + text[b:]
        last_value = entry.value[-1][1]
        at = _line_after(text, last_value)
        indent = " " * entry.start_mark.column
        line = f"{indent}aliases: {_flow([alias])}\n"
        return text[:at] + ("" if text[:at].endswith("\n") else "\n") + line + text[at:]
    return None


def add_alias_and_reload(catalog: Catalog, item_name: str, alias: str) -> tuple[Path, Catalog]:
    """Edit the item's YAML file in place, check the result and reload the catalog; on any problem
    the file is left exactly as it was."""
    item = catalog.item(item_name)
    if item is None:
        raise AliasError(f"目录中没有事项「{item_name[:40]}」")
    if not 2 <= len(alias) <= 50 or "*" in alias:
        raise AliasError("这个问题不适合作为常用说法（太短、太长，或含有隐去的号码）")
    taken = {n for it in catalog.items for n in (it.name, *it.aliases)} | {
        n for b in catalog.bundles for n in (b.name, *b.aliases)
    }
    if alias in taken:
        raise AliasError(f"「{alias}」已经是目录中的名称或常用说法")
    root = Path(catalog.root or "")
    if not catalog.root or not (root / "items").is_dir():
        raise AliasError("事项目录不是 YAML 文件夹（例如由表格导入），请在原表格中添加常用说法")
    for path in sorted((root / "items").glob("*.yaml")):
        original = path.read_text(encoding="utf-8")
        try:
            changed = insert_alias(original, item_name, alias)
        except yaml.YAMLError:
            continue
        if changed is None:
            continue
        _check_only_alias_added(original, changed, item_name, alias)
        _write_atomic(path, changed)
        try:
            return path, load_catalog(root)
        except CatalogError as e:
            _write_atomic(path, original)
            raise AliasError(
                f"修改后目录校验未通过，已恢复原文件：{e.problems[0] if e.problems else e}"
            ) from e
    raise AliasError(f"在 {root / 'items'} 中没有找到事项「{item_name[:40]}」")


def _check_only_alias_added(before: str, after: str, item_name: str, alias: str) -> None:
    old, new = yaml.safe_load(before), yaml.safe_load(after)
    expected = []
    for entry in old:
        if isinstance(entry, dict) and entry.get("name") == item_name:
            entry = {**entry, "aliases": [*(entry.get("aliases") or []), alias]}
        expected.append(entry)
    if new != expected:
        raise AliasError("自动修改目录文件失败（文件格式特殊），请手工添加这个常用说法")


def _write_atomic(path: Path, text: str) -> None:
    # Write beside the file and rename over it: a reader (or a crash) never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- everyone else


@denied_router.message(Command(*ADMIN_COMMANDS, *STAFF_COMMANDS))
async def commands_denied(message: Message, session: AsyncSession, role: str, templates: Environment) -> None:
    command = (message.text or "/").split()[0][1:].split("@")[0]
    await refuse_and_audit(session=session, user_id=sender_id(message), role=role, action=f"/{command}")
    await answer_html(message, msg(templates, "denied", role=role))


@denied_router.callback_query(AdminCb.filter())
async def buttons_denied(
    callback: CallbackQuery, callback_data: AdminCb, session: AsyncSession, role: str, templates: Environment
) -> None:
    await refuse_and_audit(
        session=session, user_id=callback.from_user.id, role=role, action=f"admin:{callback_data.act}"
    )
    await callback.answer(msg(templates, "denied", role=role), show_alert=True)
