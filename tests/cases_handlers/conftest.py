"""Fixtures for the applicant and staff handler tests: cases made through the domain functions,
the production dispatcher through tests/conftest.py's harness, and readers for what was queued."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.notices_render import make_notice_renderer
from knowledge.schema import Catalog
from models.audit import AuditLog
from models.crud import NewCase, add_staff, apply_event, create_case
from models.notices import Notice, Subscription

FOOD = "食品经营许可证核发"  # 县市场监督管理局 (scjg), window A01, 5 working days
FIRE = "公众聚集场所营业前消防安全检查"  # 县消防救援大队 (xf)
BUNDLE = "开办餐饮店一件事"  # scjg (lead) + xf
PHONE = "13812345678"
FACTOR = "5678"

DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


@pytest.fixture
def new_case(db: DB, bot_catalog: Catalog) -> Callable[..., Awaitable[NewCase]]:
    async def make(item: str = FOOD, phone: str = PHONE, now: dt.datetime | None = None) -> NewCase:
        async with db[1]() as s:
            return await create_case(
                session=s,
                catalog=bot_catalog,
                item_name=item,
                applicant_name="王小明",
                phone=phone,
                channel="window",
                now=now,
            )

    return make


@pytest.fixture
def move(db: DB, bot_catalog: Catalog, templates: Environment) -> Callable[..., Awaitable[Any]]:
    """Move a case as the approval system would (API actor)."""
    n = iter(range(1, 10_000))

    async def go(number: str, status: str, **kw: Any) -> Any:
        async with db[1]() as s:
            return await apply_event(
                session=s,
                number=number,
                status=status,
                actor="api",
                event_id=f"t-{next(n)}",
                catalog=bot_catalog,
                render=make_notice_renderer(templates),
                **kw,
            )

    return go


@pytest.fixture
def staff_member(db: DB, bot_catalog: Catalog) -> Callable[..., Awaitable[None]]:
    async def add(user_id: int, role: str = "department", department: str | None = "scjg") -> None:
        async with db[1]() as s:
            await add_staff(
                session=s, catalog=bot_catalog, user_id=user_id, name="周立", role=role, department=department
            )

    return add


@pytest.fixture
def queued(db: DB) -> Callable[[], Awaitable[list[Notice]]]:
    async def read() -> list[Notice]:
        async with db[1]() as s:
            return list((await s.exec(select(Notice).order_by(col(Notice.id)))).all())

    return read


@pytest.fixture
def subscriptions(db: DB) -> Callable[[], Awaitable[list[Subscription]]]:
    async def read() -> list[Subscription]:
        async with db[1]() as s:
            return list((await s.exec(select(Subscription))).all())

    return read


@pytest.fixture
def audits(db: DB) -> Callable[[], Awaitable[list[AuditLog]]]:
    async def read() -> list[AuditLog]:
        async with db[1]() as s:
            return list((await s.exec(select(AuditLog).order_by(col(AuditLog.id)))).all())

    return read
