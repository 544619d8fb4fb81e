"""Data access for cases, staff and subscriptions: small keyword-only async functions.

Each function that changes something commits its own transaction, and everything one action
causes lands in that one transaction: a status change, its CaseEvent, its AuditLog row and one
Notice per subscribed chat (transactional outbox: the notice exists if and only if the change does).

Notice text is rendered at write time by a `render` callable the caller passes in (the bot's
templates), so the delivery worker sends stored text and needs neither catalog nor templates.
Times: `now` is an aware UTC datetime (default: the clock); dates shown to people are local (UTC+8).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, Select, bindparam, exists, false, literal
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog, DaysUnit, TimeLimit
from models.audit import audit, commit_audited
from models.cases import (
    Case,
    CaseEvent,
    CasePublic,
    CaseStep,
    EventPublic,
    StepPublic,
    new_binding_code,
    new_case_number,
    normalize_case_number,
    utc_now,
)
from models.lifecycle import (
    CLOCK_RUNNING,
    OPEN,
    CaseStatus,
    Refused,
    StepState,
    decide,
    parse_status,
)
from models.lockout import LookupLock, lock_running, record_failure
from models.notices import Notice, Subscription, enqueue_notice
from models.privacy import (
    KEYED,
    FactorKeyError,
    InvalidPhone,
    factor_key,
    hash_factor,
    hash_token,
    is_legacy,
    key_id_of,
    mask_name,
    mask_phone,
    mask_text,
    new_salt,
    normalize_phone,
    verify_factor,
    verify_token,
)
from models.staff import Staff, StaffRole
from models.workdays import WorkCalendar, default_calendar, local_date

log = logging.getLogger(__name__)

MAX_MATERIALS = 50
MAX_TEXT = 500  # one missing-material line or a note, as stored


class InputError(ValueError):
    """Bad input from a caller (API, CLI, staff); str() is a short Chinese message to show as is."""


# --- cases ------------------------------------------------------------------------------------------


class NewCase(NamedTuple):
    case: Case
    binding_code: str  # only ever in this return value: the database keeps a hash
    created: bool  # False: external_id seen before; the existing case, with a fresh binding code


async def create_case(
    *,
    session: AsyncSession,
    catalog: Catalog,
    item_name: str,
    applicant_name: str,
    phone: str,
    channel: str,
    external_id: str | None = None,
    actor: str = "api",
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> NewCase:
    """Accept a case (已受理) for a catalog item or bundle; raises InputError on bad input.

    The second factor is the last 4 digits of `phone`; only the masked phone and a salted hash
    are stored. A repeated `external_id` (the approval system retrying a request whose answer it
    lost) returns the same case instead of a twin; its binding code is replaced, since the old one
    cannot be recovered from its hash.
    """
    now = now or utc_now()
    cal = calendar or default_calendar()
    name = (applicant_name or "").strip()
    if not 1 <= len(name) <= 100:
        raise InputError("申请人姓名不能为空，且不超过 100 个字")
    try:
        phone_digits = normalize_phone(phone)
    except InvalidPhone as e:
        raise InputError(str(e)) from e
    channel = (channel or "").strip()
    if not 1 <= len(channel) <= 16:
        raise InputError("受理渠道不能为空，且不超过 16 个字符")
    external_id = (external_id or "").strip() or None
    if external_id is not None and len(external_id) > 100:
        raise InputError("external_id 不能超过 100 个字符")
    kind, limits, steps = _plan_steps(catalog, (item_name or "").strip())

    if external_id is not None:
        existing = await _by_external_id(session, external_id)
        if existing is not None:
            return await _rebind_existing(session, existing, item_name, now)

    salt = new_salt()
    code = new_binding_code()
    today = local_date(now)
    promise, due = cal.binding_limit(today, limits)
    number = await _unused_number(session, today)
    case = Case(
        number=number,
        kind=kind,
        item_name=item_name.strip(),
        lead_department=next(s.department for s in steps if s.is_lead),
        channel=channel,
        status=CaseStatus.ACCEPTED.value,
        promised_days=promise.days,
        days_unit=promise.unit.value,
        promised_due_date=due.due,
        external_id=external_id,
        applicant_name=name,
        phone_masked=mask_phone(phone_digits),
        factor_salt=salt,
        factor_hash=hash_factor(phone_digits[-4:], salt),
        binding_hash=hash_token(code, salt),
        accepted_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    try:
        await session.flush()
    except IntegrityError:
        # Another request with the same external_id won the race: answer like a retry.
        await session.rollback()
        existing = await _by_external_id(session, external_id) if external_id else None
        if existing is None:
            raise
        return await _rebind_existing(session, existing, item_name, now)
    assert case.id is not None
    for step in steps:
        step.case_id = case.id
        step.updated_at = now
        session.add(step)
    session.add(
        CaseEvent(
            case_id=case.id,
            event_id=f"create:{number}",
            status=CaseStatus.ACCEPTED.value,
            to_status=CaseStatus.ACCEPTED.value,
            actor=actor,
            at=now,
        )
    )
    await commit_audited(
        session=session,
        actor=actor,
        action="case.create",
        target=number,
        now=now,
        details={"item": case.item_name, "channel": channel},
    )
    log.info("case %s accepted: %s via %s", number, case.item_name, channel)
    return NewCase(case, code, True)


def _plan_steps(catalog: Catalog, item_name: str) -> tuple[str, tuple[TimeLimit, ...], list[CaseStep]]:
    """(kind, the promised limits running in parallel, one unsaved CaseStep per approving department)."""
    item = catalog.item(item_name)
    if item is not None:
        dep_id, dep_name = _department_key(catalog, item.department)
        step = CaseStep(
            case_id=0, department=dep_id, department_name=dep_name, items=[item.name], is_lead=True
        )
        return "item", (item.promised,), [step]
    bundle = catalog.bundle(item_name)
    if bundle is None:
        raise InputError(f"「{item_name}」不是目录中的事项或一件事名称")
    lead_id, _ = _department_key(catalog, bundle.lead_department)
    steps: dict[str, CaseStep] = {}
    for member in catalog.members(bundle):
        dep_id, dep_name = _department_key(catalog, member.department)
        if dep_id not in steps:
            steps[dep_id] = CaseStep(
                case_id=0, department=dep_id, department_name=dep_name, items=[], is_lead=dep_id == lead_id
            )
        steps[dep_id].items = [*steps[dep_id].items, member.name]
    if not steps:
        raise InputError(f"一件事「{item_name}」没有可办理的事项")
    if not any(s.is_lead for s in steps.values()):
        next(iter(steps.values())).is_lead = True
    return "bundle", catalog.bundle_days(bundle).parts, list(steps.values())


def _department_key(catalog: Catalog, name: str) -> tuple[str, str]:
    dep = catalog.department(name)
    return (dep.id, dep.name) if dep else (name[:32], name)


async def _by_external_id(session: AsyncSession, external_id: str) -> Case | None:
    return (await session.exec(select(Case).where(col(Case.external_id) == external_id))).first()


async def _rebind_existing(session: AsyncSession, case: Case, item_name: str, now: dt.datetime) -> NewCase:
    if case.item_name != item_name.strip():
        raise InputError(f"external_id 已用于另一件办件（{case.number}）")
    code = new_binding_code()
    case.binding_hash = hash_token(code, case.factor_salt)
    case.updated_at = now
    session.add(case)
    await session.commit()
    return NewCase(case, code, False)


async def _unused_number(session: AsyncSession, today: dt.date) -> str:
    # 40 random bits per day: a collision is astronomically rare, but cheap to rule out.
    for _ in range(5):
        number = new_case_number(today)
        if await get_case(session=session, number=number) is None:
            return number
    raise RuntimeError("could not draw an unused case number")


async def get_case(*, session: AsyncSession, number: str) -> Case | None:
    """The case with this number as typed by a person (normalised, check char verified), or None."""
    canonical = normalize_case_number(number)
    if canonical is None:
        return None
    return (await session.exec(select(Case).where(col(Case.number) == canonical))).first()


# A case's steps as they are shown: lead department first, then in creation order.
_STEP_ORDER = (col(CaseStep.is_lead).desc(), col(CaseStep.id))
# (SELECT 1): one row to outer-join others to, so a statement answers even when they are missing.
_ONE_ROW = sa_select(literal(1).label("one")).subquery("one_row")


async def get_steps(*, session: AsyncSession, case_id: int) -> list[CaseStep]:
    """Lead department first, then in creation order."""
    rows = await session.exec(
        select(CaseStep)
        .execution_options(populate_existing=True)
        .where(col(CaseStep.case_id) == case_id)
        .order_by(*_STEP_ORDER)
    )
    return list(rows.all())


async def get_history(*, session: AsyncSession, case_id: int) -> list[CaseEvent]:
    rows = await session.exec(
        select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
    )
    return list(rows.all())


# --- deadlines --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineView:
    due: dt.date
    working_days_left: int | None  # negative: working days overdue; None once closed
    overdue: bool
    finished_late: bool
    paused: bool
    provisional: bool


def deadline_view(case: Case, *, today: dt.date, calendar: WorkCalendar | None = None) -> DeadlineView:
    """Where the promise stands on `today` (a local date).

    While 需补正 the clock is stopped: the days left are frozen at the moment of the request and
    the case is never overdue; on resumption the due date moves by the paused working days.
    """
    cal = calendar or default_calendar()
    due = case.promised_due_date
    status = CaseStatus(case.status)
    provisional = cal.is_provisional(case.accepted_date, due)
    if status == CaseStatus.CORRECTION_REQUIRED and case.paused_since is not None:
        left = cal.workdays_between(local_date(case.paused_since), due)
        return DeadlineView(due, left, False, False, True, provisional)
    if status in OPEN:
        left = cal.workdays_between(today, due)
        return DeadlineView(due, left, today > due, False, False, provisional)
    late = (
        case.closed_at is not None
        and local_date(case.closed_at) > due
        and status in (CaseStatus.COMPLETED, CaseStatus.PICKED_UP, CaseStatus.REJECTED)
    )
    return DeadlineView(due, None, False, late, False, provisional)


def to_public(
    case: Case,
    steps: Sequence[CaseStep | Row[Any]],
    history: Sequence[CaseEvent | Row[Any]] = (),
    *,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
) -> CasePublic:
    """The masked read model shown to applicants, staff and the integration API (steps and history
    as entities or as rows with the same column names)."""
    view = deadline_view(case, today=today or local_date(utc_now()), calendar=calendar)
    return CasePublic(
        number=case.number,
        kind=case.kind,
        item_name=case.item_name,
        lead_department=case.lead_department,
        channel=case.channel,
        status=case.status,
        promised_days=case.promised_days,
        days_unit=case.days_unit,
        promised_due_date=view.due,
        paused_workdays=case.paused_workdays,
        applicant_masked=mask_name(case.applicant_name),
        phone_masked=case.phone_masked,
        status_label=CaseStatus(case.status).label,
        accepted_at=case.accepted_at,
        closed_at=case.closed_at,
        working_days_left=view.working_days_left,
        overdue=view.overdue,
        finished_late=view.finished_late,
        paused=view.paused,
        provisional=view.provisional,
        steps=[
            StepPublic(
                department=s.department,
                department_name=s.department_name,
                is_lead=s.is_lead,
                items=list(s.items),
                status=s.status,
                status_label=CaseStatus(s.status).label,
                handled_by=s.handled_by,
                started_at=s.started_at,
                finished_at=s.finished_at,
            )
            for s in steps
        ],
        history=[
            EventPublic(
                status=e.status,
                status_label=CaseStatus(e.status).label,
                department=e.department,
                to_status=e.to_status,
                note=e.note,
                missing_materials=e.missing_materials,
                at=e.at,
            )
            for e in history
        ],
    )


async def case_public(
    *,
    session: AsyncSession,
    case: Case,
    history: bool = True,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
) -> CasePublic:
    """The masked read model of a stored case, with its steps and (by default) its history."""
    return (await _read_public(session, case, history, None, today, calendar)).case


class ChatStatus(NamedTuple):
    """The applicant's status reply: the case with its history, and whether this chat follows it."""

    case: CasePublic
    subscribed: bool


