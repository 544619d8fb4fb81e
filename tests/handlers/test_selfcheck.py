"""材料自查: one question per material, then ONE message with everything missing and where to get it."""

from __future__ import annotations

from tests.conftest import BotHarness


async def start_check(harness: BotHarness, question: str) -> None:
    await harness.say(question)
    await harness.press("材料自查")
    assert "材料自查" in harness.text()
    assert harness.buttons() == ["有", "没有"]


async def test_missing_materials_listed_once_with_sources(harness: BotHarness) -> None:
    await start_check(harness, "食品经营许可证核发")
    assert "（1/4）" in harness.text() and "食品经营许可申请书" in harness.text()
    for answer in ("有", "没有", "有"):
        await harness.press(answer)
        [edit] = harness.calls("EditMessageText")  # the walk edits one message in place
    assert "（4/4）" in edit.text
    await harness.press("没有")
    [result] = harness.texts()
    assert "还缺以下 2 项材料" in result
    assert "营业执照（复印件 1 份）" in result and "到哪里开：先办个体工商户设立登记" in result
    assert "从业人员健康证明（复印件 2 份）" in result and "到哪里开：县疾控中心体检后出具" in result
    assert "食品经营许可申请书" not in result and "经营者身份证" not in result
    assert "其余 2 项已备齐" in result
    assert harness.buttons() == ["在哪办", "重新自查"]


async def test_all_present_says_complete_with_window(harness: BotHarness) -> None:
    await start_check(harness, "居民身份证补领")
    await harness.press("有")
    [result] = harness.texts()
    assert "材料齐全" in result
    assert "D01 号窗口 · 一楼 D 区（户政）" in result and "周一至周五 9:00—17:00" in result


async def test_missing_without_source_points_to_the_window(harness: BotHarness) -> None:
    await start_check(harness, "居民身份证补领")
    await harness.press("没有")
    assert "获取方式：请咨询 D01 号窗口（0999-2000004）" in harness.text()


async def test_stale_and_repeated_presses_do_not_skip_materials(harness: BotHarness) -> None:
    await start_check(harness, "结婚登记")
    first_step = harness.with_buttons[-1]
    await harness.press("有")
    # Pressing step 1's button again (double tap, old message) must not answer step 2.
    await harness.feed(harness.updates.callback("s1:0:0", first_step))
    assert harness.alerts() == ["这次材料自查已结束，请在办事指南下重新点“材料自查”。"]
    await harness.press("有")
    await harness.press("没有")
    assert "还缺以下 1 项材料" in harness.text() and "近期半身免冠合影照片" in harness.text()
    await harness.press_data("s1:1:2")  # after the end
    assert harness.alerts()


async def test_bundle_self_check_walks_the_merged_list(harness: BotHarness) -> None:
    await start_check(harness, "开饭馆要办什么证")
    text = harness.text()
    # 个体工商户登记申请书, 经营者身份证, 食品经营许可申请书, 营业执照, 从业人员健康证明, 消防安全检查申请表
    assert "（1/6）" in text


async def test_restart_check_from_result(harness: BotHarness) -> None:
    await start_check(harness, "居民身份证补领")
    await harness.press("没有")
    await harness.press("重新自查")
    assert "（1/1）" in harness.text()
