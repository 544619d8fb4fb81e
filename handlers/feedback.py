"""Citizens' supervision: rating a decided case (好差评) and /complain (投诉建议).

Rating: the ★ buttons under the 办结/不予许可 notice (or the reminder) → optional reason buttons
(办事效率、服务态度、材料要求不清、多次跑腿、其他) → optional free text. One rating per case; a second
press is refused in words. A 差评 opens a rectification ticket (models.supervision.rate_case).

/complain: pick a department (or 不清楚) → write the complaint → optional photos → 提交: a ticket
number and the promised reply date. The citizen can answer the reply once (补充说明).

This router comes FIRST (before the bad-input guard): a photo sent while a complaint is being
written belongs to the complaint, not to the "I can only read text" reply.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, Filter, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from jinja2 import Environment
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import answer_html, edit_html, send_html
from bot.supervision_render import (
    ComplainCb,
    RateCb,
    ReasonCb,
    department_name,
    departments_pick,
    make_supervision_renderer,
    reason_keyboard,
    remark_keyboard,
    star_label,
    submit_keyboard,
)
from bot.templates import render
from handlers.common import callback_message, is_command, sender_id
from handlers.filters import audit_refusal
from knowledge.schema import Catalog
from models.crud import InputError
from models.feedback import MAX_PHOTOS, MAX_TEXT, REASON_LABELS
from models.supervision import (
    file_complaint,
    follow_up_complaint,
    own_complaint,
    rate_case,
    set_rating_reason,
    set_rating_text,
)

router = Router(name=__name__)

# How long a prompt waits for its free text. Later, text is a question again: a citizen who
# ignored "想说几句吗" and asks something tomorrow must get an answer, not a stored remark.
TEXT_TTL = 15 * 60
_MEANINGFUL = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)


class FeedbackFlow(StatesGroup):
    remark = State()  # data fb={rating, at}
    complaint_text = State()  # data cp={dep, at}
    complaint_photos = State()  # data cp={dep, text, photos, at}
    follow_up = State()  # data fu={n, at}


# Every message handler here is a command or a step of a feedback conversation: any other message
# skips the router at once (every question passes here first, handlers/__init__.py).
router.message.filter(or_f(is_command, StateFilter(FeedbackFlow)))


class Fresh(Filter):
    """Passes while the prompt that set the state is recent; a stale state is dropped so the
    message goes on to the other routers (the question router, most likely)."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def __call__(self, message: Message, state: FSMContext) -> bool:
        data = await state.get_data()
        at = float((data.get(self.key) or {}).get("at", 0))
        if time.time() - at <= TEXT_TTL:
            return True
        await state.set_state(None)
        return False


async def is_text(message: Message) -> bool:
    return message.text is not None and not message.text.startswith("/")


def chat_of(callback: CallbackQuery) -> int:
    return callback.message.chat.id if callback.message is not None else callback.from_user.id


def msg(templates: Environment, key: str, **kw: Any) -> str:
    return render(templates, "feedback/msg", key=key, **kw)


async def audit_denied(session: AsyncSession, user_id: int, role: str, error: InputError) -> None:
    """Audit the refusal when it is someone else's rating or ticket (a forged or forwarded button)."""
    await audit_refusal(session=session, user_id=user_id, role=role, error=error, kind="citizen.denied")


@router.message(StateFilter(FeedbackFlow), is_command)
async def command_leaves_the_flow(message: Message, state: FSMContext) -> None:
    """A command means the citizen moved on: drop the pending prompt, let the command answer."""
    await state.set_state(None)
    raise SkipHandler


# ---------------------------------------------------------------- rating


@router.callback_query(RateCb.filter())
async def rate(
    callback: CallbackQuery,
    callback_data: RateCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    role: str,
    catalog: Catalog,
    templates: Environment,
) -> None:
    chat_id = chat_of(callback)
    try:
        result = await rate_case(
            session=session,
            number=callback_data.c,
            chat_id=chat_id,
            stars=callback_data.s,
            round=callback_data.r,
            render=make_supervision_renderer(templates, catalog),
        )
    except InputError as e:
        await audit_denied(session, callback.from_user.id, role, e)
        await callback.answer()
        await send_html(bot, chat_id, msg(templates, "refused", reason=str(e)))
        return
    await callback.answer("谢谢您的评价")
    notice = callback_message(callback)
    if notice is not None:  # the stars are spent: take them off the notice
        try:
            await notice.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest:
            pass
    rating = result.rating
    assert rating.id is not None
    text = render(
        templates,
        "feedback/thanks",
        rating=rating,
        case=result.case,
        rect=result.rectification,
        stars=star_label(rating.stars),
        department=department_name(catalog, result.case.lead_department),
    )
    await send_html(bot, chat_id, text, reason_keyboard(rating.id))


