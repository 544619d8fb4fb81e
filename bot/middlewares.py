"""Middlewares: one DB session per update, per-user throttle, user-role lookup; Redis health.

Errors are logged once, with the update id, by the errors handler in handlers/errors.py.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from enum import Enum
from typing import Any, Protocol

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods import Response, SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, ErrorEvent, Message, TelegramObject, User
from jinja2 import Environment
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.metrics import DUPLICATES
from bot.templates import render
from models.batching import GroupWriter
from models.leases import first_sights, newest_update, purge_updates, update_recorded

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
RoleResolver = Callable[[int], Awaitable[str]]

CITIZEN = "citizen"


class DbSessionMiddleware(BaseMiddleware):
    """Inner middleware: the handler gets `session`; committed when the handler returns normally.

    Inner, so updates no handler wants never open a session, and a handler that takes no
    `session` parameter (a question: the catalog is in memory) gets none: making and closing one
    was ~4 % of a worker's CPU under load (bench/bench_load.py).
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession]):
        self.factory = factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        wanted = data.get("handler")
        if wanted is not None and not wanted.varkw and "session" not in wanted.params:
            return await handler(event, data)
        async with self.factory() as session:
            data["session"] = session
            token = _update_session.set(session)
            try:
                result = await handler(event, data)
            finally:
                _update_session.reset(token)
            if session.in_transaction():
                try:
                    await session.commit()
                except Exception:
                    # A reply still waiting for the webhook response tells of what was just lost
                    # ("saved"): the error handler's apology goes alone.
                    discard_reply()
                    raise
            return result


# The update's session, for BeforeSend (set by DbSessionMiddleware around the handler).
_update_session: ContextVar[AsyncSession | None] = ContextVar("yichuang_update_session", default=None)


class BeforeSend(BaseRequestMiddleware):
    """Bot API request middleware (make_bot installs it), run before each Telegram call:

    - the update's transaction is committed, so no database lock is held across a network round
      trip. SQLite has one writer: a handler holding its write lock while it waited for sendMessage
      stalled every other update at ~15 replies/s (bench/bench_load.py). What the user is told is
      thus already stored when they read it; DbSessionMiddleware commits what comes after;
    - a reply deferred into the webhook response (ReplySlot) is sent first, so messages arrive in
      the order the handler wrote them."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        session = _update_session.get()
        if session is not None and session.in_transaction():
            await session.commit()
        slot = _reply_slot.get()
        if slot is not None and (pending := slot.take()) is not None:
            await bot(pending)
        return await make_request(bot, method)


class ReplySlot:
    """Webhook mode: the update's last reply, carried in the HTTP response to Telegram's webhook
    request instead of a Bot API call of its own (Telegram's "making requests when getting
    updates"). That call was the largest single cost of answering a question under load: an HTTP
    request out, its reply parsed and validated (bench/bench_load.py). Telegram reports no result
    for it, so only messages whose result nobody needs go here (bot/render.send_html)."""

    def __init__(self) -> None:
        self.method: SendMessage | None = None
        self.open = True  # closed when the update is done: a task it spawned must not defer into it

    def take(self) -> SendMessage | None:
        method, self.method = self.method, None
        return method


_reply_slot: ContextVar[ReplySlot | None] = ContextVar("yichuang_reply_slot", default=None)


def defer_reply(method: SendMessage) -> bool:
    """Put `method` in the update's reply slot; False when there is none (polling, the console,
    tests, the delivery worker) or it is taken: then the caller sends it itself."""
    slot = _reply_slot.get()
    if slot is None or not slot.open or slot.method is not None:
        return False
    slot.method = method
    return True


def discard_reply() -> None:
    """Drop the update's deferred reply, if any (see DbSessionMiddleware)."""
    slot = _reply_slot.get()
    if slot is not None:
        slot.method = None


