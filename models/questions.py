"""Questions the bot could not answer, counted, so catalog editors see what citizens ask for.

Stored normalised (width, case, spaces and punctuation folded) so "开 饭馆？" and "开饭馆" count as
one question, and masked: a citizen who types a phone or ID number into a question must not have it
kept in plain text.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.batching import GroupWriter

MAX_TEXT = 500

_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_FOLD_RE = re.compile(r"[\s\W_]+", re.UNICODE)


def mask_sensitive(text: str) -> str:
    """Mask mobile numbers (138****5678) and ID numbers (110101********123X) inside free text."""
    text = _ID_RE.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    return _PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def normalise(text: str) -> str:
    # Fold first, then mask: "138 1234 5678" must not survive as digits once the spaces are gone.
    folded = _FOLD_RE.sub("", unicodedata.normalize("NFKC", text).lower())
    return mask_sensitive(folded)[:MAX_TEXT]


class UnansweredQuestion(SQLModel, table=True):
    __tablename__ = "unanswered_questions"

    id: int | None = Field(default=None, primary_key=True)
    normalised: str = Field(max_length=MAX_TEXT, unique=True, index=True)
    text: str = Field(max_length=MAX_TEXT)  # latest wording, masked
    count: int = Field(default=1, ge=1)
    first_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def _upsert_statement(dialect: str) -> Any:
    table = UnansweredQuestion.__table__  # type: ignore[attr-defined]
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.normalised],
        set_={
            "count": table.c.count + stmt.excluded.count,
            "last_seen": stmt.excluded.last_seen,
            "text": stmt.excluded.text,  # the latest wording
        },
    )


# Built once per dialect: executed with a list of rows it stays one cached compiled statement (as
# the update ledger's, models/leases.py), instead of a statement built and compiled per question.
_UPSERT = {name: _upsert_statement(name) for name in ("sqlite", "postgresql")}


def _dialect(name: str) -> str:
    return "postgresql" if name == "postgresql" else "sqlite"


def _asked(text: str, now: datetime | None) -> dict[str, Any] | None:
    """One ask of `text` as an upsert row; None when nothing is left to count."""
    key = normalise(text)
    if not key:
        return None
    now = now or datetime.now(UTC)
    shown = mask_sensitive(" ".join(text.split()))[:MAX_TEXT]
    return {"normalised": key, "text": shown, "count": 1, "first_seen": now, "last_seen": now}


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per question: fewer rows to write, and safe should the rows ever go as one
    multi-row INSERT (as SQLAlchemy runs executemany on psycopg2), which PostgreSQL refuses when
    it touches a row twice. Sorted by key, so two processes' batches lock rows in the same order
    and cannot deadlock."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:  # in the order asked: the later wording wins
        seen = out.get(row["normalised"])
        if seen is None:
            out[row["normalised"]] = dict(row)
            continue
        seen["count"] += row["count"]
        seen["first_seen"] = min(seen["first_seen"], row["first_seen"])
        seen["last_seen"] = max(seen["last_seen"], row["last_seen"])
        seen["text"] = row["text"]
    return [out[key] for key in sorted(out)]


async def record_unanswered(*, session: AsyncSession, text: str, now: datetime | None = None) -> None:
    """Count one more ask of `text` in the session's transaction. An upsert, so two bot processes
    asking at once never collide."""
    row = _asked(text, now)
    if row is None:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    await session.exec(_UPSERT[_dialect(dialect)], params=row)


async def _record_batch(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[None]:
    await conn.execute(_UPSERT[_dialect(conn.dialect.name)], _merged(rows))
    return [None] * len(rows)


class UnansweredWriter:
    """Records unanswered questions for the bot's handlers, one per process (bot/app.py): asks
    arriving together are written in one transaction (group commit, models/batching.py) instead of
    one each, which cost ~2.9 ms CPU per fallback on SQLite (bench/bench_dispatcher.py --misses).

    `record` does not wait for the write: the citizen's "not found" must not wait for a statistic
    (waiting, the slowest fallbacks under load spent 35-80 ms on it, bench/bench_load.py). The ask
    is stored within SPACING; a failed write is logged, and a stop writes what is queued (drain)."""

    SPACING = 0.1  # seconds: nobody waits, so rare writes (as the update ledger)

    def __init__(self, engine: AsyncEngine) -> None:
        self._group: GroupWriter[dict[str, Any], None] = GroupWriter(
            engine, _record_batch, spacing=self.SPACING, name="unanswered questions"
        )

    def record(self, text: str, now: datetime | None = None) -> None:
        row = _asked(text, now)
        if row is not None:
            self._group.post(row)

    async def drain(self) -> None:
        await self._group.drain()


async def top_unanswered(*, session: AsyncSession, limit: int = 20) -> list[UnansweredQuestion]:
    """Most asked first; among equals, the most recent."""
    rows = await session.exec(
        select(UnansweredQuestion)
        .order_by(col(UnansweredQuestion.count).desc(), col(UnansweredQuestion.last_seen).desc())
        .limit(limit)
    )
    return list(rows.all())


async def count_unanswered(*, session: AsyncSession) -> int:
    total = await session.exec(select(func.count()).select_from(UnansweredQuestion))
    return int(total.one())
