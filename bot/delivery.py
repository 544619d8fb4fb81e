"""The notice delivery worker: sends the outbox (models/notices.py) to Telegram.

One loop, no recursion: claim a batch of due notices -> send each at the global pace -> mark it.

- Claim: an atomic UPDATE … RETURNING moves the notice's `next_attempt_at` a lease into the
  future and counts the attempt, so two worker processes never send the same row and a row whose
  worker died (kill -9) becomes due again when the lease ends. Nothing is lost; a notice whose send
  went out just before the crash, but whose mark did not, is sent a second time (only the
  `concurrency` notices in flight can be).
- Pace: one send start every 1/rate seconds for the whole worker (Telegram allows about 30/s for a
  bot), and at most one message per `chat_interval` to one chat (Telegram: about 1/s per chat).
- Errors: TelegramRetryAfter (429) pauses the whole worker for `retry_after` and reschedules the
  notice without penalty; network errors and 5xx are retried with exponential backoff;
  TelegramForbiddenError (blocked by the user) and other 4xx fail the notice for good (retrying
  cannot help); a notice older than the TTL is marked expired instead of sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.settings import Settings
from models.cases import utc_now
from models.notices import Notice, NoticeStatus
from models.privacy import mask_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryConfig:
    rate: float = 25.0  # send starts per second, whole worker
    chat_interval: float = 1.0  # seconds between two sends to one chat
    ttl: dt.timedelta = dt.timedelta(hours=72)
    lease: float = 60.0  # a claimed notice is due again this long after a crash; > send_timeout
    send_timeout: int = 20
    concurrency: int = 4  # sends in flight at once (covers Telegram's round trip at full pace)
    poll_interval: float = 0.5  # idle: how often to look for new notices
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    scan: int = 500  # candidates read per claim, so one busy chat cannot hide the others

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeliveryConfig:
        values: dict[str, Any] = {
            "rate": settings.notice_rate,
            "chat_interval": settings.notice_chat_interval,
            "ttl": dt.timedelta(hours=settings.notice_ttl_hours),
        }
        return cls(**(values | overrides))


class Pacer:
    """Spaces send starts 1/rate apart; `pause` holds everyone back after a 429."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self.clock()
        at = max(now, self._next)
        self._next = at + self.interval  # reserved before sleeping: concurrent waiters queue up
        if at > now:
            await asyncio.sleep(at - now)

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, self.clock() + seconds)


@dataclass(frozen=True)
class Claimed:
    id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    created_at: dt.datetime
    attempts: int


