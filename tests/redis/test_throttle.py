"""The Redis throttle keeps MemoryThrottle's rule: a burst, then one message per `rate` seconds;
the first refused message is answered, later ones dropped."""

from __future__ import annotations

import asyncio

from bot.middlewares import RedisThrottle, Verdict, redis_client
from tests.redis.conftest import fresh_user

OK, WARN, DROP = Verdict.OK, Verdict.WARN, Verdict.DROP


async def test_burst_then_one_per_rate_then_warned_again(redis_url: str) -> None:
    client = redis_client(redis_url)
    throttle = RedisThrottle(client, rate=1.0, burst=2)
    user = fresh_user()
    assert [await throttle.hit(user) for _ in range(4)] == [OK, OK, WARN, DROP]
    await asyncio.sleep(1.1)  # one token back
    assert [await throttle.hit(user) for _ in range(3)] == [OK, WARN, DROP]
    await client.aclose()