async def chat_status(
    *,
    session: AsyncSession,
    case: Case,
    chat_id: int,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
) -> ChatStatus:
    """case_public with its history, and whether `chat_id` is subscribed, in two statements."""
    return await _read_public(session, case, True, chat_id, today, calendar)


def _steps_statement(subscribed: ColumnElement[bool]) -> Select[Any]:
    # The subscription rides on the steps statement: its steps are outer-joined to one row that
    # carries the answer, so it comes even for a case without steps.
    steps_t = CaseStep.__table__  # type: ignore[attr-defined]
    return (
        sa_select(subscribed.label("subscribed"), steps_t)
        .select_from(_ONE_ROW)
        .outerjoin(steps_t, steps_t.c.case_id == bindparam("case_id"))
        .order_by(*_STEP_ORDER)
    )


# Built once (bound per call): composing these took about as long as running them.
_STEPS = _steps_statement(false())
_STEPS_AND_SUBSCRIBED = _steps_statement(
    exists().where(
        col(Subscription.case_id) == bindparam("case_id"), col(Subscription.chat_id) == bindparam("chat_id")
    )
)
_HISTORY = (
    sa_select(CaseEvent.__table__)  # type: ignore[attr-defined]
    .where(col(CaseEvent.case_id) == bindparam("case_id"))
    .order_by(col(CaseEvent.id))
)


