"""Inline mode (@bot 关键词 in any chat). The emulator has no inline mode, so only handler tests."""

from __future__ import annotations

from aiogram.methods import AnswerInlineQuery

from tests.conftest import BotHarness


def answer(harness: BotHarness) -> AnswerInlineQuery:
    [call] = harness.calls("AnswerInlineQuery")
    return call


async def test_inline_query_offers_shareable_cards(harness: BotHarness) -> None:
    await harness.inline("结婚")
    results = answer(harness).results
    assert results[0].title == "结婚登记"
    assert "县民政局" in results[0].description and "B01号窗口" in results[0].description
    card = results[0].input_message_content.message_text
    assert "双方户口簿" in card and "9 元" in card


async def test_inline_bundle_result(harness: BotHarness) -> None:
    await harness.inline("开饭馆")
    first = answer(harness).results[0]
    assert first.title == "开办餐饮店一件事"
    assert first.description.startswith("一件事 · 牵头：县市场监督管理局")


async def test_inline_empty_and_out_of_scope(harness: BotHarness) -> None:
    await harness.inline("   ")
    empty = answer(harness)
    assert empty.results == [] and empty.button is not None and empty.button.start_parameter == "inline"
    await harness.inline("今天天气怎么样")
    assert answer(harness).results == []
