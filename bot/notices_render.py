"""Notice texts and buttons for case events, rendered when the event is written (outbox).

`make_notice_renderer(templates)` is the `render` callable models.crud.apply_event needs: the API,
the staff handlers and tests all pass the same one, so an applicant reads the same words whoever
moved the case. `notice_keyboard()` is the ONE place that decides the buttons under a notice:
issue 5 (ratings) adds its 评价 buttons to completed/rejected notices there.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from jinja2 import Environment

from bot.render import DbId
from bot.supervision_render import rating_rows
from bot.templates import render
from knowledge.schema import Catalog, Window
from models.crud import NoticeContext, NoticeRenderer, RenderedNotice
from models.lifecycle import CaseStatus


class AckCb(CallbackData, prefix="a1"):
    """我已知晓 under a notice: `e` is the CaseEvent id the notice was written for."""

    e: DbId


ACK_LABEL = "我已知晓"
ACKED_LABEL = "✓ 已知晓"


def pickup_window(catalog: Catalog, item_name: str) -> Window | None:
    """Where the applicant picks up the result (and hands in corrections): the item's or bundle's
    window, else the first window of its department."""
    item = catalog.item(item_name)
    bundle = catalog.bundle(item_name) if item is None else None
    number = item.window if item else bundle.window if bundle else None
    window = catalog.window(number)
    if window is None:
        department = item.department if item else bundle.lead_department if bundle else None
        window = next((w for w in catalog.windows if w.department == department), None)
    return window


def notice_keyboard(ctx: NoticeContext) -> InlineKeyboardMarkup | None:
    """Buttons under a case notice. Extension point for issue 5: when ctx.case.status is completed
    or rejected (ctx.case_status_changed), append the rating buttons here."""
    rows: list[list[InlineKeyboardButton]] = []
    if ctx.kind == CaseStatus.CORRECTION_REQUIRED.value:
        rows.append([InlineKeyboardButton(text=ACK_LABEL, callback_data=AckCb(e=ctx.event_pk).pack())])
    if ctx.case_status_changed and ctx.case.status in (CaseStatus.COMPLETED.value, CaseStatus.REJECTED.value):
        # Issue 5: the applicant rates the decided case (好差评) right under the notice.
        rows += rating_rows(ctx.case.number)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def render_notice(templates: Environment, ctx: NoticeContext) -> RenderedNotice | None:
    case = ctx.case
    kind = ctx.kind
    # A bundle step that moved without changing the whole case is still news for the applicant
    # ("消防已通过，其余部门审查中"), told as the department's progress rather than the case's.
    if kind == CaseStatus.CORRECTION_REQUIRED.value:
        template = "cases/notice_correction"
    elif kind == CaseStatus.COMPLETED.value and case.status == CaseStatus.COMPLETED.value:
        template = "cases/notice_completed"
    elif kind == CaseStatus.REJECTED.value:
        template = "cases/notice_rejected"
    else:
        template = "cases/notice_status"
    text = render(
        templates,
        template,
        ctx=ctx,
        case=case,
        kind_label=CaseStatus(kind).label,
        window=pickup_window(ctx.catalog, case.item_name),
        center=ctx.catalog.center,
    )
    markup = notice_keyboard(ctx)
    return RenderedNotice(text, markup.model_dump(exclude_none=True) if markup else None)


def make_notice_renderer(templates: Environment) -> NoticeRenderer:
    def renderer(ctx: NoticeContext) -> RenderedNotice | None:
        return render_notice(templates, ctx)

    return renderer
