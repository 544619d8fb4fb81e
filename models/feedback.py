"""Supervision tables: ratings (好差评), rectification tickets, complaints, announcements, news
subscriptions, and the review of unanswered questions.

Ratings follow GB/T 39734-2020's five levels. A 差评 (★1–2) opens a rectification ticket for the
department with two deadlines in working days: call the applicant back within 1, fix within 15.
Once the fix is recorded the applicant may rate a second time (round 2), never a third.

Free text (rating remarks, complaints, replies) is stored masked: a citizen who types a phone or
ID number into a complaint must not have it kept, shown to staff or exported in plain text.
"""

from __future__ import annotations

import datetime as dt
import secrets
from enum import IntEnum, StrEnum

from sqlalchemy import JSON, BigInteger, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.cases import ALPHABET, chat_id_column, utc_column

# Working days the center promises for each step (written into the tickets when they open).
CALLBACK_WORKDAYS = 1  # 差评: call the applicant back
FIX_WORKDAYS = 15  # 差评: rectify
COMPLAINT_REPLY_WORKDAYS = 5  # 投诉建议: first reply
MAX_ROUNDS = 2  # the first rating, and one more after a recorded fix
MAX_TEXT = 1000  # a remark, complaint, reply or outcome as stored
MAX_PHOTOS = 3


class Stars(IntEnum):
    VERY_SATISFIED = 5
    SATISFIED = 4
    BASICALLY_SATISFIED = 3
    DISSATISFIED = 2
    VERY_DISSATISFIED = 1

    @property
    def label(self) -> str:
        return STAR_LABELS[self]


STAR_LABELS: dict[int, str] = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
BAD_STARS = 2  # ★1–2 is a 差评
GOOD_STARS = 4  # ★4–5 counts as satisfied in the figures


class Reason(StrEnum):
    # Short codes: they travel in callback data (64 bytes) and in the CSV.
    EFFICIENCY = "eff"
    ATTITUDE = "att"
    MATERIALS = "mat"
    RUNS = "run"
    OTHER = "oth"

    @property
    def label(self) -> str:
        return REASON_LABELS[self]


REASON_LABELS: dict[str, str] = {
    "eff": "办事效率",
    "att": "服务态度",
    "mat": "材料要求不清",
    "run": "多次跑腿",
    "oth": "其他",
}


class RectificationStatus(StrEnum):
    OPEN = "open"  # waiting for the callback
    CALLED_BACK = "called_back"  # applicant called back, fix under way
    FIXED = "fixed"  # fix recorded; the applicant may rate again

    @property
    def label(self) -> str:
        return {"open": "待回访", "called_back": "整改中", "fixed": "已整改"}[self.value]


class ComplaintStatus(StrEnum):
    OPEN = "open"  # received, nobody assigned yet
    ASSIGNED = "assigned"  # passed to a department
    ANSWERED = "answered"  # replied to the citizen
    CLOSED = "closed"  # outcome recorded

    @property
    def label(self) -> str:
        return {"open": "待处理", "assigned": "已转办", "answered": "已答复", "closed": "已办结"}[self.value]


def new_ticket_number(prefix: str, today: dt.date) -> str:
    """'TS261127K7Q2M': prefix, local date, 5 random Crockford characters (nothing sequential)."""
    return f"{prefix}{today:%y%m%d}" + "".join(secrets.choice(ALPHABET) for _ in range(5))


class Rating(SQLModel, table=True):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("case_id", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True, ondelete="CASCADE")
    round: int = 1  # 2: the rating given after a recorded fix
    stars: int = Field(ge=1, le=5)
    reason: str | None = Field(default=None, max_length=8)  # Reason code
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # masked
    chat_id: int = chat_id_column()
    department: str = Field(max_length=32, index=True)  # the case's lead department (snapshot)
    created_at: dt.datetime = utc_column(index=True)
    updated_at: dt.datetime = utc_column()


class Rectification(SQLModel, table=True):
    """整改工单 opened by a 差评, owned by the case's lead department."""

    __tablename__ = "rectifications"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=16, unique=True, index=True)
    rating_id: int = Field(foreign_key="ratings.id", unique=True, ondelete="CASCADE")
    case_id: int = Field(foreign_key="cases.id", index=True, ondelete="CASCADE")
    department: str = Field(max_length=32, index=True)
    status: str = Field(default=RectificationStatus.OPEN.value, max_length=16, index=True)
    callback_due: dt.date
    fix_due: dt.date
    called_back_at: dt.datetime | None = utc_column(nullable=True)
    callback_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    fixed_at: dt.datetime | None = utc_column(nullable=True)
    fix_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    handled_by: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = utc_column(index=True)
    updated_at: dt.datetime = utc_column()


class Complaint(SQLModel, table=True):
    """投诉建议 ticket. `department` is what the citizen picked (None: 不清楚)."""

    __tablename__ = "complaints"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=16, unique=True, index=True)
    chat_id: int = chat_id_column(index=True)
    department: str | None = Field(default=None, max_length=32)
    assigned_department: str | None = Field(default=None, max_length=32, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))  # masked
    photos: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # file_ids
    status: str = Field(default=ComplaintStatus.OPEN.value, max_length=16, index=True)
    promised_reply_date: dt.date
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    replied_at: dt.datetime | None = utc_column(nullable=True)
    replied_by: str | None = Field(default=None, max_length=100)
    follow_up: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # once
    follow_up_at: dt.datetime | None = utc_column(nullable=True)
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    closed_at: dt.datetime | None = utc_column(nullable=True)
    closed_by: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = utc_column(index=True)
    updated_at: dt.datetime = utc_column()


class Announcement(SQLModel, table=True):
    """网上公告, stored when published (drafts live in the admin's conversation state)."""

    __tablename__ = "announcements"

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))  # plain text, escaped when shown
    document_file_id: str | None = Field(default=None, max_length=255)
    document_name: str | None = Field(default=None, max_length=255)
    created_by: int = Field(sa_column=Column(BigInteger, nullable=False))
    recipients: int = 0  # notices queued at publication
    created_at: dt.datetime = utc_column(index=True)


class NewsSubscription(SQLModel, table=True):
    __tablename__ = "news_subscriptions"

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    created_at: dt.datetime = utc_column()


class QuestionReview(SQLModel, table=True):
    """An admin's decision on an unanswered question: attached to an item as an alias, or dismissed
    (kept out of /unanswered even when asked again)."""

    __tablename__ = "question_reviews"

    id: int | None = Field(default=None, primary_key=True)
    normalised: str = Field(max_length=500, unique=True, index=True)
    text: str = Field(max_length=500)
    action: str = Field(max_length=16)  # 'attached' | 'dismissed'
    item: str | None = Field(default=None, max_length=200)
    by: str = Field(max_length=100)
    at: dt.datetime = utc_column()
