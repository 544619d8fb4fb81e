"""Ratings, rectification, complaints, announcements and reminders in the database: who may do
what, the deadlines written into the tickets, and the notices queued in the same transaction."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog
from models import crud, supervision
from models.audit import AuditLog
from models.crud import InputError
from models.feedback import Complaint, Rectification
from models.notices import Notice
from models.questions import record_unanswered
from models.workdays import WorkCalendar
from tests.cases.conftest import HYGIENE, china
from tests.supervision.conftest import CITIZEN_CHAT, SupervisionRecorder, finished_case

DEPT_STAFF, ADMIN = 7001, 7002


@pytest.fixture
async def staffed(session: AsyncSession, catalog: Catalog) -> None:
    await crud.add_staff(
        session=session,
        catalog=catalog,
        user_id=DEPT_STAFF,
        name="周立",
        role="department",
        department="scjg",
    )
    await crud.add_staff(session=session, catalog=catalog, user_id=ADMIN, name="管理员", role="admin")


async def notices(session: AsyncSession, kind: str | None = None) -> list[Notice]:
    q = select(Notice).order_by(col(Notice.id))
    if kind:
        q = q.where(col(Notice.kind) == kind)
    return list((await session.exec(q)).all())


async def actions(session: AsyncSession, action: str) -> list[AuditLog]:
    return list((await session.exec(select(AuditLog).where(col(AuditLog.action) == action))).all())


async def test_bad_rating_opens_rectification_with_both_deadlines_and_second_rating_is_refused(
    session: AsyncSession,
    catalog: Catalog,
    calendar: WorkCalendar,
    srender: SupervisionRecorder,
    staffed: None,
) -> None:
    case = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    assert case.id is not None
    # Rated on Saturday 17 Oct: callback by Monday 19 Oct, fix within 15 working days: 6 Nov.
    result = await supervision.rate_case(
        session=session,
        number=case.number,
        chat_id=CITIZEN_CHAT,
        stars=1,
        render=srender,
        now=china(2026, 10, 17),
        calendar=calendar,
    )
    rect = result.rectification
    assert rect is not None and rect.department == "scjg"
    assert (rect.callback_due, rect.fix_due) == (dt.date(2026, 10, 19), dt.date(2026, 11, 6))
    assert rect.number.startswith("ZG261017")
    staff_notes = await notices(session, "rectification")
    assert [n.chat_id for n in staff_notes] == [DEPT_STAFF]  # the department, not the admin

    with pytest.raises(InputError, match="已评价过"):
        await supervision.rate_case(session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=5)
    with pytest.raises(InputError, match="整改完成后"):
        await supervision.rate_case(
            session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=5, round=2
        )
    assert [a.outcome for a in await actions(session, "rating.create")] == ["ok", "refused", "refused"]


async def test_fix_lets_the_applicant_rate_once_more(
    session: AsyncSession,
    catalog: Catalog,
    calendar: WorkCalendar,
    srender: SupervisionRecorder,
    staffed: None,
) -> None:
    case = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    assert case.id is not None
    made = await supervision.rate_case(
        session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=2, now=china(2026, 10, 19)
    )
    assert made.rectification is not None
    number = made.rectification.number
    with pytest.raises(supervision.Forbidden, match="没有这张整改工单"):  # another department's staff
        await supervision.record_callback(session=session, number=number, actor="staff:9", scope="wsjk")
    await supervision.record_callback(
        session=session, number=number, actor="staff:7001", scope="scjg", now=china(2026, 10, 20)
    )
    with pytest.raises(InputError, match="太短"):
        await supervision.record_fix(
            session=session, number=number, actor="staff:7001", scope="scjg", note="好"
        )
    await supervision.record_fix(
        session=session,
        number=number,
        actor="staff:7001",
        scope="scjg",
        note="已向申请人说明材料要求并更新窗口告知单",
        render=srender,
        now=china(2026, 10, 22),
    )
    again = await notices(session, "rating_again")
    assert [n.chat_id for n in again] == [CITIZEN_CHAT]
    second = await supervision.rate_case(
        session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=4, round=2
    )
    assert second.rectification is None
    with pytest.raises(InputError, match="已再次评价"):
        await supervision.rate_case(
            session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=5, round=2
        )
    with pytest.raises(InputError, match="最多评价两次"):
        await supervision.rate_case(
            session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=5, round=3
        )


async def test_only_the_subscribed_applicant_rates_and_only_a_decided_case(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    assert case.id is not None
    with pytest.raises(InputError, match="只有关注了该办件的申请人"):
        await supervision.rate_case(session=session, number=case.number, chat_id=123, stars=5)
    with pytest.raises(InputError, match="1 到 5"):
        await supervision.rate_case(session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=6)
    made = await crud.create_case(
        session=session,
        catalog=catalog,
        item_name=HYGIENE,
        applicant_name="李四",
        phone="13912345678",
        channel="window",
        calendar=calendar,
    )
    await crud.subscribe(session=session, case=made.case, chat_id=CITIZEN_CHAT)
    assert made.case.id is not None
    with pytest.raises(InputError, match="办结后才能评价"):
        await supervision.rate_case(session=session, number=made.case.number, chat_id=CITIZEN_CHAT, stars=5)


async def test_rating_remarks_are_masked_and_only_the_rater_adds_them(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    assert case.id is not None
    made = await supervision.rate_case(session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=3)
    assert made.rating.id is not None
    with pytest.raises(InputError):
        await supervision.set_rating_reason(
            session=session, rating_id=made.rating.id, chat_id=1, reason="eff"
        )
    await supervision.set_rating_reason(
        session=session, rating_id=made.rating.id, chat_id=CITIZEN_CHAT, reason="run"
    )
    rating = await supervision.set_rating_text(
        session=session,
        rating_id=made.rating.id,
        chat_id=CITIZEN_CHAT,
        text="跑了三趟，电话13812345678没人接",
    )
    assert rating.reason == "run"
    assert rating.text == "跑了三趟，电话138****5678没人接"


async def test_complaint_lifecycle_every_step_audited_and_told(
    session: AsyncSession,
    catalog: Catalog,
    calendar: WorkCalendar,
    srender: SupervisionRecorder,
    staffed: None,
) -> None:
    c = await supervision.file_complaint(
        session=session,
        chat_id=CITIZEN_CHAT,
        department=None,
        text="窗口中午不办理业务，白跑一趟",
        photos=["photo-1"],
        render=srender,
        now=china(2026, 10, 9),
        calendar=calendar,
    )
    assert c.number.startswith("TS261009")
    assert c.promised_reply_date == dt.date(2026, 10, 15)  # 5 working days, the 调休 Saturday included
    await supervision.assign_complaint(
        session=session, number=c.number.lower(), department="scjg", actor="staff:7002", render=srender
    )
    with pytest.raises(InputError, match="收到答复后"):
        await supervision.follow_up_complaint(
            session=session, number=c.number, chat_id=CITIZEN_CHAT, text="还没人理"
        )
    with pytest.raises(supervision.Forbidden, match="没有这张投诉工单"):  # staff of another department
        await supervision.reply_complaint(
            session=session, number=c.number, text="已核实情况", actor="staff:9", scope="wsjk"
        )
    await supervision.reply_complaint(
        session=session,
        number=c.number,
        text="已核实，中午设有值班窗口，已加强告知",
        actor="staff:7001",
        scope="scjg",
        render=srender,
    )
    with pytest.raises(supervision.Forbidden, match="没有这张投诉工单"):  # someone else's ticket
        await supervision.follow_up_complaint(session=session, number=c.number, chat_id=1, text="我也有意见")
    await supervision.follow_up_complaint(
        session=session, number=c.number, chat_id=CITIZEN_CHAT, text="值班窗口在哪？", render=srender
    )
    with pytest.raises(InputError, match="只能补充说明一次"):
        await supervision.follow_up_complaint(
            session=session, number=c.number, chat_id=CITIZEN_CHAT, text="再问一次"
        )
    closed = await supervision.close_complaint(
        session=session, number=c.number, outcome="已答复并整改", actor="staff:7002", render=srender
    )
    assert closed.status == "closed"
    with pytest.raises(InputError, match="已办结"):
        await supervision.reply_complaint(
            session=session, number=c.number, text="再答复一次看看", actor="staff:7002"
        )

    assert srender.kinds() == [
        "complaint_new",
        "complaint_assigned",
        "complaint_reply",
        "complaint_follow_up",
        "complaint_closed",
    ]
    told = [(n.chat_id, n.text) for n in await notices(session, "complaint")]
    assert told == [
        (ADMIN, "complaint_new"),
        (DEPT_STAFF, "complaint_assigned"),
        (CITIZEN_CHAT, "complaint_reply"),
        (ADMIN, "complaint_follow_up"),
        (DEPT_STAFF, "complaint_follow_up"),
        (CITIZEN_CHAT, "complaint_closed"),
    ]
    audited = {a.action for a in (await session.exec(select(AuditLog))).all()}
    assert {
        "complaint.create",
        "complaint.assign",
        "complaint.reply",
        "complaint.follow_up",
        "complaint.close",
    } <= audited


async def test_complaint_text_is_checked_and_masked(session: AsyncSession, calendar: WorkCalendar) -> None:
    with pytest.raises(InputError, match="太短"):
        await supervision.file_complaint(session=session, chat_id=1, department=None, text=" 差 ")
    with pytest.raises(InputError, match="最多附 3 张"):
        await supervision.file_complaint(
            session=session, chat_id=1, department=None, text="态度很差很差", photos=["a"] * 4
        )
    c = await supervision.file_complaint(
        session=session,
        chat_id=1,
        department="scjg",
        text="身份证110101199003071234被窗口复印了两次",
        calendar=calendar,
    )
    stored = (await session.exec(select(Complaint))).one()
    assert "110101199003071234" not in stored.text and c.department == "scjg"


async def test_announcement_queues_one_notice_per_subscribed_chat(
    session: AsyncSession, srender: SupervisionRecorder
) -> None:
    for chat in (11, 12, 13):
        assert await supervision.subscribe_news(session=session, chat_id=chat)
    assert not await supervision.subscribe_news(session=session, chat_id=12)  # already
    assert await supervision.unsubscribe_news(session=session, chat_id=13)
    assert not await supervision.unsubscribe_news(session=session, chat_id=13)
    ann = await supervision.publish_announcement(
        session=session, text="国庆期间窗口安排", user_id=ADMIN, render=srender
    )
    assert ann.recipients == 2
    assert sorted(n.chat_id for n in await notices(session, "announcement")) == [11, 12]
    with pytest.raises(InputError, match="不能为空"):
        await supervision.publish_announcement(session=session, text="  ", user_id=ADMIN, render=srender)
    latest = await supervision.latest_announcements(session=session)
    assert [a.text for a in latest] == ["国庆期间窗口安排"]


async def test_unrated_case_gets_a_single_reminder_three_days_later(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, srender: SupervisionRecorder
) -> None:
    quiet = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    rated = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    assert rated.id is not None
    await supervision.rate_case(session=session, number=rated.number, chat_id=CITIZEN_CHAT, stars=5)
    early = await supervision.send_rating_reminders(session=session, render=srender, now=china(2026, 10, 18))
    assert early == 0  # two days after closing
    sent = await supervision.send_rating_reminders(
        session=session, render=srender, now=china(2026, 10, 19, 11)
    )
    assert sent == 1
    again = await supervision.send_rating_reminders(session=session, render=srender, now=china(2026, 10, 20))
    assert again == 0
    assert [(n.case_id, n.chat_id) for n in await notices(session, "rating_reminder")] == [
        (quiet.id, CITIZEN_CHAT)
    ]


async def test_dismissed_question_leaves_the_list_attached_one_is_dropped(session: AsyncSession) -> None:
    for text in ("开奶茶店要什么证", "开奶茶店要什么证", "怎么办护照", "附近哪家饭馆好吃"):
        await record_unanswered(session=session, text=text)
    await session.commit()
    top = await supervision.open_questions(session=session)
    assert [q.text for q in top][0] == "开奶茶店要什么证"
    food = next(q for q in top if "饭馆" in q.text)
    await supervision.dismiss_question(session=session, question_id=food.id or 0, actor="staff:1")
    tea = top[0]
    await supervision.mark_question_attached(
        session=session, question_id=tea.id or 0, item="食品经营许可证核发", alias=tea.text, actor="staff:1"
    )
    assert [q.text for q in await supervision.open_questions(session=session)] == ["怎么办护照"]
    await record_unanswered(session=session, text="附近哪家饭馆好吃")  # asked again: stays dismissed
    await session.commit()
    assert [q.text for q in await supervision.open_questions(session=session)] == ["怎么办护照"]
    assert (await actions(session, "catalog.alias"))[0].details == {
        "alias": "开奶茶店要什么证",
        "question_id": tea.id,
    }


async def test_rectification_list_is_per_department(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    food = await finished_case(
        session, catalog, calendar, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    other = await finished_case(
        session, catalog, calendar, item=HYGIENE, accepted=china(2026, 10, 12), finished=china(2026, 10, 16)
    )
    for case in (food, other):
        assert case.id is not None
        await supervision.rate_case(session=session, number=case.number, chat_id=CITIZEN_CHAT, stars=1)
    mine = await supervision.list_rectifications(session=session, department="scjg")
    assert [line.case_number for line in mine] == [food.number]
    assert len(await supervision.list_rectifications(session=session, department=None)) == 2
    assert (await session.exec(select(Rectification))).all()


async def test_a_missing_ticket_is_a_mistake_another_departments_is_forbidden(
    session: AsyncSession, staffed: None
) -> None:
    """Both get the same words; only the missing one is recorded here. The permission refusal is
    recorded once, as "denied", by the handler that knows who pressed (tests/security)."""
    c = await supervision.file_complaint(
        session=session, chat_id=CITIZEN_CHAT, department="scjg", text="窗口中午不办理业务，白跑一趟"
    )
    await supervision.assign_complaint(
        session=session, number=c.number, department="scjg", actor="staff:7002"
    )
    with pytest.raises(InputError, match="^没有这张投诉工单$") as missing:
        await supervision.reply_complaint(
            session=session, number="TS000000XXXX", text="已核实情况", actor="staff:7001", scope="scjg"
        )
    assert not isinstance(missing.value, supervision.Forbidden)
    with pytest.raises(supervision.Forbidden, match="^没有这张投诉工单$") as foreign:
        await supervision.reply_complaint(
            session=session, number=c.number, text="已核实情况", actor="staff:9", scope="wsjk"
        )
    assert (foreign.value.action, foreign.value.target) == ("complaint.reply", c.number)
    rows = [(a.actor, a.outcome) for a in await actions(session, "complaint.reply")]
    assert rows == [("staff:7001", "refused")]
    refreshed = await supervision.get_complaint(session=session, number=c.number)
    assert refreshed is not None and refreshed.reply is None