class ReplyInResponse(BaseMiddleware):
    """Outer update middleware (webhook mode only) giving each update a ReplySlot and returning the
    deferred reply as the update's result, which aiogram's webhook handler writes into the HTTP
    response. Order is kept: any other Bot API call of the update first sends the deferred reply
    (BeforeSend); a handler that fails still gets its reply out before the apology."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        slot = ReplySlot()
        token = _reply_slot.set(slot)
        try:
            result = await handler(event, data)
        except Exception:  # a cancelled update sends nothing more
            slot.open = False
            if (pending := slot.take()) is not None:
                await data["bot"](pending)
            raise
        finally:
            _reply_slot.reset(token)
            slot.open = False
        pending = slot.take()
        if pending is None:
            return result
        if result is None or result is UNHANDLED:
            return pending
        await data["bot"](pending)  # the handler returned a method of its own
        return result


class KeepResponseModels(BaseRequestMiddleware):
    """Bot API request middleware (make_bot installs it) holding each `Response[T]` model aiogram
    validates replies with. aiogram builds `Response[method.__returning__]` per call and pydantic
    caches generic models only weakly: nothing else held them, so the garbage collector dropped
    them and every sendMessage rebuilt its response model (~12% of the bot's CPU, py-spy on
    bench/bench_load.py). Bounded: one entry per result type of the Bot API."""

    def __init__(self) -> None:
        self._models: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._models:
            self._models[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


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
        if self.ttl <= 0:  # no cache here: the resolver caches itself, or every update asks
            return await self.resolver(user_id)
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


# Token bucket with MemoryThrottle's rule, kept in one Redis hash per user. One script makes
# read-refill-take atomic across processes in one round trip; Redis's own clock (TIME) means bot
# processes on machines whose clocks drift still agree. Returns 0 ok, 1 warn, 2 drop.
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'warned')
local tokens = math.min(burst, (tonumber(b[1]) or burst) + math.max(0, now - (tonumber(b[2]) or now)) / rate)
local verdict = 0
if tokens >= 1 then
  tokens = tokens - 1
  b[3] = '0'
else
  if b[3] == '1' then verdict = 2 else verdict = 1 end
  b[3] = '1'
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now), 'warned', b[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return verdict
"""
_VERDICTS = (Verdict.OK, Verdict.WARN, Verdict.DROP)


def redis_client(url: str) -> Redis:
    """The one Redis client of a bot process (FSM state, event lock, throttle).

    Short timeouts: an unreachable Redis must cost an update a moment, not hang it. One retry on a
    new connection: after a Redis restart the pooled connections are dead, and the first command
    on each would otherwise fail although the server is back. Options in the URL take precedence.
    """
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1))


