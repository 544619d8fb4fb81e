"""GET /healthz and GET /metrics on the integration API and on the webhook server."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jinja2 import Environment
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.api import ApiContext, build_app
from bot.metrics import OpsContext
from bot.runtime import webhook_app
from bot.settings import Settings
from knowledge.schema import Catalog
from models.cases import utc_now
from models.crud import verify_lookup
from models.db import async_engine, session_factory
from models.leases import Lease
from models.notices import enqueue_notice
from tests.conftest import HarnessMaker

DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
Maker = Callable[..., Awaitable[Any]]
LEASE = "delivery:test"

Client = TestClient  # type: ignore[type-arg]


async def client_for(app: web.Application) -> Client:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def serve(
    bot_catalog: Catalog, templates: Environment
) -> AsyncIterator[Callable[[OpsContext], Awaitable[Client]]]:
    clients: list[Client] = []

    async def make(ops: OpsContext) -> Client:
        ctx = ApiContext(bot_catalog, templates, ops.factory, ops=ops)
        clients.append(await client_for(build_app(ctx, token="t")))
        return clients[-1]

    yield make
    for c in clients:
        await c.close()


async def test_healthy_answers_200_with_each_check(serve: Any, db: DB) -> None:
    lease = Lease(db[1], LEASE, holder="host-a:42:abc")
    assert await lease.acquire()
    api = await serve(OpsContext(db[1], lease_name=LEASE))
    r = await api.get("/healthz")
    body = await r.json()
    assert r.status == 200 and body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["delivery"] == {"ok": True, "lag_seconds": 0.0}
    assert body["checks"]["lease"]["holder"] == "host-a:42:abc"


async def test_a_delivery_backlog_is_503_saying_so(serve: Any, db: DB) -> None:
    async with db[1]() as s:
        enqueue_notice(
            session=s, chat_id=1, kind="status", text="x", now=utc_now() - dt.timedelta(minutes=10)
        )
        # Due later (backing off after an error): not lag.
        later = enqueue_notice(session=s, chat_id=2, kind="status", text="y")
        later.next_attempt_at = utc_now() + dt.timedelta(minutes=5)
        await s.commit()
    api = await serve(OpsContext(db[1], lease_name=LEASE))
    r = await api.get("/healthz")
    body = await r.json()
    assert r.status == 503 and body["status"] == "unhealthy"
    assert "通知积压" in body["message"]
    assert body["checks"]["delivery"]["ok"] is False and body["checks"]["delivery"]["lag_seconds"] >= 600
    assert body["checks"]["lease"] == {"ok": False}  # nobody holds it: that is why


async def test_database_and_redis_down_are_503_with_reasons(serve: Any) -> None:
    # Nothing listens on port 1: both connections are refused at once.
    engine = async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        api = await serve(OpsContext(session_factory(engine), redis=redis))
        r = await api.get("/healthz")
        body = await r.json()
    finally:
        await engine.dispose()
        await redis.aclose()
    assert r.status == 503
    assert body["checks"]["database"]["ok"] is False and body["checks"]["redis"]["ok"] is False
    assert "数据库不可用" in body["message"] and "Redis 不可用" in body["message"]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+-]+)"
    m = re.search(r"^" + pattern + "$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_webhook_server_serves_health_and_metrics_counting_updates_lookups_and_lockouts(
    make_harness: HarnessMaker, db: DB, new_case: Maker
) -> None:
    h = make_harness()
    app, _ = webhook_app(Settings(bot_token="123456:WEBHOOK", webhook_secret="s"), h.bot, h.dp)
    web_client = await client_for(app)
    try:
        before = await (await web_client.get("/metrics")).text()
        await h.say("开饭馆要办什么证")
        number = (await new_case()).case.number
        async with db[1]() as s:
            for _ in range(5):
                await verify_lookup(session=s, number=number, factor="0000", user_key="tg:77")
            async with db[1]() as s2:
                enqueue_notice(session=s2, chat_id=5, kind="status", text="z")
                await s2.commit()
        r = await web_client.get("/metrics")
        after = await r.text()
        health = await web_client.get("/healthz")
    finally:
        await web_client.close()
    assert r.status == 200 and r.content_type == "text/plain"
    assert health.status == 200
    grew = lambda name, **kw: sample(after, name, **kw) - sample(before, name, **kw)  # noqa: E731
    assert grew("yichuang_updates_total", type="message") == 1
    assert grew("yichuang_handler_seconds_count", type="message") == 1
    assert grew("yichuang_case_lookups_total", action="case.lookup", outcome="denied") == 5
    assert grew("yichuang_lookup_lockouts_total") == 1
    assert sample(after, "yichuang_notices", status="pending") == 1
    assert sample(after, "yichuang_notices", status="sent") == 0
