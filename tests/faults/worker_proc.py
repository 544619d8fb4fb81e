"""A notice delivery worker as its own process, so the fault tests can SIGKILL it.

python -m tests.faults.worker_proc DATABASE_URL API_BASE

Short timeouts and backoff: injected faults cost the test seconds, not minutes. The lease (how
long a claimed notice waits before another worker may take it) is longer than the send timeout,
as in production, so a slow send is never taken over while it may still succeed.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.delivery import DeliveryConfig, DeliveryWorker
from models.db import async_engine, session_factory

CONFIG = DeliveryConfig(
    rate=150, chat_interval=0, lease=4.0, send_timeout=2, backoff_base=0.2, backoff_max=2.0, poll_interval=0.2
)
TOKEN = "123456:TEST"  # the emulator's


async def main(url: str, base: str) -> None:
    engine = async_engine(url)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    worker = DeliveryWorker(bot, session_factory(engine), CONFIG)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await bot.session.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