class RedisHealth:
    """Logs a Redis outage once when it starts and once when it ends, not once per update."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            log.warning("Redis unreachable (%r): throttle open, conversations answer 系统繁忙", exc)

    def ok(self) -> None:
        if self.down:
            self.down = False
            log.warning("Redis reachable again")


class RedisThrottle:
    """MemoryThrottle's token bucket, shared by every bot process through Redis.

    Fails open: while Redis is unreachable every message passes, since a bot that answers beats a
    bot that goes silent; the outage is logged once.
    """

    def __init__(
        self,
        redis: Redis,
        rate: float,
        burst: int = 5,
        prefix: str = "yc:throttle",
        health: RedisHealth | None = None,
    ):
        self.rate, self.burst, self.prefix = rate, burst, prefix
        self.health = health or RedisHealth()
        # An idle bucket is full again after rate * burst seconds: then the key can go.
        self.ttl_ms = int(rate * burst * 1000) + 1000
        self.script = redis.register_script(_BUCKET_LUA)  # EVALSHA, reloaded after a Redis restart

    async def hit(self, user_id: int) -> Verdict:
        try:
            code = await self.script(
                keys=[f"{self.prefix}:{user_id}"], args=[self.rate, self.burst, self.ttl_ms]
            )
        except RedisError as e:
            self.health.failed(e)
            return Verdict.OK
        self.health.ok()
        return _VERDICTS[int(code)]


class RedisBusyReply:
    """Errors handler for Redis failures (FSM state, the per-user event lock): a short 系统繁忙
    instead of the generic apology, at most once per user every `quiet` seconds. The FSM middleware
    runs before the throttle, so during an outage a flood would otherwise be answered one for one.
    """

    def __init__(self, health: RedisHealth, quiet: float = 10.0):
        self.health = health
        self.limit = MemoryThrottle(rate=quiet, burst=1)

    # A bound coroutine method, not __call__: aiogram runs callables it can't see are coroutines
    # in a thread.
    async def reply(self, event: ErrorEvent, bot: Bot, templates: Environment) -> bool:
        self.health.failed(event.exception)
        update = event.update
        query, message = update.callback_query, update.message
        user = query.from_user if query is not None else message.from_user if message else None
        if user is None or await self.limit.hit(user.id) is not Verdict.OK:
            return True
        text = render(templates, "busy")
        try:
            if query is not None:
                await query.answer(text)
            elif message is not None:
                await bot.send_message(message.chat.id, text)
        except Exception:  # noqa: BLE001 - Telegram failing too must not raise a second error
            log.debug("could not send 系统繁忙 for update %s", update.update_id)
        return True


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


class UpdateLedger(Protocol):
    async def first_time(self, bot_id: int, update_id: int) -> bool: ...

    async def drain(self) -> None:
        """Record what is still queued: called when the process stops."""


class DbUpdateLedger:
    """Update ids in the database (models/leases.py): shared by every process of the bot.

    Taking an update in does not wait for its write. Waiting for a group commit (below) had each
    update wait 13-70 ms before its handler started, the largest part of the latency under load
    (bench/bench_load.py), so the verdict comes from memory:
    - the ids this process took in (the newest MEMORY of them);
    - the newest id the database held when this process first looked (`floor`). Telegram numbers
      updates in increasing order and a redelivery keeps its number, so an id above the floor that
      this process has not taken in was never recorded.
    Only older ids (a redelivery after a restart, a batch fetched again) are looked up. The write
    follows within SPACING, group-committed (models/batching.py): one transaction for every id taken
    in meanwhile. Nobody waits for it, so it can be rare: 10 transactions a second instead of 40
    cost ~3 % less CPU under load. A stop writes what is queued (drain).

    What this gives up: two processes handed the same update at the same moment would both take it.
    A machine's front always deals a user's updates to the same worker, and several machines share
    the Redis ledger, so it does not happen in a supported layout; it is logged if it does. A crash
    loses the last SPACING of ids: an update among them that Telegram delivers again is answered
    again, where a ledger written first would have dropped it unanswered.
    """

    PURGE_EVERY = 600.0  # seconds
    SPACING = 0.1  # seconds: at most 10 writes/s per process
    MEMORY = 100_000  # ids per bot (~8 MB): several minutes of the heaviest traffic

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._purged = 0.0
        self._group = GroupWriter(engine, self._write, spacing=self.SPACING, name="update ledger")
        self._taken: dict[int, _Taken] = {}

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        taken = self._taken.get(bot_id)
        if taken is None:
            async with self.engine.connect() as conn:
                floor = await newest_update(conn=conn, bot_id=bot_id)
            taken = self._taken.setdefault(bot_id, _Taken(floor))
        if update_id in taken.ids:
            return False
        if update_id <= taken.floor or update_id < taken.complete_from:
            async with self.engine.connect() as conn:
                if await update_recorded(conn=conn, bot_id=bot_id, update_id=update_id):
                    return False
            if update_id in taken.ids:  # taken in by another task while this one looked
                return False
        taken.add(update_id, self.MEMORY)
        self._group.post((bot_id, update_id), self._written)
        return True

    async def drain(self) -> None:
        await self._group.drain()

    @staticmethod
    def _written(new: bool) -> None:
        if not new:
            log.warning("an update was taken in by two processes at once (see DbUpdateLedger)")

    async def _write(self, conn: AsyncConnection, keys: list[tuple[int, int]]) -> list[bool]:
        if time.monotonic() - self._purged > self.PURGE_EVERY:
            self._purged = time.monotonic()
            await purge_updates(conn=conn)
        return await first_sights(conn=conn, keys=keys)


class _Taken:
    """One bot's ids taken in by this process: every one >= complete_from is in `ids`."""

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.ids: set[int] = set()
        self.order: deque[int] = deque()
        self.complete_from = 0

    def add(self, update_id: int, memory: int) -> None:
        self.ids.add(update_id)
        self.order.append(update_id)
        while len(self.order) > memory:
            old = self.order.popleft()
            self.ids.discard(old)
            self.complete_from = max(self.complete_from, old + 1)


class RedisUpdateLedger:
    """Update ids as Redis keys that expire with Telegram's own 24-hour retention."""

    TTL = 24 * 3600

    def __init__(self, redis: Redis, prefix: str = "yc:update"):
        self.redis, self.prefix = redis, prefix

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        return bool(await self.redis.set(f"{self.prefix}:{bot_id}:{update_id}", 1, nx=True, ex=self.TTL))

    async def drain(self) -> None:
        """Nothing queued: each id is set before its update is handled."""


class UpdateDedupe(BaseMiddleware):
    """Outer update middleware: an update id already taken in (a webhook redelivery, the same batch
    fetched again after a restart) is dropped before any handler runs, so nobody is answered twice.

    Taken in before handling: an update whose handling crashed is not retried either, since the
    errors handler has already apologised. When the ledger is unreachable updates pass (logged
    once): answering twice now and then beats not answering.
    """

    def __init__(self, ledger: UpdateLedger):
        self.ledger = ledger
        self._failing = False

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        bot: Bot | None = data.get("bot")
        update_id = getattr(event, "update_id", None)
        if bot is None or update_id is None:
            return await handler(event, data)
        try:
            first = await self.ledger.first_time(bot.id, update_id)
            self._failing = False
        except Exception as e:  # noqa: BLE001 - fail open, see above
            if not self._failing:
                log.warning("update ledger unavailable (%s): duplicates not filtered", type(e).__name__)
                self._failing = True
            first = True
        if not first:
            DUPLICATES.inc()
            log.info("update %s already handled; dropped", update_id)
            return None
        return await handler(event, data)
