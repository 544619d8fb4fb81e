"""Access control as a table: every staff and admin action, tried by a citizen, by staff of another
department and by a disabled staff member, is refused with a plain reply, changes nothing and leaves
exactly one "denied" audit row; so is an applicant's 我已知晓 pressed by someone else. The API refuses
requests without the right token. Guessing case numbers reveals nothing and locks the guesser out."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.api import API_PREFIX, ApiContext, build_app
from bot.supervision_render import AdminCb
from handlers.admin import ADMIN_COMMANDS, STAFF_COMMANDS
from handlers.staff import StaffCb
from knowledge.schema import Catalog
from models.audit import AuditLog
from models.cases import new_case_number
from models.crud import add_staff, disable_staff, get_case, subscribe
from models.feedback import Complaint, Rectification
from models.lockout import MAX_FAILURES
from models.notices import Notice
from models.supervision import (
    NO_COMPLAINT,
    NO_RECTIFICATION,
    assign_complaint,
    file_complaint,
    get_rectification,
    rate_case,
)
from tests.cases_handlers.conftest import FACTOR, FOOD
from tests.conftest import BotHarness, HarnessMaker

Maker = Callable[..., Awaitable[Any]]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]

CITIZEN, OTHER_DEPT, DISABLED, OWNER, APPLICANT, ADMIN = 601, 602, 603, 604, 605, 606
STAFF_DENIED = "该功能仅限中心工作人员使用。"
ADMIN_DENIED = {
    "这项功能只对中心工作人员开放。如需投诉或建议，请发送 /complain。",
    "这项功能只对中心管理员开放。",
}
NOT_YOURS = "没有找到这个办件，或不属于您所在部门。"
ACK_DENIED = "这个按钮只对收到该通知的申请人有效。"


def staff_buttons(number: str, version: int) -> list[str]:
    """Every staff button of handlers/staff.py, as forged callback data for a real case."""
    acts = [
        StaffCb(act="list"),
        StaffCb(act="open", n=number),
        StaffCb(act="back", n=number),
        StaffCb(act="ask", n=number, s="completed", v=version),
        StaffCb(act="fix", n=number, s="correction_required", v=version),
        StaffCb(act="rej", n=number, s="rejected", v=version),
        StaffCb(act="tog", n=number, v=version, i=0),
        StaffCb(act="txt", n=number, v=version),
        StaffCb(act="send", n=number, v=version),
    ]
    acts += [
        StaffCb(act="do", n=number, s=s, v=version)
        for s in ("in_review", "correction_required", "completed", "rejected", "picked_up")
    ]
    return [a.pack() for a in acts]


# Admin-only buttons (supervision); the department-scoped ones (tickets, complaint views) are
# covered for citizens and disabled staff, who may use none of them.
ADMIN_ONLY_ACTS = ("list", "as", "ad", "cl", "pub", "x", "qd", "qa", "qb", "qi")
STAFF_ACTS = ("tk", "c", "ph", "re", "rf", "rc")


def admin_buttons(acts: tuple[str, ...]) -> list[str]:
    return [AdminCb(act=a, n="TS260101AAAA", d="scjg", i=1, k=0).pack() for a in acts]


async def denied_rows(db: DB, actor: str) -> int:
    async with db[1]() as s:
        q = select(func.count()).select_from(AuditLog).where(col(AuditLog.actor) == actor)
        return int((await s.exec(q.where(col(AuditLog.outcome) == "denied"))).one())


async def notices(db: DB) -> int:
    async with db[1]() as s:
        return int((await s.exec(select(func.count()).select_from(Notice))).one())


async def case_state(db: DB, number: str) -> tuple[str, int]:
    async with db[1]() as s:
        case = await get_case(session=s, number=number)
        assert case is not None
        return case.status, case.version


async def everything(db: DB, number: str) -> tuple[Any, ...]:
    """What a refused action must leave as it was: the case, and every complaint and rectification
    ticket with the fields an action would write."""
    async with db[1]() as s:
        complaints = (await s.exec(select(Complaint).order_by(col(Complaint.id)))).all()
        rects = (await s.exec(select(Rectification).order_by(col(Rectification.id)))).all()
        return (
            await case_state(db, number),
            [(c.status, c.assigned_department, c.reply, c.outcome, c.updated_at) for c in complaints],
            [(r.status, r.handled_by, r.fix_note, r.updated_at) for r in rects],
        )


def replies(h: BotHarness) -> list[str]:
    return h.texts() + h.alerts()


@pytest.fixture
async def world(
    db: DB,
    make_harness: HarnessMaker,
    bot_catalog: Catalog,
    new_case: Maker,
    move: Maker,
    staff_member: Maker,
) -> dict[Any, Any]:
    """A 食品经营 case (县市场监督管理局), its department's staff member, one of 消防 (another
    department), one of the same department who gets disabled, and a citizen. The department also
    has a complaint passed to it and a rectification ticket (a ★1 rating of another finished case)."""
    number = str((await new_case(item=FOOD)).case.number)
    await staff_member(OWNER, department="scjg")
    await staff_member(OTHER_DEPT, department="xf")
    await staff_member(DISABLED, department="scjg")
    rated = (await new_case(item=FOOD)).case
    await move(rated.number, "in_review")
    await move(rated.number, "completed")
    async with db[1]() as s:
        await add_staff(session=s, catalog=bot_catalog, user_id=ADMIN, name="管理员", role="admin")
        await subscribe(session=s, case=rated, chat_id=APPLICANT)
        rect = (await rate_case(session=s, number=rated.number, chat_id=APPLICANT, stars=1)).rectification
        assert rect is not None and rect.department == "scjg"
        complaint = await file_complaint(
            session=s, chat_id=APPLICANT, department="scjg", text="窗口工作人员态度生硬，材料说明不清楚"
        )
        await assign_complaint(session=s, number=complaint.number, department="scjg", actor=f"staff:{ADMIN}")
    # One dispatcher for everyone (handler routers belong to the newest one built), one chat each.
    dp = make_harness().dp
    chats = {uid: BotHarness(dp, user_id=uid) for uid in (CITIZEN, OTHER_DEPT, DISABLED, OWNER)}
    disabled = chats[DISABLED]
    # Used once while active, so any per-user role cache holds "staff" when the account is disabled.
    await disabled.say("/cases")
    assert number in disabled.text()
    async with db[1]() as s:
        assert await disable_staff(session=s, user_id=DISABLED) is not None
    return {"number": number, "complaint": complaint.number, "rect": rect.number, **chats}


async def assert_refused(
    db: DB, h: BotHarness, actor: int, attempt: Callable[[], Awaitable[Any]], number: str, allowed: set[str]
) -> None:
    before, before_audit, before_notices = (
        await everything(db, number),
        await denied_rows(db, f"tg:{actor}"),
        await notices(db),
    )
    await attempt()
    said = replies(h)
    assert said and all(r in allowed for r in said), said
    assert await everything(db, number) == before
    assert await notices(db) == before_notices
    assert await denied_rows(db, f"tg:{actor}") == before_audit + 1


@pytest.mark.parametrize("actor", [CITIZEN, OTHER_DEPT, DISABLED], ids=["citizen", "other-dept", "disabled"])
async def test_staff_case_actions_are_refused_and_audited(db: DB, world: dict[Any, Any], actor: int) -> None:
    number = world["number"]
    h: BotHarness = world[actor]
    status, version = await case_state(db, number)
    # Another department's staff member is told "not yours" (they are staff, just not of this case).
    allowed = {STAFF_DENIED, NOT_YOURS} if actor == OTHER_DEPT else {STAFF_DENIED}
    for data in staff_buttons(number, version):
        if actor == OTHER_DEPT and data == StaffCb(act="list").pack():
            continue  # their own department's list: theirs to see
        await assert_refused(db, h, actor, partial(h.press_data, data), number, allowed)
    if actor != OTHER_DEPT:
        await assert_refused(db, h, actor, lambda: h.say("/cases"), number, allowed)


async def test_the_owning_department_can_do_what_the_others_cannot(db: DB, world: dict[Any, Any]) -> None:
    """The control for the table above: the same forged-looking button works for the right person."""
    number = world["number"]
    status, version = await case_state(db, number)
    h: BotHarness = world[OWNER]
    await h.press_data(StaffCb(act="do", n=number, s="in_review", v=version).pack())
    assert await case_state(db, number) == ("in_review", version + 1)


@pytest.mark.parametrize("actor", [CITIZEN, OTHER_DEPT, DISABLED], ids=["citizen", "other-dept", "disabled"])
async def test_admin_commands_and_buttons_are_refused_and_audited(
    db: DB, world: dict[Any, Any], templates: Environment, actor: int
) -> None:
    h: BotHarness = world[actor]
    number = world["number"]
    commands = ADMIN_COMMANDS if actor == OTHER_DEPT else ADMIN_COMMANDS + STAFF_COMMANDS
    acts = ADMIN_ONLY_ACTS if actor == OTHER_DEPT else ADMIN_ONLY_ACTS + STAFF_ACTS
    for command in commands:
        await assert_refused(db, h, actor, partial(h.say, f"/{command}"), number, ADMIN_DENIED)
    for data in admin_buttons(acts):
        await assert_refused(db, h, actor, partial(h.press_data, data), number, ADMIN_DENIED)


async def test_another_departments_tickets_are_refused_and_audited(db: DB, world: dict[Any, Any]) -> None:
    """消防 staff pressing the buttons of a complaint passed to 县市场监督管理局 and of its
    rectification ticket (forged or forwarded): the same words as for a ticket that does not exist,
    nothing changes, one "denied" row each; and no reply prompt is left open to type into."""
    h: BotHarness = world[OTHER_DEPT]
    complaint, rect = world["complaint"], world["rect"]
    presses = [AdminCb(act=a, n=complaint) for a in ("c", "ph", "re")]
    presses += [AdminCb(act=a, n=rect) for a in ("rf", "rc")]
    for cb in presses:
        allowed = {NO_COMPLAINT if cb.n == complaint else NO_RECTIFICATION}
        await assert_refused(db, h, OTHER_DEPT, partial(h.press_data, cb.pack()), world["number"], allowed)
    before = await everything(db, world["number"])
    await h.say("已核实情况，窗口已整改")  # not taken as a reply or a fix: just a question
    assert await everything(db, world["number"]) == before
    async with db[1]() as s:
        rows = (await s.exec(select(AuditLog).where(col(AuditLog.actor) == f"tg:{OTHER_DEPT}"))).all()
    attempts = [(r.action, r.target, (r.details or {}).get("attempt")) for r in rows]
    assert attempts == [
        ("staff.denied", complaint, "complaint.view"),
        ("staff.denied", complaint, "complaint.photos"),
        ("staff.denied", complaint, "complaint.reply"),
        ("staff.denied", rect, "rectification.fix"),
        ("staff.denied", rect, "rectification.callback"),
    ]


async def test_the_owning_department_works_its_tickets(db: DB, world: dict[Any, Any]) -> None:
    """The control for the table above: the same buttons work for 县市场监督管理局's own staff."""
    h: BotHarness = world[OWNER]
    await h.press_data(AdminCb(act="c", n=world["complaint"]).pack())
    assert "态度生硬" in h.text()
    await h.press_data(AdminCb(act="rc", n=world["rect"]).pack())
    assert h.alerts() == [f"已登记回访：{world['rect']}"]
    async with db[1]() as s:
        rect = await get_rectification(session=s, number=world["rect"])
        assert rect is not None and rect.status == "called_back"
    assert await denied_rows(db, f"tg:{OWNER}") == 0


