"""Redis down at start-up or mid-traffic (a private redis-server, really stopped and restarted):
the bot never crashes, says 系统繁忙 once instead of failing silently or apologising per message,
the throttle lets messages through, and everything works again when Redis is back, by itself."""

from __future__ import annotations

import logging

import pytest

from bot.middlewares import RedisThrottle, Verdict, redis_client
from bot.settings import Settings
from tests.conftest import BotHarness, HarnessMaker
from tests.redis.conftest import RedisServer, fresh_user

BUSY = "系统繁忙，请稍后再试。"
APOLOGY = "抱歉，刚才出了点问题"
DOWN, UP = "Redis unreachable", "Redis reachable again"


def bot_on(make_harness: HarnessMaker, server: RedisServer) -> BotHarness:
    settings = Settings(bot_token=None, redis_url=server.url, throttle_rate=0.5)
    return make_harness(settings=settings, user_id=fresh_user())


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


async def test_redis_down_at_start_up(
    make_harness: HarnessMaker, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bot = bot_on(make_harness, redis_server)  # Redis not running yet
    replies = [await bot.say(q) for q in ("结婚登记", "结婚登记要多少钱", "在哪办")]
    assert [bot.texts(r) for r in replies] == [[BUSY], [], []]  # told once, not per message
    assert logged(caplog, DOWN) == 1

    redis_server.start()
    await bot.say("结婚登记")
    assert "双方户口簿" in bot.text()
    await bot.say("要多少钱")
    assert bot.text().startswith("结婚登记") and "9 元" in bot.text()
    assert logged(caplog, DOWN) == 1 and logged(caplog, UP) == 1
    assert APOLOGY not in "\n".join(t for r in replies for t in bot.texts(r))
    await bot.dp.storage.close()


async def test_redis_restarted_mid_traffic(
    make_harness: HarnessMaker, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    redis_server.start()
    bot = bot_on(make_harness, redis_server)
    await bot.say("食品经营许可证核发")
    await bot.say("要多少钱")
    assert "免费" in bot.text()

    redis_server.stop()
    await bot.press("材料自查")
    assert bot.alerts() == [BUSY]  # the button's spinner stops with the reason
    await bot.say("要多少钱")
    assert bot.texts() == []  # already told; a burst during the outage is not answered one for one

    redis_server.start()  # empty: this server persists nothing, as a crashed cache would lose it
    await bot.say("要多少钱")
    assert "请先告诉我您要办什么事" in bot.text()  # a real answer: reconnected without anyone's help
    await bot.say("食品经营许可证核发")
    await bot.say("要多少钱")
    assert bot.text().startswith("食品经营许可证核发") and "免费" in bot.text()
    assert logged(caplog, DOWN) == 1 and logged(caplog, UP) == 1
    await bot.dp.storage.close()


async def test_throttle_fails_open_and_counts_again_when_redis_is_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = redis_client(redis_server.url)
    throttle = RedisThrottle(client, rate=60)
    user = fresh_user()
    assert [await throttle.hit(user) for _ in range(8)] == [Verdict.OK] * 8
    assert logged(caplog, DOWN) == 1
    redis_server.start()
    assert [await throttle.hit(user) for _ in range(7)] == [Verdict.OK] * 5 + [Verdict.WARN, Verdict.DROP]
    assert logged(caplog, UP) == 1
    await client.aclose()
