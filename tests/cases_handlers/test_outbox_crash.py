"""Crash recovery: a worker process SIGKILLed in the middle of a run, then restarted, loses no
notice; only the ones in flight at the moment of the kill may arrive twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import col, func, select

from bot.delivery import DeliveryConfig
from models.db import async_engine, prepare_database, session_factory
from models.notices import Notice, enqueue_notice

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 300
LEASE = 2.0


class FakeTelegram:
    """Just enough Bot API: sendMessage answers after a short delay, like a real round trip."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def send(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = dict(await request.post()) or await request.json()
        self.received.append(str(body["text"]))
        await asyncio.sleep(0.005)
        message = {
            "message_id": len(self.received),
            "date": 0,
            "chat": {"id": int(body["chat_id"]), "type": "private"},
        }
        return web.json_response({"ok": True, "result": {**message, "text": body["text"]}})


async def start_worker(url: str, base: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.cases_handlers.worker_proc",
        url,
        base,
        str(LEASE),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_for(predicate: Any, limit: float, what: str) -> None:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = async_engine(url)
    await prepare_database(engine)
    factory = session_factory(engine)
    async with factory() as s:
        for k in range(TOTAL):
            enqueue_notice(session=s, chat_id=10_000 + k, kind="test", text=f"notice {k}")
        await s.commit()

    fake = FakeTelegram()
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", fake.send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        first = await start_worker(url, base)
        await wait_for(lambda: len(fake.received) >= TOTAL // 3, 60, "the first third to be sent")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed_at = len(fake.received)
        assert killed_at < TOTAL, "the worker finished before it could be killed"

        second = await start_worker(url, base)
        try:
            await wait_for(lambda: len(set(fake.received)) >= TOTAL, 120, "every notice to arrive")

            async def pending() -> int:
                async with factory() as s:
                    q = select(func.count()).select_from(Notice).where(col(Notice.status) != "sent")
                    return int((await s.exec(q)).one())

            for _ in range(100):
                if await pending() == 0:
                    break
                await asyncio.sleep(0.05)
            assert await pending() == 0
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
    finally:
        await runner.cleanup()
        await engine.dispose()

    counts = Counter(fake.received)
    assert set(counts) == {f"notice {k}" for k in range(TOTAL)}  # nothing lost
    twice = [text for text, n in counts.items() if n > 1]
    # At most the sends in flight when the process died went out twice.
    assert len(twice) <= DeliveryConfig().concurrency and all(counts[t] == 2 for t in twice)
