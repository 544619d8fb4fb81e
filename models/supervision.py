"""Supervision: ratings and rectification, complaints, announcements, catalog gaps, and the rows the
window evaluation report is computed from. Small keyword-only async functions, like models/crud.py.

Every function that changes data commits its own transaction, with its AuditLog row and the
notices it causes (transactional outbox: models/notices.enqueue_notice, never a direct send).
A refusal is audited and committed, then raised as InputError whose str() is a short Chinese
sentence to show as is. A refusal for lack of permission (another department's ticket, another
person's complaint or rating) is raised as Forbidden instead and audited by the handler that catches
it, which knows who pressed and with what role (handlers/filters.audit_refusal): one "denied" row
like every other refused staff action, never a second row from here.

Notice texts are rendered by the caller's `render(kind, context)` (the bot's templates), so this
module knows nothing about Telegram. Kinds: rectification_new, rating_again, rating_reminder,
complaint_new, complaint_assigned, complaint_reply, complaint_follow_up, complaint_closed,
announcement.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.audit import audit, commit_audited
from models.cases import Case, CaseEvent, CaseStep, utc_now
from models.crud import InputError, RenderedNotice, get_case
from models.feedback import (
    BAD_STARS,
    CALLBACK_WORKDAYS,
    COMPLAINT_REPLY_WORKDAYS,
    FIX_WORKDAYS,
    MAX_PHOTOS,
    MAX_ROUNDS,
    MAX_TEXT,
    REASON_LABELS,
    Announcement,
    Complaint,
    ComplaintStatus,
    NewsSubscription,
    QuestionReview,
    Rating,
    Rectification,
    RectificationStatus,
    new_ticket_number,
)
from models.lifecycle import CaseStatus
from models.notices import Notice, NoticeKind, NoticeStatus, Subscription, enqueue_notice
from models.privacy import mask_text
from models.questions import UnansweredQuestion
from models.staff import Staff, StaffRole
from models.workdays import CHINA_TZ, WorkCalendar, default_calendar, local_date

log = logging.getLogger(__name__)

# (kind, context) -> the notice to write, or None to write none.
SupervisionRender = Callable[[str, Mapping[str, Any]], RenderedNotice | None]

RATEABLE = frozenset({CaseStatus.COMPLETED.value, CaseStatus.PICKED_UP.value, CaseStatus.REJECTED.value})
REMIND_AFTER = dt.timedelta(days=3)
# Cases closed longer ago than this get no reminder: a first start after a long outage must not
# send a burst of stale requests.
REMIND_HORIZON = dt.timedelta(days=14)
MAX_ANNOUNCEMENT = 3000


class NoticeKinds:
    RATING_REMINDER = "rating_reminder"
    RATING_AGAIN = "rating_again"
    RECTIFICATION = "rectification"
    COMPLAINT = "complaint"
    ANNOUNCEMENT = NoticeKind.ANNOUNCEMENT.value


TicketT = TypeVar("TicketT", Complaint, Rectification)

NO_COMPLAINT = "没有这张投诉工单"
NO_RECTIFICATION = "没有这张整改工单"
NOT_RATER = "只有关注了该办件的申请人可以评价（请先查询办件并关注）"


class Forbidden(InputError):
    """Refused for lack of permission, not for a mistake in the input. str() is the sentence a missing
    ticket gets, so the refusal reveals nothing; `action` and `target` are for the audit row."""

    def __init__(self, reason: str, *, action: str, target: str) -> None:
        super().__init__(reason)
        self.action, self.target = action, target[:40]


def _clean_text(text: str | None, *, min_len: int = 1, what: str = "内容") -> str:
    cleaned = mask_text((text or "").strip())
    if len(cleaned) < min_len:
        raise InputError(f"{what}太短了，请至少写 {min_len} 个字" if min_len > 1 else f"{what}不能为空")
    if len(cleaned) > MAX_TEXT:
        raise InputError(f"{what}不能超过 {MAX_TEXT} 个字（现在 {len(cleaned)} 个）")
    return cleaned


async def _refuse(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str,
    now: dt.datetime,
    rollback: bool = False,
) -> NoReturn:
    """Audit a refused attempt, commit that, and raise the reason for the user.

    Refusals come before any change, so nothing but the audit row is committed; `rollback` is for
    a failed flush (it expires the session's objects, so callers' objects reload on next use).
    """
    if rollback:
        await session.rollback()
    await commit_audited(
        session=session,
        actor=actor,
        action=action,
        outcome="refused",
        target=target,
        now=now,
        details={"reason": reason},
    )
    raise InputError(reason)


async def _notify(
    session: AsyncSession,
    render: SupervisionRender | None,
    kind: str,
    context: Mapping[str, Any],
    chat_ids: Iterable[int],
    *,
    notice_kind: str,
    case_id: int | None = None,
    now: dt.datetime,
) -> int:
    """One outbox row per chat (same transaction as the change); returns how many."""
    chats = list(dict.fromkeys(chat_ids))
    if render is None or not chats:
        return 0
    rendered = render(kind, context)
    if rendered is None:
        return 0
    if len(chats) == 1:
        enqueue_notice(
            session=session,
            chat_id=chats[0],
            kind=notice_kind,
            text=rendered.text,
            reply_markup=rendered.reply_markup,
            case_id=case_id,
            now=now,
        )
        return 1
    # An announcement goes to every subscriber: one multi-row INSERT of the same outbox rows
    # enqueue_notice writes (10,000 ORM objects held the event loop for seconds).
    row = {
        "kind": notice_kind,
        "case_id": case_id,
        "text": rendered.text,
        "reply_markup": rendered.reply_markup,
        "status": NoticeStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    table = Notice.__table__  # type: ignore[attr-defined]
    for k in range(0, len(chats), 1000):
        await session.exec(insert(table), params=[{**row, "chat_id": c} for c in chats[k : k + 1000]])  # type: ignore[call-overload]
    return len(chats)


async def _tell_complaint(
    session: AsyncSession,
    render: SupervisionRender | None,
    kind: str,
    complaint: Complaint,
    chat_ids: Iterable[int],
    now: dt.datetime,
) -> int:
    """A complaint notice (new, assigned, reply, follow-up, closed) to each of `chat_ids`."""
    return await _notify(
        session, render, kind, {"complaint": complaint}, chat_ids, notice_kind=NoticeKinds.COMPLAINT, now=now
    )


async def staff_chats(*, session: AsyncSession, department: str | None) -> list[int]:
    """Private chats of active staff: of a department (window and department roles), or admins."""
    query = select(Staff.user_id).where(col(Staff.active).is_(True))
    if department is None:
        query = query.where(col(Staff.role) == StaffRole.ADMIN.value)
    else:
        query = query.where(col(Staff.department) == department, col(Staff.role) != StaffRole.ADMIN.value)
    return list((await session.exec(query)).all())


def _scope_check(department: str | None, scope: str | None) -> bool:
    """Admins (scope None) act on every ticket; other staff only on their department's."""
    return scope is None or scope == department


