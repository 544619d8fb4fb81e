"""Unanswered questions, counted for the catalog editors (models/questions.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models.questions import count_unanswered, normalise, record_unanswered, top_unanswered

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]


def test_normalise_folds_width_case_spacing_and_masks() -> None:
    assert normalise("ＷＩＦＩ 怎么 办？") == normalise("wifi怎么办")
    assert normalise("电话 138 1234 5678") == "电话138****5678"


async def test_most_asked_first_then_most_recent(db: Db) -> None:
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    async with db[1]() as s:
        await record_unanswered(session=s, text="办狗证", now=t0)
        await record_unanswered(session=s, text="钓鱼证", now=t0 + timedelta(minutes=1))
        await record_unanswered(session=s, text="办 狗证！", now=t0 + timedelta(minutes=2))
        await record_unanswered(session=s, text="游艇", now=t0 + timedelta(minutes=3))
        await record_unanswered(session=s, text="   ", now=t0)  # nothing to count
        await s.commit()
    async with db[1]() as s:
        rows = await top_unanswered(session=s, limit=3)
        assert [(r.text, r.count) for r in rows] == [("办 狗证！", 2), ("游艇", 1), ("钓鱼证", 1)]
        assert await count_unanswered(session=s) == 3
