"""The one Dispatcher factory: polling, webhook, the local console and the tests all call it."""

from __future__ import annotations

import datetime as dt

from aiogram import Dispatcher
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from jinja2 import Environment
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

import handlers
from bot.metrics import UpdateObserver
from bot.middlewares import (
    DbSessionMiddleware,
    DbUpdateLedger,
    MemoryThrottle,
    RedisBusyReply,
    RedisHealth,
    RedisThrottle,
    RedisUpdateLedger,
    ReplyInResponse,
    RoleMiddleware,
    RoleResolver,
    Throttle,
    ThrottleMiddleware,
    UpdateDedupe,
    UpdateLedger,
    redis_client,
)
from bot.settings import Settings
from handlers.filters import staff_role_resolver
from handlers.guide import Cards
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.questions import UnansweredWriter

# Longer than any conversation (a follow-up, the self-check walk, a complaint being written), short
# enough that Redis does not keep every user who ever wrote.
FSM_TTL = dt.timedelta(days=7)
# The per-user event lock: held while one update of the user is handled. It expires on its own if
# its process dies; a waiter gives up (系统繁忙) rather than hang.
LOCK_KWARGS = {"timeout": 30, "blocking_timeout": 30}


def make_storage(settings: Settings) -> BaseStorage:
    """FSM state (follow-up context, self-check progress): in memory, or Redis so several bot
    processes (webhook workers) share a conversation."""
    if settings.redis_url:
        return RedisStorage(
            redis_client(settings.redis_url),
            # The bot id in every key: several bots (centers) can share one Redis.
            key_builder=DefaultKeyBuilder(prefix="yc:fsm", with_bot_id=True),
            state_ttl=FSM_TTL,
            data_ttl=FSM_TTL,
        )
    return MemoryStorage()


def make_throttle(settings: Settings, storage: BaseStorage, health: RedisHealth) -> Throttle:
    """In memory, or in the FSM's Redis (same connections) so a flood spread over several
    processes is counted as one user's."""
    if isinstance(storage, RedisStorage):
        token = settings.bot_token.get_secret_value() if settings.bot_token else ""
        prefix = f"yc:throttle:{token.split(':', 1)[0] or 'console'}"
        return RedisThrottle(storage.redis, settings.throttle_rate, prefix=prefix, health=health)
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
    dedupe: bool | None = None,
    reply_in_response: bool = False,
) -> Dispatcher:
    """`dedupe`: drop update ids seen before; by default on when the updates come from Telegram
    (a BOT_TOKEN is set), off for the local console, whose update ids restart at 1.
    `reply_in_response`: webhook mode, where an update's last reply can ride in the HTTP response."""
    storage = storage or make_storage(settings)
    isolation: BaseEventIsolation
    health = RedisHealth()
    if isinstance(storage, RedisStorage):
        # Two updates of one user handled by two processes must not interleave their FSM steps.
        isolation = storage.create_isolation(lock_kwargs=LOCK_KWARGS)
    else:
        # Same within one process: a double-pressed button must not move the self-check twice.
        isolation = SimpleEventIsolation()
    # Workflow data: handlers receive these by parameter name; tests swap them the same way.
    unanswered = UnansweredWriter(session_factory.kw["bind"])
    dp = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        settings=settings,
        catalog=catalog,
        matcher=matcher,
        templates=templates,
        session_factory=session_factory,
        cards=Cards(catalog, templates),
        # One per process: fallbacks arriving together share one write (models/batching.py).
        unanswered=unanswered,
    )
    dp.shutdown.register(unanswered.drain)  # asks queued but not yet written
    dp.update.outer_middleware(UpdateObserver())
    if reply_in_response:
        dp.update.outer_middleware(ReplyInResponse())
    if settings.bot_token is not None if dedupe is None else dedupe:
        ledger: UpdateLedger = (
            RedisUpdateLedger(storage.redis)
            if isinstance(storage, RedisStorage)
            else DbUpdateLedger(session_factory.kw["bind"])
        )
        dp.update.outer_middleware(UpdateDedupe(ledger))
        dp.shutdown.register(ledger.drain)  # ids taken in but not yet written (DbUpdateLedger)
    if role_resolver is None:
        # The staff resolver keeps one snapshot of all staff for role_ttl: no per-user cache on top,
        # which would make a new member wait up to twice as long.
        resolver, cache_ttl = staff_role_resolver(session_factory, ttl=role_ttl), 0.0
    else:
        resolver, cache_ttl = role_resolver, role_ttl
    dp.update.outer_middleware(RoleMiddleware(resolver, ttl=cache_ttl))
    if settings.throttle_rate > 0:
        guard = ThrottleMiddleware(throttle or make_throttle(settings, storage, health))
        dp.message.outer_middleware(guard)
        dp.callback_query.outer_middleware(guard)
    db = DbSessionMiddleware(session_factory)
    for observer in (dp.message, dp.callback_query, dp.inline_query):
        observer.middleware(db)
    if isinstance(storage, RedisStorage):
        # Before the routers' generic apology: Redis trouble gets its own short reply.
        dp.errors.register(RedisBusyReply(health).reply, ExceptionTypeFilter(RedisError))
    dp.include_routers(*handlers.routers())
    return dp
