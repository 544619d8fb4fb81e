"""Case tables: Case, CaseStep (one per approving department), CaseEvent (append-only history).

Split as CaseBase -> Case(table=True) -> CasePublic (what the API and the status reply show),
so the stored secrets (factor hash, binding hash, full applicant name) never reach a response.

Case numbers look like YC260315K7Q2MXAB3: 'YC', the local acceptance date (YYMMDD), 8 random
Crockford base32 characters (40 bits) and a Luhn mod 32 check character. Nothing in them is
sequential, so a number tells nothing about other cases, and typos are caught before a lookup.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, UniqueConstraint, event
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from models.lifecycle import CaseStatus
from models.workdays import CHINA_TZ

# --- columns shared by every table module ---------------------------------------------------------


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite's DateTime drops the zone, PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use models.cases.utc_now()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


# --- case numbers and binding codes -----------------------------------------------------------------

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
RANDOM_CHARS = 8
BINDING_CODE_CHARS = 10  # 50 bits: the deep link is a bearer token, so it must not be guessable
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})
NUMBER_RE = re.compile(r"YC\d{6}[" + ALPHABET + r"]{" + str(RANDOM_CHARS + 1) + r"}")
# Loose pattern to spot a case number inside a chat message ("我的件 yc-260315-k7q2...").
NUMBER_IN_TEXT_RE = re.compile(r"[Yy][Cc][\s\-]?\d{6}[\s\-]?[0-9A-Za-z][0-9A-Za-z\s\-]{7,14}")


def _check_char(body: str) -> str:
    """Luhn mod 32: catches every single wrong character and most swapped neighbours."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return ALPHABET[(32 - total % 32) % 32]


def new_case_number(today: dt.date) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return f"YC{today:%y%m%d}{body}{_check_char(today.strftime('%y%m%d') + body)}"


def normalize_case_number(text: str) -> str | None:
    """Canonical number from what a person typed (case, spaces, dashes, O/0 I/L/1), or None.

    None also when the check character is wrong: a typo is answered without touching the database.
    """
    s = re.sub(r"[\s\-_]", "", text or "").upper()
    if not s.startswith("YC"):
        return None
    s = "YC" + s[2:].translate(_FOLD)
    if not NUMBER_RE.fullmatch(s):
        return None
    return s if _check_char(s[2:-1]) == s[-1] else None


def new_binding_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(BINDING_CODE_CHARS))


def binding_start_param(number: str, code: str) -> str:
    """Payload of t.me/<bot>?start=… (Telegram allows [A-Za-z0-9_-], at most 64 characters)."""
    return f"c_{number}_{code}"


def binding_link(bot_username: str, number: str, code: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={binding_start_param(number, code)}"


def parse_start_param(param: str) -> tuple[str, str] | None:
    """(number, code) from a /start payload made by binding_start_param, else None."""
    parts = (param or "").split("_")
    if len(parts) != 3 or parts[0] != "c":
        return None
    number = normalize_case_number(parts[1])
    code = parts[2].upper()
    if number is None or len(code) != BINDING_CODE_CHARS or any(c not in ALPHABET for c in code):
        return None
    return number, code


# --- tables ---------------------------------------------------------------------------------------


_VERSION = Column("version", Integer, nullable=False, server_default="1")


class CaseBase(SQLModel):
    number: str = Field(max_length=24, unique=True, index=True)
    kind: str = Field(max_length=8)  # 'item' | 'bundle'
    item_name: str = Field(max_length=200)  # canonical item or bundle name
    lead_department: str = Field(max_length=32)  # department id
    channel: str = Field(max_length=16)  # where it was accepted: window | api | online …
    status: str = Field(default=CaseStatus.ACCEPTED.value, max_length=24, index=True)
    promised_days: int  # snapshot at acceptance: later catalog edits do not change a promise
    # How promised_days counts (knowledge.schema.DaysUnit: working | calendar | month), snapshot too.
    days_unit: str = Field(default="working", max_length=8, sa_column_kwargs={"server_default": "working"})
    promised_due_date: dt.date = Field(index=True)
    # Days spent in 需补正 so far (already added to the due date): working days for a working-day
    # promise, calendar days otherwise.
    paused_workdays: int = 0


class Case(CaseBase, table=True):
    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, max_length=100, unique=True)
    applicant_name: str = Field(max_length=100)
    phone_masked: str = Field(max_length=24)
    factor_salt: str = Field(max_length=64)
    factor_hash: str = Field(max_length=128)
    binding_hash: str = Field(max_length=128)
    accepted_at: dt.datetime = utc_column()
    paused_since: dt.datetime | None = utc_column(nullable=True)
    closed_at: dt.datetime | None = utc_column(nullable=True)  # completed, rejected or withdrawn
    created_at: dt.datetime = utc_column()
    updated_at: dt.datetime = utc_column()
    # Optimistic lock: two departments approving the same bundle at once must not lose an update.
    version: int = Field(default=1, sa_column=_VERSION)

    __mapper_args__ = {"version_id_col": _VERSION}

    @property
    def status_enum(self) -> CaseStatus:
        return CaseStatus(self.status)

    @property
    def accepted_date(self) -> dt.date:
        return self.accepted_at.astimezone(CHINA_TZ).date()


