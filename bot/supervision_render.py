"""Buttons and notice texts of supervision (issue 5): ratings, complaints, announcements.

Like bot/notices_render.py for case notices: `make_supervision_renderer(templates, catalog)` is the
`render(kind, context)` callable models.supervision needs, so a notice is rendered when it is
written to the outbox. Typed callback data lives here (not in a handler module) because the case
notice (bot/notices_render.notice_keyboard) carries the rating buttons too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from jinja2 import Environment
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import DbId
from bot.templates import render
from knowledge.schema import Catalog
from models.crud import RenderedNotice
from models.feedback import REASON_LABELS, STAR_LABELS
from models.supervision import SupervisionRender, send_rating_reminders


class RateCb(CallbackData, prefix="f1"):
    c: str  # case number (the chat must be subscribed to the case: checked on press)
    s: int  # stars 1–5
    r: int = 1  # round: 2 after a recorded fix


class ReasonCb(CallbackData, prefix="f2"):
    id: DbId  # rating id
    k: str  # reason code, 'skip' or 'done'


class ComplainCb(CallbackData, prefix="f3"):
    act: str  # dep (picked a department) | send | stop | fu (answer back to a reply)
    d: str = ""  # department id, '-' for 不清楚
    n: str = ""  # ticket number for fu


class NewsCb(CallbackData, prefix="f4"):
    id: DbId  # announcement id: send its attachment


class AdminCb(CallbackData, prefix="f5"):
    # c: complaint view, as/ad: assign (pick department), re: reply, cl: close, ph: photos,
    # list: complaint list, rc: rectification callback, rf: rectification fix,
    # pub/x: publish or drop an announcement draft, qa/qi/qd: unanswered question attach/item/dismiss
    act: str
    n: str = ""  # ticket number
    d: str = ""  # department id
    i: DbId = 0  # question id
    k: int = -1  # item index in the catalog


class Labels:
    SKIP = "跳过"
    DONE = "不用了"
    UNSURE = "不清楚"
    SEND = "提交"
    STOP = "取消"
    FOLLOW_UP = "补充说明"
    ATTACHMENT = "📎 获取附件"


def star_label(stars: int) -> str:
    return f"★{stars} {STAR_LABELS[stars]}"


def _b(text: str, cb: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=cb.pack())


def rating_rows(case_number: str, round: int = 1) -> list[list[InlineKeyboardButton]]:
    """Five levels, best first, as GB/T 39734-2020 lists them; labels say what each means."""
    buttons = [_b(star_label(s), RateCb(c=case_number, s=s, r=round)) for s in (5, 4, 3, 2, 1)]
    return [buttons[:3], buttons[3:]]


def rating_keyboard(case_number: str, round: int = 1) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rating_rows(case_number, round))


def reason_keyboard(rating_id: int) -> InlineKeyboardMarkup:
    buttons = [_b(label, ReasonCb(id=rating_id, k=code)) for code, label in REASON_LABELS.items()]
    rows = [buttons[k : k + 3] for k in range(0, len(buttons), 3)]
    rows.append([_b(Labels.SKIP, ReasonCb(id=rating_id, k="skip"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def remark_keyboard(rating_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_b(Labels.DONE, ReasonCb(id=rating_id, k="done"))]])


def departments_pick(catalog: Catalog) -> InlineKeyboardMarkup:
    buttons = [_b(d.name, ComplainCb(act="dep", d=d.id)) for d in catalog.departments]
    rows = [buttons[k : k + 2] for k in range(0, len(buttons), 2)]
    rows.append([_b(Labels.UNSURE, ComplainCb(act="dep", d="-")), _b(Labels.STOP, ComplainCb(act="stop"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def submit_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_b(Labels.SEND, ComplainCb(act="send")), _b(Labels.STOP, ComplainCb(act="stop"))]]
    )


def _dump(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    return markup.model_dump(exclude_none=True) if markup else None


def department_name(catalog: Catalog, key: str | None) -> str:
    if not key:
        return "未指明部门"
    dep = catalog.department(key)
    return dep.name if dep else key


def make_supervision_renderer(templates: Environment, catalog: Catalog) -> SupervisionRender:
    """Texts (bot/templates/feedback/notice_<kind>.j2) and buttons of every supervision notice."""

    def renderer(kind: str, context: Mapping[str, Any]) -> RenderedNotice | None:
        markup: InlineKeyboardMarkup | None = None
        if kind == "rating_reminder":
            markup = rating_keyboard(context["case"].number)
        elif kind == "rating_again":
            markup = rating_keyboard(context["case"].number, round=2)
        elif kind == "complaint_reply" and context["complaint"].follow_up is None:
            markup = InlineKeyboardMarkup(
                inline_keyboard=[[_b(Labels.FOLLOW_UP, ComplainCb(act="fu", n=context["complaint"].number))]]
            )
        elif kind == "announcement" and context["announcement"].document_file_id:
            markup = InlineKeyboardMarkup(
                inline_keyboard=[[_b(Labels.ATTACHMENT, NewsCb(id=context["announcement"].id))]]
            )
        elif kind in ("complaint_new", "complaint_follow_up", "complaint_assigned"):
            markup = InlineKeyboardMarkup(
                inline_keyboard=[[_b("查看工单", AdminCb(act="c", n=context["complaint"].number))]]
            )
        elif kind == "rectification_new":
            markup = InlineKeyboardMarkup(inline_keyboard=[[_b("查看整改工单", AdminCb(act="tk"))]])
        text = render(
            templates,
            f"feedback/notice_{kind}",
            catalog=catalog,
            center=catalog.center,
            dept=lambda key: department_name(catalog, key),
            star_label=star_label,
            **context,
        )
        return RenderedNotice(text, _dump(markup))

    return renderer


async def queue_rating_reminders(
    *,
    factory: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    templates: Environment,
    now: dt.datetime | None = None,
) -> int:
    """The daily job's part for ratings: one reminder per unrated case closed 3 days ago."""
    async with factory() as session:
        return await send_rating_reminders(
            session=session, render=make_supervision_renderer(templates, catalog), now=now
        )
