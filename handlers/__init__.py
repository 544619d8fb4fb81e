"""Router order, set once. The free-text question router (guide) is LAST: everything more
specific (commands, buttons, case numbers, staff actions) must get the chance to claim an update
before it is treated as a question for the catalog."""

from __future__ import annotations

from aiogram import Router

from handlers import errors, guide, inline, selfcheck, start


def routers() -> list[Router]:
    ordered = [
        errors.router,  # error handler (catches errors of every router) + bad-input guard
        start.router,
        selfcheck.router,
        inline.router,
        # issue 4: cases.router, staff.router go here (before the guide).
        guide.router,  # LAST: free text is a question
    ]
    for r in ordered:
        # Routers are module singletons; a process that builds a second dispatcher (tests, the
        # console) hands them over: the newest dispatcher owns the handlers.
        old = r.parent_router
        if old is not None:
            old.sub_routers.remove(r)
            r._parent_router = None
    return ordered
