"""Lockout after repeated failed case lookups, stored in the database so every process agrees.

5 failures within 10 minutes lock the user (a Telegram user, or an API client key) for 30 minutes.
A success does not clear earlier failures: otherwise someone holding one valid case could
interleave it with guesses at other people's factors and never be locked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cases import utc_column

MAX_FAILURES = 5
WINDOW = dt.timedelta(minutes=10)
LOCK_FOR = dt.timedelta(minutes=30)


class LookupFailure(SQLModel, table=True):
    __tablename__ = "lookup_failures"

    id: int | None = Field(default=None, primary_key=True)
    user_key: str = Field(max_length=64, index=True)  # 'tg:<user id>' …, never a phone number
    at: dt.datetime = utc_column()


class LookupLock(SQLModel, table=True):
    __tablename__ = "lookup_locks"

    user_key: str = Field(max_length=64, primary_key=True)
    locked_until: dt.datetime = utc_column()


def lock_running(
    *, user_key: str | ColumnElement[Any], now: dt.datetime | ColumnElement[Any]
) -> ColumnElement[bool]:
    """Join condition for the user's lock, when one is still running (outer-joined: NULL, they may try).

    A lookup joins it to the statement that fetches the case, so the check costs no round trip of
    its own and is made the same way whether the case exists or not.
    """
    return and_(col(LookupLock.user_key) == user_key, col(LookupLock.locked_until) > now)


async def record_failure(*, session: AsyncSession, user_key: str, now: dt.datetime) -> dt.datetime | None:
    """Count one failure (no commit); returns the lock's end when this failure locks the user."""
    # Old rows serve no rule any more; pruning here keeps the table as small as the traffic.
    await session.exec(
        delete(LookupFailure).where(
            LookupFailure.user_key == user_key,  # type: ignore[arg-type]
            LookupFailure.at <= now - WINDOW,  # type: ignore[arg-type,operator]
        )
    )
    session.add(LookupFailure(user_key=user_key, at=now))
    await session.flush()
    recent = await session.scalar(
        select(func.count())
        .select_from(LookupFailure)
        .where(LookupFailure.user_key == user_key, LookupFailure.at > now - WINDOW)  # type: ignore[arg-type,operator]
    )
    if (recent or 0) < MAX_FAILURES:
        return None
    until = now + LOCK_FOR
    # An upsert: two bot processes locking the same user at once must not collide on the key.
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = LookupLock.__table__  # type: ignore[attr-defined]
    stmt = insert(table).values(user_key=user_key, locked_until=until)
    await session.exec(
        stmt.on_conflict_do_update(index_elements=[table.c.user_key], set_={"locked_until": until})
    )
    return until
