"""好差评 end to end: `yichuang run` with the integration API against the Bot API emulator. A case
is decided through the API; the subscribed applicant rates it ★1 from the completion notice and is
told the two rectification deadlines; the department's staff member gets the rectification ticket
(notice and /tickets); a second rating is refused.

Reuses the case bot of tests/e2e/test_cases_e2e.py (its own token, database and API).
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from bot.cli import main
from knowledge.loader import load_catalog
from models.workdays import default_calendar
from tests.e2e.conftest import Citizen, Reply
from tests.e2e.test_cases_e2e import FACTOR, CasesBot, applicant, cases_bot, create_case  # noqa: F401

pytestmark = pytest.mark.e2e

DEPT_STAFF = 760_001


def date_cn(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def wait_for_reply(person: Citizen, needle: str, timeout: float = 15) -> Reply:
    """The next bot message containing `needle` (notices come from the delivery worker)."""
    end = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < end:
        for raw in person.user.replies(1, timeout=max(end - time.monotonic(), 0.1)):
            reply = Reply(raw)
            if needle in reply.text:
                return reply
            seen.append(reply.text[:80])
    raise AssertionError(f"no message with {needle!r}; got {seen}")


def test_one_star_opens_rectification_for_the_department_and_second_rating_is_refused(
    cases_bot: CasesBot,  # noqa: F811
) -> None:
    created = create_case(cases_bot)
    number = created["number"]
    department = load_catalog().department(created["case"]["lead_department"])
    assert department is not None
    db_url = f"sqlite:///{cases_bot.log.parent / 'cases.db'}"
    assert main(["staff", "add", "--user-id", str(DEPT_STAFF), "--name", "周立", "--role", "department",
                 "--department", department.id, "--database-url", db_url]) == 0  # fmt: skip
    staff = Citizen(cases_bot.emu.user(DEPT_STAFF, first_name="周立"))

    person = applicant(cases_bot)
    person.say(number)
    [status] = person.say(FACTOR)
    person.press(status, "订阅进度")
    for n, word in enumerate(["in_review", "completed"], 1):
        code, body = cases_bot.call(
            "POST", f"/api/v1/cases/{number}/events", {"event_id": f"{number}-{n}", "status": word}
        )
        assert code == 200, body
    notice = wait_for_reply(person, "办结通知")
    assert notice.labels == ["★5 非常满意", "★4 满意", "★3 基本满意", "★2 不满意", "★1 非常不满意"]

    rated_on = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    replies = person.press(notice, "★1 非常不满意")
    thanks = next(r for r in replies if "感谢您的评价" in r.text)
    cal = default_calendar()
    callback_due = cal.add_workdays(rated_on, 1).due
    fix_due = cal.add_workdays(rated_on, 15).due
    assert f"{date_cn(callback_due)}前回访您" in thanks.text
    assert f"{date_cn(fix_due)}前完成整改" in thanks.text
    ticket = re.search(r"ZG\d{6}[0-9A-Z]{5}", thanks.text)
    assert ticket is not None
    assert "多次跑腿" in thanks.labels

    # The department hears of it through the outbox, and finds it under /tickets.
    heard = wait_for_reply(staff, ticket.group())
    assert date_cn(callback_due) in heard.text and date_cn(fix_due) in heard.text
    [tickets] = staff.say("/tickets")
    assert ticket.group() in tickets.text and number in tickets.text
    assert f"已回访 {ticket.group()}" in tickets.labels

    # A second rating from the same (old) notice is refused in words.
    again = person.press(notice, "★5 非常满意")
    assert any("该件已评价过，不能重复评价" in r.text for r in again)
