"""What REDIS_URL costs per update (not a test: prints numbers).

    python -m bench.bench_redis [--redis URL] [--users 50] [--rounds 20]

The production Dispatcher fed concurrently by `--users` users, each asking a question and then
follow-ups (FSM state read and written on every update), once with the embedded defaults (memory
FSM and throttle, no lock) and once with Redis (RedisStorage, the per-user lock, the Lua throttle),
replies answered by the recording session. Then the raw throttle round trip. The Redis URL defaults
to TEST_REDIS_URL, e.g. from `bash .ci/redis.sh`. CPU time is shown beside wall time because a
shared machine's load inflates wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from aiogram.types import Update

from bot.app import build_dispatcher
from bot.middlewares import RedisThrottle, redis_client
from bot.runtime import RecordingSession, UpdateFactory, make_bot
from bot.settings import Settings
from bot.templates import make_templates
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from models.db import async_engine, prepare_database, session_factory

CONVERSATION = ["结婚登记", "要多少钱", "多久能办好", "在哪办", "要带什么"]


async def feed(settings: Settings, users: int, rounds: int, db_dir: str) -> None:
    catalog = load_catalog()
    engine = async_engine(f"sqlite:///{db_dir}/bench-{'redis' if settings.redis_url else 'memory'}.db")
    await prepare_database(engine)
    dp = build_dispatcher(
        settings=settings,
        catalog=catalog,
        matcher=Matcher(catalog),
        templates=make_templates(),
        session_factory=session_factory(engine),
    )
    session = RecordingSession()
    bot = make_bot(settings, session=session)
    base = int(time.time()) * 1000  # fresh users each run: Redis keeps state between runs
    factories = [UpdateFactory(bot, user_id=base + u) for u in range(users)]
    await dp.feed_update(bot, factories[0].message(CONVERSATION[0]))  # warm-up
    per: list[float] = []

    async def user(f: UpdateFactory, updates: list[Update]) -> None:
        for u in updates:  # one user's messages in order, as a person types them
            t = time.perf_counter()
            await dp.feed_update(bot, u)
            per.append(time.perf_counter() - t)

    # Updates are built before timing: building one is Telegram's job, not the bot's.
    plan = [(f, [f.message(q) for _ in range(rounds) for q in CONVERSATION]) for f in factories]
    session.take()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(user(f, us) for f, us in plan))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sent = len(session.take())
    await dp.storage.close()
    await engine.dispose()
    n = len(per)
    pct = statistics.quantiles(per, n=100)
    name = "redis " if settings.redis_url else "memory"
    print(
        f"{name}: {n} updates from {users} users, {sent} replies"
        f" | wall {n / wall:,.0f}/s  cpu {n / cpu:,.0f}/s"
        f" | per update ms p50 {pct[49] * 1000:.2f}  p99 {pct[98] * 1000:.2f}"
    )


async def throttle_round_trip(url: str, hits: int = 2000) -> None:
    client = redis_client(url)
    throttle = RedisThrottle(client, rate=0.001)
    await throttle.hit(0)
    t0 = time.perf_counter()
    for i in range(hits):
        await throttle.hit(i % 100)
    dt = time.perf_counter() - t0
    await client.aclose()
    print(f"throttle: {hits} hits, {dt / hits * 1e6:.0f} µs per hit (one EVALSHA round trip)")


async def run(url: str, users: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # A throttle that never refuses these users: its cost is measured, not its verdicts.
        await feed(Settings(bot_token=None, throttle_rate=0.001), users, rounds, tmp)
        await feed(Settings(bot_token=None, throttle_rate=0.001, redis_url=url), users, rounds, tmp)
    await throttle_round_trip(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", default=os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL"))
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=20, help="times each user runs the conversation")
    args = ap.parse_args()
    if not args.redis:
        ap.error("no Redis: pass --redis URL or set TEST_REDIS_URL (bash .ci/redis.sh starts one)")
    asyncio.run(run(args.redis, args.users, args.rounds))


if __name__ == "__main__":
    main()
