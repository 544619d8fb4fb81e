"""Operations: Prometheus metrics, the update observer middleware, and GET /healthz + /metrics.

Both HTTP servers (the integration API and the webhook server) add the same two routes through
`add_ops_routes`, so a load balancer or Prometheus can ask any process.

- Counted in-process (per worker; Prometheus sums over processes): updates by type, handler
  latency, duplicate updates dropped, case lookups by outcome and lockouts. Lookups and lockouts
  are counted where they are audited (an AuditLog insert), so no handler needs to know about metrics.
- Read from the database on each scrape (the same answer from every process): notices by status
  and the delivery lag, the age of the oldest notice that is due and still unsent.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import TelegramObject, Update
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.logsetup import current_update_id
from models.audit import on_audit
from models.cases import utc_now
from models.leases import LeaseInfo, delivery_lease_name, read_lease
from models.notices import Notice, NoticeStatus

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter("yichuang_updates", "Telegram updates taken in, by type", ["type"], registry=REGISTRY)
DUPLICATES = Counter(
    "yichuang_duplicate_updates", "Updates dropped as already handled (redeliveries)", registry=REGISTRY
)
HANDLER_SECONDS = Histogram(
    "yichuang_handler_seconds",
    "Time from taking an update in to its handler returning, by update type",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
LOOKUPS = Counter(
    "yichuang_case_lookups",
    "Case lookups (number + factor, or binding link) by outcome",
    ["action", "outcome"],
    registry=REGISTRY,
)
LOCKOUTS = Counter("yichuang_lookup_lockouts", "Users locked out after repeated failures", registry=REGISTRY)
NOTICES = Gauge("yichuang_notices", "Notices in the outbox by status", ["status"], registry=REGISTRY)
DELIVERY_LAG = Gauge(
    "yichuang_delivery_lag_seconds",
    "Age of the oldest due, unsent notice (0 when none is waiting)",
    registry=REGISTRY,
)

_LOOKUP_ACTIONS = {"case.lookup", "case.bind"}


def _count_audited(action: str, outcome: str) -> None:
    if action in _LOOKUP_ACTIONS:
        LOOKUPS.labels(action, outcome).inc()
    elif action == "lookup.lockout":
        LOCKOUTS.inc()


on_audit(_count_audited)


Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateObserver(BaseMiddleware):
    """Outermost update middleware: counts and times every update, and makes its id known to
    every log line written while it is handled (bot/logsetup.py)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        kind = event.event_type
        # Not reset afterwards: aiogram's errors middleware sits outside this one and logs after it
        # returns. Each update is handled in its own task (polling and webhook alike), whose copy of
        # the context ends with it, so the id does not leak to another update's lines.
        current_update_id.set(event.update_id)
        started = time.perf_counter()
        try:
            return await handler(event, data)
        finally:
            HANDLER_SECONDS.labels(kind).observe(time.perf_counter() - started)
            UPDATES.labels(kind).inc()


# ---------------------------------------------------------------- health


MAX_LAG = 300.0  # seconds; a 3,000-notice broadcast at 25/s is two minutes of honest backlog


@dataclass
class OpsContext:
    factory: async_sessionmaker[AsyncSession]
    redis: Redis | None = None
    lease_name: str | None = None
    max_lag: float = MAX_LAG


class Check(BaseModel):
    ok: bool
    error: str | None = None
    lag_seconds: float | None = None
    holder: str | None = None
    expires_at: str | None = None


class Health(BaseModel):
    status: Literal["ok", "unhealthy"]
    checks: dict[str, Check]
    error: str | None = None
    message: str | None = None  # in Chinese: what is wrong


async def delivery_lag(session: AsyncSession) -> float:
    now = utc_now()
    oldest = await session.scalar(
        select(func.min(Notice.next_attempt_at)).where(
            col(Notice.status) == NoticeStatus.PENDING.value, col(Notice.next_attempt_at) <= now
        )
    )
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):  # in case an aggregate loses the column type on SQLite
        oldest = dt.datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return max(0.0, (now - oldest).total_seconds())


