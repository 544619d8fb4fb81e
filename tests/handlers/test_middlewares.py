"""Role lookup before filters run, cached so a citizen's question costs no staff query."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.middlewares import CITIZEN, RoleMiddleware
from handlers.filters import staff_role_resolver
from knowledge.schema import Catalog
from models.crud import add_staff


async def test_role_is_looked_up_once_per_ttl() -> None:
    calls: list[int] = []
    roles = {7: "admin"}

    async def resolver(user_id: int) -> str:
        calls.append(user_id)
        return roles.get(user_id, CITIZEN)

    now = [0.0]
    mw = RoleMiddleware(resolver, ttl=30, clock=lambda: now[0])
    assert [await mw.role_of(7), await mw.role_of(7), await mw.role_of(8)] == ["admin", "admin", CITIZEN]
    assert calls == [7, 8]
    roles[8] = "window"  # a member added later is recognised once the cached answer expires
    now[0] = 31.0
    assert await mw.role_of(8) == "window"


async def test_no_resolver_means_everyone_is_a_citizen() -> None:
    assert await RoleMiddleware(None).role_of(1) == CITIZEN


async def test_staff_roles_come_from_one_snapshot_read_again_after_the_ttl(
    db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]], bot_catalog: Catalog
) -> None:
    engine, factory = db
    async with factory() as s:
        await add_staff(session=s, catalog=bot_catalog, user_id=7, name="张三", role="admin")
        await s.commit()
    queries: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    now = [0.0]
    resolve = staff_role_resolver(factory, ttl=30, clock=lambda: now[0])
    # Many citizens and a staff member: one read of the staff table answers them all.
    assert [await resolve(u) for u in (7, 8, 9, 10)] == ["admin", CITIZEN, CITIZEN, CITIZEN]
    assert len(queries) == 1
    async with factory() as s:
        await add_staff(
            session=s, catalog=bot_catalog, user_id=8, name="李四", role="window", department="scjg"
        )
        await s.commit()
    assert await resolve(8) == CITIZEN  # not yet: the snapshot is still fresh
    now[0] = 31.0
    assert await resolve(8) == "window"  # a member added later is recognised once it expires