async def test_someone_elses_acknowledge_button_is_refused_neutrally_and_audited(
    db: DB, world: dict[Any, Any], new_case: Maker, move: Maker
) -> None:
    case = (await new_case(item=FOOD)).case
    async with db[1]() as s:
        await subscribe(session=s, case=case, chat_id=APPLICANT)
    await move(case.number, "in_review")
    await move(case.number, "correction_required", missing_materials=["营业执照"])
    async with db[1]() as s:
        sent = (await s.exec(select(Notice).where(col(Notice.kind) == "correction_required"))).one()
    assert sent.chat_id == APPLICANT
    stranger: BotHarness = world[CITIZEN]
    press = partial(stranger.press_data, f"a1:{sent.event_id}")
    await assert_refused(db, stranger, CITIZEN, press, world["number"], {ACK_DENIED})
    # Not a word about the case, and the same answer for a button that never existed.
    await assert_refused(
        db, stranger, CITIZEN, partial(stranger.press_data, "a1:987654"), world["number"], {ACK_DENIED}
    )
    async with db[1]() as s:
        acked = await s.get(Notice, sent.id)
        assert acked is not None and acked.acknowledged_at is None
    applicant = BotHarness(stranger.dp, user_id=APPLICANT)
    await applicant.press_data(f"a1:{sent.event_id}")
    assert applicant.alerts() == ["已确认收到补正告知，感谢配合。"]
    await assert_refused(db, stranger, CITIZEN, press, world["number"], {ACK_DENIED})  # still not theirs
    async with db[1]() as s:
        rows = (await s.exec(select(AuditLog).where(col(AuditLog.actor) == f"tg:{CITIZEN}"))).all()
        assert {(r.action, r.outcome, (r.details or {}).get("attempt")) for r in rows} == {
            ("citizen.denied", "denied", "notice.ack")
        }
        acked = await s.get(Notice, sent.id)
        assert acked is not None and acked.acknowledged_at is not None


