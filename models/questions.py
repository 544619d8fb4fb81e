"""Questions the bot could not answer, counted, so catalog editors see what citizens ask for.

Stored normalised (width, case, spaces and punctuation folded) so "开 饭馆？" and "开饭馆" count as
one question, and masked: a citizen who types a phone or ID number into a question must not have it
kept in plain text.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

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


async def record_unanswered(*, session: AsyncSession, text: str, now: datetime | None = None) -> None:
    """Count one more ask of `text`. An upsert, so two bot processes asking at once never collide."""
    key = normalise(text)
    if not key:
        return
    now = now or datetime.now(UTC)
    shown = mask_sensitive(" ".join(text.split()))[:MAX_TEXT]
    table = UnansweredQuestion.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(normalised=key, text=shown, count=1, first_seen=now, last_seen=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.normalised],
        set_={"count": table.c.count + 1, "last_seen": now, "text": shown},
    )
    await session.exec(stmt)


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