@router.callback_query(ReasonCb.filter())
async def reason(
    callback: CallbackQuery,
    callback_data: ReasonCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    role: str,
    templates: Environment,
) -> None:
    chat_id = chat_of(callback)
    await callback.answer()
    if callback_data.k == "done":
        await state.set_state(None)
        await edit_html(bot, callback_message(callback), chat_id, msg(templates, "rating_done"))
        return
    chosen = None
    if callback_data.k in REASON_LABELS:
        try:
            await set_rating_reason(
                session=session, rating_id=callback_data.id, chat_id=chat_id, reason=callback_data.k
            )
        except InputError as e:
            await audit_denied(session, callback.from_user.id, role, e)
            await send_html(bot, chat_id, msg(templates, "refused", reason=str(e)))
            return
        chosen = REASON_LABELS[callback_data.k]
    await state.set_state(FeedbackFlow.remark)
    await state.update_data(fb={"rating": callback_data.id, "at": time.time()})
    text = msg(templates, "remark_prompt", chosen=chosen, limit=MAX_TEXT)
    await edit_html(bot, callback_message(callback), chat_id, text, remark_keyboard(callback_data.id))


@router.message(StateFilter(FeedbackFlow.remark), is_text, Fresh("fb"))
async def remark(
    message: Message, state: FSMContext, session: AsyncSession, role: str, templates: Environment
) -> None:
    fb = (await state.get_data()).get("fb") or {}
    try:
        await set_rating_text(
            session=session,
            rating_id=int(fb.get("rating", 0)),
            chat_id=message.chat.id,
            text=message.text or "",
        )
    except InputError as e:
        await audit_denied(session, sender_id(message), role, e)
        await answer_html(message, msg(templates, "bad_text", reason=str(e)))
        return
    await state.set_state(None)
    await answer_html(message, msg(templates, "rating_done"))


# ---------------------------------------------------------------- complaints


@router.message(Command("complain"))
async def complain(message: Message, state: FSMContext, catalog: Catalog, templates: Environment) -> None:
    await state.set_state(None)
    await answer_html(message, msg(templates, "complain_pick"), departments_pick(catalog))


