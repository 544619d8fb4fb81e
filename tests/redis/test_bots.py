"""Two bots (two centers, two tokens) sharing one Redis keep their users' conversations and flood
limits apart, while processes of the same bot share them."""

from __future__ import annotations

import itertools

from pydantic import SecretStr

from bot.runtime import UpdateFactory, make_bot
from bot.settings import Settings
from tests.conftest import BotHarness, HarnessMaker
from tests.redis.conftest import fresh_user

THROTTLED = "您发得太快了，请稍等几秒再试。"


def process(make_harness: HarnessMaker, redis_url: str, user: int, token: str | None = None) -> BotHarness:
    """A bot process on the shared Redis; `token` picks the bot (None: the console's)."""
    secret = SecretStr(token) if token is not None else None
    settings = Settings(bot_token=secret, redis_url=redis_url, throttle_rate=60)
    harness = make_harness(settings=settings, user_id=user)
    if token is not None:
        harness.bot = make_bot(settings, session=harness.session)
        # With a token the bot drops update ids it has seen (kept in this Redis for a day).
        harness.updates = UpdateFactory(harness.bot, user_id=user, _ids=itertools.count(fresh_user()))
    return harness


async def test_conversation_belongs_to_one_bot(make_harness: HarnessMaker, redis_url: str) -> None:
    user = fresh_user()
    await process(make_harness, redis_url, user).say("结婚登记")
    same_bot = process(make_harness, redis_url, user)
    await same_bot.say("要多少钱")
    assert same_bot.text().startswith("结婚登记")
    other_bot = process(make_harness, redis_url, user, token="2002:OTHER")
    await other_bot.say("要多少钱")
    assert "请先告诉我您要办什么事" in other_bot.text()
    for h in (same_bot, other_bot):
        await h.dp.storage.close()


async def test_flood_limit_belongs_to_one_bot(make_harness: HarnessMaker, redis_url: str) -> None:
    user = fresh_user()
    first = process(make_harness, redis_url, user)
    replies = [await first.say("结婚登记") for _ in range(6)]
    assert first.texts(replies[-1]) == [THROTTLED]
    other_bot = process(make_harness, redis_url, user, token="2002:OTHER")
    await other_bot.say("结婚登记")
    assert "双方户口簿" in other_bot.text()
    for h in (first, other_bot):
        await h.dp.storage.close()
