"""The window evaluation judges a calendar-day promise by the same due date the applicant was given.

A 30-day 离婚冷静期 accepted Tue 1 Sep 2026 runs into National Day (1–7 Oct): its due date is Thu
8 Oct (the 30th day is a holiday, so the period ends on the next working day). Counted as working
days, the same case would look on time until 19 Oct.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bot.report import Period, WorkdayIndex, build_report, on_time
from models.supervision import ReportRows, WorkUnit
from models.workdays import WorkCalendar
from tests.cases.conftest import build_catalog

D = dt.date


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(package_last_year=2026)


def divorce(finished: D, pauses: tuple[tuple[D, D | None], ...] = (), unit: str = "calendar") -> WorkUnit:
    return WorkUnit("L", "mzj", ("离婚登记",), D(2026, 9, 1), finished, "completed", 30, pauses, unit)


@pytest.mark.parametrize(
    ("finished", "pauses", "expected"),
    [
        (D(2026, 10, 8), (), True),  # the due date itself
        (D(2026, 10, 9), (), False),  # a day late, though only 28 working days were used
        (D(2026, 10, 12), ((D(2026, 9, 10), D(2026, 9, 20)),), True),  # 10 paused: Sun 10-11 → Mon 10-12
        (D(2026, 10, 13), ((D(2026, 9, 10), D(2026, 9, 20)),), False),
    ],
)
def test_calendar_promise_is_on_time_by_its_due_date(
    cal: WorkCalendar, finished: D, pauses: tuple[tuple[D, D | None], ...], expected: bool
) -> None:
    assert on_time(divorce(finished, pauses), WorkdayIndex(cal)) is expected


def test_same_case_counted_in_working_days_would_pass(cal: WorkCalendar) -> None:
    assert on_time(divorce(D(2026, 10, 9), unit="working"), WorkdayIndex(cal))


def test_report_counts_a_late_calendar_case_as_late(cal: WorkCalendar) -> None:
    rows = ReportRows([divorce(D(2026, 10, 9))], [], [], [], [], [])
    report = build_report(
        rows, catalog=build_catalog(), period=Period.parse("2026-10"), as_of=D(2026, 11, 5), calendar=cal
    )
    assert (report.total.finished, report.total.on_time) == (1, 0)
