"""The one Dispatcher factory: polling, webhook, the local console and the tests all call it."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from jinja2 import Environment
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import handlers
from bot.middlewares import (
    DbSessionMiddleware,
    MemoryThrottle,
    RedisThrottle,
    RoleMiddleware,
    RoleResolver,
    Throttle,
    ThrottleMiddleware,
)
from bot.settings import Settings
from handlers.filters import staff_role_resolver
from handlers.guide import Cards
from knowledge.matcher import Matcher
from knowledge.schema import Catalog


def make_storage(settings: Settings) -> BaseStorage:
    """FSM state (follow-up context, self-check progress): in memory, or Redis so several bot
    processes (webhook workers) share a conversation."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(settings.redis_url)
    return MemoryStorage()


def make_throttle(settings: Settings) -> Throttle:
    if settings.redis_url:
        from redis.asyncio import Redis

        return RedisThrottle(Redis.from_url(settings.redis_url), settings.throttle_rate)
    return MemoryThrottle(settings.throttle_rate)


def build_dispatcher(
    *,
    settings: Settings,
    catalog: Catalog,
    matcher: Matcher,
    templates: Environment,
    session_factory: async_sessionmaker[AsyncSession],
    storage: BaseStorage | None = None,
    role_resolver: RoleResolver | None = None,
    role_ttl: float = 30.0,
    throttle: Throttle | None = None,
) -> Dispatcher:
    # Workflow data: handlers receive these by parameter name; tests swap them the same way.
    dp = Dispatcher(
        storage=storage or make_storage(settings),
        settings=settings,
        catalog=catalog,
        matcher=matcher,
        templates=templates,
        session_factory=session_factory,
        cards=Cards(catalog, templates),
    )
    resolver = role_resolver or staff_role_resolver(session_factory)
    dp.update.outer_middleware(RoleMiddleware(resolver, ttl=role_ttl))
    if settings.throttle_rate > 0:
        guard = ThrottleMiddleware(throttle or make_throttle(settings))
        dp.message.outer_middleware(guard)
        dp.callback_query.outer_middleware(guard)
    db = DbSessionMiddleware(session_factory)
    for observer in (dp.message, dp.callback_query, dp.inline_query):
        observer.middleware(db)
    dp.include_routers(*handlers.routers())
    return dp