@router.callback_query(ComplainCb.filter(F.act == "dep"))
async def complain_department(
    callback: CallbackQuery,
    callback_data: ComplainCb,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await callback.answer()
    dep = catalog.department(callback_data.d) if callback_data.d != "-" else None
    await state.set_state(FeedbackFlow.complaint_text)
    await state.update_data(cp={"dep": dep.id if dep else None, "at": time.time()})
    text = msg(templates, "complain_write", department=dep.name if dep else None, limit=MAX_TEXT)
    await edit_html(bot, callback_message(callback), chat_of(callback), text)


def _complaint_text_problem(text: str) -> str | None:
    stripped = text.strip()
    if len(stripped) < 5 or not _MEANINGFUL.search(stripped):
        return "内容太短了，请把事情写清楚一些（至少 5 个字）"
    if len(stripped) > MAX_TEXT:
        return f"内容不能超过 {MAX_TEXT} 个字（现在 {len(stripped)} 个），请精简后再发送"
    return None


@router.message(StateFilter(FeedbackFlow.complaint_text), Fresh("cp"))
async def complaint_text(message: Message, state: FSMContext, templates: Environment) -> None:
    # A photo with a caption is the whole complaint at once; a bare photo still needs the words.
    text = message.text if message.text is not None else message.caption
    if text is None:
        await answer_html(message, msg(templates, "complain_need_text"))
        return
    if text.startswith("/"):
        # A command: the citizen moved on. Forget the draft and let the command's handler answer.
        await state.set_state(None)
        raise SkipHandler
    problem = _complaint_text_problem(text)
    if problem is not None:
        await answer_html(message, msg(templates, "bad_text", reason=problem))
        return
    cp = dict((await state.get_data()).get("cp") or {})
    cp.update(text=text.strip(), photos=[message.photo[-1].file_id] if message.photo else [], at=time.time())
    await state.update_data(cp=cp)
    await state.set_state(FeedbackFlow.complaint_photos)
    await answer_html(
        message,
        msg(templates, "complain_photos", count=len(cp["photos"]), limit=MAX_PHOTOS),
        submit_keyboard(),
    )


@router.message(StateFilter(FeedbackFlow.complaint_photos), F.photo, Fresh("cp"))
async def complaint_photo(message: Message, state: FSMContext, templates: Environment) -> None:
    cp = dict((await state.get_data()).get("cp") or {})
    photos = list(cp.get("photos", []))
    if len(photos) >= MAX_PHOTOS:
        await answer_html(
            message, msg(templates, "complain_photos_full", limit=MAX_PHOTOS), submit_keyboard()
        )
        return
    assert message.photo
    photos.append(message.photo[-1].file_id)  # the largest size Telegram made
    cp.update(photos=photos, at=time.time())
    await state.update_data(cp=cp)
    await answer_html(
        message, msg(templates, "complain_photos", count=len(photos), limit=MAX_PHOTOS), submit_keyboard()
    )


@router.message(StateFilter(FeedbackFlow.complaint_photos), is_text, Fresh("cp"))
async def complaint_more_text(message: Message, templates: Environment) -> None:
    await answer_html(message, msg(templates, "complain_press_send"), submit_keyboard())


@router.callback_query(ComplainCb.filter(F.act.in_({"send", "stop"})))
async def complaint_submit(
    callback: CallbackQuery,
    callback_data: ComplainCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    catalog: Catalog,
    templates: Environment,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    cp = (await state.get_data()).get("cp") or {}
    current = await state.get_state()
    if callback_data.act == "stop":
        await state.set_state(None)
        await state.update_data(cp=None)
        await edit_html(bot, callback_message(callback), chat_id, msg(templates, "complain_cancelled"))
        return
    if current != FeedbackFlow.complaint_photos.state or not cp.get("text"):
        await send_html(bot, chat_id, msg(templates, "complain_expired"))
        return
    try:
        complaint = await file_complaint(
            session=session,
            chat_id=chat_id,
            department=cp.get("dep"),
            text=str(cp["text"]),
            photos=list(cp.get("photos", [])),
            render=make_supervision_renderer(templates, catalog),
        )
    except InputError as e:
        await send_html(bot, chat_id, msg(templates, "refused", reason=str(e)))
        return
    await state.set_state(None)
    await state.update_data(cp=None)
    text = render(
        templates,
        "feedback/complaint_filed",
        complaint=complaint,
        department=department_name(catalog, complaint.department) if complaint.department else None,
        center=catalog.center,
    )
    await edit_html(bot, callback_message(callback), chat_id, text)


@router.callback_query(ComplainCb.filter(F.act == "fu"))
async def follow_up_start(
    callback: CallbackQuery,
    callback_data: ComplainCb,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    role: str,
    templates: Environment,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    try:
        complaint = await own_complaint(session=session, number=callback_data.n, chat_id=chat_id)
    except InputError as e:
        await audit_denied(session, callback.from_user.id, role, e)
        await send_html(bot, chat_id, msg(templates, "refused", reason=str(e)))
        return
    if complaint.follow_up is not None or complaint.status != "answered":
        reason = "每张工单只能补充说明一次" if complaint.follow_up is not None else "该工单已办结"
        await send_html(bot, chat_id, msg(templates, "refused", reason=reason))
        return
    await state.set_state(FeedbackFlow.follow_up)
    await state.update_data(fu={"n": complaint.number, "at": time.time()})
    await send_html(bot, chat_id, msg(templates, "follow_up_prompt", number=complaint.number, limit=MAX_TEXT))


@router.message(StateFilter(FeedbackFlow.follow_up), is_text, Fresh("fu"))
async def follow_up(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    role: str,
    catalog: Catalog,
    templates: Environment,
) -> None:
    fu = (await state.get_data()).get("fu") or {}
    try:
        complaint = await follow_up_complaint(
            session=session,
            number=str(fu.get("n", "")),
            chat_id=message.chat.id,
            text=message.text or "",
            render=make_supervision_renderer(templates, catalog),
        )
    except InputError as e:
        if "太短" in str(e) or "不能超过" in str(e):
            await answer_html(message, msg(templates, "bad_text", reason=str(e)))
            return
        await audit_denied(session, sender_id(message), role, e)
        await state.set_state(None)
        await answer_html(message, msg(templates, "refused", reason=str(e)))
        return
    await state.set_state(None)
    await answer_html(message, msg(templates, "follow_up_done", number=complaint.number))
