"""Role lookup before filters run, cached so a citizen's question costs no staff query."""

from __future__ import annotations

from bot.middlewares import CITIZEN, RoleMiddleware


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
