"""The daily deadline digest (限时办结): each department's staff get the cases due within 2 working
days and the overdue ones; admins get every overdue case. Written to the outbox like any notice.

Once a day on working days, at DIGEST_AT local time; a restart after that time catches up, and a
second run the same day (restart, or two bot processes) queues nothing: the day's digest is
recognised by the notices already written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from jinja2 import Environment
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.supervision_render import queue_rating_reminders
from bot.templates import render
from knowledge.schema import Catalog
from models.audit import audit
from models.cases import utc_now
from models.crud import due_cases, list_staff
from models.notices import Notice, NoticeKind, enqueue_notice
from models.staff import StaffRole
from models.workdays import CHINA_TZ, WorkCalendar, default_calendar, local_date

log = logging.getLogger(__name__)

DIGEST_AT = dt.time(8, 30)  # local time: before the windows open
DUE_WITHIN = 2  # working days


def _day_start_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), CHINA_TZ).astimezone(dt.UTC)


async def queue_digest(
    *,
    factory: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    templates: Environment,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> int:
    """Write today's digest notices; returns how many (0 when already done today or nothing is due)."""
    now = now or utc_now()
    today = local_date(now)
    async with factory() as session:
        done = await session.exec(
            select(Notice.id)
            .where(
                col(Notice.kind) == NoticeKind.DIGEST.value, col(Notice.created_at) >= _day_start_utc(today)
            )
            .limit(1)
        )
        if done.first() is not None:
            return 0
        lines = await due_cases(session=session, within_workdays=DUE_WITHIN, today=today, calendar=calendar)
        if not lines:
            return 0
        names = {d.id: d.name for d in catalog.departments}
        queued = 0
        for member in await list_staff(session=session, active_only=True):
            if member.role == StaffRole.ADMIN.value:
                mine = [line for line in lines if line.deadline.overdue]
            else:
                mine = [line for line in lines if member.department in line.pending_departments]
            if not mine:
                continue
            text = render(
                templates,
                "staff/digest",
                today=today,
                overdue=[x for x in mine if x.deadline.overdue],
                due_soon=[x for x in mine if not x.deadline.overdue],
                department=names.get(member.department or "", "") if member.department else "",
                admin=member.role == StaffRole.ADMIN.value,
            )
            enqueue_notice(
                session=session, chat_id=member.user_id, kind=NoticeKind.DIGEST.value, text=text, now=now
            )
            queued += 1
        audit(
            session=session,
            actor="system",
            action="digest.queue",
            outcome="ok",
            target=today.isoformat(),
            now=now,
            details={"cases": len(lines), "notices": queued},
        )
        await session.commit()
    log.info("deadline digest for %s: %d cases, %d notices", today, len(lines), queued)
    return queued


def next_run(now: dt.datetime, at: dt.time = DIGEST_AT) -> dt.datetime:
    """The next local `at` strictly after `now` (UTC)."""
    local = now.astimezone(CHINA_TZ)
    run = dt.datetime.combine(local.date(), at, CHINA_TZ)
    if run <= local:
        run += dt.timedelta(days=1)
    return run.astimezone(dt.UTC)


async def digest_loop(
    *,
    factory: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    templates: Environment,
    stop: asyncio.Event,
    at: dt.time = DIGEST_AT,
    on_queued: Callable[[], None] | None = None,
) -> None:
    """Run the digest once a day on working days until `stop` is set."""
    cal = default_calendar()
    now = utc_now()
    # Catch up after a restart later in the day; the digest itself refuses a second run.
    due = now if now.astimezone(CHINA_TZ).time() >= at else next_run(now, at)
    while not stop.is_set():
        wait = (due - utc_now()).total_seconds()
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(wait, 3600))
                return
            except TimeoutError:
                continue  # re-check the clock: a long sleep may drift, the machine may suspend
        try:
            if cal.is_workday(local_date(utc_now())):
                if await queue_digest(factory=factory, catalog=catalog, templates=templates) and on_queued:
                    on_queued()
        except Exception:  # noqa: BLE001 - tomorrow's digest must still run
            log.exception("deadline digest failed")
        try:  # issue 5: unrated cases closed 3 days ago get their single rating reminder
            reminded = await queue_rating_reminders(factory=factory, catalog=catalog, templates=templates)
            if reminded and on_queued:
                on_queued()
        except Exception:  # noqa: BLE001 - the digest loop must go on
            log.exception("rating reminders failed")
        due = next_run(utc_now(), at)
