"""Notice delivery against the Bot API emulator with injected faults. Not a test: prints numbers.

    python -m bench.bench_notices                  # 3,000 notices at the default pace (25/s)
    python -m bench.bench_notices --rate 100 --count 3000 --chats 500

A side thread injects a 429 (retry_after 1 s) every 20 s and a 500 or 502 every 4 s into
sendMessage. Every successful Bot API answer is recorded per notice, so "lost" (a notice with no
successful send) and "duplicated" (more than one) are counted, and the emulator's call log is
cross-checked: calls made = successful sends + faults injected.

The achieved rate is reported raw (successful sends / elapsed) and net of the pauses Telegram
imposed (each 429 obliges the worker to wait retry_after seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendMessage, TelegramMethod
from sqlmodel import col, func, select

from bot.delivery import DeliveryConfig, DeliveryWorker
from models.db import async_engine, prepare_database, session_factory
from models.notices import Notice, enqueue_notice
from tests.e2e.tgemu.tguser import Emulator

MARK = re.compile(r"#(\d+)#")


class CountingSession(AiohttpSession):
    """Records the notice marker of every sendMessage the server accepted."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ok: Counter[int] = Counter()
        self.first: float | None = None
        self.last = 0.0

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:  # noqa: ASYNC109
        result = await super().make_request(bot, method, timeout)
        if isinstance(method, SendMessage):
            m = MARK.search(method.text)
            if m:
                self.ok[int(m.group(1))] += 1
                now = time.monotonic()
                self.first = self.first or now
                self.last = now
        return result


def inject(emu: Emulator, stop: threading.Event, counts: Counter[str]) -> None:
    k = 0
    while not stop.wait(4.0):
        k += 1
        if k % 5 == 0:
            emu.fault(
                method="sendMessage",
                error_code=429,
                description="Too Many Requests: retry after 1",
                retry_after=1,
            )
            counts["429"] += 1
        else:
            code = 500 if k % 2 else 502
            emu.fault(
                method="sendMessage",
                error_code=code,
                description="Bad Gateway" if code == 502 else "Internal",
            )
            counts[str(code)] += 1


async def run(count: int, chats: int, rate: float, faults: bool) -> None:
    emu = Emulator.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench_notices_"))
    engine = async_engine(f"sqlite:///{tmp / 'bench.db'}")
    await prepare_database(engine)
    factory = session_factory(engine)
    async with factory() as s:
        for k in range(count):
            enqueue_notice(session=s, chat_id=50_000 + k % chats, kind="bench", text=f"办件进度更新 #{k}#")
        await s.commit()

    session = CountingSession(api=TelegramAPIServer.from_base(emu.base))
    bot = Bot(emu.token, session=session)
    worker = DeliveryWorker(bot, factory, DeliveryConfig(rate=rate, backoff_base=0.5, backoff_max=5))
    injected: Counter[str] = Counter()
    stop = threading.Event()
    thread = threading.Thread(target=inject, args=(emu, stop, injected), daemon=True)
    task = asyncio.create_task(worker.run())
    started = time.monotonic()
    if faults:
        thread.start()
    try:
        while True:
            await asyncio.sleep(0.5)
            async with factory() as s:
                left = (
                    await s.exec(
                        select(func.count()).select_from(Notice).where(col(Notice.status) == "pending")
                    )
                ).one()
            if left == 0:
                break
            if time.monotonic() - started > count / rate * 3 + 60:
                print(f"gave up with {left} notices pending")
                break
    finally:
        stop.set()
        worker.stop()
        await task
        await bot.session.close()
        calls = len(emu.calls("sendMessage"))
        emu.stop()
        await engine.dispose()

    async with factory() as s:
        statuses = dict((await s.exec(select(Notice.status, func.count()).group_by(Notice.status))).all())
    delivered = set(session.ok)
    lost = count - len(delivered & set(range(count)))
    dupes = sum(1 for n in session.ok.values() if n > 1)
    elapsed = (session.last - (session.first or session.last)) or 1e-9
    pauses = injected["429"] * 1.0
    print(f"notices {count} to {chats} chats, pace {rate:g}/s, faults {dict(injected) or 'none'}")
    print(f"delivered {len(delivered)}, lost {lost}, duplicated {dupes}; statuses {statuses}")
    print(f"emulator sendMessage calls {calls} = successes {sum(session.ok.values())} + consumed faults")
    print(f"worker stats {dict(worker.stats)}")
    print(
        f"achieved {count / elapsed:.2f}/s raw ({count / elapsed / rate:.1%} of pace) over {elapsed:.1f}s; "
        f"net of {pauses:.0f}s of 429 pauses {count / max(elapsed - pauses, 1e-9):.2f}/s "
        f"({count / max(elapsed - pauses, 1e-9) / rate:.1%})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--chats", type=int, default=1000)
    p.add_argument("--rate", type=float, default=25.0)
    p.add_argument("--no-faults", action="store_true")
    a = p.parse_args()
    asyncio.run(run(a.count, a.chats, a.rate, not a.no_faults))


if __name__ == "__main__":
    main()
