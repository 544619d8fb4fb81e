"""A broadcast through the Bot API emulator with injected 429s, 5xx and timeouts, and the delivery
worker SIGKILLed mid-run and restarted; shared by tests/faults and bench/bench_faults.py.

Every notice carries a marker (#k#); the emulator's call log tells which sends it accepted and
which it failed on purpose, so "lost" and "duplicated" are counted from what Telegram received.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, func, select

from models.db import async_engine, prepare_database, session_factory
from models.notices import Notice, enqueue_notice
from tests.e2e.tgemu.tguser import Emulator, call
from tests.faults.worker_proc import CONFIG

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"#(\d+)#")


@dataclass
class Outcome:
    total: int
    received: Counter[int] = field(default_factory=Counter)  # notice -> sends Telegram accepted
    faults: Counter[str] = field(default_factory=Counter)  # injected fault -> calls it failed
    in_flight_at_kill: int = 0
    pending_after: int = 0
    seconds: float = 0.0

    @property
    def lost(self) -> list[int]:
        return [k for k in range(self.total) if self.received[k] == 0]

    @property
    def duplicated(self) -> list[int]:
        return [k for k, n in self.received.items() if n > 1]

    def summary(self) -> str:
        return (
            f"{self.total} notices in {self.seconds:.1f} s: lost {len(self.lost)}, duplicated "
            f"{len(self.duplicated)}, in flight at the kill <= {self.in_flight_at_kill}, still pending "
            f"{self.pending_after}; faults injected {dict(self.faults)}"
        )


def received(emu: Emulator) -> tuple[Counter[int], Counter[str]]:
    ok: Counter[int] = Counter()
    faults: Counter[str] = Counter()
    for c in call(emu.base, "/_calls?method=sendMessage")["result"]:
        if c.get("fault"):
            faults[str(c["fault"])] += 1
            continue
        m = MARK.search(str(c["body"].get("text", "")))
        if m:
            ok[int(m.group(1))] += 1
    return ok, faults


def inject(emu: Emulator, timeouts: int = 2) -> None:
    """One round of trouble, in the order the next sends meet it."""
    emu.fault(
        method="sendMessage", error_code=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    emu.fault(method="sendMessage", error_code=500, description="Internal Server Error", times=3)
    emu.fault(method="sendMessage", error_code=502, description="Bad Gateway", times=2)
    emu.fault(method="sendMessage", delay_ms=int((CONFIG.send_timeout + 1) * 1000), times=timeouts)
    emu.fault(
        method="sendMessage", error_code=429, description="Too Many Requests: retry after 1", retry_after=1
    )


async def start_worker(url: str, base: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.worker_proc",
        url,
        base,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def pending(url: str) -> int:
    engine = async_engine(url)
    try:
        async with session_factory(engine)() as s:
            q = select(func.count()).select_from(Notice).where(col(Notice.status) != "sent")
            return int((await s.exec(q)).one())
    finally:
        await engine.dispose()


async def broadcast(emu: Emulator, url: str, total: int, chats: int, limit: float) -> Outcome:
    """Queue `total` notices, deliver them through faults, SIGKILL the worker a third of the way in,
    restart it, and wait (up to `limit` seconds) until every notice is marked sent."""
    engine = async_engine(url)
    await prepare_database(engine)
    async with session_factory(engine)() as s:
        for k in range(total):
            enqueue_notice(session=s, chat_id=80_000 + k % chats, kind="broadcast", text=f"中心公告 #{k}#")
        await s.commit()
    await engine.dispose()

    out = Outcome(total)
    started = time.monotonic()
    inject(emu)
    worker = await start_worker(url, emu.base)
    try:
        while len(received(emu)[0]) < total // 3:
            if time.monotonic() - started > limit:
                raise AssertionError(f"the first third was not sent within {limit:.0f} s")
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        # At most `concurrency` sends are in flight at any moment: those may have reached Telegram
        # without their mark reaching the database.
        out.in_flight_at_kill = CONFIG.concurrency
        inject(emu)
        worker = await start_worker(url, emu.base)
        while (left := await pending(url)) > 0:
            if time.monotonic() - started > limit:
                break
            await asyncio.sleep(0.2)
        out.pending_after = left
    finally:
        out.seconds = time.monotonic() - started
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(worker.wait(), 15)
            except TimeoutError:
                worker.kill()
                await worker.wait()
    out.received, out.faults = received(emu)
    return out
