"""Bad input gets a short clear reply (or silence in a flood) and never crashes the dispatcher."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.middlewares import MemoryThrottle
from bot.settings import Settings
from models.questions import count_unanswered
from tests.conftest import BotHarness, HarnessMaker

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("   ", "请用一句话告诉我您要办什么"),
        ("办" * 5000, "消息太长了（5000 字）"),
        ("😀😀🎉", "没看懂这条消息"),
        ("？？！！…", "没看懂这条消息"),
    ],
)
async def test_bad_text_gets_short_reply(harness: BotHarness, db: Db, text: str, expected: str) -> None:
    await harness.say(text)
    [reply] = harness.texts()
    assert expected in reply
    await harness.settled()
    async with db[1]() as s:
        assert await count_unanswered(session=s) == 0  # junk is not a question for the editors


async def test_sticker_and_photo_are_politely_refused(harness: BotHarness) -> None:
    sticker = {
        "file_id": "s1",
        "file_unique_id": "u1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    await harness.say(sticker=sticker)
    assert "我只能看懂文字消息" in harness.text()
    await harness.say(photo=[{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}])
    assert "我只能看懂文字消息" in harness.text()


async def test_unknown_command_lists_commands_and_is_not_a_question(harness: BotHarness, db: Db) -> None:
    await harness.say("/foo bar")
    text = harness.text()
    assert "没有“/foo”这个命令" in text and "/departments" in text
    await harness.settled()
    async with db[1]() as s:
        assert await count_unanswered(session=s) == 0


async def test_flood_is_cut_with_one_warning(make_harness: HarnessMaker) -> None:
    now = [1000.0]
    throttle = MemoryThrottle(rate=0.5, burst=5, clock=lambda: now[0])
    h = make_harness(settings=Settings(bot_token=None, throttle_rate=0.5), throttle=throttle)
    replies: list[str] = []
    for _ in range(20):
        await h.say("结婚登记")
        replies += h.texts()
    assert sum("结婚登记" in r for r in replies) == 5
    assert replies.count("您发得太快了，请稍等几秒再试。") == 1
    now[0] += 1.0  # two tokens back after a second at one message per 0.5 s
    await h.say("结婚登记")
    assert "双方户口簿" in h.text()


async def test_other_users_are_not_throttled_by_a_flooder(make_harness: HarnessMaker) -> None:
    throttle = MemoryThrottle(rate=0.5, burst=2, clock=lambda: 0.0)
    settings = Settings(bot_token=None, throttle_rate=0.5)
    flooder = make_harness(settings=settings, throttle=throttle, user_id=1)
    for _ in range(5):
        await flooder.say("结婚登记")
    other = BotHarness(flooder.dp, user_id=2)
    await other.say("结婚登记")
    assert "双方户口簿" in other.text()


class ExplodingMatcher:
    def search(self, question: str, limit: int = 5) -> object:
        raise RuntimeError(f"matcher broke on {question}")


async def test_handler_error_is_logged_once_and_user_gets_apology(
    make_harness: HarnessMaker, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(matcher=ExplodingMatcher())
    with caplog.at_level(logging.ERROR):
        await h.say("结婚登记 13812345678")
    assert "抱歉，刚才出了点问题" in h.text()
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].getMessage().startswith("update 1 failed")  # the first update fed
    # the dispatcher keeps working for the next update
    await h.say("/center")
    assert "测试县新城路 1 号" in h.text()


async def test_group_chatter_is_not_answered(harness: BotHarness) -> None:
    group = {"id": -1001, "type": "group", "title": "家人群"}
    await harness.say("结婚登记", chat=group)
    await harness.say("😀😀", chat=group)
    assert harness.last == []
    await harness.say("/center", chat=group)  # commands still work in a group
    assert "测试县新城路 1 号" in harness.text()
