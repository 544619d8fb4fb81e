"""Staff in the bot through the production dispatcher: the gate, /cases, the case view and its
buttons, the 一次性告知 multi-select, completion and rejection notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cases import utc_now
from models.crud import disable_staff, get_case, subscribe
from tests.cases_handlers.conftest import BUNDLE, FIRE, FOOD
from tests.conftest import BotHarness, HarnessMaker

Maker = Callable[..., Awaitable[Any]]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
STAFF = 801


async def subscribed_case(db: DB, new_case: Maker, item: str = FOOD, chat_id: int = 9100, **kw: Any) -> str:
    new = await new_case(item=item, **kw)
    async with db[1]() as s:
        await subscribe(session=s, case=new.case, chat_id=chat_id)
    return str(new.case.number)


async def open_case(h: BotHarness, number: str) -> None:
    await h.say(number)
    assert f"办件 {number}" in h.text(), h.text()


async def test_citizen_gets_a_plain_refusal_and_is_audited(harness: BotHarness, audits: Maker) -> None:
    await harness.say("/cases")
    assert harness.text() == "该功能仅限中心工作人员使用。"
    await harness.press_data("w1:do:YC260101ABCDEFGH0:in_review:1:-1")
    assert harness.alerts() == ["该功能仅限中心工作人员使用。"]
    denied = [a for a in await audits() if a.action == "staff.denied"]
    assert [(a.actor, a.outcome) for a in denied] == [("tg:501", "denied"), ("tg:501", "denied")]


async def test_citizen_sending_a_number_gets_the_applicant_flow(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    await harness.say(number)
    assert "手机号后 4 位" in harness.text()


async def test_cases_lists_own_department_overdue_first(
    make_harness: HarnessMaker, new_case: Maker, staff_member: Maker
) -> None:
    await staff_member(STAFF)  # 县市场监督管理局
    recent = (await new_case()).case.number
    late = (await new_case(now=utc_now() - dt.timedelta(days=30))).case.number
    other = (await new_case(item=FIRE)).case.number  # 消防: not this department's
    h = make_harness(user_id=STAFF)
    await h.say("/cases")
    text = h.text()
    assert text.index(late) < text.index(recent)
    assert other not in text
    assert "超期" in text.split(late)[1].split("\n")[0]
    assert h.buttons() == [f"{late} · 已受理", f"{recent} · 已受理"]
    # Admins see every department.
    await staff_member(STAFF + 1, role="admin", department=None)
    admin = make_harness(user_id=STAFF + 1)
    await admin.say("/cases")
    assert other in admin.text()


async def test_case_view_offers_only_what_the_lifecycle_allows(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    assert "138****5678" in h.text()  # staff may see the masked phone
    assert h.buttons() == ["开始审查", "返回列表"]
    await h.press("开始审查")
    assert any("已更新为「审查中」" in a and "1 个聊天" in a for a in h.alerts())
    assert h.buttons() == ["需补正", "办结", "不予许可", "返回列表"]
    notices = await queued()
    assert [(n.chat_id, n.kind) for n in notices] == [(9100, "in_review")]


async def test_double_tap_is_one_event(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    view = h.last
    await h.press("开始审查")
    # The same (now stale) button pressed again from the old message.
    button = view[-1].message.reply_markup.inline_keyboard[0][0]  # type: ignore[union-attr]
    await h.press_data(button.callback_data or "")
    assert h.alerts() == ["该操作已处理过，未重复执行。"]
    assert len(await queued()) == 1


async def test_correction_multi_select_sends_one_notice_listing_everything(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, move: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    await move(number, "in_review")
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    await h.press("需补正")
    assert "⬜ 营业执照" in h.buttons() and "⬜ 从业人员健康证明" in h.buttons()
    await h.press("⬜ 营业执照")
    await h.press("⬜ 从业人员健康证明")
    await h.press("☑️ 从业人员健康证明")  # unticked again
    await h.press("⬜ 从业人员健康证明")
    await h.press("✏️ 补充其他材料或说明")
    await h.say("房屋租赁合同\n经营场所平面图")
    assert "房屋租赁合同" in h.text() and "☑️ 营业执照" in h.buttons()
    before = len(await queued())
    await h.press("📨 发送一次性告知")
    assert any("需补正" in a for a in h.alerts())
    new = (await queued())[before:]
    assert len(new) == 1
    text = new[0].text
    for material in ("营业执照", "从业人员健康证明", "房屋租赁合同", "经营场所平面图"):
        assert material in text
    assert "经营者身份证" not in text
    assert "我已知晓" in str(new[0].reply_markup)
    async with db[1]() as s:
        case = await get_case(session=s, number=number)
    assert case is not None and case.status == "correction_required"


async def test_correction_needs_something_selected(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, move: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    await move(number, "in_review")
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    await h.press("需补正")
    await h.press("📨 发送一次性告知")
    assert h.alerts() == ["请至少勾选一项材料，或补充说明需要补正的内容。"]
    assert [n.kind for n in await queued()] == ["in_review"]


async def test_completion_asks_once_then_notifies_with_pickup_details(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, move: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    await move(number, "in_review")
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    await h.press("办结")
    assert "确认办件" in h.text() and [n.kind for n in await queued()] == ["in_review"]
    await h.press("确认办结并通知申请人")
    done = (await queued())[-1]
    assert done.kind == "completed" and "办结通知" in done.text
    assert "A01 号窗口" in done.text and "身份证件" in done.text and "9:00—17:00" in done.text
    assert h.buttons() == ["已领取", "返回列表"]


async def test_rejection_takes_a_reason_and_tells_the_applicant(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, move: Maker, queued: Maker
) -> None:
    await staff_member(STAFF)
    number = await subscribed_case(db, new_case)
    await move(number, "in_review")
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    await h.press("不予许可")
    assert "理由" in h.text()
    await h.say("经营场所位于居民楼内，不符合食品经营场所要求")
    assert "已更新为「不予许可」" in h.text()
    notice = (await queued())[-1]
    assert notice.kind == "rejected" and "不符合食品经营场所要求" in notice.text
    assert "行政复议" in notice.text


async def test_bundle_step_is_moved_for_the_staff_members_department(
    make_harness: HarnessMaker, db: DB, new_case: Maker, staff_member: Maker, move: Maker
) -> None:
    await staff_member(STAFF, department="xf")
    number = await subscribed_case(db, new_case, item=BUNDLE)
    await move(number, "in_review")
    h = make_harness(user_id=STAFF)
    await open_case(h, number)
    await h.press("办结")
    await h.press("确认办结并通知申请人")
    assert "县消防救援大队：已办结" in h.text()
    assert "县市场监督管理局（牵头）：审查中" in h.text()
    assert "当前状态" not in h.text() and "状态：审查中" in h.text()


async def test_other_departments_case_is_not_shown(
    make_harness: HarnessMaker, new_case: Maker, staff_member: Maker
) -> None:
    await staff_member(STAFF, department="xf")
    number = (await new_case()).case.number  # 市场监管
    h = make_harness(user_id=STAFF)
    await h.say(number)
    assert h.text() == "没有找到这个办件，或不属于您所在部门。"
    await h.press_data(f"w1:do:{number}:in_review:1:-1")
    assert h.alerts() == ["没有找到这个办件，或不属于您所在部门。"]


async def test_disabled_staff_loses_access_at_once(
    make_harness: HarnessMaker, db: DB, staff_member: Maker
) -> None:
    await staff_member(STAFF)
    h = make_harness(user_id=STAFF)
    await h.say("/cases")
    assert "在办件" in h.text()
    async with db[1]() as s:
        await disable_staff(session=s, user_id=STAFF)
    await h.say("/cases")
    assert h.text() == "该功能仅限中心工作人员使用。"
