"""The applicant's lookup through the production dispatcher: what a person sees and can do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from models.cases import binding_start_param, new_case_number, utc_now
from tests.cases_handlers.conftest import BUNDLE, FACTOR, PHONE
from tests.conftest import BotHarness, HarnessMaker

Maker = Callable[..., Awaitable[Any]]


async def look_up(h: BotHarness, number: str, factor: str = FACTOR) -> str:
    await h.say(number)
    assert "手机号后 4 位" in h.text()
    await h.say(factor)
    return h.text()


async def test_status_with_number_then_factor_shows_status(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    await harness.say(f"/status {number}")
    asking = harness.text()
    assert number in asking and "手机号后 4 位" in asking
    assert PHONE[-4:] not in asking and "138" not in asking  # nothing of the factor before the check
    await harness.say(FACTOR)
    text = harness.text()
    assert number in text and "食品经营许可证核发" in text
    assert "当前状态：已受理" in text
    assert "承诺办结日期" in text and "还剩 5 个工作日" in text
    assert "王*明" in text and "王小明" not in text
    assert harness.buttons() == ["订阅进度", "刷新进度"]


async def test_status_alone_asks_for_the_number(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    await harness.say("/status")
    assert "请发送办件编号" in harness.text()
    # Typed loosely: lowercase with dashes, as people copy numbers.
    await harness.say(f"{number[:2].lower()}-{number[2:8]}-{number[8:].lower()}")
    assert "手机号后 4 位" in harness.text()
    await harness.say(FACTOR)
    assert "当前状态：已受理" in harness.text()


async def test_bare_number_in_a_sentence_starts_a_lookup(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    text = await look_up(harness, f"我的件 {number} 办到哪了")
    assert "当前状态：已受理" in text


async def test_wrong_factor_and_unknown_number_get_the_same_reply(
    make_harness: HarnessMaker, new_case: Maker
) -> None:
    number = (await new_case()).case.number
    wrong = await look_up(make_harness(user_id=601), number, "0000")
    unknown = await look_up(make_harness(user_id=602), new_case_number(dt.date.today()), FACTOR)
    assert wrong == unknown
    assert "不正确" in wrong and "已受理" not in wrong


async def test_five_failures_lock_the_user_even_for_the_right_factor(
    make_harness: HarnessMaker, new_case: Maker
) -> None:
    number = (await new_case()).case.number
    h = make_harness(user_id=603)
    await h.say(number)
    for _ in range(4):
        await h.say("1111")
        assert "不正确" in h.text()
    await h.say("1111")
    assert "查询已暂停" in h.text()
    assert await look_up(h, number, FACTOR) == h.text()
    assert "查询已暂停" in h.text() and "已受理" not in h.text()
    # Another user is not affected by this one's lock.
    assert "当前状态：已受理" in await look_up(make_harness(user_id=604), number)


async def test_not_four_digits_is_asked_again_without_counting(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    await harness.say(number)
    for _ in range(6):
        await harness.say("123")
        assert "后 4 位数字" in harness.text()
    await harness.say(FACTOR)
    assert "当前状态：已受理" in harness.text()


async def test_mistyped_number_is_caught_before_any_lookup(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    typo = number[:-1] + ("0" if number[-1] != "0" else "1")
    await harness.say(f"/status {typo}")
    assert "没有识别出这个办件编号" in harness.text()


async def test_subscribe_then_mycases(harness: BotHarness, new_case: Maker, subscriptions: Maker) -> None:
    number = (await new_case()).case.number
    await look_up(harness, number)
    await harness.press("订阅进度")
    assert any("已订阅" in a for a in harness.alerts())
    assert [(s.chat_id, s.via) for s in await subscriptions()] == [(501, "lookup")]
    await harness.say("/mycases")
    assert number in harness.text() and "已受理" in harness.text()
    await harness.press(f"{number} · 已受理")
    assert "当前状态：已受理" in harness.text()
    assert harness.buttons()[0] == "取消订阅"


async def test_forged_subscribe_button_does_nothing(
    make_harness: HarnessMaker, new_case: Maker, subscriptions: Maker
) -> None:
    number = (await new_case()).case.number
    intruder = make_harness(user_id=605)
    for act in ("sub", "view"):
        await intruder.press_data(f"c1:{act}:{number}")
        assert intruder.alerts() == ["请先发送办件编号并完成验证，再进行此操作。"]
        assert not intruder.texts()
    assert await subscriptions() == []


async def test_receipt_deep_link_binds_in_one_tap(
    harness: BotHarness, new_case: Maker, subscriptions: Maker
) -> None:
    new = await new_case()
    await harness.say(f"/start {binding_start_param(new.case.number, new.binding_code)}")
    text = harness.text()
    assert "已绑定办件" in text and "当前状态：已受理" in text
    assert [(s.chat_id, s.via) for s in await subscriptions()] == [(501, "link")]


async def test_deep_link_with_wrong_code_is_refused_like_a_wrong_factor(
    make_harness: HarnessMaker, new_case: Maker, subscriptions: Maker
) -> None:
    new = await new_case()
    h = make_harness(user_id=606)
    await h.say(f"/start {binding_start_param(new.case.number, 'A' * 10)}")
    refused = h.text()
    await h.say("/start c_garbage")
    assert h.text() == refused
    assert "不正确" in refused and await subscriptions() == []


async def test_bundle_status_shows_each_department_and_history(
    harness: BotHarness, new_case: Maker, move: Maker
) -> None:
    number = (await new_case(item=BUNDLE)).case.number
    await move(number, "in_review")
    await move(number, "completed", department="xf")
    text = await look_up(harness, number)
    assert "县市场监督管理局（牵头）：审查中" in text
    assert "县消防救援大队：已办结" in text
    assert "办理记录" in text and text.count("• ") >= 4


async def test_overdue_case_is_flagged(harness: BotHarness, new_case: Maker) -> None:
    long_ago = utc_now() - dt.timedelta(days=40)
    number = (await new_case(now=long_ago)).case.number
    text = await look_up(harness, number)
    assert "已超期" in text


async def test_acknowledge_button_is_recorded_once(
    harness: BotHarness, new_case: Maker, move: Maker, queued: Maker
) -> None:
    number = (await new_case()).case.number
    await look_up(harness, number)
    await harness.press("订阅进度")
    await move(number, "in_review")
    await move(number, "correction_required", missing_materials=["营业执照"])
    notice = (await queued())[-1]
    assert notice.kind == "correction_required" and notice.acknowledged_at is None
    await harness.press_data(f"a1:{notice.event_id}")
    assert harness.alerts() == ["已确认收到补正告知，感谢配合。"]
    await harness.press_data(f"a1:{notice.event_id}")
    assert harness.alerts() == ["已确认过，无需重复操作。"]
    assert (await queued())[-1].acknowledged_at is not None


async def test_case_status_is_never_looked_up_in_a_group(harness: BotHarness, new_case: Maker) -> None:
    number = (await new_case()).case.number
    group = {"id": -100500, "type": "group", "title": "家庭群"}
    await harness.say(f"/status {number}", chat=group)
    assert "私聊" in harness.text() and number not in harness.text()
    await harness.say(f"我的件 {number} 办到哪了", chat=group)
    assert harness.texts() == []  # a number in group talk is not a request
    await harness.say(FACTOR, chat=group)
    assert "当前状态" not in harness.text()
