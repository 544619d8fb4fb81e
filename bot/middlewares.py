"""Middlewares: one DB session per update, per-user throttle, user-role lookup.

Errors are logged once, with the update id, by the errors handler in handlers/errors.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.templates import render

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
RoleResolver = Callable[[int], Awaitable[str]]

CITIZEN = "citizen"


class DbSessionMiddleware(BaseMiddleware):
    """Inner middleware: the handler gets `session`; committed when the handler returns normally.

    Inner, so updates no handler wants never open a session; SQLAlchemy connects lazily anyway,
    so a handler that never touches the database costs no connection.
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession]):
        self.factory = factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.factory() as session:
            data["session"] = session
            result = await handler(event, data)
            if session.in_transaction():
                await session.commit()
            return result


class RoleMiddleware(BaseMiddleware):
    """Outer (update) middleware putting `role` in the data before filters run, so staff routers
    can be gated by a router-level filter. The resolver is pluggable (staff lookup, issue 4).

    Roles are cached per user for `ttl` seconds: the lookup is a database round trip, which cost
    more than answering a citizen's question (bench/bench_dispatcher.py). The cache is only the
    cheap pre-check; a staff router's filter re-reads the Staff row, so disabling a member takes
    effect at once, while a newly added member is recognised within `ttl` seconds.
    """

    MAX_USERS = 50_000

    def __init__(
        self,
        resolver: RoleResolver | None = None,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.resolver, self.ttl, self.clock = resolver, ttl, clock
        self._roles: dict[int, tuple[str, float]] = {}

    async def role_of(self, user_id: int) -> str:
        if self.resolver is None:
            return CITIZEN
        now = self.clock()
        cached = self._roles.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        role = await self.resolver(user_id)
        if len(self._roles) >= self.MAX_USERS:
            self._roles = {k: v for k, v in self._roles.items() if v[1] > now}
        self._roles[user_id] = (role, now + self.ttl)
        return role

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        data["role"] = await self.role_of(user.id) if user is not None else CITIZEN
        return await handler(event, data)


class Verdict(Enum):
    OK = "ok"
    WARN = "warn"  # first refused message of a burst: tell the user once
    DROP = "drop"  # later ones: stay silent, a flood must not make the bot flood back


class Throttle(Protocol):
    async def hit(self, user_id: int) -> Verdict: ...


class MemoryThrottle:
    """Token bucket per user: a burst of `burst` messages, then one per `rate` seconds."""

    MAX_USERS = 50_000

    def __init__(self, rate: float, burst: int = 5, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[int, tuple[float, float, bool]] = {}  # tokens, at, warned

    async def hit(self, user_id: int) -> Verdict:
        now = self.clock()
        tokens, at, warned = self._buckets.get(user_id, (float(self.burst), now, False))
        tokens = min(float(self.burst), tokens + (now - at) / self.rate)
        if tokens >= 1:
            self._store(user_id, (tokens - 1, now, False))
            return Verdict.OK
        self._store(user_id, (tokens, now, True))
        return Verdict.DROP if warned else Verdict.WARN

    def _store(self, user_id: int, value: tuple[float, float, bool]) -> None:
        if len(self._buckets) >= self.MAX_USERS and user_id not in self._buckets:
            # Forget users idle long enough to have a full bucket again: nothing is lost.
            horizon = self.clock() - self.rate * self.burst
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > horizon}
        self._buckets[user_id] = value


class RedisThrottle:
    """Fixed window shared by every bot process: `burst` messages per `rate * burst` seconds."""

    def __init__(self, redis: Any, rate: float, burst: int = 5, prefix: str = "yc:throttle"):
        self.redis, self.burst, self.prefix = redis, burst, prefix
        self.window_ms = max(1000, int(rate * burst * 1000))

    async def hit(self, user_id: int) -> Verdict:
        window = int(time.time() * 1000) // self.window_ms
        key = f"{self.prefix}:{user_id}:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, self.window_ms * 2)
            count, _ = await pipe.execute()
        if count <= self.burst:
            return Verdict.OK
        return Verdict.WARN if count == self.burst + 1 else Verdict.DROP


class ThrottleMiddleware(BaseMiddleware):
    """Outer middleware on messages and button presses: refused updates never reach a handler."""

    def __init__(self, throttle: Throttle):
        self.throttle = throttle

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        verdict = await self.throttle.hit(user.id)
        if verdict is Verdict.OK:
            return await handler(event, data)
        log.info("throttled user %s (%s)", user.id, verdict.value)
        if verdict is Verdict.WARN:
            text = render(data["templates"], "throttled")
            if isinstance(event, Message):
                await event.answer(text)
            elif isinstance(event, CallbackQuery):
                await event.answer(text)
        elif isinstance(event, CallbackQuery):
            await event.answer()  # stop the button's spinner even when silent
        return None
