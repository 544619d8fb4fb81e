"""Router order, set once. The free-text question router (guide) is LAST: everything more
specific (commands, buttons, case numbers, staff actions) must get the chance to claim an update
before it is treated as a question for the catalog."""

from __future__ import annotations

from aiogram import Router

from handlers import admin, cases, errors, feedback, guide, inline, news, selfcheck, staff, start
from handlers.common import is_command

# Messages to these routers are all commands. Grouped under one root filter, a question (most
# updates) is turned away once instead of four times: aiogram's cost per router visited was a
# noticeable part of answering a question (bench/bench_dispatcher.py).
commands = Router(name="commands")
commands.message.filter(is_command)


def routers() -> list[Router]:
    grouped = [
        staff.denied_router,  # /cases and staff buttons from anyone else: a plain refusal
        admin.denied_router,  # the same for supervision commands and buttons
        news.router,  # /news, /subscribe_news, /unsubscribe_news
        start.router,
    ]
    ordered = [
        # Supervision goes before the bad-input guard: a photo sent while writing a complaint
        # belongs to it, and a reply to a complaint may be longer than a question.
        feedback.router,
        admin.router,  # admins (RoleFilter): complaints, /announce, /report, /unanswered
        admin.staff_router,  # any staff (RoleFilter): /tickets (rectification, assigned complaints)
        errors.router,  # error handler (catches errors of every router) + bad-input guard
        staff.router,  # gated by RoleFilter: staff commands, case views, staff free-text steps
        cases.router,  # applicant: /status, case numbers, the receipt deep link, /mycases
        commands,  # messages here are all commands: plain text skips these routers at once
        selfcheck.router,
        inline.router,
        guide.router,  # LAST: free text is a question
    ]
    for r in ordered + grouped:
        # Routers are module singletons; a process that builds a second dispatcher (tests, the
        # console) hands them over: the newest dispatcher owns the handlers.
        old = r.parent_router
        if old is not None:
            old.sub_routers.remove(r)
            r._parent_router = None
    commands.include_routers(*grouped)
    return ordered
