"""The supervision flows in the bot, through the production dispatcher: what the citizen, the
department and the management office see, and what lands in the database and the outbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.notices_render import make_notice_renderer
from bot.supervision_render import AdminCb, RateCb
from bot.templates import date_text
from knowledge.loader import load_catalog
from knowledge.schema import Catalog
from models import crud
from models.audit import AuditLog
from models.cases import utc_now
from models.feedback import Complaint, Rating, Rectification
from models.notices import Notice
from models.questions import record_unanswered
from models.workdays import default_calendar, local_date
from tests.conftest import BOT_CATALOG, BotHarness, HarnessMaker

CITIZEN, ADMIN, DEPT = 501, 8001, 8002
FOOD = "食品经营许可证核发"

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


@pytest.fixture
async def staff(db: Db, bot_catalog: Catalog) -> None:
    async with db[1]() as s:
        await crud.add_staff(session=s, catalog=bot_catalog, user_id=ADMIN, name="管理员", role="admin")
        await crud.add_staff(
            session=s, catalog=bot_catalog, user_id=DEPT, name="周立", role="department", department="scjg"
        )


async def decided_case(db: Db, catalog: Catalog, templates: Environment, outcome: str = "completed") -> str:
    """A case of CITIZEN's, decided now; its notice (with the rating buttons) is in the outbox."""
    async with db[1]() as s:
        made = await crud.create_case(
            session=s,
            catalog=catalog,
            item_name=FOOD,
            applicant_name="张三",
            phone="13812345678",
            channel="window",
        )
        number = made.case.number
        await crud.subscribe(session=s, case=made.case, chat_id=CITIZEN)
        for n, status in enumerate(["in_review", outcome]):
            result = await crud.apply_event(
                session=s,
                number=number,
                status=status,
                actor="staff:1",
                event_id=f"{number}-{n}",
                catalog=catalog,
                render=make_notice_renderer(templates),
                note="材料不符合要求",
            )
            assert result.applied, result.reason
    return number


async def outbox(db: Db, kind: str | None = None, chat_id: int | None = None) -> list[Notice]:
    async with db[1]() as s:
        q = select(Notice).order_by(col(Notice.id))
        if kind:
            q = q.where(col(Notice.kind) == kind)
        if chat_id:
            q = q.where(col(Notice.chat_id) == chat_id)
        return list((await s.exec(q)).all())


def button(notice: Notice, label: str) -> str:
    assert notice.reply_markup, "notice has no buttons"
    for row in notice.reply_markup["inline_keyboard"]:
        for b in row:
            if b["text"] == label:
                return str(b["callback_data"])
    raise AssertionError(f"no button {label!r} under notice {notice.kind}")


# ---------------------------------------------------------------- rating


