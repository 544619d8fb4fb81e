"""Operations costs: the update ledger per update (SQLite, and PostgreSQL when TEST_DATABASE_URL is
set), /healthz and /metrics answer times, and how long a waiting worker takes to take over the
delivery lease from a dead holder (default timings: lease 15 s, renewed every 5 s).

    python bench/bench_ops.py [--updates 3000] [--takeover]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application

from bot.metrics import OpsContext, add_ops_routes
from bot.middlewares import DbUpdateLedger
from models.db import async_engine, prepare_database, session_factory
from models.leases import Lease


async def ledger(url: str, n: int, concurrency: int = 20) -> None:
    engine = async_engine(url)
    await prepare_database(engine)
    book = DbUpdateLedger(engine)
    base = int(time.time() * 1000) % 10**9 * 1000
    ids = iter(range(base, base + n))
    lat: list[float] = []

    async def one() -> None:
        for update_id in ids:
            t = time.perf_counter()
            assert await book.first_time(1, update_id)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    took = time.perf_counter() - t0
    dup = time.perf_counter()
    assert not await book.first_time(1, base)
    dup = time.perf_counter() - dup
    lat.sort()
    backend = url.split(":", 1)[0]
    print(
        f"ledger {backend}: {n / took:,.0f} updates/s with {concurrency} concurrent, "
        f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms; "
        f"duplicate check {dup * 1000:.1f} ms"
    )
    app = Application()
    add_ops_routes(app, OpsContext(session_factory(engine), lease_name="delivery:bench"))
    client = TestClient(TestServer(app))
    await client.start_server()
    for path in ("/healthz", "/metrics"):
        times = []
        for _ in range(200):
            t = time.perf_counter()
            r = await client.get(path)
            await r.read()
            times.append(time.perf_counter() - t)
        print(f"{path} ({backend}): median {statistics.median(times) * 1000:.1f} ms over 200 requests")
    await client.close()
    await engine.dispose()


async def takeover(url: str) -> None:
    engine = async_engine(url)
    await prepare_database(engine)
    factory = session_factory(engine)
    holder = Lease(factory, "delivery:takeover", holder="dead")
    waiter = Lease(factory, "delivery:takeover", holder="alive")
    assert await holder.acquire()
    died = time.monotonic()  # the holder never renews again (kill -9)
    for _ in range(100):  # what run_while_held does: one attempt per beat
        if await waiter.acquire():
            break
        await asyncio.sleep(waiter.renew_every)
    took = time.monotonic() - died
    print(f"takeover after {took:.1f} s (lease {holder.ttl:.0f} s, renewed every {holder.renew_every:.0f} s)")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--takeover", action="store_true", help="also time a lease takeover (~15-20 s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'ops.db'}"
        asyncio.run(ledger(sqlite, args.updates))
        if args.takeover:
            asyncio.run(takeover(sqlite))
    if os.environ.get("TEST_DATABASE_URL"):
        asyncio.run(ledger(os.environ["TEST_DATABASE_URL"], args.updates))


if __name__ == "__main__":
    main()