class CaseStep(SQLModel, table=True):
    """One approving department of a case (the only one for an ordinary item)."""

    __tablename__ = "case_steps"
    __table_args__ = (UniqueConstraint("case_id", "department"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True, ondelete="CASCADE")
    department: str = Field(max_length=32, index=True)  # department id
    department_name: str = Field(max_length=100)  # snapshot, for display without the catalog
    items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    is_lead: bool = False
    status: str = Field(default=CaseStatus.ACCEPTED.value, max_length=24)
    handled_by: str | None = Field(default=None, max_length=100)  # actor of the latest change
    started_at: dt.datetime | None = utc_column(nullable=True)
    finished_at: dt.datetime | None = utc_column(nullable=True)
    updated_at: dt.datetime = utc_column()


class CaseEvent(SQLModel, table=True):
    """Append-only history. `event_id` is the caller's idempotency key: a replay changes nothing."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True, ondelete="CASCADE")
    event_id: str = Field(max_length=128, unique=True)
    status: str = Field(max_length=24)  # what the event asked for
    department: str | None = Field(default=None, max_length=32)
    from_status: str | None = Field(default=None, max_length=24)  # case status before
    to_status: str = Field(max_length=24)  # case status after
    actor: str = Field(max_length=100)  # 'staff:<user id>', 'api', 'system' …
    note: str | None = Field(default=None, max_length=2000)
    missing_materials: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: dt.datetime = utc_column()


@event.listens_for(CaseEvent, "before_update")
def _events_are_append_only(_mapper: Any, _conn: Any, target: CaseEvent) -> None:
    raise RuntimeError(f"CaseEvent {target.id} is append-only history and cannot be changed")


# Telegram chat ids exceed 32 bits; shared here so every table declares them the same way.
def chat_id_column(*, index: bool = False) -> Any:
    return Field(sa_column=Column(BigInteger, nullable=False, index=index))


# --- what leaves the domain -------------------------------------------------------------------------


class StepPublic(SQLModel):
    department: str
    department_name: str
    is_lead: bool
    items: list[str]
    status: str
    status_label: str
    handled_by: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class EventPublic(SQLModel):
    status: str
    status_label: str
    department: str | None
    to_status: str
    note: str | None
    missing_materials: list[str] | None
    at: dt.datetime


class CasePublic(CaseBase):
    """A case as the applicant, staff and the integration API see it: personal data masked."""

    applicant_masked: str
    phone_masked: str
    status_label: str
    accepted_at: dt.datetime
    closed_at: dt.datetime | None
    working_days_left: int | None  # None once closed; frozen while paused
    overdue: bool  # open, clock running and past the due date
    finished_late: bool  # closed after the due date
    paused: bool  # in 需补正: the clock is stopped
    provisional: bool  # due date lies in a year whose holidays are not announced yet
    steps: list[StepPublic] = Field(default_factory=list)
    history: list[EventPublic] = Field(default_factory=list)