async def _read_public(
    session: AsyncSession,
    case: Case,
    history: bool,
    chat_id: int | None,
    today: dt.date | None,
    calendar: WorkCalendar | None,
) -> ChatStatus:
    assert case.id is not None
    # Rows, not entities: nothing read here is changed, and loading entities cost more than the SQL.
    conn = await session.connection()
    params = {"case_id": case.id, "chat_id": chat_id}
    rows = (await conn.execute(_STEPS if chat_id is None else _STEPS_AND_SUBSCRIBED, params)).all()
    steps = [r for r in rows if r.id is not None]
    events: Sequence[Row[Any]] = ()
    if history:
        events = (await conn.execute(_HISTORY, params)).all()
    public = to_public(case, steps, events, today=today, calendar=calendar)
    return ChatStatus(public, bool(rows[0].subscribed))


# --- events -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeContext:
    """Everything a notice template may need about one applied event."""

    kind: str  # the event's status word: 'correction_required' is 一次性告知, 'completed' 办结通知
    case: CasePublic  # after the change (history not loaded)
    case_status_changed: bool  # False: only one department's step moved (bundle)
    department_name: str | None  # the step the event moved, when it names one
    note: str | None
    missing_materials: list[str]
    event_pk: int  # for callback data such as the 我已知晓 button
    catalog: Catalog  # pickup window, hours, materials to bring