# --- ratings and rectification ------------------------------------------------------------------------


@dataclass(frozen=True)
class RateResult:
    rating: Rating
    case: Case
    rectification: Rectification | None


async def rate_case(
    *,
    session: AsyncSession,
    number: str,
    chat_id: int,
    stars: int,
    round: int = 1,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> RateResult:
    """Record a rating given from `chat_id` (a chat subscribed to the case, i.e. verified).

    One rating per round; round 2 only after the 差评's fix is recorded. A 差评 (★1–2) opens a
    rectification ticket for the case's lead department and tells that department's staff.
    """
    now = now or utc_now()
    cal = calendar or default_calendar()
    actor = f"tg:{chat_id}"
    case = await get_case(session=session, number=number)
    target = case.number if case else (number or "")[:40]

    async def refuse(reason: str, rollback: bool = False) -> NoReturn:
        await _refuse(
            session,
            actor=actor,
            action="rating.create",
            target=target,
            reason=reason,
            now=now,
            rollback=rollback,
        )

    if not 1 <= stars <= 5:
        raise InputError("评价请选择 1 到 5 颗星")
    subscription = select(Subscription.id).where(
        col(Subscription.case_id) == (case.id if case else None), col(Subscription.chat_id) == chat_id
    )
    if case is None or case.id is None or (await session.exec(subscription)).first() is None:
        # The same words for a number that does not exist: a forged button learns nothing.
        raise Forbidden(NOT_RATER, action="rating.create", target=target)
    if case.status not in RATEABLE:
        await refuse("办件办结后才能评价")
    if not 1 <= round <= MAX_ROUNDS:
        await refuse("每件最多评价两次：首次评价，以及整改后的再次评价")
    earlier = list(
        await session.exec(select(Rating).where(col(Rating.case_id) == case.id).order_by(col(Rating.round)))
    )
    if any(r.round == round for r in earlier):
        await refuse("该件已评价过，不能重复评价" if round == 1 else "整改后已再次评价过，不能重复评价")
    if round == 2:
        first = next((r for r in earlier if r.round == 1), None)
        rect = None
        if first is not None:
            rect = (
                await session.exec(select(Rectification).where(col(Rectification.rating_id) == first.id))
            ).first()
        if rect is None or rect.status != RectificationStatus.FIXED.value:
            await refuse("整改完成后才能再次评价")

    rating = Rating(
        case_id=case.id,
        round=round,
        stars=stars,
        chat_id=chat_id,
        department=case.lead_department,
        created_at=now,
        updated_at=now,
    )
    session.add(rating)
    try:
        await session.flush()
    except IntegrityError:  # the same button pressed twice at once
        await refuse("该件已评价过，不能重复评价", rollback=True)
    assert rating.id is not None
    rect_new: Rectification | None = None
    if stars <= BAD_STARS:
        today = local_date(now)
        rect_new = Rectification(
            number=new_ticket_number("ZG", today),
            rating_id=rating.id,
            case_id=case.id,
            department=case.lead_department,
            callback_due=cal.add_workdays(today, CALLBACK_WORKDAYS).due,
            fix_due=cal.add_workdays(today, FIX_WORKDAYS).due,
            created_at=now,
            updated_at=now,
        )
        session.add(rect_new)
        chats = await staff_chats(session=session, department=case.lead_department)
        await _notify(
            session,
            render,
            "rectification_new",
            {"rectification": rect_new, "case": case, "rating": rating},
            chats,
            notice_kind=NoticeKinds.RECTIFICATION,
            now=now,
        )
    await commit_audited(
        session=session,
        actor=actor,
        action="rating.create",
        target=case.number,
        now=now,
        details={"stars": stars, "round": round, "rectification": rect_new.number if rect_new else None},
    )
    return RateResult(rating, case, rect_new)


async def _own_rating(session: AsyncSession, rating_id: int, chat_id: int) -> Rating:
    rating = await session.get(Rating, rating_id)
    if rating is None:
        raise InputError("没有找到这条评价")
    if rating.chat_id != chat_id:
        raise Forbidden("没有找到这条评价", action="rating.edit", target=str(rating_id))
    return rating


async def set_rating_reason(
    *, session: AsyncSession, rating_id: int, chat_id: int, reason: str, now: dt.datetime | None = None
) -> Rating:
    now = now or utc_now()
    if reason not in REASON_LABELS:
        raise InputError("请从按钮中选择原因")
    rating = await _own_rating(session, rating_id, chat_id)
    rating.reason, rating.updated_at = reason, now
    session.add(rating)
    await commit_audited(
        session=session,
        actor=f"tg:{chat_id}",
        action="rating.reason",
        target=str(rating.id),
        now=now,
        details={"reason": reason},
    )
    return rating


async def set_rating_text(
    *, session: AsyncSession, rating_id: int, chat_id: int, text: str, now: dt.datetime | None = None
) -> Rating:
    now = now or utc_now()
    cleaned = _clean_text(text, what="评价内容")
    rating = await _own_rating(session, rating_id, chat_id)
    rating.text, rating.updated_at = cleaned, now
    session.add(rating)
    await commit_audited(
        session=session,
        actor=f"tg:{chat_id}",
        action="rating.text",
        target=str(rating.id),
        now=now,
        details={"length": len(cleaned)},
    )
    return rating


@dataclass(frozen=True)
class RectificationLine:
    rectification: Rectification
    case_number: str
    item_name: str
    stars: int
    reason: str | None
    remark: str | None


async def list_rectifications(
    *, session: AsyncSession, department: str | None, include_fixed: bool = False, limit: int = 30
) -> list[RectificationLine]:
    """A department's tickets (None: every department), soonest fix deadline first."""
    query = (
        select(Rectification, Case, Rating)
        .join(Case, col(Case.id) == col(Rectification.case_id))
        .join(Rating, col(Rating.id) == col(Rectification.rating_id))
    )
    if department is not None:
        query = query.where(col(Rectification.department) == department)
    if not include_fixed:
        query = query.where(col(Rectification.status) != RectificationStatus.FIXED.value)
    query = query.order_by(col(Rectification.fix_due), col(Rectification.id)).limit(limit)
    return [
        RectificationLine(rect, case.number, case.item_name, rating.stars, rating.reason, rating.text)
        for rect, case, rating in (await session.exec(query)).all()
    ]


async def get_rectification(*, session: AsyncSession, number: str) -> Rectification | None:
    key = (number or "").strip().upper()
    return (await session.exec(select(Rectification).where(col(Rectification.number) == key))).first()


async def _found(
    session: AsyncSession,
    lookup: Awaitable[TicketT],
    *,
    actor: str,
    action: str,
    number: str,
    now: dt.datetime,
) -> TicketT:
    """The ticket `lookup` finds. A missing one is a refusal audited here; a Forbidden goes on to the
    caller, who audits it with who pressed."""
    try:
        return await lookup
    except Forbidden:
        raise
    except InputError as e:
        await _refuse(session, actor=actor, action=action, target=number[:40], reason=str(e), now=now)


async def visible_rectification(
    *, session: AsyncSession, number: str, scope: str | None, action: str
) -> Rectification:
    """The ticket `scope` (a department; None: admins, every one) may act on. InputError when there
    is none; Forbidden, with the same words, when it is another department's."""
    rect = await get_rectification(session=session, number=number)
    if rect is None:
        raise InputError(NO_RECTIFICATION)
    if not _scope_check(rect.department, scope):
        raise Forbidden(NO_RECTIFICATION, action=action, target=rect.number)
    return rect


async def _open_rectification(
    session: AsyncSession, number: str, actor: str, action: str, scope: str | None, now: dt.datetime
) -> Rectification:
    lookup = visible_rectification(session=session, number=number, scope=scope, action=action)
    return await _found(session, lookup, actor=actor, action=action, number=number, now=now)


async def record_callback(
    *,
    session: AsyncSession,
    number: str,
    actor: str,
    scope: str | None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Rectification:
    """The department called the applicant back (回访). `scope`: the staff member's department, None
    for admins."""
    now = now or utc_now()
    rect = await _open_rectification(session, number, actor, "rectification.callback", scope, now)
    if rect.status != RectificationStatus.OPEN.value:
        await _refuse(
            session,
            actor=actor,
            action="rectification.callback",
            target=rect.number,
            reason="该工单已登记过回访",
            now=now,
        )
    rect.status = RectificationStatus.CALLED_BACK.value
    rect.called_back_at, rect.updated_at = now, now
    rect.callback_note = _clean_text(note, what="回访情况") if note and note.strip() else None
    rect.handled_by = actor[:100]
    session.add(rect)
    await commit_audited(
        session=session,
        actor=actor,
        action="rectification.callback",
        target=rect.number,
        now=now,
        details={"on_time": local_date(now) <= rect.callback_due},
    )
    return rect


async def record_fix(
    *,
    session: AsyncSession,
    number: str,
    actor: str,
    scope: str | None,
    note: str,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
) -> Rectification:
    """Record what was fixed; the applicant is told and may rate the case once more."""
    now = now or utc_now()
    rect = await _open_rectification(session, number, actor, "rectification.fix", scope, now)
    if rect.status == RectificationStatus.FIXED.value:
        await _refuse(
            session,
            actor=actor,
            action="rectification.fix",
            target=rect.number,
            reason="该工单已整改完毕",
            now=now,
        )
    cleaned = _clean_text(note, min_len=5, what="整改情况")
    rect.status = RectificationStatus.FIXED.value
    rect.fix_note, rect.fixed_at, rect.updated_at = cleaned, now, now
    rect.handled_by = actor[:100]
    session.add(rect)
    rating = await session.get(Rating, rect.rating_id)
    case = await session.get(Case, rect.case_id)
    sent = 0
    if rating is not None and case is not None and rating.round < MAX_ROUNDS:
        sent = await _notify(
            session,
            render,
            "rating_again",
            {"rectification": rect, "case": case},
            [rating.chat_id],
            notice_kind=NoticeKinds.RATING_AGAIN,
            case_id=case.id,
            now=now,
        )
    await commit_audited(
        session=session,
        actor=actor,
        action="rectification.fix",
        target=rect.number,
        now=now,
        details={"on_time": local_date(now) <= rect.fix_due, "notices": sent},
    )
    return rect


async def send_rating_reminders(
    *,
    session: AsyncSession,
    render: SupervisionRender,
    now: dt.datetime | None = None,
    after: dt.timedelta = REMIND_AFTER,
    horizon: dt.timedelta = REMIND_HORIZON,
) -> int:
    """One reminder per (case, chat) for cases closed `after` ago and still unrated.

    Meant for the runtime's daily job; safe to run more often (a chat is never reminded twice:
    the outbox row of the first reminder is the record).
    """
    now = now or utc_now()
    rated = select(Rating.case_id)
    reminded = select(Notice.case_id, Notice.chat_id).where(col(Notice.kind) == NoticeKinds.RATING_REMINDER)
    done = {(c, ch) for c, ch in (await session.exec(reminded)).all()}
    rows = await session.exec(
        select(Case, Subscription.chat_id)
        .join(Subscription, col(Subscription.case_id) == col(Case.id))
        .where(
            col(Case.status).in_(RATEABLE),
            col(Case.closed_at) <= now - after,
            col(Case.closed_at) >= now - horizon,
            col(Case.id).not_in(rated),
        )
        .order_by(col(Case.id))
    )
    queued = 0
    for case, chat_id in rows.all():
        if (case.id, chat_id) in done:
            continue
        queued += await _notify(
            session,
            render,
            "rating_reminder",
            {"case": case},
            [chat_id],
            notice_kind=NoticeKinds.RATING_REMINDER,
            case_id=case.id,
            now=now,
        )
    if queued:
        audit(
            session=session,
            actor="system",
            action="rating.remind",
            outcome="ok",
            now=now,
            details={"notices": queued},
        )
    await session.commit()
    return queued


# --- complaints ----------------------------------------------------------------------------------------


async def get_complaint(*, session: AsyncSession, number: str) -> Complaint | None:
    key = (number or "").strip().upper()
    return (await session.exec(select(Complaint).where(col(Complaint.number) == key))).first()


async def file_complaint(
    *,
    session: AsyncSession,
    chat_id: int,
    department: str | None,
    text: str,
    photos: Sequence[str] = (),
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> Complaint:
    """A citizen's 投诉建议; admins are told. `department` is a department id or None (不清楚)."""
    now = now or utc_now()
    cal = calendar or default_calendar()
    cleaned = _clean_text(text, min_len=5, what="投诉建议内容")
    if len(photos) > MAX_PHOTOS:
        raise InputError(f"最多附 {MAX_PHOTOS} 张照片")
    today = local_date(now)
    complaint = Complaint(
        number=new_ticket_number("TS", today),
        chat_id=chat_id,
        department=department,
        text=cleaned,
        photos=list(photos),
        promised_reply_date=cal.add_workdays(today, COMPLAINT_REPLY_WORKDAYS).due,
        created_at=now,
        updated_at=now,
    )
    session.add(complaint)
    await _tell_complaint(
        session, render, "complaint_new", complaint, await staff_chats(session=session, department=None), now
    )
    await commit_audited(
        session=session,
        actor=f"tg:{chat_id}",
        action="complaint.create",
        target=complaint.number,
        now=now,
        details={"department": department, "photos": len(photos)},
    )
    return complaint


async def list_complaints(
    *, session: AsyncSession, department: str | None = None, open_only: bool = True, limit: int = 20
) -> list[Complaint]:
    """Tickets (of one assigned department, or all), oldest promise first."""
    query = select(Complaint)
    if department is not None:
        query = query.where(col(Complaint.assigned_department) == department)
    if open_only:
        query = query.where(col(Complaint.status) != ComplaintStatus.CLOSED.value)
    query = query.order_by(col(Complaint.promised_reply_date), col(Complaint.id)).limit(limit)
    return list((await session.exec(query)).all())


async def visible_complaint(
    *, session: AsyncSession, number: str, scope: str | None, action: str
) -> Complaint:
    """The ticket `scope` (a department; None: admins, every one) may see and act on: department
    staff only those passed to them. InputError when there is none; Forbidden, with the same words,
    when it is another department's (or not passed to anyone yet)."""
    complaint = await get_complaint(session=session, number=number)
    if complaint is None:
        raise InputError(NO_COMPLAINT)
    if not _scope_check(complaint.assigned_department, scope):
        raise Forbidden(NO_COMPLAINT, action=action, target=complaint.number)
    return complaint


async def own_complaint(*, session: AsyncSession, number: str, chat_id: int) -> Complaint:
    """The ticket filed from `chat_id`. InputError when there is none; Forbidden, with the same
    words, when it is someone else's."""
    complaint = await get_complaint(session=session, number=number)
    if complaint is None:
        raise InputError(NO_COMPLAINT)
    if complaint.chat_id != chat_id:
        raise Forbidden(NO_COMPLAINT, action="complaint.follow_up", target=complaint.number)
    return complaint


async def _open_complaint(
    session: AsyncSession, number: str, actor: str, action: str, scope: str | None, now: dt.datetime
) -> Complaint:
    """The open ticket `scope` may act on; a missing or closed one is a refusal audited here."""
    lookup = visible_complaint(session=session, number=number, scope=scope, action=action)
    complaint = await _found(session, lookup, actor=actor, action=action, number=number, now=now)
    if complaint.status == ComplaintStatus.CLOSED.value:
        await _refuse(
            session, actor=actor, action=action, target=complaint.number, reason="该工单已办结", now=now
        )
    return complaint


async def assign_complaint(
    *,
    session: AsyncSession,
    number: str,
    department: str,
    actor: str,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
) -> Complaint:
    """Pass a ticket to a department (admins only; the handler's router is gated)."""
    now = now or utc_now()
    complaint = await _open_complaint(session, number, actor, "complaint.assign", None, now)
    complaint.assigned_department = department
    if complaint.status == ComplaintStatus.OPEN.value:
        complaint.status = ComplaintStatus.ASSIGNED.value
    complaint.updated_at = now
    session.add(complaint)
    await _tell_complaint(
        session,
        render,
        "complaint_assigned",
        complaint,
        await staff_chats(session=session, department=department),
        now,
    )
    await commit_audited(
        session=session,
        actor=actor,
        action="complaint.assign",
        target=complaint.number,
        now=now,
        details={"department": department},
    )
    return complaint


async def reply_complaint(
    *,
    session: AsyncSession,
    number: str,
    text: str,
    actor: str,
    scope: str | None = None,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
) -> Complaint:
    """Answer the citizen (it reaches them as a notice). The first reply's time is what counts
    for 'answered on time'; a later reply (after a follow-up) replaces the text."""
    now = now or utc_now()
    complaint = await _open_complaint(session, number, actor, "complaint.reply", scope, now)
    complaint.reply = _clean_text(text, min_len=5, what="答复内容")
    complaint.replied_at = complaint.replied_at or now
    complaint.replied_by = actor[:100]
    complaint.status = ComplaintStatus.ANSWERED.value
    complaint.updated_at = now
    session.add(complaint)
    sent = await _tell_complaint(session, render, "complaint_reply", complaint, [complaint.chat_id], now)
    await commit_audited(
        session=session,
        actor=actor,
        action="complaint.reply",
        target=complaint.number,
        now=now,
        details={"on_time": local_date(now) <= complaint.promised_reply_date, "notices": sent},
    )
    return complaint


async def follow_up_complaint(
    *,
    session: AsyncSession,
    number: str,
    chat_id: int,
    text: str,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
) -> Complaint:
    """The citizen answers the reply, once."""
    now = now or utc_now()
    actor = f"tg:{chat_id}"
    lookup = own_complaint(session=session, number=number, chat_id=chat_id)
    complaint = await _found(
        session, lookup, actor=actor, action="complaint.follow_up", number=number, now=now
    )
    if complaint.status != ComplaintStatus.ANSWERED.value or complaint.follow_up is not None:
        reason = (
            "每张工单只能补充说明一次"
            if complaint.follow_up is not None
            else "工单已办结"
            if complaint.status == ComplaintStatus.CLOSED.value
            else "收到答复后才能补充说明"
        )
        await _refuse(
            session,
            actor=actor,
            action="complaint.follow_up",
            target=complaint.number,
            reason=reason,
            now=now,
        )
    complaint.follow_up = _clean_text(text, min_len=2, what="补充说明")
    complaint.follow_up_at, complaint.updated_at = now, now
    session.add(complaint)
    chats = await staff_chats(session=session, department=None)
    if complaint.assigned_department:
        chats += await staff_chats(session=session, department=complaint.assigned_department)
    await _tell_complaint(session, render, "complaint_follow_up", complaint, chats, now)
    await commit_audited(
        session=session, actor=actor, action="complaint.follow_up", target=complaint.number, now=now
    )
    return complaint


async def close_complaint(
    *,
    session: AsyncSession,
    number: str,
    outcome: str,
    actor: str,
    render: SupervisionRender | None = None,
    now: dt.datetime | None = None,
) -> Complaint:
    """Close with the recorded outcome (admins); the citizen is told."""
    now = now or utc_now()
    complaint = await _open_complaint(session, number, actor, "complaint.close", None, now)
    complaint.outcome = _clean_text(outcome, min_len=2, what="办理结果")
    complaint.status = ComplaintStatus.CLOSED.value
    complaint.closed_at, complaint.closed_by, complaint.updated_at = now, actor[:100], now
    session.add(complaint)
    await _tell_complaint(session, render, "complaint_closed", complaint, [complaint.chat_id], now)
    await commit_audited(
        session=session, actor=actor, action="complaint.close", target=complaint.number, now=now
    )
    return complaint


# --- announcements and news subscriptions --------------------------------------------------------------


async def subscribe_news(*, session: AsyncSession, chat_id: int, now: dt.datetime | None = None) -> bool:
    """Opt in to announcements; False when already subscribed."""
    exists = (
        await session.exec(select(NewsSubscription).where(col(NewsSubscription.chat_id) == chat_id))
    ).first()
    if exists is not None:
        return False
    session.add(NewsSubscription(chat_id=chat_id, created_at=now or utc_now()))
    try:
        await session.commit()
    except IntegrityError:  # the same chat twice at once
        await session.rollback()
        return False
    return True


async def unsubscribe_news(*, session: AsyncSession, chat_id: int) -> bool:
    result = await session.exec(delete(NewsSubscription).where(col(NewsSubscription.chat_id) == chat_id))
    await session.commit()
    return bool(result.rowcount)


async def publish_announcement(
    *,
    session: AsyncSession,
    text: str,
    user_id: int,
    render: SupervisionRender,
    document_file_id: str | None = None,
    document_name: str | None = None,
    now: dt.datetime | None = None,
) -> Announcement:
    """Store the announcement and queue one notice per subscribed chat, in one transaction; the
    delivery worker paces them (never a loop of direct sends)."""
    now = now or utc_now()
    body = (text or "").strip()
    if not body:
        raise InputError("公告内容不能为空")
    if len(body) > MAX_ANNOUNCEMENT:
        raise InputError(f"公告不能超过 {MAX_ANNOUNCEMENT} 个字（现在 {len(body)} 个）")
    ann = Announcement(
        text=body,
        document_file_id=document_file_id,
        document_name=(document_name or None) and document_name[:255],
        created_by=user_id,
        created_at=now,
    )
    session.add(ann)
    await session.flush()  # the id, for the attachment button
    chats = (await session.exec(select(NewsSubscription.chat_id).order_by(col(NewsSubscription.id)))).all()
    ann.recipients = await _notify(
        session,
        render,
        "announcement",
        {"announcement": ann},
        chats,
        notice_kind=NoticeKinds.ANNOUNCEMENT,
        now=now,
    )
    session.add(ann)
    await commit_audited(
        session=session,
        actor=f"staff:{user_id}",
        action="announcement.publish",
        target=str(ann.id),
        now=now,
        details={"recipients": ann.recipients, "document": bool(document_file_id)},
    )
    return ann


async def latest_announcements(*, session: AsyncSession, limit: int = 5) -> list[Announcement]:
    rows = await session.exec(
        select(Announcement)
        .order_by(col(Announcement.created_at).desc(), col(Announcement.id).desc())
        .limit(limit)
    )
    return list(rows.all())


# --- catalog gaps: unanswered questions ----------------------------------------------------------------


async def open_questions(*, session: AsyncSession, limit: int = 10) -> list[UnansweredQuestion]:
    """Most asked unanswered questions that no admin has dismissed."""
    dismissed = select(QuestionReview.normalised).where(col(QuestionReview.action) == "dismissed")
    rows = await session.exec(
        select(UnansweredQuestion)
        .where(col(UnansweredQuestion.normalised).not_in(dismissed))
        .order_by(col(UnansweredQuestion.count).desc(), col(UnansweredQuestion.last_seen).desc())
        .limit(limit)
    )
    return list(rows.all())


async def _review(
    session: AsyncSession,
    question: UnansweredQuestion,
    action: str,
    item: str | None,
    actor: str,
    now: dt.datetime,
) -> None:
    review = (
        await session.exec(
            select(QuestionReview).where(col(QuestionReview.normalised) == question.normalised)
        )
    ).first() or QuestionReview(
        normalised=question.normalised, text=question.text, action=action, by=actor, at=now
    )
    review.action, review.item, review.by, review.at = action, item, actor[:100], now
    session.add(review)


async def dismiss_question(
    *, session: AsyncSession, question_id: int, actor: str, now: dt.datetime | None = None
) -> UnansweredQuestion:
    now = now or utc_now()
    question = await session.get(UnansweredQuestion, question_id)
    if question is None:
        raise InputError("这个问题已处理过了")
    await _review(session, question, "dismissed", None, actor, now)
    await commit_audited(
        session=session,
        actor=actor,
        action="question.dismiss",
        target=str(question_id),
        now=now,
        details={"question": question.text[:100]},
    )
    return question


async def mark_question_attached(
    *,
    session: AsyncSession,
    question_id: int,
    item: str,
    alias: str,
    actor: str,
    now: dt.datetime | None = None,
) -> None:
    """After the alias is in the catalog file: record the decision, drop the question, audit."""
    now = now or utc_now()
    question = await session.get(UnansweredQuestion, question_id)
    if question is not None:
        await _review(session, question, "attached", item, actor, now)
        await session.delete(question)
    await commit_audited(
        session=session,
        actor=actor,
        action="catalog.alias",
        target=item[:100],
        now=now,
        details={"alias": alias, "question_id": question_id},
    )


# --- rows for the window evaluation report (bot/report.py computes the figures) -----------------------


Pause = tuple[dt.date, dt.date | None]  # correction requested, review resumed (None: still paused)


@dataclass(frozen=True)
class WorkUnit:
    """One case (center-wide figures) or one department's step of a case (department figures)."""

    case_number: str
    department: str  # department id (the lead department for a whole case)
    items: tuple[str, ...]
    accepted: dt.date
    finished: dt.date | None  # local date the result was decided (办结 or 不予许可)
    outcome: str  # CaseStatus value of the case / step
    promised_days: int
    pauses: tuple[Pause, ...] = ()
    days_unit: str = "working"  # how promised_days counts (knowledge.schema.DaysUnit)

    @property
    def corrected(self) -> bool:
        return bool(self.pauses)


@dataclass(frozen=True)
class RatingRow:
    case_number: str
    departments: tuple[str, ...]  # every department that worked on the case
    items: tuple[str, ...]  # every item of the case (its windows)
    stars: int
    round: int
    at: dt.date


@dataclass(frozen=True)
class RectificationRow:
    number: str
    department: str
    opened: dt.date
    callback_due: dt.date
    fix_due: dt.date
    called_back: dt.date | None
    fixed: dt.date | None


@dataclass(frozen=True)
class ComplaintRow:
    number: str
    department: str | None  # assigned department, else the one the citizen picked
    received: dt.date
    promised_reply: dt.date
    replied: dt.date | None


@dataclass(frozen=True)
class QuestionRow:
    text: str
    count: int
    last_seen: dt.date


@dataclass(frozen=True)
class ReportRows:
    cases: list[WorkUnit]
    steps: list[WorkUnit]
    ratings: list[RatingRow]
    rectifications: list[RectificationRow]
    complaints: list[ComplaintRow]
    questions: list[QuestionRow]


FINISHED = (CaseStatus.COMPLETED.value, CaseStatus.REJECTED.value, CaseStatus.PICKED_UP.value)


def pauses_from_events(events: Sequence[CaseEvent]) -> tuple[Pause, ...]:
    """Correction pauses of one case from its history (events in order): the case clock stops on
    the day 需补正 is requested and runs again on the day review resumes."""
    out: list[Pause] = []
    start: dt.date | None = None
    for ev in events:
        into = ev.to_status == CaseStatus.CORRECTION_REQUIRED.value
        was = ev.from_status == CaseStatus.CORRECTION_REQUIRED.value
        if into and not was:
            start = local_date(ev.at)
        elif was and not into and start is not None:
            out.append((start, local_date(ev.at)))
            start = None
    if start is not None:
        out.append((start, None))
    return tuple(out)


async def report_rows(*, session: AsyncSession, start: dt.date, end: dt.date) -> ReportRows:
    """Everything the report for local dates start..end (inclusive) may need, as plain rows.

    Loads cases accepted up to `end` that were still open at `start` or closed since; the report
    itself decides what falls in the period.
    """
    # UTC bounds: questions' plain DateTime columns hold UTC wall time on SQLite.
    lo = dt.datetime.combine(start, dt.time(), CHINA_TZ).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), CHINA_TZ).astimezone(dt.UTC)
    cases = list(
        (
            await session.exec(
                select(Case).where(
                    col(Case.accepted_at) < hi,
                    (col(Case.closed_at).is_(None)) | (col(Case.closed_at) >= lo),
                )
            )
        ).all()
    )
    by_id = {c.id: c for c in cases}
    ids = list(by_id)
    steps: dict[int, list[CaseStep]] = {}
    events: dict[int, list[CaseEvent]] = {}
    for chunk in _chunks(ids):
        for s in (await session.exec(select(CaseStep).where(col(CaseStep.case_id).in_(chunk)))).all():
            steps.setdefault(s.case_id, []).append(s)
        for e in (
            await session.exec(
                select(CaseEvent).where(col(CaseEvent.case_id).in_(chunk)).order_by(col(CaseEvent.id))
            )
        ).all():
            events.setdefault(e.case_id, []).append(e)

    case_units: list[WorkUnit] = []
    step_units: list[WorkUnit] = []
    for cid, c in by_id.items():
        assert cid is not None
        pauses = pauses_from_events(events.get(cid, []))
        finished = local_date(c.closed_at) if c.closed_at and c.status in FINISHED else None
        case_units.append(
            WorkUnit(
                c.number,
                c.lead_department,
                (c.item_name,),
                c.accepted_date,
                finished,
                c.status,
                c.promised_days,
                pauses,
                c.days_unit,
            )
        )
        for s in steps.get(cid, []):
            done = s.status in (CaseStatus.COMPLETED.value, CaseStatus.REJECTED.value) and s.finished_at
            step_units.append(
                WorkUnit(
                    c.number,
                    s.department,
                    tuple(s.items),
                    c.accepted_date,
                    local_date(s.finished_at) if done and s.finished_at else None,
                    s.status,
                    c.promised_days,
                    pauses,
                    c.days_unit,
                )
            )

    rating_rows = await session.exec(
        select(Rating, Case.number)
        .join(Case, col(Case.id) == col(Rating.case_id))
        .where(col(Rating.created_at) >= lo, col(Rating.created_at) < hi)
    )
    rated = [(r, n) for r, n in rating_rows.all()]
    rated_ids = [r.case_id for r, _ in rated]
    departments: dict[int, list[str]] = {}
    items: dict[int, list[str]] = {}
    for chunk in _chunks(rated_ids):
        for step in (await session.exec(select(CaseStep).where(col(CaseStep.case_id).in_(chunk)))).all():
            departments.setdefault(step.case_id, []).append(step.department)
            items.setdefault(step.case_id, []).extend(step.items)
    ratings = [
        RatingRow(
            n,
            tuple(departments.get(r.case_id, [r.department])),
            tuple(items.get(r.case_id, [])),
            r.stars,
            r.round,
            local_date(r.created_at),
        )
        for r, n in rated
    ]

    rects = (
        await session.exec(
            select(Rectification).where(
                col(Rectification.created_at) >= lo, col(Rectification.created_at) < hi
            )
        )
    ).all()
    complaints = (
        await session.exec(
            select(Complaint).where(col(Complaint.created_at) >= lo, col(Complaint.created_at) < hi)
        )
    ).all()
    questions = (
        await session.exec(
            select(UnansweredQuestion).where(
                col(UnansweredQuestion.last_seen) >= lo, col(UnansweredQuestion.first_seen) < hi
            )
        )
    ).all()
    return ReportRows(
        cases=case_units,
        steps=step_units,
        ratings=ratings,
        rectifications=[
            RectificationRow(
                r.number,
                r.department,
                local_date(r.created_at),
                r.callback_due,
                r.fix_due,
                local_date(r.called_back_at) if r.called_back_at else None,
                local_date(r.fixed_at) if r.fixed_at else None,
            )
            for r in rects
        ],
        complaints=[
            ComplaintRow(
                c.number,
                c.assigned_department or c.department,
                local_date(c.created_at),
                c.promised_reply_date,
                local_date(c.replied_at) if c.replied_at else None,
            )
            for c in complaints
        ],
        questions=[QuestionRow(q.text, q.count, local_date(q.last_seen)) for q in questions],
    )


def _chunks(ids: list[Any], size: int = 500) -> Iterable[list[Any]]:
    # SQLite caps bound parameters per statement; a year of cases must not hit that.
    for k in range(0, len(ids), size):
        yield ids[k : k + size]
