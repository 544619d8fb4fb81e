"""Router-level gates for staff-only routers (design habit 2: gate the router, never `if` in handlers).

Usage:

    router = Router(name=__name__)
    router.message.filter(RoleFilter())                   # any active staff member
    router.callback_query.filter(RoleFilter(StaffRole.ADMIN))  # admins only

A passing filter injects the `staff` row (models.staff.Staff) into the handler data, so handlers
take `staff: Staff` as a parameter. Citizens never reach a gated router's handlers; a router that
wants to tell them "no" puts a plain refusal router after it (see `refuse_and_audit`).

The cheap part runs for every update: `RoleMiddleware` (bot/middlewares.py) puts `role` in the
data through `staff_role_resolver`, so a citizen's update is refused by comparing strings, without
a query of its own. The Staff row is loaded fresh for staff updates: a member disabled with
`yichuang staff disable` loses access with their next update, no restart or cache expiry needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.middlewares import CITIZEN, RoleResolver
from models.audit import audit
from models.crud import InputError, get_staff, list_staff
from models.staff import StaffRole
from models.supervision import Forbidden


def staff_role_resolver(
    factory: async_sessionmaker[AsyncSession],
    ttl: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> RoleResolver:
    """RoleMiddleware resolver: the active staff member's role ('window' | 'department' | 'admin'),
    'citizen' for everyone else.

    Answers from a snapshot of all active staff (a center has tens to hundreds), read again when
    it is `ttl` seconds old: one query per `ttl` instead of one per user, since under load nearly
    every update came from a citizen the role cache had not seen yet (bench/bench_load.py). A new
    member is thus recognised within `ttl` seconds, as before; RoleFilter re-reads the row."""
    roles: dict[int, str] = {}
    fresh_until = float("-inf")
    lock = asyncio.Lock()  # updates arriving while the snapshot is read wait for that one read

    async def resolve(user_id: int) -> str:
        nonlocal roles, fresh_until
        if clock() >= fresh_until:
            async with lock:
                if clock() >= fresh_until:
                    started = clock()
                    async with factory() as session:
                        staff = await list_staff(session=session, active_only=True)
                    roles = {s.user_id: s.role for s in staff}
                    fresh_until = started + ttl
        return roles.get(user_id, CITIZEN)

    return resolve


class RoleFilter(Filter):
    """Passes active staff whose role is one of `roles` (any staff role when none are given) and
    injects `staff` (the Staff row) into the handler data."""

    def __init__(self, *roles: StaffRole | str) -> None:
        self.roles = frozenset(StaffRole(r).value for r in roles) or frozenset(r.value for r in StaffRole)

    async def __call__(
        self,
        event: TelegramObject,
        event_from_user: User | None = None,
        role: str = CITIZEN,
        session_factory: async_sessionmaker[AsyncSession] | None = None,
    ) -> bool | dict[str, Any]:
        if event_from_user is None or role not in self.roles or session_factory is None:
            return False
        async with session_factory() as session:
            staff = await get_staff(session=session, user_id=event_from_user.id)
        # Re-checked on the fresh row: the role may have changed since the middleware looked.
        if staff is None or staff.role not in self.roles:
            return False
        return {"staff": staff}

    def __str__(self) -> str:
        return f"RoleFilter({', '.join(sorted(self.roles))})"


async def refuse_and_audit(
    *,
    session: AsyncSession,
    user_id: int,
    role: str,
    action: str,
    target: str = "",
    kind: str = "staff.denied",
) -> None:
    """Record a refused attempt (the caller sends the plain refusal text): a staff action by someone
    without the role or the department, or with `kind="citizen.denied"` an applicant's press on a
    notice, rating or complaint that is someone else's. Every such row has outcome "denied"."""
    audit(
        session=session,
        actor=f"tg:{user_id}",
        action=kind,
        outcome="denied",
        target=target,
        details={"attempt": action, "role": role},
    )


async def audit_refusal(
    *, session: AsyncSession, user_id: int, role: str, error: InputError, kind: str = "staff.denied"
) -> None:
    """Audit a refusal raised by models/supervision.py when it is for lack of permission (Forbidden);
    a plain input mistake (an empty reply, a closed ticket) is not an access attempt."""
    if isinstance(error, Forbidden):
        await refuse_and_audit(
            session=session, user_id=user_id, role=role, action=error.action, target=error.target, kind=kind
        )