@dataclass(frozen=True)
class RenderedNotice:
    text: str  # Telegram HTML
    reply_markup: dict[str, Any] | None = None  # InlineKeyboardMarkup.model_dump() or None


# Returns None when an event deserves no message (the caller's choice, e.g. a silent step).
NoticeRenderer = Callable[[NoticeContext], RenderedNotice | None]


class EventOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # event_id seen before on this case: nothing changed, nothing sent
    REFUSED = "refused"  # the lifecycle or the input forbids it; `reason` says why
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class EventResult:
    outcome: EventOutcome
    case: Case | None = None
    event: CaseEvent | None = None
    reason: str | None = None
    notices: int = 0  # notices queued by this call

    @property
    def applied(self) -> bool:
        return self.outcome == EventOutcome.APPLIED


async def apply_event(
    *,
    session: AsyncSession,
    number: str,
    status: str,
    actor: str,
    event_id: str,
    catalog: Catalog,
    render: NoticeRenderer,
    department: str | None = None,
    note: str | None = None,
    missing_materials: Sequence[str] | None = None,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> EventResult:
    """Apply one status event idempotently; never raises for bad input (REFUSED with a reason).

    `status` is an API word or Chinese label; `department` a department id or name (required
    for review results of a multi-department bundle). In one transaction: steps and case move,
    the CaseEvent is appended, an AuditLog row and one Notice per subscribed chat are written.
    """
    now = now or utc_now()
    cal = calendar or default_calendar()
    event_id = (event_id or "").strip()
    if not 1 <= len(event_id) <= 128:
        return EventResult(EventOutcome.REFUSED, reason="event_id 不能为空，且不超过 128 个字符")
    for _attempt in range(3):
        try:
            return await _apply_once(
                session,
                number,
                status,
                actor,
                event_id,
                catalog,
                render,
                department,
                note,
                missing_materials,
                now,
                cal,
            )
        except StaleDataError:
            # Another event on this case committed first (optimistic lock): decide again on fresh state.
            await session.rollback()
        except IntegrityError:
            # The same event_id raced in through another connection: it is a replay.
            await session.rollback()
            case = await get_case(session=session, number=number)
            prior = await _event_by_key(session, event_id)
            if case is not None and prior is not None and prior.case_id == case.id:
                return EventResult(EventOutcome.DUPLICATE, case, prior)
            raise
    return EventResult(EventOutcome.REFUSED, reason="该件正被同时修改，请稍后重试")


async def _apply_once(
    session: AsyncSession,
    number: str,
    status_word: str,
    actor: str,
    event_id: str,
    catalog: Catalog,
    render: NoticeRenderer,
    department_key: str | None,
    note: str | None,
    missing_materials: Sequence[str] | None,
    now: dt.datetime,
    cal: WorkCalendar,
) -> EventResult:
    canonical = normalize_case_number(number)
    case = None
    if canonical is not None:
        case = (
            await session.exec(
                select(Case)
                .where(col(Case.number) == canonical)
                .with_for_update()
                .execution_options(populate_existing=True)  # decide on the stored state, not a cached one
            )
        ).first()
    if case is None:
        return EventResult(EventOutcome.NOT_FOUND, reason="没有这个办件编号")
    assert case.id is not None
    prior = await _event_by_key(session, event_id)
    if prior is not None:
        if prior.case_id == case.id:
            return EventResult(EventOutcome.DUPLICATE, case, prior)
        return await _refuse(session, case, actor, status_word, "event_id 已用于另一个办件", now)

    steps = await get_steps(session=session, case_id=case.id)
    note = mask_text(note.strip())[:MAX_TEXT] if note and note.strip() else None
    materials = [mask_text(m.strip())[:MAX_TEXT] for m in missing_materials or [] if m and m.strip()]
    try:
        status = parse_status(status_word)
        if len(materials) > MAX_MATERIALS:
            raise Refused(f"补正材料一次最多列 {MAX_MATERIALS} 项")
        dep_id = _resolve_department(catalog, steps, department_key)
        decision = decide(
            CaseStatus(case.status),
            [StepState(s.department, s.department_name, CaseStatus(s.status)) for s in steps],
            status,
            dep_id,
            note=note,
            missing_materials=materials,
        )
    except Refused as r:
        return await _refuse(session, case, actor, status_word, r.reason, now)

    before = CaseStatus(case.status)
    for step in steps:
        new = decision.step_changes.get(step.department)
        if new is None:
            continue
        step.status = new.value
        step.handled_by = actor[:100]
        step.updated_at = now
        if new == CaseStatus.IN_REVIEW and step.started_at is None:
            step.started_at = now
        if new in (CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN):
            step.finished_at = now
        session.add(step)
    _move_case(case, before, decision.case_status, now, cal)
    # Always UPDATE the case row, even when only a step moved: that bumps its version, so a rival
    # event decided on the same old state fails its own version check and decides again.
    flag_modified(case, "updated_at")
    session.add(case)
    ev = CaseEvent(
        case_id=case.id,
        event_id=event_id,
        status=status.value,
        department=dep_id,
        from_status=before.value,
        to_status=decision.case_status.value,
        actor=actor[:100],
        note=note,
        missing_materials=materials or None,
        at=now,
    )
    session.add(ev)
    await session.flush()  # the event's id, and the optimistic-lock check, before any notice
    assert ev.id is not None

    queued = 0
    chats = (
        await session.exec(select(Subscription.chat_id).where(col(Subscription.case_id) == case.id))
    ).all()
    if chats:
        step_name = next((s.department_name for s in steps if s.department == dep_id), None)
        ctx = NoticeContext(
            kind=status.value,
            case=to_public(case, steps, today=local_date(now), calendar=cal),
            case_status_changed=decision.case_status != before,
            department_name=step_name if len(steps) > 1 else None,
            note=note,
            missing_materials=materials,
            event_pk=ev.id,
            catalog=catalog,
        )
        rendered = render(ctx)
        if rendered is not None:
            for chat_id in chats:
                enqueue_notice(
                    session=session,
                    chat_id=chat_id,
                    kind=status.value,
                    text=rendered.text,
                    reply_markup=rendered.reply_markup,
                    case_id=case.id,
                    event_pk=ev.id,
                    now=now,
                )
                queued += 1
    await commit_audited(
        session=session,
        actor=actor,
        action="case.event",
        outcome="applied",
        target=case.number,
        now=now,
        details={"status": status.value, "department": dep_id, "event_id": event_id, "notices": queued},
    )
    return EventResult(EventOutcome.APPLIED, case, ev, notices=queued)


def _move_case(
    case: Case, before: CaseStatus, after: CaseStatus, now: dt.datetime, cal: WorkCalendar
) -> None:
    """Case status, the paused clock and the due date it moves."""
    if after == before:
        case.updated_at = now
        return
    if after == CaseStatus.CORRECTION_REQUIRED and before in CLOCK_RUNNING:
        case.paused_since = now
    elif before == CaseStatus.CORRECTION_REQUIRED and case.paused_since is not None:
        # Days P+1..R are not counted (补正时间不计入): the promise moves by that many days, counted
        # the way the promise counts (working days, or calendar days for a calendar/month promise).
        unit, paused = DaysUnit(case.days_unit), local_date(case.paused_since)
        case.paused_workdays += max(cal.count_between(paused, local_date(now), unit), 0)
        case.paused_since = None
        case.promised_due_date = cal.add_days(
            case.accepted_date, case.promised_days, unit, paused=case.paused_workdays
        ).due
    if after in (CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN):
        case.closed_at = now
    case.status = after.value
    case.updated_at = now


def _resolve_department(catalog: Catalog, steps: Sequence[CaseStep], key: str | None) -> str | None:
    if key is None or not key.strip():
        return None
    key = key.strip()
    dep = catalog.department(key)
    if dep is not None:
        return dep.id
    for s in steps:  # the catalog may have changed since acceptance; the step remembers both
        if key in (s.department, s.department_name):
            return s.department
    raise Refused(f"未知部门「{key[:40]}」")


async def _event_by_key(session: AsyncSession, event_id: str) -> CaseEvent | None:
    return (await session.exec(select(CaseEvent).where(col(CaseEvent.event_id) == event_id))).first()


async def _refuse(
    session: AsyncSession, case: Case, actor: str, status_word: str, reason: str, now: dt.datetime
) -> EventResult:
    await commit_audited(
        session=session,
        actor=actor,
        action="case.event",
        outcome="refused",
        target=case.number,
        now=now,
        details={"status": str(status_word)[:40], "reason": reason},
    )
    return EventResult(EventOutcome.REFUSED, case, reason=reason)


# --- applicant lookup and subscriptions ---------------------------------------------------------------


class LookupOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"  # no such case OR wrong factor: deliberately indistinguishable
    LOCKED = "locked"  # too many failures; `locked_until` says until when


@dataclass(frozen=True)
class LookupResult:
    outcome: LookupOutcome
    case: Case | None = None
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == LookupOutcome.OK


async def verify_lookup(
    *, session: AsyncSession, number: str, factor: str, user_key: str, now: dt.datetime | None = None
) -> LookupResult:
    """Check a case number plus the second factor (last 4 digits of the phone).

    An unknown number and a wrong factor cost the same (one indexed read; the keyed hash takes
    microseconds), count the same failure and give the same answer, so the lookup cannot be used to
    find which numbers exist. Audited either way.
    """
    now = now or utc_now()
    digits = _digits(factor)
    result = await _verify(
        session,
        number,
        user_key,
        now,
        "case.lookup",
        lambda c: verify_factor(digits[-4:], c.factor_salt, c.factor_hash) if len(digits) == 4 else False,
    )
    if result.case is not None and is_legacy(result.case.factor_hash):
        # Written before the keyed scheme: the factor just typed lets it be replaced.
        result.case.factor_hash = hash_factor(digits[-4:], result.case.factor_salt)
        await session.commit()
    return result


async def bind_chat(
    *,
    session: AsyncSession,
    number: str,
    code: str,
    chat_id: int,
    user_key: str,
    now: dt.datetime | None = None,
) -> LookupResult:
    """The receipt's deep link (start=c_<number>_<code>): verify the code and subscribe the chat."""
    now = now or utc_now()
    result = await _verify(
        session,
        number,
        user_key,
        now,
        "case.bind",
        lambda c: verify_token(code.strip().upper(), c.factor_salt, c.binding_hash),
    )
    if result.ok and result.case is not None:
        await subscribe(session=session, case=result.case, chat_id=chat_id, via="link", now=now)
    return result


# The user's lock and the case in one statement, the same one whether the number exists or not.
# Built once: composing it took as long as running it.
_LOOKUP = (
    select(Case, LookupLock.locked_until)
    .select_from(_ONE_ROW)
    .outerjoin(Case, col(Case.number) == bindparam("number"))
    .outerjoin(LookupLock, lock_running(user_key=bindparam("user_key"), now=bindparam("now")))
)


async def _verify(
    session: AsyncSession,
    number: str,
    user_key: str,
    now: dt.datetime,
    action: str,
    check: Callable[[Case], bool],
) -> LookupResult:
    canonical = normalize_case_number(number) or ""
    case, until = (
        await session.exec(_LOOKUP, params={"number": canonical, "user_key": user_key, "now": now})
    ).one()
    if until is not None:
        await commit_audited(
            session=session, actor=user_key, action=action, outcome="locked", target=canonical, now=now
        )
        return LookupResult(LookupOutcome.LOCKED, locked_until=until)
    # Keyed hashes check in microseconds; a legacy scrypt one (~12 ms) goes to a thread so it does
    # not stall every other update on the event loop.
    if case is not None and (
        check(case) if not is_legacy(case.factor_hash) else await asyncio.to_thread(check, case)
    ):
        await commit_audited(session=session, actor=user_key, action=action, target=case.number, now=now)
        return LookupResult(LookupOutcome.OK, case)
    until = await record_failure(session=session, user_key=user_key, now=now)
    audit(session=session, actor=user_key, action=action, outcome="denied", target=canonical, now=now)
    if until is not None:  # the lock itself is worth an audit row (and a metric, bot/metrics.py)
        audit(session=session, actor=user_key, action="lookup.lockout", outcome="locked", now=now)
    await session.commit()
    if until is not None:
        return LookupResult(LookupOutcome.LOCKED, locked_until=until)
    return LookupResult(LookupOutcome.DENIED)


async def check_factor_key(*, session: AsyncSession) -> None:
    """Refuse to start with a factor key other than the one the newest cases were hashed with: every
    applicant would be told their factor is wrong. Raises FactorKeyError saying what to fix."""
    newest = (
        await session.exec(
            select(Case.factor_hash)
            .where(col(Case.factor_hash).startswith(KEYED))
            .order_by(col(Case.id).desc())
            .limit(1)
        )
    ).first()
    if newest is not None and key_id_of(newest) != factor_key().id:
        raise FactorKeyError(
            "查询密钥与数据库中已有案件不符：请使用原来的 FACTOR_SECRET 或密钥文件"
            "（多台服务器须配置同一个 FACTOR_SECRET）"
        )


def _digits(s: str) -> str:
    return "".join(ch for ch in (s or "") if ch.isdigit())


async def subscribe(
    *, session: AsyncSession, case: Case, chat_id: int, via: str = "lookup", now: dt.datetime | None = None
) -> bool:
    """Subscribe a chat to a case's changes (after a verified lookup); False if it already was."""
    assert case.id is not None
    existing = (
        await session.exec(
            select(Subscription).where(
                col(Subscription.case_id) == case.id, col(Subscription.chat_id) == chat_id
            )
        )
    ).first()
    if existing is not None:
        return False
    session.add(Subscription(case_id=case.id, chat_id=chat_id, via=via, created_at=now or utc_now()))
    try:
        await session.commit()
    except IntegrityError:  # the same chat subscribed twice at once
        await session.rollback()
        return False
    return True


async def unsubscribe(*, session: AsyncSession, case: Case, chat_id: int) -> bool:
    sub = (
        await session.exec(
            select(Subscription).where(
                col(Subscription.case_id) == case.id, col(Subscription.chat_id) == chat_id
            )
        )
    ).first()
    if sub is None:
        return False
    await session.delete(sub)
    await session.commit()
    return True


async def list_chat_cases(*, session: AsyncSession, chat_id: int) -> list[Case]:
    """Cases this chat is subscribed to (/mycases), newest first."""
    rows = await session.exec(
        select(Case)
        .join(Subscription, col(Subscription.case_id) == col(Case.id))
        .where(col(Subscription.chat_id) == chat_id)
        .order_by(col(Case.accepted_at).desc())
    )
    return list(rows.all())


class Ack(Enum):
    """What a 我已知晓 press did; true only when it was recorded now."""

    RECORDED = "recorded"
    ALREADY = "already"
    NOT_RECIPIENT = "not_recipient"  # no such notice, or it went to another chat

    def __bool__(self) -> bool:
        return self is Ack.RECORDED


async def acknowledge_notice(
    *, session: AsyncSession, event_pk: int, chat_id: int, now: dt.datetime | None = None
) -> Ack:
    """Record the applicant's 我已知晓 on a notice (e.g. the 一次性告知), once, and only from the
    chat the notice was sent to."""
    now = now or utc_now()
    notice = (
        await session.exec(
            select(Notice).where(col(Notice.event_id) == event_pk, col(Notice.chat_id) == chat_id)
        )
    ).first()
    if notice is None:
        return Ack.NOT_RECIPIENT
    if notice.acknowledged_at is not None:
        return Ack.ALREADY
    notice.acknowledged_at = now
    session.add(notice)
    case = await session.get(Case, notice.case_id) if notice.case_id else None
    await commit_audited(
        session=session,
        actor=f"tg:{chat_id}",
        action="notice.ack",
        target=case.number if case else str(notice.id),
        now=now,
        details={"kind": notice.kind},
    )
    return Ack.RECORDED


# --- staff views and the daily digest -----------------------------------------------------------------


@dataclass(frozen=True)
class CaseLine:
    """One row of a staff list: the case, its deadline, and the departments still working on it."""

    case: Case
    deadline: DeadlineView
    pending_departments: list[str]  # department ids whose step is not finished


async def list_department_cases(
    *,
    session: AsyncSession,
    department: str | None,
    include_completed: bool = True,
    limit: int = 50,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
) -> list[CaseLine]:
    """Open cases (and completed ones awaiting pickup) of a department; None: every department.

    Overdue first, then the soonest due, then paused ones, then those waiting for pickup.
    """
    today = today or local_date(utc_now())
    statuses = set(OPEN) | ({CaseStatus.COMPLETED} if include_completed else set())
    query = select(Case).where(col(Case.status).in_([s.value for s in statuses]))
    if department is not None:
        query = query.where(
            col(Case.id).in_(select(CaseStep.case_id).where(col(CaseStep.department) == department))
        )
    cases = list((await session.exec(query)).all())
    lines = await _lines(session, cases, today, calendar)

    def order(line: CaseLine) -> tuple[int, dt.date, str]:
        st = CaseStatus(line.case.status)
        group = (
            3
            if st == CaseStatus.COMPLETED
            else 2
            if line.deadline.paused
            else 0
            if line.deadline.overdue
            else 1
        )
        return group, line.deadline.due, line.case.number

    return sorted(lines, key=order)[:limit]


async def due_cases(
    *,
    session: AsyncSession,
    within_workdays: int = 2,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
) -> list[CaseLine]:
    """Running cases due within `within_workdays` working days, or overdue (for the daily digest).

    Paused cases (需补正) are left out: their clock is stopped. Group by `pending_departments`
    for each department's staff; the overdue ones (`deadline.overdue`) also go to admins.
    """
    cal = calendar or default_calendar()
    today = today or local_date(utc_now())
    horizon = cal.add_workdays(today, within_workdays).due
    rows = await session.exec(
        select(Case).where(
            col(Case.status).in_([s.value for s in CLOCK_RUNNING]), col(Case.promised_due_date) <= horizon
        )
    )
    lines = await _lines(session, list(rows.all()), today, cal)
    return sorted(lines, key=lambda line: (line.deadline.due, line.case.number))


async def _lines(
    session: AsyncSession, cases: list[Case], today: dt.date, calendar: WorkCalendar | None
) -> list[CaseLine]:
    ids = [c.id for c in cases]
    pending: dict[int, list[str]] = {}
    if ids:
        steps = await session.exec(select(CaseStep).where(col(CaseStep.case_id).in_(ids)))
        for s in steps.all():
            if CaseStatus(s.status) not in (CaseStatus.COMPLETED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN):
                pending.setdefault(s.case_id, []).append(s.department)
    return [
        CaseLine(c, deadline_view(c, today=today, calendar=calendar), pending.get(c.id or 0, []))
        for c in cases
    ]


# --- staff ------------------------------------------------------------------------------------------


async def add_staff(
    *,
    session: AsyncSession,
    catalog: Catalog,
    user_id: int,
    name: str,
    role: str,
    department: str | None = None,
    title: str = "",
    actor: str = "cli",
    now: dt.datetime | None = None,
) -> tuple[Staff, bool]:
    """Add a staff member, or update and re-activate an existing one; (staff, created).

    `department` is a department id or name from the catalog (required except for admins).
    Raises InputError with a Chinese message for an unknown role or department.
    """
    now = now or utc_now()
    try:
        role_enum = StaffRole((role or "").strip())
    except ValueError:
        raise InputError(f"未知角色「{role}」，可用：window | department | admin") from None
    name = (name or "").strip()
    if not 1 <= len(name) <= 50:
        raise InputError("姓名不能为空，且不超过 50 个字")
    if user_id <= 0:
        raise InputError("Telegram 用户 ID 应为正整数")
    dep_id: str | None = None
    if department and department.strip():
        dep = catalog.department(department.strip())
        if dep is None:
            known = "、".join(d.name for d in catalog.departments[:8])
            raise InputError(f"未知部门「{department.strip()}」。可用部门名称或编号，例如：{known}…")
        dep_id = dep.id
    elif role_enum != StaffRole.ADMIN:
        raise InputError("窗口人员和部门审批人员必须指定部门（--department）")
    staff = await get_staff(session=session, user_id=user_id, active_only=False)
    created = staff is None
    if staff is None:
        staff = Staff(user_id=user_id, name=name, role=role_enum.value, created_at=now, updated_at=now)
    staff.name, staff.title, staff.department = name, (title or "").strip()[:100], dep_id
    staff.role, staff.active, staff.updated_at = role_enum.value, True, now
    session.add(staff)
    await commit_audited(
        session=session,
        actor=actor,
        action="staff.add" if created else "staff.update",
        target=str(user_id),
        now=now,
        details={"role": role_enum.value, "department": dep_id},
    )
    return staff, created


async def get_staff(*, session: AsyncSession, user_id: int, active_only: bool = True) -> Staff | None:
    """The staff member behind a Telegram user id (the bot's staff gate); None for everyone else."""
    query = select(Staff).where(col(Staff.user_id) == user_id)
    if active_only:
        query = query.where(col(Staff.active).is_(True))
    return (await session.exec(query)).first()


async def list_staff(
    *,
    session: AsyncSession,
    department: str | None = None,
    role: str | None = None,
    active_only: bool = False,
) -> list[Staff]:
    query = select(Staff)
    if department is not None:
        query = query.where(col(Staff.department) == department)
    if role is not None:
        query = query.where(col(Staff.role) == role)
    if active_only:
        query = query.where(col(Staff.active).is_(True))
    rows = await session.exec(query.order_by(col(Staff.department), col(Staff.role), col(Staff.user_id)))
    return list(rows.all())


async def disable_staff(
    *, session: AsyncSession, user_id: int, actor: str = "cli", now: dt.datetime | None = None
) -> Staff | None:
    """Deactivate (kept for the audit trail, never deleted); None when no such staff member."""
    now = now or utc_now()
    staff = await get_staff(session=session, user_id=user_id, active_only=False)
    if staff is None:
        return None
    staff.active, staff.updated_at = False, now
    session.add(staff)
    await commit_audited(session=session, actor=actor, action="staff.disable", target=str(user_id), now=now)
    return staff