class DeliveryWorker:
    def __init__(
        self,
        bot: Bot,
        factory: async_sessionmaker[AsyncSession],
        config: DeliveryConfig | None = None,
        *,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.bot, self.factory = bot, factory
        self.config = config or DeliveryConfig()
        self.now = now
        self.pacer = Pacer(self.config.rate)
        self.stats: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._busy: set[int] = set()  # chats with a notice claimed or in flight
        self._chat_ready: dict[int, float] = {}  # chat -> monotonic time it may get the next one
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: list[Claimed] = []  # claimed, not yet handed to a send

    # -------------------------------------------------------------- control

    def wake(self) -> None:
        """New notices were written in this process: look now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stop(); in-flight sends finish, claimed-but-unsent notices are released."""
        log.info(
            "notice delivery started (%.1f/s, %.1fs per chat)", self.config.rate, self.config.chat_interval
        )
        last_expire = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_expire > 60:
                    await self.expire()
                    last_expire = time.monotonic()
                try:
                    batch = await self.claim()
                except Exception:  # noqa: BLE001 - a database hiccup must not end delivery
                    log.exception("claiming notices failed; retrying")
                    batch = []
                if not batch:
                    await self._idle()
                    continue
                self._queued = list(batch)
                while self._queued and not self._stop.is_set():
                    notice = self._queued[0]
                    await self._slots.acquire()
                    await self.pacer.wait()
                    if self._stop.is_set():
                        self._slots.release()
                        break
                    self._queued.pop(0)
                    task = asyncio.create_task(self._deliver(notice))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.config.send_timeout + 5)
            await self._release(self._queued)
            log.info("notice delivery stopped (%s)", dict(self.stats))

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
        except TimeoutError:
            pass
        self._wake.clear()

    # -------------------------------------------------------------- database steps

    async def claim(self) -> list[Claimed]:
        """Atomically take up to about one second's worth of due notices, one per ready chat."""
        now = self.now()
        mono = time.monotonic()
        room = max(1, int(self.config.rate) + self.config.concurrency)
        async with self.factory() as session:
            rows = await session.exec(
                select(Notice.id, Notice.chat_id)
                .where(col(Notice.status) == NoticeStatus.PENDING.value, col(Notice.next_attempt_at) <= now)
                .order_by(col(Notice.next_attempt_at), col(Notice.id))
                .limit(self.config.scan)
            )
            picked: list[int] = []
            chats: set[int] = set()
            for notice_id, chat_id in rows.all():
                if notice_id is None:
                    continue
                if chat_id in chats or chat_id in self._busy or self._chat_ready.get(chat_id, 0.0) > mono:
                    continue
                picked.append(notice_id)
                chats.add(chat_id)
                if len(picked) >= room:
                    break
            if not picked:
                return []
            # The same conditions again inside the UPDATE: a rival worker that took a row first wins.
            result = await session.exec(
                update(Notice)
                .where(
                    col(Notice.id).in_(picked),
                    col(Notice.status) == NoticeStatus.PENDING.value,
                    col(Notice.next_attempt_at) <= now,
                )
                .values(
                    next_attempt_at=now + dt.timedelta(seconds=self.config.lease),
                    attempts=col(Notice.attempts) + 1,
                )
                .returning(
                    col(Notice.id),
                    col(Notice.chat_id),
                    col(Notice.text),
                    col(Notice.reply_markup),
                    col(Notice.created_at),
                    col(Notice.attempts),
                )
            )
            claimed = [Claimed(*row) for row in result.all()]
            await session.commit()
        claimed.sort(key=lambda c: picked.index(c.id))
        self._busy.update(c.chat_id for c in claimed)
        return claimed

    async def _set(self, notice_id: int, **values: Any) -> None:
        for attempt in range(5):
            try:
                async with self.factory() as session:
                    await session.exec(update(Notice).where(col(Notice.id) == notice_id).values(**values))
                    await session.commit()
                return
            except Exception:  # noqa: BLE001 - retried: losing a mark means a duplicate send
                if attempt == 4:
                    log.exception("could not record notice %s: %s", notice_id, values.get("status"))
                    return
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _release(self, notices: list[Claimed]) -> None:
        """Claimed but never sent (shutdown): due again now, the attempt not counted."""
        if not notices:
            return
        now = self.now()
        async with self.factory() as session:
            for n in notices:
                await session.exec(
                    update(Notice)
                    .where(col(Notice.id) == n.id, col(Notice.status) == NoticeStatus.PENDING.value)
                    .values(next_attempt_at=now, attempts=max(n.attempts - 1, 0))
                )
            await session.commit()
        self._busy.difference_update(n.chat_id for n in notices)

    async def expire(self) -> int:
        """Pending notices older than the TTL: stale news is worse than none."""
        cutoff = self.now() - self.config.ttl
        async with self.factory() as session:
            result = await session.exec(
                update(Notice)
                .where(col(Notice.status) == NoticeStatus.PENDING.value, col(Notice.created_at) < cutoff)
                .values(status=NoticeStatus.EXPIRED.value, last_error="expired before delivery")
            )
            await session.commit()
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("%d notices expired undelivered", count)
            self.stats["expired"] += count
        return count

    # -------------------------------------------------------------- one send

    async def _deliver(self, n: Claimed) -> None:
        try:
            await self._send_and_mark(n)
        except Exception:  # noqa: BLE001 - one notice must never stop the worker
            log.exception("notice %s: unexpected error", n.id)
            await self._retry_later(n, "internal error")
        finally:
            self._busy.discard(n.chat_id)
            self._slots.release()

    async def _send_and_mark(self, n: Claimed) -> None:
        now = self.now()
        if n.created_at + self.config.ttl < now:
            await self._set(n.id, status=NoticeStatus.EXPIRED.value, last_error="expired before delivery")
            self.stats["expired"] += 1
            return
        self._chat_ready[n.chat_id] = time.monotonic() + self.config.chat_interval
        markup = InlineKeyboardMarkup.model_validate(n.reply_markup) if n.reply_markup else None
        try:
            await self.bot.send_message(
                chat_id=n.chat_id,
                text=n.text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                request_timeout=self.config.send_timeout,
            )
        except TelegramRetryAfter as e:
            # Flood control: everyone waits, this notice goes again after the wait, no penalty.
            self.pacer.pause(e.retry_after)
            self._chat_ready[n.chat_id] = time.monotonic() + e.retry_after
            self.stats["retry_after"] += 1
            await self._set(
                n.id,
                next_attempt_at=self.now() + dt.timedelta(seconds=e.retry_after),
                attempts=max(n.attempts - 1, 0),
                last_error=f"429 retry after {e.retry_after}s",
            )
            return
        except (TelegramForbiddenError, TelegramBadRequest, TelegramNotFound) as e:
            # Blocked by the user, chat gone, or a message Telegram will never accept: final.
            self.stats["failed"] += 1
            log.warning("notice %s to chat %s failed for good: %s", n.id, n.chat_id, e.message)
            await self._set(n.id, status=NoticeStatus.FAILED.value, last_error=_short(e))
            return
        except Exception as e:  # noqa: BLE001 - network, 5xx, timeouts: try again later
            await self._retry_later(n, _short(e))
            return
        self.stats["sent"] += 1
        await self._set(n.id, status=NoticeStatus.SENT.value, sent_at=self.now(), last_error=None)

    async def _retry_later(self, n: Claimed, error: str) -> None:
        delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(n.attempts - 1, 0))
        delay *= 0.5 + random.random() / 2  # jitter: a recovering server is not hit by all at once
        self.stats["retried"] += 1
        log.info("notice %s: %s; retry in %.1fs", n.id, error, delay)
        await self._set(n.id, next_attempt_at=self.now() + dt.timedelta(seconds=delay), last_error=error)


def _short(e: BaseException) -> str:
    return mask_text(f"{type(e).__name__}: {getattr(e, 'message', None) or e}")[:500]
