"""Audit log of staff and API actions, lookups and refused attempts (who did what, with what result).

`details` must never carry personal data: `audit()` masks any phone or ID number that slips in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cases import utc_column, utc_now
from models.privacy import mask_text


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = utc_column(index=True)
    actor: str = Field(max_length=100, index=True)  # 'tg:<user id>', 'staff:<user id>', 'api', 'cli'
    action: str = Field(max_length=50)  # 'case.lookup', 'case.event', 'staff.add', 'staff.denied' …
    target: str = Field(default="", max_length=100)  # case number, staff user id …
    outcome: str = Field(max_length=20)  # ok | denied | refused | duplicate | locked | error
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def audit(
    *,
    session: AsyncSession,
    actor: str,
    action: str,
    outcome: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction (no commit: it lands with the action itself)."""
    row = AuditLog(
        at=now or utc_now(),
        actor=actor[:100],
        action=action[:50],
        target=target[:100],
        outcome=outcome[:20],
        details=_clean(details) if details else None,
    )
    session.add(row)
    return row


async def commit_audited(
    *,
    session: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    outcome: str = "ok",
) -> None:
    """Audit the action and commit: the row lands in the same transaction as the change it records."""
    audit(
        session=session, actor=actor, action=action, outcome=outcome, target=target, details=details, now=now
    )
    await session.commit()
