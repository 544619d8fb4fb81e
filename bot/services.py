"""Background services started next to the bot by `yichuang run` (and `yichuang api`): the
integration API, the notice delivery worker, the daily deadline digest and, on SQLite, the WAL
checkpoints (models/sqlite_inline.py); stopped together.

The delivery worker runs only while this process holds the bot token's lease (models/leases.py):
with several bot processes one sends and the others wait, ready to take over, so the global pace
and the per-chat interval hold for the bot as a whole."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiohttp import web
from redis.asyncio import Redis

from bot.api import ApiContext, build_app, serve
from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.metrics import OpsContext
from bot.reminders import digest_loop
from models.db import sqlite_file
from models.leases import Lease, delivery_lease_name, run_while_held
from models.sqlite_inline import checkpoint_loop

if TYPE_CHECKING:
    from bot.runtime import Parts

log = logging.getLogger(__name__)


@dataclass
class Services:
    worker: DeliveryWorker | None = None  # the current one: a new one after each takeover
    lease: Lease | None = None
    api: web.AppRunner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    async def stop(self) -> None:
        """API first (no new notices), then the digest, then the worker finishes its sends."""
        self.stopping.set()
        if self.api is not None:
            await self.api.cleanup()
        if self.worker is not None:
            self.worker.stop()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=30)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def start_services(
    parts: Parts, bot: Bot | None, *, api: bool = True, worker: bool = True, digest: bool = True
) -> Services:
    """Start what the settings ask for: the API when API_TOKEN is set; the worker and the digest
    when there is a bot to send with."""
    settings = parts.settings
    services = Services()
    if worker and bot is not None:
        services.lease = Lease(parts.session_factory, delivery_lease_name(bot.token))
        config = DeliveryConfig.from_settings(settings)

        def start() -> Coroutine[Any, Any, None]:
            services.worker = DeliveryWorker(bot, parts.session_factory, config)
            return services.worker.run()

        def stop_work() -> None:
            if services.worker is not None:
                services.worker.stop()

        held = run_while_held(services.lease, start, stop_work, services.stopping)
        services.tasks.append(asyncio.create_task(held, name="notice-delivery"))
    if digest and bot is not None:
        loop = digest_loop(
            factory=parts.session_factory,
            catalog=parts.catalog,
            templates=parts.templates,
            stop=services.stopping,
            on_queued=services.wake_worker,
        )
        services.tasks.append(asyncio.create_task(loop, name="deadline-digest"))
    database = sqlite_file(settings.database_url)
    if database is not None:
        checkpoints = checkpoint_loop(database, services.stopping)
        services.tasks.append(asyncio.create_task(checkpoints, name="sqlite-checkpoint"))
    if api and settings.api_token is not None and settings.api_token.get_secret_value():
        username = None
        if bot is not None:
            try:
                username = (await bot.me()).username
            except Exception as e:  # noqa: BLE001 - links can wait; the API itself must come up
                log.warning("bot username unknown (%s): API answers without binding links", e)
        ops = OpsContext(
            parts.session_factory,
            redis=Redis.from_url(settings.redis_url, socket_timeout=2) if settings.redis_url else None,
            lease_name=delivery_lease_name(bot.token) if bot is not None else None,
        )
        ctx = ApiContext(
            parts.catalog, parts.templates, parts.session_factory, username, services.wake_worker, ops
        )
        app = build_app(ctx, token=settings.api_token.get_secret_value())
        services.api = await serve(app, settings.api_host, settings.api_port)
    return services
