"""A citizen talks to `yichuang run` over real HTTP through the Bot API emulator.

Expectations come from the packaged sample catalog the bot serves (names, materials, phones), so
the tests check that the user is shown the catalog's facts, not that a template says a fixed thing.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from knowledge.loader import load_catalog
from knowledge.schema import Catalog
from tests.e2e.conftest import Citizen, Reply
from tests.e2e.tgemu.tguser import Emulator

pytestmark = pytest.mark.e2e

RESTAURANT_BUNDLE = "开办餐饮店一件事"
FOOD_LICENCE = "食品经营许可证核发"
HAS_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def open_food_licence_card(citizen: Citizen) -> Reply:
    """Ask the everyday question, then tap the member item on the bundle card."""
    [bundle_card] = citizen.say("开饭馆要办什么证")
    *_, card = citizen.press(bundle_card, FOOD_LICENCE)
    return card


def test_start_greets_and_offers_buttons(citizen: Citizen, catalog: Catalog) -> None:
    [reply] = citizen.say("/start")

    assert catalog.center.name in reply.text
    assert "开饭馆要办什么证" in reply.text  # shows how to ask
    assert {"按部门查找", "中心地址和电话", "窗口一览", "使用帮助"} <= set(reply.labels)


def test_command_menu_is_published_in_chinese(bot: Path, emulator: Emulator) -> None:
    calls = emulator.calls("setMyCommands")
    assert calls, "the bot never called setMyCommands"
    raw = calls[-1]["commands"]
    commands = json.loads(raw) if isinstance(raw, str) else raw

    assert {"start", "help", "departments", "windows", "center"} <= {c["command"] for c in commands}
    for c in commands:
        assert HAS_CJK.search(c["description"]), f"/{c['command']} has no Chinese description: {c}"


def test_restaurant_question_gets_the_bundle_card_with_materials(citizen: Citizen, catalog: Catalog) -> None:
    [card] = citizen.say("开饭馆要办什么证")

    bundle = catalog.bundle(RESTAURANT_BUNDLE)
    assert bundle is not None
    assert RESTAURANT_BUNDLE in card.text
    assert bundle.lead_department in card.text
    for member in catalog.members(bundle):
        assert member.name in card.text
    # The merged list names each document once, including the food licence's own application form.
    for material in catalog.bundle_materials(bundle):
        assert card.text.count(f". {material.name}（") == 1, material.name
    assert "申请书" in card.text
    # Buttons lead into every member item.
    assert {m.name for m in catalog.members(bundle)} <= set(card.labels)
    assert {"在哪办", "材料自查"} <= set(card.labels)


def test_member_button_opens_the_item_card(citizen: Citizen, catalog: Catalog) -> None:
    card = open_food_licence_card(citizen)

    item = catalog.item(FOOD_LICENCE)
    assert item is not None
    assert FOOD_LICENCE in card.text
    assert item.department in card.text
    for section in ("申报材料", "收费标准", "办理时限"):
        assert section in card.text
    for material in item.materials:
        assert material.name in card.text
    assert {"在哪办", "材料自查", "一件事"} <= set(card.labels)


def test_where_button_names_the_window_and_the_center_address(citizen: Citizen, catalog: Catalog) -> None:
    card = open_food_licence_card(citizen)
    [where] = citizen.press(card, "在哪办")

    item = catalog.item(FOOD_LICENCE)
    assert item is not None and item.window is not None
    window = catalog.window(item.window)
    assert window is not None
    assert f"{window.number} 号窗口" in where.text
    assert catalog.center.address in where.text
    assert "完整办事指南" in where.labels  # the way back to the whole card


def test_bundle_button_on_an_item_card_opens_the_bundle(citizen: Citizen) -> None:
    card = open_food_licence_card(citizen)
    [bundle_card] = citizen.press(card, "一件事")

    assert RESTAURANT_BUNDLE in bundle_card.text
    assert "并联审批" in bundle_card.text  # overall deadline is parallel, not a sum
    assert FOOD_LICENCE in bundle_card.labels


def test_follow_up_question_answers_about_the_card_just_shown(citizen: Citizen, catalog: Catalog) -> None:
    card = open_food_licence_card(citizen)
    assert FOOD_LICENCE in card.text
    [answer] = citizen.say("多久能办好")

    assert FOOD_LICENCE in answer.text
    assert "承诺时限" in answer.text
    assert "申报材料" not in answer.text  # one facet, not the whole card again


def test_out_of_catalog_question_gets_an_honest_fallback(citizen: Citizen, catalog: Catalog) -> None:
    [reply] = citizen.say("今天天气怎么样")

    assert "没能" in reply.text or "没有找到" in reply.text
    assert "今天天气怎么样" in reply.text  # says what it could not find
    desk = catalog.center.phones[0]
    assert desk.number in reply.text
    assert catalog.center.hours[0] in reply.text
    assert "按部门查找" in reply.labels
    # Honest means no card was guessed.
    assert "申报材料" not in reply.text


def test_vague_question_asks_which_item_is_meant(citizen: Citizen) -> None:
    [reply] = citizen.say("户口")

    assert "您要办的是" in reply.text
    assert "都不是" in reply.labels
    candidates = [label for label in reply.labels if label != "都不是"]
    assert 2 <= len(candidates) <= 3
    assert all("户" in label or "出生" in label for label in candidates), candidates

    [card] = citizen.press(reply, candidates[0])
    assert candidates[0] in card.text
    assert "申报材料" in card.text


def test_self_check_ends_with_one_message_listing_everything_missing(
    citizen: Citizen, catalog: Catalog
) -> None:
    item = catalog.item(FOOD_LICENCE)
    assert item is not None
    card = open_food_licence_card(citizen)

    [step] = citizen.press(card, "材料自查")
    missing = []
    for n, material in enumerate(item.materials):
        assert f"（{n + 1}/{len(item.materials)}）" in step.text
        assert material.name in step.text
        assert set(step.labels) == {"有", "没有"}
        answer = "没有" if n % 2 == 0 else "有"  # leave every other document missing
        if answer == "没有":
            missing.append(material)
        *_, step = citizen.press(step, answer)

    result = step
    assert "材料自查结果" in result.text
    assert f"还缺以下 {len(missing)} 项材料" in result.text
    listed = result.text.split("还缺以下", 1)[1]
    for material in item.materials:
        if material in missing:
            assert material.name in listed
            if material.source:
                assert material.source in listed  # where to get it
        else:
            assert f"{material.name}（" not in listed
    assert {"在哪办", "重新自查"} <= set(result.labels)


def test_phone_number_in_a_question_is_masked_in_the_reply_and_the_log(citizen: Citizen, bot: Path) -> None:
    [reply] = citizen.say("我手机13812345678，今天天气怎么样")

    assert "138****5678" in reply.text
    assert "13812345678" not in reply.text
    assert "13812345678" not in bot.read_text(encoding="utf-8", errors="replace")


def test_bad_input_gets_a_short_reply_and_the_bot_keeps_answering(citizen: Citizen) -> None:
    [huge] = citizen.say("办证" * 2600)  # over Telegram's 4,096 characters
    [emoji] = citizen.say("😀😀😀")
    [junk] = citizen.say("/windows 乱七八糟的参数 123")

    assert "太长" in huge.text and len(huge.text) < 200
    assert "没看懂" in emoji.text
    assert "首席代表" in junk.text  # the command still works, the junk is ignored
    [card] = citizen.say("开饭馆要办什么证")
    assert RESTAURANT_BUNDLE in card.text


def test_flood_is_throttled_with_a_warning_then_served_again(citizen: Citizen) -> None:
    sent = 15
    for n in range(sent):  # as fast as HTTP allows, no pacing
        citizen.user.say(f"结婚登记要带什么 {n}")
    replies = [Reply(r) for r in citizen.user.replies(1, timeout=15, settle=1.0)]

    warnings = [r for r in replies if "太快" in r.text]
    answers = [r for r in replies if "结婚登记" in r.text]
    assert 1 <= len(warnings) <= 2, replies  # told once, not once per message
    assert 1 <= len(answers) < sent  # the first few are answered, the rest of the flood is not
    time.sleep(1.0)  # the throttle refills one message per 0.5 s; a calm user is served again
    [card] = citizen.say("结婚登记要带什么")
    assert "结婚登记" in card.text
