"""The daily deadline digest: who gets which cases, and only once a day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.reminders import next_run, queue_digest
from knowledge.schema import Catalog
from models.cases import utc_now
from models.workdays import CHINA_TZ
from tests.cases_handlers.conftest import FIRE, FOOD

Maker = Callable[..., Awaitable[Any]]
DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


async def test_digest_goes_to_each_department_and_overdue_to_admins(
    db: DB, bot_catalog: Catalog, templates: Environment, new_case: Maker, staff_member: Maker, queued: Maker
) -> None:
    now = utc_now()
    food_late = (await new_case(item=FOOD, now=now - dt.timedelta(days=30))).case.number
    fire_late = (await new_case(item=FIRE, now=now - dt.timedelta(days=30))).case.number
    food_fresh = (await new_case(item=FOOD, now=now)).case.number  # 5 working days: not yet
    await staff_member(1, department="scjg")
    await staff_member(2, department="xf")
    await staff_member(3, role="admin", department=None)
    await staff_member(4, department="mzj")  # nothing due there: no message

    count = await queue_digest(factory=db[1], catalog=bot_catalog, templates=templates, now=now)
    by_chat = {n.chat_id: n.text for n in await queued()}
    assert count == 3 and set(by_chat) == {1, 2, 3}
    assert food_late in by_chat[1] and fire_late not in by_chat[1] and food_fresh not in by_chat[1]
    assert "已超期" in by_chat[1] and "县市场监督管理局" in by_chat[1]
    assert fire_late in by_chat[2] and food_late not in by_chat[2]
    assert food_late in by_chat[3] and fire_late in by_chat[3]

    assert await queue_digest(factory=db[1], catalog=bot_catalog, templates=templates, now=now) == 0
    assert len(await queued()) == 3


async def test_case_due_within_two_working_days_is_listed(
    db: DB, bot_catalog: Catalog, templates: Environment, new_case: Maker, staff_member: Maker, queued: Maker
) -> None:
    now = utc_now()
    # Accepted 5 working days before "now" minus one: due within the next two working days.
    from models.workdays import default_calendar

    cal = default_calendar()
    day = now.astimezone(CHINA_TZ).date()
    start = day
    while cal.workdays_between(start, day) < 4:
        start -= dt.timedelta(days=1)
    accepted = dt.datetime.combine(start, dt.time(10), CHINA_TZ).astimezone(dt.UTC)
    number = (await new_case(item=FOOD, now=accepted)).case.number
    await staff_member(1, department="scjg")
    await queue_digest(factory=db[1], catalog=bot_catalog, templates=templates, now=now)
    [notice] = await queued()
    assert number in notice.text and "2 个工作日内到期" in notice.text


def test_next_run_is_the_next_local_morning() -> None:
    at = dt.time(8, 30)
    before = dt.datetime(2026, 3, 16, 7, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC)
    after = dt.datetime(2026, 3, 16, 9, 0, tzinfo=CHINA_TZ).astimezone(dt.UTC)
    assert next_run(before, at).astimezone(CHINA_TZ) == dt.datetime(2026, 3, 16, 8, 30, tzinfo=CHINA_TZ)
    assert next_run(after, at).astimezone(CHINA_TZ) == dt.datetime(2026, 3, 17, 8, 30, tzinfo=CHINA_TZ)