# ---------------------------------------------------------------- integration API


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/cases"),
        ("POST", "/cases/YC260101ABCDEFGH0/events"),
        ("GET", "/cases/YC260101ABCDEFGH0"),
    ],
)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic c2VjcmV0", "Bearer "], ids=str)
async def test_api_without_the_right_token_is_401(
    db: DB, bot_catalog: Catalog, templates: Environment, method: str, path: str, auth: str | None
) -> None:
    app = build_app(ApiContext(bot_catalog, templates, db[1]), token="s3cret-token-for-tests")
    headers = {"Authorization": auth} if auth is not None else {}
    async with TestClient(TestServer(app)) as client:
        r = await client.request(method, API_PREFIX + path, json={}, headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]
        # The right token gets past the gate (whatever the answer to the empty body is).
        ok = await client.request(
            method, API_PREFIX + path, json={}, headers={"Authorization": "Bearer s3cret-token-for-tests"}
        )
        assert ok.status != 401


# ---------------------------------------------------------------- enumeration


async def test_guessing_a_thousand_case_numbers_reveals_nothing_and_locks_out(
    db: DB, make_harness: HarnessMaker, new_case: Maker
) -> None:
    real = [str((await new_case()).case.number) for _ in range(5)]
    guesses = [new_case_number(dt.date(2026, 1, 1)) for _ in range(1000)]
    for k, number in enumerate(real):  # real cases hidden among the guesses, with wrong factors
        guesses[100 * k + 3] = number
    h = make_harness(user_id=CITIZEN)
    answers: list[str] = []
    for number in guesses:
        await h.say(number)
        asked = h.text().replace(number, "<n>")
        await h.say("0000")
        answers.append(asked + "|" + re.sub(r"\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}|\d+月\d+日", "<t>", h.text()))
    # One reply for every number before the lock, one after it: existing or not makes no difference.
    kinds = list(dict.fromkeys(answers))
    assert len(kinds) == 2, kinds
    first_locked = answers.index(kinds[1])
    assert first_locked == MAX_FAILURES - 1  # the 5th failure already answers with the lock
    assert "暂停" in kinds[1] and "不正确" in kinds[0]
    # Locked means locked: the right factor for a real case gets the same refusal.
    await h.say(real[0])
    await h.say(FACTOR)
    assert "暂停" in h.text() and "已受理" not in h.text()
    async with db[1]() as s:
        q = select(func.count()).select_from(AuditLog).where(col(AuditLog.actor) == f"tg:{CITIZEN}")
        assert int((await s.exec(q)).one()) >= MAX_FAILURES
