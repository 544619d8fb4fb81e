"""/start, /help and the directory: what a citizen sees when browsing instead of asking."""

from __future__ import annotations

from tests.conftest import BotHarness


async def test_start_welcomes_and_offers_browse_buttons(harness: BotHarness) -> None:
    await harness.say("/start")
    text = harness.text()
    assert "测试县政务服务中心" in text
    assert "开饭馆要办什么证" in text  # an example of how to ask
    assert harness.buttons() == ["按部门查找", "中心地址和电话", "窗口一览", "使用帮助"]


async def test_start_with_unknown_payload_still_welcomes(harness: BotHarness) -> None:
    await harness.say("/start inline")
    assert "办事助手" in harness.text()


async def test_center_shows_address_hours_and_phones(harness: BotHarness) -> None:
    await harness.say("/center")
    text = harness.text()
    assert "测试县新城路 1 号" in text
    assert "周一至周五 9:00—17:00" in text
    assert "0999-1000000" in text and "0999-1000012" in text


async def test_windows_publish_chief_representatives(harness: BotHarness) -> None:
    await harness.say("/windows")
    text = harness.text()
    assert "B01" in text and "县民政局" in text
    assert "李四（婚姻登记处主任、首席代表）" in text
    assert "0999-3000002" in text


async def test_departments_browse_to_item_card(harness: BotHarness) -> None:
    await harness.say("/departments")
    assert "县公安局" in harness.buttons() and "县民政局" in harness.buttons()
    await harness.press("县市场监督管理局")
    edits = harness.calls("EditMessageText")
    assert edits and "共 2 个事项" in edits[0].text  # browsing edits the list in place
    assert set(harness.buttons()) >= {"食品经营许可证核发", "个体工商户设立登记", "返回部门列表"}
    await harness.press("个体工商户设立登记")
    assert "个体工商户登记申请书" in harness.text()
    await harness.press("返回部门列表")
    assert "县公安局" in harness.buttons()


async def test_departments_filter_by_argument(harness: BotHarness) -> None:
    await harness.say("/departments 公安")
    assert harness.buttons() == ["县公安局"]
    await harness.say("/departments 不存在的局")
    assert "没有找到名称包含“不存在的局”的部门" in harness.text()
    assert len(harness.buttons()) == 4  # falls back to the full list


async def test_commands_ignore_junk_arguments(harness: BotHarness) -> None:
    await harness.say("/help 12345 乱码")
    assert "怎么用" in harness.text()
    await harness.say("/center ??")
    assert "测试县新城路 1 号" in harness.text()


async def test_welcome_button_opens_center_and_help(harness: BotHarness) -> None:
    await harness.say("/start")
    await harness.press("中心地址和电话")
    assert "测试县新城路 1 号" in harness.text()
    await harness.press("使用帮助")
    assert "材料自查" in harness.text()
    await harness.press("窗口一览")
    assert "首席代表" in harness.text()
