"""The handler suite's Redis runs (tests/conftest.py: `[redis]` ids when TEST_REDIS_URL is set)
really keep the conversation in Redis: a second dispatcher, as a second webhook worker would be,
answers the follow-up. On memory each dispatcher has its own state and would not know the topic."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.redis import RedisStorage

from tests.conftest import HarnessMaker


@pytest.mark.parametrize("harness_backend", ["redis"], indirect=True)
async def test_redis_runs_share_the_conversation_between_dispatchers(
    redis_url: str, make_harness: HarnessMaker
) -> None:
    first = make_harness()
    assert isinstance(first.dp.storage, RedisStorage)
    await first.say("结婚登记")
    second = make_harness()
    await second.say("要多少钱")
    assert second.text().startswith("结婚登记") and "9 元" in second.text()