async def test_completion_notice_carries_the_five_levels(
    db: Db, bot_catalog: Catalog, templates: Environment
) -> None:
    await decided_case(db, bot_catalog, templates)
    completed = (await outbox(db, "completed"))[0]
    labels = [b["text"] for row in completed.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels == ["★5 非常满意", "★4 满意", "★3 基本满意", "★2 不满意", "★1 非常不满意"]
    rejected_number = await decided_case(db, bot_catalog, templates, outcome="rejected")
    rejected = (await outbox(db, "rejected"))[0]
    assert rejected_number in rejected.text and button(rejected, "★1 非常不满意")


async def test_bad_rating_tells_the_deadlines_then_reason_and_remark(
    harness: BotHarness, db: Db, bot_catalog: Catalog, templates: Environment, staff: None
) -> None:
    await decided_case(db, bot_catalog, templates)
    notice = (await outbox(db, "completed"))[0]
    await harness.press_data(button(notice, "★1 非常不满意"))
    text = harness.text()
    assert "感谢您的评价" in text and "★1 非常不满意" in text
    today = local_date(utc_now())
    callback_due, fix_due = (default_calendar().add_workdays(today, n).due for n in (1, 15))
    assert "县市场监督管理局整改" in text
    assert f"{date_text(callback_due)}前回访您" in text and f"{date_text(fix_due)}前完成整改" in text
    assert harness.buttons() == ["办事效率", "服务态度", "材料要求不清", "多次跑腿", "其他", "跳过"]
    assert [n.chat_id for n in await outbox(db, "rectification")] == [DEPT]

    await harness.press("多次跑腿")
    assert "已记录原因：多次跑腿" in harness.text()
    await harness.say("同一份材料让我跑了三趟，电话 13812345678")
    assert "您的评价已记录" in harness.text()
    async with db[1]() as s:
        rating = (await s.exec(select(Rating))).one()
        assert (rating.stars, rating.reason) == (1, "run")
        assert rating.text == "同一份材料让我跑了三趟，电话 138****5678"
        assert (await s.exec(select(Rectification))).one().department == "scjg"

    await harness.press_data(button(notice, "★5 非常满意"))  # a second rating
    assert "该件已评价过，不能重复评价" in harness.text()
    async with db[1]() as s:
        assert len((await s.exec(select(Rating))).all()) == 1


async def test_someone_else_cannot_rate_the_case(
    make_harness: HarnessMaker, db: Db, bot_catalog: Catalog, templates: Environment
) -> None:
    await decided_case(db, bot_catalog, templates)
    notice = (await outbox(db, "completed"))[0]
    stranger = make_harness(user_id=999)
    await stranger.press_data(button(notice, "★1 非常不满意"))
    said = stranger.text()
    assert "只有关注了该办件的申请人可以评价" in said
    await stranger.press_data(RateCb(c="YC260101ABCDEFGH0", s=1).pack())
    assert stranger.text() == said  # a number that does not exist: the very same words
    async with db[1]() as s:
        assert (await s.exec(select(Rating))).all() == []
        denied = (await s.exec(select(AuditLog).where(col(AuditLog.outcome) == "denied"))).all()
    assert [(a.actor, a.action) for a in denied] == [("tg:999", "citizen.denied")] * 2


async def test_after_the_fix_the_applicant_rates_once_more(
    make_harness: HarnessMaker, db: Db, bot_catalog: Catalog, templates: Environment, staff: None
) -> None:
    citizen = make_harness()
    await decided_case(db, bot_catalog, templates)
    await citizen.press_data(button((await outbox(db, "completed"))[0], "★2 不满意"))
    await citizen.press("跳过")
    await citizen.press("不用了")

    dept = BotHarness(citizen.dp, user_id=DEPT)
    await dept.say("/tickets")
    assert "差评整改" in dept.text() and "★2" in dept.text()
    number = next(b for b in dept.buttons() if b.startswith("已回访")).split()[1]
    await dept.press(f"已回访 {number}")
    assert f"已登记回访：{number}" in dept.alerts()
    await dept.press(f"登记整改 {number}")
    assert "整改情况" in dept.text()
    await dept.say("已统一窗口告知单，并对窗口人员进行了培训")
    assert f"已登记整改：{number}" in dept.text()

    again = (await outbox(db, "rating_again", CITIZEN))[0]
    assert "已统一窗口告知单" in again.text
    await citizen.press_data(button(again, "★4 满意"))
    assert "感谢您的评价" in citizen.text()
    await citizen.press_data(button(again, "★5 非常满意"))
    assert "整改后已再次评价过" in citizen.text()


async def test_stale_remark_prompt_lets_the_question_through(
    harness: BotHarness, db: Db, bot_catalog: Catalog, templates: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    await decided_case(db, bot_catalog, templates)
    await harness.press_data(button((await outbox(db, "completed"))[0], "★5 非常满意"))
    await harness.press("服务态度")
    import handlers.feedback as fb

    monkeypatch.setattr(fb, "TEXT_TTL", -1)  # the prompt is long past
    await harness.say("结婚登记要带什么")
    assert "双方户口簿" in harness.text()  # answered as a question, not stored as a remark
    async with db[1]() as s:
        assert (await s.exec(select(Rating))).one().text is None


# ---------------------------------------------------------------- complaints


async def test_complaint_with_photo_gets_ticket_and_promised_date(
    harness: BotHarness, db: Db, staff: None
) -> None:
    await harness.say("/complain")
    assert "县市场监督管理局" in harness.buttons() and "不清楚" in harness.buttons()
    await harness.press("县市场监督管理局")
    assert "请写下您要投诉或建议的内容" in harness.text()
    await harness.say("差")
    assert "太短" in harness.text()
    await harness.say("10月9日上午在A01窗口排队两小时，工作人员说系统坏了让我下午再来")
    assert "如有照片可以现在发送" in harness.text()
    await harness.say(None, photo=[{"file_id": "photo-1", "file_unique_id": "u1", "width": 90, "height": 90}])
    assert "已收到照片 1 张" in harness.text()
    await harness.press("提交")
    text = harness.text()
    assert "投诉建议已受理" in text and "工单号：TS" in text and "前通过本对话答复您" in text
    async with db[1]() as s:
        c = (await s.exec(select(Complaint))).one()
    assert (c.department, c.photos, c.status) == ("scjg", ["photo-1"], "open")
    assert c.number in text
    assert [n.chat_id for n in await outbox(db, "complaint")] == [ADMIN]


async def test_complaint_cancel_files_nothing(harness: BotHarness, db: Db) -> None:
    await harness.say("/complain")
    await harness.press("不清楚")
    await harness.say("大厅空调太冷了，建议调高温度")
    await harness.press("取消")
    assert "已取消" in harness.text()
    async with db[1]() as s:
        assert (await s.exec(select(Complaint))).all() == []


async def test_admin_assigns_replies_citizen_answers_back_once_admin_closes(
    make_harness: HarnessMaker, db: Db, staff: None
) -> None:
    citizen = make_harness()
    await citizen.say("/complain")
    await citizen.press("不清楚")
    await citizen.say("办事大厅没有饮水机，老人排队很辛苦")
    await citizen.press("提交")

    admin = BotHarness(citizen.dp, user_id=ADMIN)
    await admin.say("/complaints")
    assert "未指明部门" in admin.text()
    number = admin.buttons()[0].split()[0]
    await admin.press(admin.buttons()[0])
    assert "办事大厅没有饮水机" in admin.text()
    await admin.press("转办")
    await admin.press("县市场监督管理局")
    assert [n.chat_id for n in await outbox(db, "complaint")][-1] == DEPT
    await admin.press("答复")
    await admin.say("已在大厅东侧增设饮水机和休息座椅")
    assert f"已答复工单 {number}" in admin.text()

    reply = (await outbox(db, "complaint", CITIZEN))[0]
    assert "已在大厅东侧增设饮水机" in reply.text
    await citizen.press_data(button(reply, "补充说明"))
    await citizen.say("座椅不够，周一上午人多")
    assert "已收到您的补充说明" in citizen.text()
    await citizen.press_data(button(reply, "补充说明"))
    assert "每张工单只能补充说明一次" in citizen.text()

    await admin.say("/complaints")
    await admin.press(admin.buttons()[0])
    assert "座椅不够" in admin.text()
    await admin.press("办结")
    await admin.say("已增加座椅 10 把，周一上午增开一个窗口")
    closed = (await outbox(db, "complaint", CITIZEN))[-1]
    assert "办理结果：已增加座椅 10 把" in closed.text
    async with db[1]() as s:
        actions = {a.action for a in (await s.exec(select(AuditLog))).all()}
    assert {
        "complaint.create",
        "complaint.assign",
        "complaint.reply",
        "complaint.follow_up",
        "complaint.close",
    } <= actions


async def test_a_ticket_passed_elsewhere_meanwhile_refuses_the_typed_reply_and_audits_it(
    make_harness: HarnessMaker, db: Db, staff: None
) -> None:
    """The department opened the reply prompt; before it typed, the office passed the ticket to
    消防. The text reaches no one, the attempt is recorded, and the prompt is over."""
    citizen = make_harness()
    await citizen.say("/complain")
    await citizen.press("县市场监督管理局")
    await citizen.say("窗口工作人员态度生硬，材料说明不清楚")
    await citizen.press("提交")
    async with db[1]() as s:
        number = (await s.exec(select(Complaint))).one().number
    admin = BotHarness(citizen.dp, user_id=ADMIN)
    await admin.press_data(AdminCb(act="ad", n=number, d="scjg").pack())
    dept = BotHarness(citizen.dp, user_id=DEPT)
    await dept.press_data(AdminCb(act="re", n=number).pack())
    assert "请写下对工单" in dept.text()
    await admin.press_data(AdminCb(act="ad", n=number, d="xf").pack())
    await dept.say("已核实，已对窗口人员进行批评教育")
    assert dept.text() == "没有这张投诉工单"
    await dept.say("结婚登记要带什么")  # the prompt is over: a question again
    assert "双方户口簿" in dept.text()
    async with db[1]() as s:
        c = (await s.exec(select(Complaint))).one()
        denied = (await s.exec(select(AuditLog).where(col(AuditLog.outcome) == "denied"))).all()
    assert (c.reply, c.assigned_department) == (None, "xf")
    assert await outbox(db, "complaint", CITIZEN) == []
    assert [(a.actor, a.target, (a.details or {}).get("attempt")) for a in denied] == [
        (f"tg:{DEPT}", number, "complaint.reply")
    ]


async def test_someone_elses_answer_back_button_is_refused_and_audited(
    make_harness: HarnessMaker, db: Db, staff: None
) -> None:
    citizen = make_harness()
    await citizen.say("/complain")
    await citizen.press("不清楚")
    await citizen.say("办事大厅没有饮水机，老人排队很辛苦")
    await citizen.press("提交")
    async with db[1]() as s:
        number = (await s.exec(select(Complaint))).one().number
    admin = BotHarness(citizen.dp, user_id=ADMIN)
    await admin.press_data(AdminCb(act="re", n=number).pack())
    await admin.say("已在大厅东侧增设饮水机和休息座椅")
    reply = (await outbox(db, "complaint", CITIZEN))[0]
    stranger = BotHarness(citizen.dp, user_id=999)
    await stranger.press_data(button(reply, "补充说明"))  # a forwarded reply
    assert stranger.text() == "没有这张投诉工单"
    await stranger.say("我也觉得座椅不够")  # no prompt was opened for them
    async with db[1]() as s:
        assert (await s.exec(select(Complaint))).one().follow_up is None
        denied = (await s.exec(select(AuditLog).where(col(AuditLog.outcome) == "denied"))).all()
    assert [(a.actor, a.action, a.target) for a in denied] == [("tg:999", "citizen.denied", number)]


# ---------------------------------------------------------------- admin gate


@pytest.mark.parametrize(
    "command", ["/complaints", "/announce 明天停电", "/report", "/unanswered", "/tickets"]
)
async def test_citizens_are_refused_admin_commands(harness: BotHarness, db: Db, command: str) -> None:
    await harness.say(command)
    assert "只对中心工作人员开放" in harness.text()
    async with db[1]() as s:
        denied = (await s.exec(select(AuditLog).where(col(AuditLog.action) == "staff.denied"))).all()
    assert len(denied) == 1


@pytest.mark.parametrize("command", ["/complaints", "/announce 明天停电", "/report", "/unanswered"])
async def test_department_staff_are_refused_admin_only_commands(
    make_harness: HarnessMaker, staff: None, command: str
) -> None:
    dept = make_harness(user_id=DEPT)
    await dept.say(command)
    assert "只对中心管理员开放" in dept.text()


async def test_forged_admin_button_is_refused(harness: BotHarness) -> None:
    await harness.press_data(AdminCb(act="pub").pack())
    assert harness.alerts() and "只对中心工作人员开放" in harness.alerts()[0]


# ---------------------------------------------------------------- announcements and news


async def test_announcement_preview_confirm_one_outbox_row_per_subscriber(
    make_harness: HarnessMaker, db: Db, staff: None
) -> None:
    dp = make_harness().dp
    for uid in (601, 602, 603):
        reader = BotHarness(dp, user_id=uid)
        await reader.say("/subscribe_news")
        assert "已订阅中心公告" in reader.text()
    leaver = BotHarness(reader.dp, user_id=603)
    await leaver.say("/unsubscribe_news")
    assert "已退订" in leaver.text()

    admin = BotHarness(reader.dp, user_id=ADMIN)
    await admin.say("/announce")
    assert "请发送公告内容" in admin.text()
    await admin.say("国庆期间 10 月 1 日至 7 日休息，10 月 10 日（星期六）正常上班")
    texts = admin.texts()
    assert "预览" in texts[0] and "10 月 10 日（星期六）正常上班" in texts[1]
    assert await outbox(db, "announcement") == []  # nothing goes out before confirmation
    await admin.press("确认发布")
    assert "正在陆续发送给 2 位订阅者" in admin.text()
    queued = await outbox(db, "announcement")
    assert sorted(n.chat_id for n in queued) == [601, 602]
    assert all(n.status == "pending" for n in queued)  # the delivery worker sends, paced
    await admin.press("确认发布")  # pressed again: the draft is gone
    assert len(await outbox(db, "announcement")) == 2

    reader = BotHarness(reader.dp, user_id=604)
    await reader.say("/news")
    assert "10 月 10 日（星期六）正常上班" in reader.text()


async def test_announcement_cancel_sends_nothing(make_harness: HarnessMaker, db: Db, staff: None) -> None:
    reader = make_harness(user_id=601)
    await reader.say("/subscribe_news")
    admin = BotHarness(reader.dp, user_id=ADMIN)
    await admin.say("/announce 明天上午系统维护")
    await admin.press("取消")
    assert "没有发布" in admin.text()
    assert await outbox(db, "announcement") == []


async def test_news_when_empty(harness: BotHarness) -> None:
    await harness.say("/news")
    assert "暂时没有公告" in harness.text()


# ---------------------------------------------------------------- /report


async def test_report_sends_chart_and_html_document(
    make_harness: HarnessMaker, db: Db, bot_catalog: Catalog, templates: Environment, staff: None
) -> None:
    await decided_case(db, bot_catalog, templates)
    admin = make_harness(user_id=ADMIN)
    await admin.say("/report")
    photos, docs = admin.calls("SendPhoto"), admin.calls("SendDocument")
    assert len(photos) == 1 and len(docs) == 1
    assert photos[0].photo.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "办结 1 件" in photos[0].caption and "按时办结率 100.0%" in photos[0].caption
    assert docs[0].document.filename.startswith("report-") and docs[0].document.filename.endswith(".html")
    assert "窗口考评" in docs[0].document.data.decode("utf-8")
    await admin.say("/report 2026-13")
    assert "格式如" in admin.text()


# ---------------------------------------------------------------- /unanswered


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Catalog:
    shutil.copytree(BOT_CATALOG, tmp_path / "catalog")
    return load_catalog(tmp_path / "catalog")


async def test_attach_question_as_alias_updates_file_and_running_matcher(
    make_harness: HarnessMaker, db: Db, catalog_copy: Catalog, staff: None
) -> None:
    question = "开奶茶店要办什么许可"
    async with db[1]() as s:
        for _ in range(3):
            await record_unanswered(session=s, text=question)
        await record_unanswered(session=s, text="附近哪家饭馆好吃")
        await s.commit()
    admin = make_harness(user_id=ADMIN, catalog=catalog_copy)
    await admin.say("/unanswered")
    assert f"1. {question}（3 次" in admin.text()
    await admin.press("忽略 2")
    assert "附近哪家饭馆好吃" not in admin.text()
    await admin.press("归入事项 1")
    assert "归入哪个事项" in admin.text()
    await admin.press(FOOD)
    assert f"已把“{question}”加为「{FOOD}」的常用说法" in admin.text()

    saved = (Path(catalog_copy.root or "") / "items" / "scjg.yaml").read_text(encoding="utf-8")
    before = (BOT_CATALOG / "items" / "scjg.yaml").read_text(encoding="utf-8")
    # Only that one line changed: the rest of the hand-edited file is kept as it was.
    old_line = "  aliases: [食品许可证, 餐饮许可证]"
    assert saved == before.replace(old_line, f"  aliases: [食品许可证, 餐饮许可证, {question}]", 1)
    assert load_catalog(catalog_copy.root).item(FOOD).aliases[-1] == question  # type: ignore[union-attr]

    citizen = BotHarness(admin.dp, user_id=777)
    await citizen.say(question)
    assert FOOD in citizen.text() and "营业执照" in citizen.text()  # the running bot now answers
    await admin.say("/unanswered")
    assert "目前没有待处理的问题" in admin.text()
    async with db[1]() as s:
        logged = (await s.exec(select(AuditLog).where(col(AuditLog.action) == "catalog.alias"))).one()
    assert logged.target == FOOD


async def test_daily_job_reminds_an_unrated_case_once_and_the_reminder_rates(
    harness: BotHarness, db: Db, bot_catalog: Catalog, templates: Environment
) -> None:
    import datetime as dt

    from bot.supervision_render import queue_rating_reminders

    number = await decided_case(db, bot_catalog, templates)
    later = utc_now() + dt.timedelta(days=3, minutes=1)
    kw = {"factory": db[1], "catalog": bot_catalog, "templates": templates}
    assert await queue_rating_reminders(**kw, now=utc_now() + dt.timedelta(days=2)) == 0  # type: ignore[arg-type]
    assert await queue_rating_reminders(**kw, now=later) == 1  # type: ignore[arg-type]
    assert await queue_rating_reminders(**kw, now=later + dt.timedelta(days=1)) == 0  # type: ignore[arg-type]
    reminder = (await outbox(db, "rating_reminder"))[0]
    assert reminder.chat_id == CITIZEN and number in reminder.text and "邀请您评价" in reminder.text
    await harness.press_data(button(reminder, "★4 满意"))
    assert "感谢您的评价" in harness.text() and "整改" not in harness.text()


async def test_a_command_while_writing_a_complaint_is_answered_and_drops_the_draft(
    harness: BotHarness, db: Db
) -> None:
    await harness.say("/complain")
    await harness.press("不清楚")
    await harness.say("/center")
    assert "测试县新城路 1 号" in harness.text()
    await harness.say("结婚登记要带什么")  # a question again, not complaint text
    assert "双方户口簿" in harness.text()
    async with db[1]() as s:
        assert (await s.exec(select(Complaint))).all() == []


async def test_a_command_ends_a_pending_remark_prompt(
    harness: BotHarness, db: Db, bot_catalog: Catalog, templates: Environment
) -> None:
    await decided_case(db, bot_catalog, templates)
    await harness.press_data(button((await outbox(db, "completed"))[0], "★4 满意"))
    await harness.press("其他")
    await harness.say("/help")
    assert "怎么用" in harness.text()
    await harness.say("结婚登记要带什么")
    assert "双方户口簿" in harness.text()
    async with db[1]() as s:
        assert (await s.exec(select(Rating))).one().text is None
