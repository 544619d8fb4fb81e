"""Audit log of staff and API actions, lookups and refused attempts (who did what, with what result).

`details` must never carry personal data: `audit()` masks any phone or ID number that slips in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Column, event, insert
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


# Who hears of each audit row as it is written: bot/metrics counts lookups and lockouts (the models
# cannot import bot, so it registers here). Called with (action, outcome).
_listeners: list[Callable[[str, str], None]] = []


def on_audit(listener: Callable[[str, str], None]) -> None:
    _listeners.append(listener)


def _announce(action: str, outcome: str) -> None:
    for listener in _listeners:
        listener(action, outcome)


@event.listens_for(AuditLog, "after_insert")
def _inserted(_mapper: Any, _connection: Any, row: AuditLog) -> None:
    _announce(row.action, row.outcome)


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
    row = AuditLog(**_values(actor, action, outcome, target, details, now))
    session.add(row)
    return row


def _values(
    actor: str,
    action: str,
    outcome: str,
    target: str,
    details: dict[str, Any] | None,
    now: dt.datetime | None,
) -> dict[str, Any]:
    return {
        "at": now or utc_now(),
        "actor": actor[:100],
        "action": action[:50],
        "target": target[:100],
        "outcome": outcome[:20],
        "details": _clean(details) if details else None,
    }


_INSERT = insert(AuditLog.__table__)  # type: ignore[attr-defined]


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
    """Audit the action and commit: the row lands in the same transaction as the change it records.

    The row is one plain INSERT rather than an entity for the session to flush: a looked-up case's
    status (the commonest audited action) spent about a quarter of its CPU in the unit of work."""
    # Changes the caller made are written first, so audit rows keep the order they were made in.
    await session.flush()
    conn = await session.connection()
    await conn.execute(_INSERT, _values(actor, action, outcome, target, details, now))
    await session.commit()
    _announce(action, outcome)
