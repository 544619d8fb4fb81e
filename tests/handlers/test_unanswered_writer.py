"""Unanswered questions recorded by group commit (models/batching.py, models/questions.py): asks
that arrive together share one write, and every one of them is counted as if written alone."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, select

from models.batching import GroupWriter
from models.db import async_engine, prepare_database, session_factory
from models.questions import UnansweredQuestion, UnansweredWriter, record_unanswered

PG_URL = os.environ.get("TEST_DATABASE_URL")
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")],
        ),
    ]
)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path / 'questions.db'}" if request.param == "sqlite" else str(PG_URL)
    engine = async_engine(url)
    await prepare_database(engine)
    yield engine
    await engine.dispose()


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps no zone


async def stored(engine: AsyncEngine, *keys: str) -> dict[str, UnansweredQuestion]:
    async with session_factory(engine)() as s:
        rows = await s.exec(select(UnansweredQuestion).where(col(UnansweredQuestion.normalised).in_(keys)))
        return {q.normalised: q for q in rows}


async def test_identical_questions_asked_together_are_each_counted(engine: AsyncEngine) -> None:
    # A PostgreSQL database outlives the run: a question of this run's own.
    tag = secrets.token_hex(4)
    dog, fish = f"办狗证{tag}", f"钓鱼证{tag}"
    async with session_factory(engine)() as s:
        await record_unanswered(session=s, text=dog, now=T0 - timedelta(days=1))  # asked yesterday
        await s.commit()
    writer = UnansweredWriter(engine)
    asks = [
        (f"{dog}？", T0 + timedelta(minutes=2)),
        (fish, T0),
        (f"办 狗证{tag}", T0 + timedelta(minutes=1)),
        (f"办狗证 {tag}！", T0 + timedelta(minutes=3)),  # the latest wording is the one shown
        ("   ", T0),  # nothing to count
    ]
    for text, now in asks:
        writer.record(text, now)
    await writer.drain()
    rows = await stored(engine, dog, fish)
    assert rows[dog].count == 4 and rows[fish].count == 1
    assert rows[dog].text == f"办狗证 {tag}！"
    assert utc(rows[dog].first_seen) == T0 - timedelta(days=1)
    assert utc(rows[dog].last_seen) == T0 + timedelta(minutes=3)
    assert (utc(rows[fish].first_seen), utc(rows[fish].last_seen)) == (T0, T0)
    # Asked again later, in a batch of its own: counted on top.
    writer.record(fish, T0 + timedelta(hours=1))
    await writer.drain()
    assert (await stored(engine, fish))[fish].count == 2
    async with engine.begin() as conn:
        await conn.execute(
            delete(UnansweredQuestion).where(col(UnansweredQuestion.normalised).in_([dog, fish]))
        )


async def test_a_failed_write_is_logged_once_and_the_next_write_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = async_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema yet: the write fails
    try:
        writer = UnansweredWriter(engine)
        writer.record("开游艇要什么证")
        writer.record("钓鱼证")
        await writer.drain()
        writer.record("钓鱼证")
        await writer.drain()
        failures = [r for r in caplog.records if "unanswered questions" in r.getMessage()]
        assert len(failures) == 1 and "OperationalError" in failures[0].getMessage()
        assert "钓鱼证" not in caplog.text  # the asks themselves may hold personal data
        await prepare_database(engine)
        writer.record("开游艇要什么证")
        await writer.drain()
        rows = await stored(engine, "开游艇要什么证", "钓鱼证")
        assert {k: q.count for k, q in rows.items()} == {"开游艇要什么证": 1}  # the failed asks are not
    finally:
        await engine.dispose()


async def test_group_writer_batches_what_arrives_during_a_write(engine: AsyncEngine) -> None:
    batches: list[list[int]] = []
    writing = asyncio.Event()
    release = asyncio.Event()

    async def double(conn: AsyncConnection, items: list[int]) -> list[int]:
        batches.append(items)
        writing.set()
        await release.wait()
        if 13 in items:
            raise ValueError("unlucky")
        return [2 * i for i in items]

    group: GroupWriter[int, int] = GroupWriter(engine, double, spacing=0)
    first = asyncio.gather(group.submit(1), group.submit(2))
    await writing.wait()
    # The first write is in flight: these wait and go together in the next one.
    later = asyncio.gather(group.submit(3), group.submit(13), return_exceptions=True)
    await asyncio.sleep(0)
    release.set()
    assert await first == [2, 4]
    assert [r if isinstance(r, int) else type(r) for r in await later] == [ValueError, ValueError]
    assert batches == [[1, 2], [3, 13]]
    assert await group.submit(5) == 10  # the writer goes on after a failed batch
