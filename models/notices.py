"""Subscriptions (case ↔ chat) and the notice outbox.

A Notice row is written in the same transaction as the change that caused it (transactional
outbox) with its text already rendered, so the delivery worker needs neither the catalog nor the
templates, and a notice queued before a restart or a template edit is sent exactly as written.
The worker moves a row pending -> sent | failed | expired; `attempts`, `next_attempt_at` and
`last_error` record each try, so a crash loses nothing (at most the notice in flight is resent).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cases import chat_id_column, utc_column, utc_now


class NoticeStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # permanently: the user blocked the bot, the chat is gone …
    EXPIRED = "expired"  # still undelivered after the TTL: stale news is worse than none


class NoticeKind(StrEnum):
    # A case notice's kind is the status word of the event that caused it (see CaseStatus):
    # 'correction_required' is the 一次性告知, 'completed' the 办结通知. Others are listed here.
    DIGEST = "digest"  # daily deadline digest to staff
    ANNOUNCEMENT = "announcement"


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("case_id", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True, ondelete="CASCADE")
    chat_id: int = chat_id_column(index=True)
    via: str = Field(default="lookup", max_length=16)  # 'link' (receipt deep link) | 'lookup'
    created_at: dt.datetime = utc_column()


class Notice(SQLModel, table=True):
    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True, ondelete="CASCADE")
    event_id: int | None = Field(default=None, foreign_key="case_events.id", ondelete="CASCADE")
    chat_id: int = chat_id_column(index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))  # rendered, Telegram HTML
    reply_markup: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    status: str = Field(default=NoticeStatus.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: dt.datetime = utc_column()
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: dt.datetime | None = utc_column(nullable=True)
    acknowledged_at: dt.datetime | None = utc_column(nullable=True)  # 我已知晓 pressed
    created_at: dt.datetime = utc_column()


def enqueue_notice(
    *,
    session: AsyncSession,
    chat_id: int,
    kind: str,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    case_id: int | None = None,
    event_pk: int | None = None,
    now: dt.datetime | None = None,
) -> Notice:
    """Add a pending notice to the caller's transaction (no commit: outbox semantics)."""
    now = now or utc_now()
    notice = Notice(
        kind=kind,
        case_id=case_id,
        event_id=event_pk,
        chat_id=chat_id,
        text=text,
        reply_markup=reply_markup,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(notice)
    return notice
