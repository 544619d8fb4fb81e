"""Fixtures for the case domain: a small catalog built in code, a fresh migrated database per test
(SQLite always; PostgreSQL too when TEST_DATABASE_URL is set), and a renderer that records notices.

The catalog is built here rather than loaded from knowledge/data/ so these tests keep their meaning
when the sample catalog is edited.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Bundle, Catalog, Center, Department, Item, Material, Phone, Window
from models.crud import NoticeContext, RenderedNotice
from models.db import async_engine, prepare_database, session_factory
from models.workdays import CHINA_TZ, WorkCalendar

PG_URL = os.environ.get("TEST_DATABASE_URL")

FOOD = "食品经营许可证核发"
HYGIENE = "公共场所卫生许可"
FIRE = "公众聚集场所投入使用、营业前消防安全检查"
INSTANT = "个体工商户登记"
BUNDLE = "我要开饭馆"


def china(year: int, month: int, day: int, hour: int = 10) -> dt.datetime:
    """An aware UTC timestamp for a local (Beijing) time: tests speak in local office hours."""
    return dt.datetime(year, month, day, hour, tzinfo=CHINA_TZ).astimezone(dt.UTC)


def build_catalog() -> Catalog:
    center = Center(
        name="测试县行政服务中心",
        address="测试路 1 号",
        hours=["周一至周五 9:00-17:00"],
        phones=[Phone(label="咨询", number="0000-1234567")],
    )
    departments = [
        Department(id="scjg", name="县市场监督管理局"),
        Department(id="wsjk", name="县卫生健康局"),
        Department(id="xf", name="县消防救援大队"),
    ]
    windows = [
        Window(number="A01", department="县市场监督管理局", chief_name="周立", chief_title="首席代表"),
        Window(number="A05", department="县卫生健康局", chief_name="何静", chief_title="首席代表"),
    ]
    materials = [Material(name="营业执照"), Material(name="经营场所证明"), Material(name="健康证明")]
    items = [
        Item(
            name=FOOD,
            code="S1",
            department="县市场监督管理局",
            window="A01",
            statutory_days=20,
            promised_days=10,
            materials=materials,
        ),
        Item(
            name=HYGIENE,
            code="W1",
            department="县卫生健康局",
            window="A05",
            statutory_days=20,
            promised_days=15,
            materials=materials[:2],
        ),
        Item(
            name=FIRE,
            code="X1",
            department="县消防救援大队",
            statutory_days=10,
            promised_days=5,
            materials=materials[:1],
        ),
        Item(
            name=INSTANT,
            code="S2",
            department="县市场监督管理局",
            window="A01",
            promised_days=0,
            materials=materials[:1],
        ),
    ]
    bundles = [Bundle(name=BUNDLE, lead_department="县市场监督管理局", items=[FOOD, HYGIENE, FIRE])]
    return Catalog(center, departments, windows, items, bundles)


@pytest.fixture
def catalog() -> Catalog:
    return build_catalog()


@pytest.fixture
def calendar() -> WorkCalendar:
    """National data from chinesecalendar (pinned to what it knew when written) plus fixed holidays."""
    return WorkCalendar(
        package_last_year=2026,
        fixed_holidays=frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)}),
    )


class NoticeRecorder:
    """A renderer that writes plain text and remembers what it was asked to render."""

    def __init__(self) -> None:
        self.contexts: list[NoticeContext] = []

    def __call__(self, ctx: NoticeContext) -> RenderedNotice:
        self.contexts.append(ctx)
        extra = "；".join(ctx.missing_materials)
        return RenderedNotice(text=f"{ctx.case.number} {ctx.case.status_label} {extra}".strip())


@pytest.fixture
def render() -> NoticeRecorder:
    return NoticeRecorder()


def _db_params() -> list[object]:
    pg = pytest.param(
        "postgres",
        marks=[pytest.mark.postgres]
        + ([] if PG_URL else [pytest.mark.skip(reason="TEST_DATABASE_URL not set")]),
    )
    return ["sqlite", pg]


@pytest.fixture(params=_db_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.db'}"
    assert PG_URL
    return PG_URL


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = async_engine(db_url)
    if eng.dialect.name == "postgresql":
        # One throwaway server for the run: start every test from an empty schema.
        async with eng.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await prepare_database(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as s:
        yield s