async def check_health(ops: OpsContext) -> Health:
    checks: dict[str, Check] = {}
    problems: list[str] = []
    lag: float | None = None
    lease: LeaseInfo | None = None
    try:
        async with ops.factory() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            lag = await delivery_lag(session)
            if ops.lease_name:
                lease = await read_lease(session=session, name=ops.lease_name)
        checks["database"] = Check(ok=True)
    except Exception as e:  # noqa: BLE001 - a health check reports, it does not raise
        log.warning("health: database unavailable: %s", type(e).__name__)
        checks["database"] = Check(ok=False, error=type(e).__name__)
        problems.append("数据库不可用")
    if ops.redis is not None:
        try:
            await ops.redis.ping()  # type: ignore[misc]
            checks["redis"] = Check(ok=True)
        except Exception as e:  # noqa: BLE001
            checks["redis"] = Check(ok=False, error=type(e).__name__)
            problems.append("Redis 不可用")
    if lag is not None:
        late = lag > ops.max_lag
        checks["delivery"] = Check(ok=not late, lag_seconds=round(lag, 1))
        if late:
            problems.append(f"通知积压：最早一条已等待 {lag:.0f} 秒")
    if ops.lease_name is not None and checks["database"].ok:
        live = lease is not None and lease.live(utc_now())
        checks["lease"] = Check(
            ok=live,
            holder=lease.holder if live and lease else None,
            expires_at=lease.expires_at.isoformat() if live and lease else None,
        )
        # No holder is only a problem when something waits to be sent; lag says that already.
    if problems:
        return Health(status="unhealthy", checks=checks, error="unhealthy", message="；".join(problems))
    return Health(status="ok", checks=checks)


async def refresh_gauges(ops: OpsContext) -> None:
    async with ops.factory() as session:
        rows = (await session.exec(select(Notice.status, func.count()).group_by(col(Notice.status)))).all()
        DELIVERY_LAG.set(await delivery_lag(session))
    counts = {status: n for status, n in rows}
    for status in NoticeStatus:
        NOTICES.labels(status.value).set(counts.get(status.value, 0))


# ---------------------------------------------------------------- routes

OPS = web.AppKey("ops", OpsContext)


async def healthz(request: web.Request) -> web.StreamResponse:
    health = await check_health(request.app[OPS])
    return web.Response(
        text=health.model_dump_json(exclude_none=True),
        status=200 if health.status == "ok" else 503,
        content_type="application/json",
        charset="utf-8",
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    try:
        await refresh_gauges(request.app[OPS])
    except Exception as e:  # noqa: BLE001 - the in-process counters are still worth serving
        log.warning("metrics: notice gauges not refreshed: %s", type(e).__name__)
    body = generate_latest(REGISTRY)
    more = request.app.get(MORE_METRICS)
    if more is not None:
        body = merge_expositions(body, await more())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def merge_expositions(own: bytes, others: list[bytes]) -> bytes:
    """This process's metrics with the webhook workers' (bot/dealer.py) added in: counters and
    histograms summed over the processes; gauges, read from the database, are this process's."""
    families: dict[str, Metric] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
    for k, exposition in enumerate([own, *others]):
        for family in text_string_to_metric_families(exposition.decode()):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                samples[family.name] = {}
            if family.type == "gauge" and k > 0:
                continue
            into = samples[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = into.get(key)
                if old is None:
                    into[key] = sample
                elif not sample.name.endswith("_created"):
                    into[key] = old._replace(value=old.value + sample.value)
    for name, family in families.items():
        family.samples = list(samples[name].values())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def ops_for(dp: Dispatcher, bot: Bot) -> OpsContext:
    """What a webhook worker checks: its dispatcher's database and Redis, the bot's lease."""
    storage = dp.storage
    return OpsContext(
        dp["session_factory"],
        redis=storage.redis if isinstance(storage, RedisStorage) else None,
        lease_name=delivery_lease_name(bot.token),
    )


MoreMetrics = Callable[[], Awaitable[list[bytes]]]
MORE_METRICS: web.AppKey[MoreMetrics] = web.AppKey("more_metrics")


def add_ops_routes(app: web.Application, ops: OpsContext, *, more_metrics: MoreMetrics | None = None) -> None:
    """`more_metrics`: other processes' exposition texts to add to this one's (bot/dealer.py)."""
    app[OPS] = ops
    if more_metrics is not None:
        app[MORE_METRICS] = more_metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
