"""A delivery worker as its own process, for the crash-recovery test (killed with SIGKILL there).

python -m tests.cases_handlers.worker_proc DATABASE_URL API_BASE LEASE_SECONDS
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


async def main(url: str, base: str, lease: float) -> None:
    engine = async_engine(url)
    bot = Bot("123456:CRASH", session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    worker = DeliveryWorker(
        bot, session_factory(engine), DeliveryConfig(rate=200, chat_interval=0, lease=lease, send_timeout=5)
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await bot.session.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
