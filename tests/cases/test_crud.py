"""Cases in the database: creation, events with their notices, replay, pausing, lookup and lockout."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.templates import make_templates
from bot.templates import render as render_template
from knowledge.schema import Bundle, Catalog, DaysUnit, Item, Material
from models import crud
from models.audit import AuditLog
from models.cases import Case, CaseEvent
from models.crud import EventOutcome, LookupOutcome, NoticeContext
from models.lifecycle import CaseStatus
from models.notices import Notice, Subscription
from models.workdays import WorkCalendar
from tests.cases.conftest import BUNDLE, FOOD, INSTANT, NoticeRecorder, china

PHONE = "13812345678"
MON = china(2026, 3, 2)  # Monday 2 March 2026, 10:00 in Beijing


async def new_case(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, item: str = FOOD, **kw: object
) -> tuple[Case, str]:
    args: dict[str, object] = {"applicant_name": "张三", "phone": PHONE, "channel": "window", "now": MON}
    args.update(kw)
    made = await crud.create_case(session=session, catalog=catalog, item_name=item, calendar=calendar, **args)  # type: ignore[arg-type]
    return made.case, made.binding_code


async def count(session: AsyncSession, model: type, *where: object) -> int:
    q = select(func.count()).select_from(model)
    for w in where:
        q = q.where(w)  # type: ignore[arg-type]
    return int((await session.exec(q)).one()[0])  # type: ignore[call-overload]


async def event(
    session: AsyncSession,
    catalog: Catalog,
    calendar: WorkCalendar,
    render: NoticeRecorder,
    number: str,
    status: str,
    event_id: str,
    now: dt.datetime = MON,
    **kw: object,
) -> crud.EventResult:
    return await crud.apply_event(
        session=session,
        number=number,
        status=status,
        actor="staff:1",
        event_id=event_id,
        catalog=catalog,
        render=render,
        now=now,
        calendar=calendar,
        **kw,
    )  # type: ignore[arg-type]


# --- creation ---------------------------------------------------------------------------------------


async def test_created_case_keeps_no_full_phone_and_promises_a_working_day_date(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, engine: AsyncEngine
) -> None:
    case, code = await new_case(session, catalog, calendar)
    assert case.status == CaseStatus.ACCEPTED
    assert case.phone_masked == "138****5678"
    assert case.promised_due_date == dt.date(2026, 3, 16)  # 10 working days after Monday 2 March
    assert len(code) == 10
    # Nowhere in the stored row: neither the full phone nor the binding code, only the masked phone.
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM cases"))).one()
    flat = " ".join(str(v) for v in row)
    assert PHONE not in flat and code not in flat and "138****5678" in flat
    steps = await crud.get_steps(session=session, case_id=case.id or 0)
    assert [(s.department, s.is_lead) for s in steps] == [("scjg", True)]


async def test_bundle_case_gets_one_step_per_department_with_the_lead_first(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar, item=BUNDLE)
    steps = await crud.get_steps(session=session, case_id=case.id or 0)
    assert [s.department for s in steps][0] == "scjg" and steps[0].is_lead
    assert {s.department for s in steps} == {"scjg", "wsjk", "xf"}
    # Parallel review: the slowest member (15 working days), not the sum (30).
    assert case.promised_days == 15


async def test_instant_item_is_due_the_day_it_is_accepted(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar, item=INSTANT)
    assert case.promised_due_date == dt.date(2026, 3, 2)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"item": "开宇宙飞船许可"}, "不是目录中的事项"),
        ({"phone": "12345"}, "电话号码格式不正确"),
        ({"applicant_name": "  "}, "姓名不能为空"),
        ({"channel": ""}, "渠道"),
    ],
)
async def test_bad_input_is_refused_with_a_chinese_message(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, kw: dict[str, object], words: str
) -> None:
    with pytest.raises(crud.InputError, match=words):
        await new_case(session, catalog, calendar, **kw)  # type: ignore[arg-type]
    assert await count(session, Case) == 0


async def test_retried_creation_with_same_external_id_returns_the_same_case(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    first, code1 = await new_case(session, catalog, calendar, external_id="OA-2026-001")
    again = await crud.create_case(
        session=session,
        catalog=catalog,
        item_name=FOOD,
        applicant_name="张三",
        phone=PHONE,
        channel="api",
        external_id="OA-2026-001",
        calendar=calendar,
    )
    assert not again.created and again.case.number == first.number
    assert await count(session, Case) == 1
    # The fresh binding code works; the lost one no longer does.
    ok = await crud.bind_chat(
        session=session, number=first.number, code=again.binding_code, chat_id=7, user_key="tg:7"
    )
    assert ok.ok
    old = await crud.bind_chat(session=session, number=first.number, code=code1, chat_id=8, user_key="tg:8")
    assert not old.ok


# --- events and the outbox ----------------------------------------------------------------------------


async def test_each_status_change_queues_one_notice_per_subscribed_chat_in_the_same_commit(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    await crud.subscribe(session=session, case=case, chat_id=111)
    await crud.subscribe(session=session, case=case, chat_id=222)
    r = await event(session, catalog, calendar, render, case.number, "in_review", "e1")
    assert r.applied and r.notices == 2
    notices = (await session.exec(select(Notice).order_by(col(Notice.chat_id)))).scalars().all()
    assert [(n.chat_id, n.kind, n.status) for n in notices] == [
        (111, "in_review", "pending"),
        (222, "in_review", "pending"),
    ]
    assert "审查中" in notices[0].text


async def test_a_failing_renderer_leaves_no_change_behind(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    calendar: WorkCalendar,
) -> None:
    """Transactional outbox: no notice, no change; never a change whose notice is missing."""
    case, _ = await new_case(session, catalog, calendar)
    await crud.subscribe(session=session, case=case, chat_id=111)

    def broken(_ctx: NoticeContext) -> crud.RenderedNotice:
        raise RuntimeError("template error")

    number = case.number
    with pytest.raises(RuntimeError):
        await crud.apply_event(
            session=session,
            number=number,
            status="in_review",
            actor="api",
            event_id="e1",
            catalog=catalog,
            render=broken,
            calendar=calendar,
        )
    await session.rollback()
    async with sessions() as fresh:
        again = await crud.get_case(session=fresh, number=number)
        assert again is not None and again.status == CaseStatus.ACCEPTED
        assert await count(fresh, CaseEvent) == 1  # only the creation event
        assert await count(fresh, Notice) == 0


async def test_replayed_event_id_changes_nothing_and_sends_nothing(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    await crud.subscribe(session=session, case=case, chat_id=111)
    await event(session, catalog, calendar, render, case.number, "in_review", "e1")
    first = await event(session, catalog, calendar, render, case.number, "completed", "e2")
    assert first.applied
    events, notices = await count(session, CaseEvent), await count(session, Notice)
    replay = await event(
        session, catalog, calendar, render, case.number, "completed", "e2", now=MON + dt.timedelta(hours=1)
    )
    assert replay.outcome == EventOutcome.DUPLICATE
    assert replay.event is not None and replay.event.id == first.event.id  # type: ignore[union-attr]
    assert (await count(session, CaseEvent), await count(session, Notice)) == (events, notices)
    # Even a replay whose payload differs is the same event: the first one counted.
    odd = await event(session, catalog, calendar, render, case.number, "picked_up", "e2")
    assert odd.outcome == EventOutcome.DUPLICATE
    stored = await crud.get_case(session=session, number=case.number)
    assert stored is not None and stored.status == CaseStatus.COMPLETED


async def test_event_id_of_another_case_is_refused(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    a, _ = await new_case(session, catalog, calendar)
    b, _ = await new_case(session, catalog, calendar)
    await event(session, catalog, calendar, render, a.number, "in_review", "shared")
    r = await event(session, catalog, calendar, render, b.number, "in_review", "shared")
    assert r.outcome == EventOutcome.REFUSED and "另一个办件" in (r.reason or "")


async def test_refused_event_is_audited_but_writes_no_history_and_no_notice(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    await crud.subscribe(session=session, case=case, chat_id=111)
    r = await event(session, catalog, calendar, render, case.number, "picked_up", "e1")
    assert r.outcome == EventOutcome.REFUSED and "尚未办结" in (r.reason or "")
    assert await count(session, CaseEvent) == 1 and await count(session, Notice) == 0
    refusals = await count(session, AuditLog, col(AuditLog.outcome) == "refused")
    assert refusals == 1
    # The same event_id may be used again once the request is corrected: a refusal is not recorded.
    await event(session, catalog, calendar, render, case.number, "in_review", "e0")
    ok = await event(session, catalog, calendar, render, case.number, "completed", "e1")
    assert ok.applied


async def test_unknown_case_number_and_unknown_department_are_answered_not_raised(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    r = await event(session, catalog, calendar, render, "YC000000AAAAAAAA0", "in_review", "e1")
    assert r.outcome == EventOutcome.NOT_FOUND
    case, _ = await new_case(session, catalog, calendar)
    r2 = await event(session, catalog, calendar, render, case.number, "in_review", "e2", department="财政局")
    assert r2.outcome == EventOutcome.REFUSED and "未知部门" in (r2.reason or "")


async def test_history_is_append_only(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    (ev,) = await crud.get_history(session=session, case_id=case.id or 0)
    ev.note = "rewritten"
    session.add(ev)
    with pytest.raises(RuntimeError, match="append-only"):
        await session.commit()


async def test_correction_pause_moves_the_due_date_by_the_paused_working_days(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)  # Mon 03-02, 10 days: due Mon 03-16
    await crud.subscribe(session=session, case=case, chat_id=111)
    await event(session, catalog, calendar, render, case.number, "in_review", "e1")
    r = await event(
        session,
        catalog,
        calendar,
        render,
        case.number,
        "correction_required",
        "e2",
        now=china(2026, 3, 4),
        missing_materials=["健康证明", "经营场所证明 "],
    )
    assert r.applied
    ctx = render.contexts[-1]
    assert ctx.kind == "correction_required" and ctx.missing_materials == ["健康证明", "经营场所证明"]
    assert ctx.case.paused
    # While paused the clock stands still: never overdue, days left frozen at the request (Wed 03-04).
    paused = await crud.get_case(session=session, number=case.number)
    assert paused is not None
    view = crud.deadline_view(paused, today=dt.date(2026, 3, 30), calendar=calendar)
    assert view.paused and not view.overdue and view.working_days_left == 8
    # Corrections arrive Tue 03-10: Thu, Fri, Mon, Tue = 4 working days not counted.
    await event(session, catalog, calendar, render, case.number, "in_review", "e3", now=china(2026, 3, 10))
    resumed = await crud.get_case(session=session, number=case.number)
    assert resumed is not None
    assert resumed.paused_workdays == 4
    assert resumed.promised_due_date == dt.date(2026, 3, 20)  # Mon 03-16 + 4 working days
    view = crud.deadline_view(resumed, today=dt.date(2026, 3, 10), calendar=calendar)
    assert not view.paused and view.working_days_left == 8


DIVORCE = "离婚登记"


def with_calendar_item(catalog: Catalog, days: int = 30) -> Catalog:
    """The case catalog plus a 离婚登记 whose promise is the 30-day 冷静期, counted in calendar days."""
    divorce = Item(
        name=DIVORCE,
        code="M1",
        department="县市场监督管理局",
        statutory_days=days,
        statutory_unit=DaysUnit.CALENDAR,
        promised_days=days,
        promised_unit=DaysUnit.CALENDAR,
        materials=[Material(name="结婚证")],
    )
    both = Bundle(name="离婚与开店", lead_department="县市场监督管理局", items=[FOOD, DIVORCE])
    return Catalog(
        catalog.center,
        catalog.departments,
        catalog.windows,
        [*catalog.items, divorce],
        [*catalog.bundles, both],
    )


async def test_calendar_day_case_counts_weekends_and_holidays(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    # Accepted Tue 09-01: the 30th day is 10-01 (国庆), so the promise ends on the next working day.
    case, _ = await new_case(
        session, with_calendar_item(catalog), calendar, item=DIVORCE, now=china(2026, 9, 1)
    )
    assert (case.promised_days, case.days_unit) == (30, "calendar")
    assert case.promised_due_date == dt.date(2026, 10, 8)  # as 30 working days it would be 10-19
    public = crud.to_public(case, [], today=dt.date(2026, 9, 30), calendar=calendar)
    assert public.days_unit == "calendar" and public.working_days_left == 1  # 10-08 is the only one
    status = render_template(make_templates(), "cases/status", case=public, subscribed=False)
    assert "承诺办结日期：2026年10月8日" in status and "依法按日历日计算" in status
    working, _ = await new_case(session, catalog, calendar)
    ordinary = render_template(
        make_templates(), "cases/status", case=crud.to_public(working, []), subscribed=False
    )
    assert "依法按日历日计算" not in ordinary


async def test_calendar_day_case_pause_adds_calendar_days(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    cat = with_calendar_item(catalog)
    case, _ = await new_case(session, cat, calendar, item=DIVORCE)  # Mon 03-02 + 30 days: Wed 04-01
    assert case.promised_due_date == dt.date(2026, 4, 1)
    await event(session, cat, calendar, render, case.number, "in_review", "e1")
    await event(
        session,
        cat,
        calendar,
        render,
        case.number,
        "correction_required",
        "e2",
        now=china(2026, 3, 4),
        note="补结婚证",
    )
    await event(session, cat, calendar, render, case.number, "in_review", "e3", now=china(2026, 3, 10))
    resumed = await crud.get_case(session=session, number=case.number)
    assert resumed is not None
    # 03-04 → 03-10 is 6 calendar days (4 working days): the promise moves by 6, to Tue 04-07.
    assert resumed.paused_workdays == 6
    assert resumed.promised_due_date == dt.date(2026, 4, 7)


@pytest.mark.parametrize(
    ("days", "promised", "due"), [(30, (30, "calendar"), (4, 1)), (5, (10, "working"), (3, 16))]
)
async def test_bundle_with_units_mixed_is_due_when_its_last_member_is(
    session: AsyncSession,
    catalog: Catalog,
    calendar: WorkCalendar,
    days: int,
    promised: tuple[int, str],
    due: tuple[int, int],
) -> None:
    # From Mon 03-02: 10 working days end 03-16; 30 calendar days 04-01, 5 calendar days 03-09.
    case, _ = await new_case(session, with_calendar_item(catalog, days), calendar, item="离婚与开店")
    assert (case.promised_days, case.days_unit) == promised
    assert case.promised_due_date == dt.date(2026, *due)


async def test_status_shows_days_left_and_overdue(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)  # due Mon 03-16
    v = crud.deadline_view(case, today=dt.date(2026, 3, 13), calendar=calendar)
    assert (v.working_days_left, v.overdue) == (1, False)
    v = crud.deadline_view(case, today=dt.date(2026, 3, 18), calendar=calendar)
    assert (v.working_days_left, v.overdue) == (-2, True)
    await event(session, catalog, calendar, render, case.number, "in_review", "e1")
    await event(session, catalog, calendar, render, case.number, "completed", "e2", now=china(2026, 3, 17))
    done = await crud.get_case(session=session, number=case.number)
    assert done is not None
    v = crud.deadline_view(done, today=dt.date(2026, 4, 1), calendar=calendar)
    assert v.working_days_left is None and not v.overdue and v.finished_late


async def test_bundle_is_completed_only_after_every_department_approves(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar, item=BUNDLE)
    await crud.subscribe(session=session, case=case, chat_id=111)
    await event(session, catalog, calendar, render, case.number, "in_review", "start")  # all departments
    for i, dep in enumerate(["县市场监督管理局", "wsjk"]):
        r = await event(
            session, catalog, calendar, render, case.number, "completed", f"ok{i}", department=dep
        )
        assert r.applied and r.case is not None and r.case.status == CaseStatus.IN_REVIEW
        assert not render.contexts[-1].case_status_changed
    last = await event(session, catalog, calendar, render, case.number, "completed", "ok2", department="xf")
    assert last.case is not None and last.case.status == CaseStatus.COMPLETED
    assert render.contexts[-1].case_status_changed
    public = await crud.case_public(session=session, case=last.case, calendar=calendar)
    assert [s.status_label for s in public.steps] == ["已办结"] * 3
    assert public.applicant_masked == "张*" and public.phone_masked == "138****5678"


async def test_bundle_department_result_without_department_is_refused(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar, item=BUNDLE)
    await event(session, catalog, calendar, render, case.number, "in_review", "start")
    r = await event(session, catalog, calendar, render, case.number, "completed", "x")
    assert r.outcome == EventOutcome.REFUSED and "部门" in (r.reason or "")


async def test_concurrent_edit_of_the_same_bundle_loses_no_approval(
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    calendar: WorkCalendar,
    render: NoticeRecorder,
) -> None:
    """Two departments approve at once through two connections: the case must still complete."""
    async with sessions() as s:
        case, _ = await new_case(s, catalog, calendar, item=BUNDLE)
        await event(s, catalog, calendar, render, case.number, "in_review", "start")
        await event(s, catalog, calendar, render, case.number, "completed", "a", department="scjg")
    async with sessions() as s1, sessions() as s2:
        # s1 reads the case and its steps, then s2 commits an approval, then s1 writes: stale read.
        stale = await crud.get_case(session=s1, number=case.number)
        assert stale is not None
        await crud.get_steps(session=s1, case_id=stale.id or 0)
        await s1.commit()
        r2 = await event(s2, catalog, calendar, render, case.number, "completed", "b", department="wsjk")
        r1 = await event(s1, catalog, calendar, render, case.number, "completed", "c", department="xf")
        assert r1.applied and r2.applied
    async with sessions() as s:
        final = await crud.get_case(session=s, number=case.number)
        assert final is not None and final.status == CaseStatus.COMPLETED


async def test_an_approval_committed_mid_decision_is_not_overwritten(
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    calendar: WorkCalendar,
    render: NoticeRecorder,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The optimistic lock: another department commits between our read and our write."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL serialises this with SELECT … FOR UPDATE instead")
    async with sessions() as s:
        case, _ = await new_case(s, catalog, calendar, item=BUNDLE)
        number = case.number
        await event(s, catalog, calendar, render, number, "in_review", "start")
        await event(s, catalog, calendar, render, number, "completed", "a", department="scjg")
    real_get_steps = crud.get_steps
    interleaved = []

    async def get_steps_with_a_rival(*, session: AsyncSession, case_id: int) -> list[object]:
        steps = await real_get_steps(session=session, case_id=case_id)
        if not interleaved:  # first read only: the rival approves right after we looked
            interleaved.append(True)
            async with sessions() as rival:
                r = await event(rival, catalog, calendar, render, number, "completed", "b", department="wsjk")
                assert r.applied
        return steps  # type: ignore[return-value]

    monkeypatch.setattr(crud, "get_steps", get_steps_with_a_rival)
    async with sessions() as s:
        r = await event(s, catalog, calendar, render, number, "completed", "c", department="xf")
    assert r.applied and interleaved
    async with sessions() as s:
        final = await crud.get_case(session=s, number=number)
        assert final is not None and final.status == CaseStatus.COMPLETED


# --- lookup, binding, lockout -------------------------------------------------------------------------


async def test_lookup_needs_the_right_factor_and_answers_alike_otherwise(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    ok = await crud.verify_lookup(session=session, number=case.number.lower(), factor="5678", user_key="tg:1")
    assert ok.ok and ok.case is not None and ok.case.number == case.number
    wrong = await crud.verify_lookup(session=session, number=case.number, factor="1234", user_key="tg:2")
    unknown = await crud.verify_lookup(
        session=session, number="YC260302AAAAAAAA0", factor="5678", user_key="tg:2"
    )
    malformed = await crud.verify_lookup(session=session, number="hello", factor="5678", user_key="tg:2")
    assert wrong == unknown == malformed == crud.LookupResult(LookupOutcome.DENIED)
    outcomes = (
        await session.exec(select(AuditLog.outcome).where(col(AuditLog.action) == "case.lookup"))
    ).all()
    assert sorted(o[0] for o in outcomes) == ["denied", "denied", "denied", "ok"]


async def test_five_failures_in_ten_minutes_lock_the_user_in_every_process(
    engine: AsyncEngine, catalog: Catalog, calendar: WorkCalendar
) -> None:
    other_process = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    async with other_process() as s:
        case, _ = await new_case(s, catalog, calendar)
    t = MON
    results = []
    for i in range(5):
        async with other_process() as s:  # each failure from a fresh connection, as from another worker
            results.append(
                await crud.verify_lookup(
                    session=s,
                    number=case.number,
                    factor=f"000{i}",
                    user_key="tg:9",
                    now=t + dt.timedelta(minutes=i),
                )
            )
    assert [r.outcome for r in results] == [LookupOutcome.DENIED] * 4 + [LookupOutcome.LOCKED]
    async with other_process() as s:
        # Locked: even the right factor is not checked.
        locked = await crud.verify_lookup(
            session=s, number=case.number, factor="5678", user_key="tg:9", now=t + dt.timedelta(minutes=10)
        )
        assert locked.outcome == LookupOutcome.LOCKED and locked.case is None
        # Another user is not affected.
        other = await crud.verify_lookup(
            session=s, number=case.number, factor="5678", user_key="tg:10", now=t + dt.timedelta(minutes=10)
        )
        assert other.ok
        # The lock ends 30 minutes after the fifth failure.
        later = await crud.verify_lookup(
            session=s, number=case.number, factor="5678", user_key="tg:9", now=t + dt.timedelta(minutes=35)
        )
        assert later.ok
        # A second round of failures locks again (the stored lock is renewed, not duplicated).
        for i in range(5):
            again = await crud.verify_lookup(
                session=s,
                number=case.number,
                factor="0000",
                user_key="tg:9",
                now=t + dt.timedelta(minutes=40 + i),
            )
        assert again.outcome == LookupOutcome.LOCKED


async def test_failures_spread_over_more_than_ten_minutes_do_not_lock(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    for i in range(8):
        r = await crud.verify_lookup(
            session=session,
            number=case.number,
            factor="0000",
            user_key="tg:3",
            now=MON + dt.timedelta(minutes=3 * i),
        )
        assert r.outcome == LookupOutcome.DENIED


async def test_deep_link_binds_the_chat_and_lists_it_under_my_cases(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, code = await new_case(session, catalog, calendar)
    bad = await crud.bind_chat(
        session=session, number=case.number, code="AAAAAAAAAA", chat_id=5, user_key="tg:5"
    )
    assert not bad.ok
    good = await crud.bind_chat(
        session=session, number=case.number, code=code.lower(), chat_id=5, user_key="tg:5"
    )
    assert good.ok
    assert [c.number for c in await crud.list_chat_cases(session=session, chat_id=5)] == [case.number]
    assert not await crud.subscribe(session=session, case=case, chat_id=5)  # already subscribed
    assert await count(session, Subscription) == 1


async def test_acknowledgement_of_a_correction_notice_is_recorded_once(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    await crud.subscribe(session=session, case=case, chat_id=111)
    await event(session, catalog, calendar, render, case.number, "in_review", "e1")
    r = await event(
        session,
        catalog,
        calendar,
        render,
        case.number,
        "correction_required",
        "e2",
        missing_materials=["健康证明"],
    )
    assert r.event is not None and r.event.id is not None
    assert await crud.acknowledge_notice(session=session, event_pk=r.event.id, chat_id=111)
    assert not await crud.acknowledge_notice(session=session, event_pk=r.event.id, chat_id=111)
    assert not await crud.acknowledge_notice(session=session, event_pk=r.event.id, chat_id=999)
    assert await count(session, AuditLog, col(AuditLog.action) == "notice.ack") == 1


# --- staff views --------------------------------------------------------------------------------------


async def test_department_list_puts_overdue_first_then_soonest_due(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    soon, _ = await new_case(session, catalog, calendar, now=china(2026, 3, 9))  # due 03-23
    late, _ = await new_case(session, catalog, calendar, now=china(2026, 2, 2))  # due long before 03-20
    later, _ = await new_case(session, catalog, calendar, now=china(2026, 3, 12))  # due 03-26
    await new_case(session, catalog, calendar, item="公共场所卫生许可")  # another department's
    bundle, _ = await new_case(session, catalog, calendar, item=BUNDLE, now=china(2026, 3, 13))
    lines = await crud.list_department_cases(
        session=session, department="scjg", today=dt.date(2026, 3, 20), calendar=calendar
    )
    assert [line.case.number for line in lines] == [late.number, soon.number, later.number, bundle.number]
    assert lines[0].deadline.overdue and not lines[1].deadline.overdue
    everyone = await crud.list_department_cases(
        session=session, department=None, today=dt.date(2026, 3, 20), calendar=calendar
    )
    assert len(everyone) == 5


async def test_digest_lists_cases_due_within_two_working_days_and_overdue(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, render: NoticeRecorder
) -> None:
    overdue, _ = await new_case(session, catalog, calendar, now=china(2026, 2, 2))
    due_soon, _ = await new_case(session, catalog, calendar, now=china(2026, 3, 6))  # due Fri 03-20
    await new_case(session, catalog, calendar, now=china(2026, 3, 16))  # due 03-30: not yet
    paused, _ = await new_case(session, catalog, calendar, now=china(2026, 2, 3))
    await event(session, catalog, calendar, render, paused.number, "in_review", "p1")
    await event(
        session,
        catalog,
        calendar,
        render,
        paused.number,
        "correction_required",
        "p2",
        missing_materials=["营业执照"],
    )
    lines = await crud.due_cases(session=session, today=dt.date(2026, 3, 18), calendar=calendar)
    assert [line.case.number for line in lines] == [overdue.number, due_soon.number]
    assert lines[0].deadline.overdue and not lines[1].deadline.overdue
    assert lines[0].pending_departments == ["scjg"]


async def test_staff_add_update_disable(session: AsyncSession, catalog: Catalog) -> None:
    staff, created = await crud.add_staff(
        session=session,
        catalog=catalog,
        user_id=42,
        name="李四",
        department="县卫生健康局",
        role="department",
        title="股长",
    )
    assert created and staff.department == "wsjk"
    assert (await crud.get_staff(session=session, user_id=42)) is not None
    with pytest.raises(crud.InputError, match="未知部门"):
        await crud.add_staff(
            session=session, catalog=catalog, user_id=43, name="王五", department="财政局", role="window"
        )
    with pytest.raises(crud.InputError, match="必须指定部门"):
        await crud.add_staff(session=session, catalog=catalog, user_id=43, name="王五", role="window")
    with pytest.raises(crud.InputError, match="未知角色"):
        await crud.add_staff(session=session, catalog=catalog, user_id=43, name="王五", role="boss")
    await crud.disable_staff(session=session, user_id=42)
    assert await crud.get_staff(session=session, user_id=42) is None  # the bot's gate closes
    again, created = await crud.add_staff(
        session=session, catalog=catalog, user_id=42, name="李四", department="wsjk", role="admin"
    )
    assert not created and again.active and again.role == "admin"
    assert len(await crud.list_staff(session=session)) == 1
