"""Question -> card, candidates, fallback, follow-ups and card buttons."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import TELEGRAM_LIMIT, utf16_len
from knowledge.matcher import Match, MatchResult
from knowledge.schema import Catalog, Item, Material
from models.questions import top_unanswered
from tests.conftest import BotHarness, HarnessMaker


class StubMatcher:
    """Answers every question with a fixed result, to test how the bot presents each kind."""

    def __init__(self, confident: bool, *matches: tuple[str, str, float]):
        self.confident = confident
        self.matches = [Match(n, k, s) for n, k, s in matches]  # type: ignore[arg-type]

    def search(self, question: str, limit: int = 5) -> MatchResult:
        return MatchResult(question, self.confident, self.matches[:limit])


async def test_item_card_shows_the_six_publicities(harness: BotHarness) -> None:
    await harness.say("食品经营许可证核发")
    text = harness.text()
    for expected in (
        "食品经营许可证核发",
        "办理部门：县市场监督管理局",
        "A01 号窗口 · 一楼 A 区",
        "食品经营许可申请书（原件 1 份）",
        "从业人员健康证明（复印件 2 份）",
        "经营者身份证（原件和复印件 1 份）：核验后退还原件",
        "免费",
        "法定时限：10个工作日；承诺时限：5个工作日",
        "最多跑 1 次",
        "《中华人民共和国食品安全法》第三十五条",
        "1. 申请",
        "咨询电话：0999-4000001",
        "监督电话：0999-1000012",  # falls back to the center's supervision line
        "测试数据，仅用于自动化测试。",
    ):
        assert expected in text, expected
    assert harness.buttons() == ["在哪办", "材料自查", "样表", "相关事项", "一件事"]


async def test_card_shows_fee_amount_and_escapes_catalog_text(harness: BotHarness) -> None:
    await harness.say("扯证")
    html = harness.html()
    # A catalog note containing "<b>" and "&" is shown as text, not taken as markup.
    assert "&lt;b&gt;不是标签&lt;/b&gt; &amp; 符号" in html
    assert "<b>不是标签</b> & 符号" in harness.text()
    text = harness.text()
    assert "结婚证工本费：9 元（依据：发改价格〔2023〕1号）" in text
    assert "法定时限：即办" in text
    assert "样表" not in harness.buttons()  # no sample form in the catalog for this item


async def test_bundle_card_merges_materials_and_deadline(harness: BotHarness) -> None:
    await harness.say("开饭馆要办什么证")
    text = harness.text()
    assert "开办餐饮店一件事" in text
    assert "牵头部门：县市场监督管理局" in text
    assert "G01 号窗口" in text
    assert text.count("经营者身份证") == 1  # each document once
    assert "用于：各事项均需" in text
    assert "用于：食品经营许可证核发、公众聚集场所营业前消防安全检查" in text  # 营业执照
    assert "全部免费" in text
    assert "承诺时限：7个工作日" in text  # the slowest member, not 0 + 5 + 7
    assert harness.buttons()[:3] == [
        "个体工商户设立登记",
        "食品经营许可证核发",
        "公众聚集场所营业前消防安全检查",
    ]
    await harness.press("公众聚集场所营业前消防安全检查")
    assert "消防安全检查申请表" in harness.text()


async def test_sample_catalog_answers_the_restaurant_question(
    make_harness: HarnessMaker, sample_catalog: Catalog
) -> None:
    h = make_harness(catalog=sample_catalog)
    await h.say("开饭馆要办什么证")
    text = h.text()
    assert "食品经营许可证核发" in text
    assert "申报材料" in text and "食品经营许可申请书" in text


async def test_candidates_when_not_confident(
    make_harness: HarnessMaker, db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
) -> None:
    stub = StubMatcher(
        False,
        ("结婚登记", "item", 0.7),
        ("居民身份证补领", "item", 0.65),
        ("开办餐饮店一件事", "bundle", 0.62),
        ("个体工商户设立登记", "item", 0.61),
        ("食品经营许可证核发", "item", 0.3),
    )
    h = make_harness(matcher=stub)
    await h.say("我想办个证")
    assert h.texts() == ["您要办的是："]
    assert h.buttons() == ["结婚登记", "居民身份证补领", "开办餐饮店一件事", "都不是"]
    await h.press("开办餐饮店一件事")
    assert "牵头部门" in h.text()
    await h.say("我想办个证")
    await h.press("都不是")
    assert "抱歉，没能在办事目录里找到" in h.text()
    await h.settled()
    async with db[1]() as s:
        assert [q.text for q in await top_unanswered(session=s)] == ["我想办个证"]


async def test_weak_guess_is_offered_under_the_honest_fallback(
    make_harness: HarnessMaker, db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
) -> None:
    stub = StubMatcher(False, ("结婚登记", "item", 0.55), ("居民身份证补领", "item", 0.2))
    h = make_harness(matcher=stub)
    await h.say("领个本本要啥")
    assert "没能在办事目录里找到" in h.text()  # not presented as an answer
    assert h.buttons() == ["结婚登记", "按部门查找"]
    await h.settled()
    async with db[1]() as s:
        assert [q.text for q in await top_unanswered(session=s)] == ["领个本本要啥"]
    await h.press("结婚登记")
    assert "申报材料" in h.text()


async def test_tied_confident_matches_ask_which(make_harness: HarnessMaker) -> None:
    stub = StubMatcher(True, ("结婚登记", "item", 0.85), ("居民身份证补领", "item", 0.85))
    h = make_harness(matcher=stub)
    await h.say("证")
    assert h.texts() == ["您要办的是："]
    assert h.buttons() == ["结婚登记", "居民身份证补领", "都不是"]


async def test_fallback_is_honest_and_counts_the_question(
    harness: BotHarness, db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
) -> None:
    await harness.say("今天天气怎么样")
    text = harness.text()
    assert "没能在办事目录里找到" in text
    assert "咨询台：0999-1000000" in text and "周一至周五 9:00—17:00" in text
    assert harness.buttons() == ["按部门查找"]
    await harness.say("今天 天气怎么样？")  # same question, other spacing and punctuation
    await harness.say("我的电话 13812345678 能查天气吗")
    await harness.settled()
    async with db[1]() as s:
        rows = await top_unanswered(session=s)
    assert [(r.text, r.count) for r in rows] == [
        ("今天 天气怎么样？", 2),
        ("我的电话 138****5678 能查天气吗", 1),
    ]
    await harness.press("按部门查找")
    assert "县公安局" in harness.buttons()


@pytest.mark.parametrize("greeting", ["你好", "在吗？", "您好啊", "Hi!", "有人吗"])
async def test_a_greeting_is_greeted_back_not_told_nothing_was_found(
    harness: BotHarness, greeting: str, db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
) -> None:
    await harness.say(greeting)
    text = harness.text()
    assert text.startswith("您好") and "没能" not in text
    assert "身份证丢了怎么补办" in text  # how to ask, by example
    await harness.settled()
    async with db[1]() as s:
        assert await top_unanswered(session=s) == []


async def test_thanks_gets_a_short_reply_and_a_real_question_after_a_greeting_is_answered(
    harness: BotHarness,
) -> None:
    await harness.say("好的，谢谢！")
    assert harness.text().startswith("不客气")
    await harness.say("你好，结婚登记要带什么")
    assert "申报材料" in harness.text()


async def test_follow_ups_answer_the_item_in_context(harness: BotHarness) -> None:
    await harness.say("食品经营许可证核发")
    cases = {
        "要多少钱": "免费",
        "收费吗": "免费",
        "多久能办好": "承诺时限：5个工作日",
        "几天": "承诺时限：5个工作日",
        "在哪办": "A01 号窗口",
        "地址": "测试县新城路 1 号",
        "要带什么": "从业人员健康证明",
        "材料": "食品经营许可申请书",
        "依据是什么": "《中华人民共和国食品安全法》第三十五条",
        "法律依据": "食品安全法",
    }
    for question, expected in cases.items():
        await harness.say(question)
        text = harness.text()
        assert text.startswith("食品经营许可证核发"), question
        assert expected in text, question
        assert harness.buttons() == ["完整办事指南"]


async def test_follow_up_naming_another_item_switches_context(harness: BotHarness) -> None:
    await harness.say("食品经营许可证核发")
    await harness.say("那结婚登记要多少钱")
    assert harness.text().startswith("结婚登记")
    assert "9 元" in harness.text()
    await harness.say("多久能办好")
    assert harness.text().startswith("结婚登记") and "即办" in harness.text()
    await harness.press("完整办事指南")
    assert "双方户口簿" in harness.text()


async def test_follow_up_without_context_asks_what(harness: BotHarness) -> None:
    await harness.say("要多少钱")
    assert "请先告诉我您要办什么事" in harness.text()


async def test_bundle_follow_ups_use_combined_values(harness: BotHarness) -> None:
    await harness.say("开饭馆要办什么证")
    await harness.say("要多久")
    assert "承诺时限：7个工作日" in harness.text()
    await harness.say("收费吗")
    assert "全部免费" in harness.text()


async def test_card_buttons(harness: BotHarness) -> None:
    await harness.say("食品经营许可证核发")
    await harness.press("在哪办")
    assert "A01 号窗口 · 一楼 A 区" in harness.text() and "测试县新城路 1 号" in harness.text()
    await harness.press("样表")
    [doc] = harness.calls("SendDocument")
    assert doc.document.filename == "食品经营许可申请书.txt"
    await harness.press("相关事项")
    assert harness.buttons() == ["个体工商户设立登记"]
    await harness.press("一件事")
    assert "开办餐饮店一件事" in harness.text()


async def test_missing_sample_file_is_said_not_crashed(
    make_harness: HarnessMaker, bot_catalog: Catalog
) -> None:
    it = bot_catalog.item("食品经营许可证核发")
    assert it is not None
    mats = [m.model_copy(update={"sample": "不存在.docx"}) if m.sample else m for m in it.materials]
    items = [it.model_copy(update={"materials": mats}) if x is it else x for x in bot_catalog.items]
    broken = replace(bot_catalog, items=items)
    h = make_harness(catalog=broken)
    await h.say("食品经营许可证核发")
    await h.press("样表")
    assert "样表暂未上传" in h.text() and "A01 号窗口" in h.text()
    assert not h.calls("SendDocument")


async def test_button_from_an_older_catalog_is_refused(harness: BotHarness) -> None:
    await harness.press_data("g1:i:c:0:ffff")  # index exists, name checksum does not match
    assert harness.alerts() == ["这个按钮已过期，请重新提问。"]
    assert not harness.calls("SendMessage")
    await harness.press_data("zz:garbage")
    assert harness.alerts() == ["这个按钮已过期，请重新提问。"]


async def test_long_card_is_split_cleanly(make_harness: HarnessMaker, bot_catalog: Catalog) -> None:
    mats = [
        Material(name=f"第{n}号证明材料", notes="需加盖公章，<内容>与原件一致 & 由经办人签字确认。" * 3)
        for n in range(1, 81)
    ]
    big = Item(name="超长材料测试事项", code="T-BIG", department="县公安局", window="D01", materials=mats)
    cat = Catalog(bot_catalog.center, bot_catalog.departments, bot_catalog.windows, [big], [])
    h = make_harness(catalog=cat)
    await h.say("超长材料测试事项")
    sent = h.calls("SendMessage")
    assert len(sent) >= 3
    assert all(utf16_len(m.text) <= TELEGRAM_LIMIT for m in sent)
    assert all(m.text.count("<b>") == m.text.count("</b>") for m in sent)
    assert [m.reply_markup is not None for m in sent] == [False] * (len(sent) - 1) + [True]
    text = h.text()
    positions = [text.index(f"第{n}号证明材料") for n in range(1, 81)]
    assert positions == sorted(positions)  # nothing lost, nothing reordered
