"""An API app over a fresh migrated database (tests/conftest.py `db`) and the handler-test catalog,
driven through aiohttp's test client over a real local socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.api import ApiContext, build_app
from knowledge.schema import Catalog

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FOOD = "食品经营许可证核发"  # 县市场监督管理局, window A01, 5 working days
BUNDLE = "开办餐饮店一件事"  # 市场监管 (lead) + 消防


@pytest.fixture
async def api(
    bot_catalog: Catalog,
    templates: Environment,
    db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]],
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    ctx = ApiContext(bot_catalog, templates, db[1], bot_username="TestNameBot")
    client = TestClient(TestServer(build_app(ctx, token=TOKEN)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
