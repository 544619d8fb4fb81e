"""Working-day deadlines on the Chinese calendar: holidays, adjusted working weekends, unknown years.

The 2026 dates below were checked against chinesecalendar's data (State Council notice for 2026):
春节 2026-02-15..02-23 off, Saturdays 02-14 and 02-28 worked; 中秋 09-25..09-27 off, Sunday 09-20
worked; 国庆 10-01..10-07 off, Saturday 10-10 worked. (09-27 is a day off, not a working day.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from knowledge.schema import DaysUnit, TimeLimit
from models.workdays import WorkCalendar, WorkdaysConfigError, default_calendar, local_date

D = dt.date


def test_adjusted_working_weekends_of_2026_count(calendar: WorkCalendar) -> None:
    for worked in (D(2026, 2, 14), D(2026, 2, 28), D(2026, 9, 20), D(2026, 10, 10)):
        assert worked.weekday() >= 5
        assert calendar.is_workday(worked), worked
    for off in (
        D(2026, 2, 16),
        D(2026, 2, 23),
        D(2026, 9, 25),
        D(2026, 9, 27),
        D(2026, 10, 1),
        D(2026, 10, 7),
    ):
        assert not calendar.is_workday(off), off


def test_deadline_across_national_day_2026(calendar: WorkCalendar) -> None:
    # Accepted Wed 09-23; working days: 09-24, (09-25..27 中秋 off), 09-28, 09-29, 09-30,
    # (10-01..07 国庆 off), 10-08, 10-09, 10-10 (Saturday, adjusted working day).
    deadline = calendar.add_workdays(D(2026, 9, 23), 7)
    assert deadline.due == D(2026, 10, 10)
    assert not deadline.provisional
    # Plain weekday counting would have said 10-02.
    assert calendar.add_workdays(D(2026, 9, 23), 8).due == D(2026, 10, 12)


def test_deadline_across_spring_festival_2026(calendar: WorkCalendar) -> None:
    # Accepted Thu 02-12: 02-13 (Fri), 02-14 (Saturday, worked), then 春节 until 02-23, 02-24 …
    assert calendar.add_workdays(D(2026, 2, 12), 2).due == D(2026, 2, 14)
    assert calendar.add_workdays(D(2026, 2, 12), 3).due == D(2026, 2, 24)
    # 10 working days from 02-12: 13, 14, 24, 25, 26, 27, 28 (Saturday, worked), 03-02, 03, 04.
    assert calendar.add_workdays(D(2026, 2, 12), 10).due == D(2026, 3, 4)


def test_calendar_day_limit_counts_holidays_but_does_not_end_on_one(calendar: WorkCalendar) -> None:
    # 30 calendar days from Tue 09-01 end on 10-01 (国庆); a period whose last day is a day off ends
    # on the next working day (民法典 第二百零三条): Thu 10-08. As working days it would be 10-19.
    assert calendar.add_days(D(2026, 9, 1), 30, DaysUnit.CALENDAR).due == D(2026, 10, 8)
    assert calendar.add_days(D(2026, 9, 1), 30).due == D(2026, 10, 19)
    assert calendar.add_days(D(2026, 3, 2), 30, DaysUnit.CALENDAR).due == D(2026, 4, 1)  # a Wednesday
    assert calendar.add_days(D(2026, 3, 2), 5, DaysUnit.CALENDAR).due == D(2026, 3, 9)  # Sat 03-07 → Mon
    assert calendar.add_days(D(2026, 2, 12), 16, DaysUnit.CALENDAR).due == D(2026, 2, 28)  # worked Saturday
    assert calendar.add_days(D(2026, 10, 3), 0, DaysUnit.CALENDAR).due == D(2026, 10, 3)  # 即办


def test_month_limit_ends_on_the_same_day_number_or_the_last_day(calendar: WorkCalendar) -> None:
    assert calendar.add_days(D(2026, 3, 16), 3, DaysUnit.MONTH).due == D(2026, 6, 16)
    assert calendar.add_days(D(2025, 11, 30), 3, DaysUnit.MONTH).due == D(2026, 2, 28)  # no 02-30


def test_pauses_count_the_way_the_limit_counts(calendar: WorkCalendar) -> None:
    # Corrections asked Wed 03-04, back Tue 03-10: 6 calendar days, 4 of them working days.
    assert calendar.count_between(D(2026, 3, 4), D(2026, 3, 10), DaysUnit.CALENDAR) == 6
    assert calendar.count_between(D(2026, 3, 4), D(2026, 3, 10)) == 4
    assert calendar.add_days(D(2026, 3, 2), 30, DaysUnit.CALENDAR, paused=6).due == D(2026, 4, 7)


def test_parallel_limits_of_different_units_fall_due_with_the_later_date(calendar: WorkCalendar) -> None:
    ten_working, thirty_days = TimeLimit(10), TimeLimit(30, DaysUnit.CALENDAR)
    limit, due = calendar.binding_limit(D(2026, 3, 2), (ten_working, thirty_days))
    assert (limit, due.due) == (thirty_days, D(2026, 4, 1))
    five_days = TimeLimit(5, DaysUnit.CALENDAR)
    limit, due = calendar.binding_limit(D(2026, 3, 2), (ten_working, five_days))
    assert (limit, due.due) == (ten_working, D(2026, 3, 16))


def test_instant_items_are_due_the_same_day(calendar: WorkCalendar) -> None:
    assert calendar.add_workdays(D(2026, 10, 3), 0).due == D(2026, 10, 3)


def test_working_days_between_counts_the_end_not_the_start(calendar: WorkCalendar) -> None:
    assert calendar.workdays_between(D(2026, 9, 30), D(2026, 10, 8)) == 1
    assert calendar.workdays_between(D(2026, 10, 8), D(2026, 9, 30)) == -1
    assert calendar.workdays_between(D(2026, 3, 2), D(2026, 3, 2)) == 0


def test_deadline_into_an_unannounced_year_is_computed_and_flagged_provisional(
    calendar: WorkCalendar,
) -> None:
    # Accepted Mon 2026-12-21, 20 working days: Dec 22-24, 25, 28-31 (8 in 2026; no national holiday),
    # then 2027 from weekends plus the fixed 元旦 (01-01 Friday): Jan 4-8, 11-15 = 10, Jan 18, 19 = 20.
    deadline = calendar.add_workdays(D(2026, 12, 21), 20)
    assert deadline.due == D(2027, 1, 19)
    assert deadline.provisional
    assert not calendar.add_workdays(D(2026, 12, 1), 5).provisional


def test_local_file_adds_holidays_working_days_and_announced_years(tmp_path: Path) -> None:
    f = tmp_path / "workdays.yaml"
    f.write_text(
        "announced_years: [2027]\n"
        "holidays:\n  2026-11-20: 县庆\n  2027-02-08: 春节（示例）\n"
        "workdays:\n  2026-11-21: 补班\n",
        encoding="utf-8",
    )
    cal = WorkCalendar.from_file(f)
    cal.package_last_year = 2026
    assert not cal.is_workday(D(2026, 11, 20))  # a Friday made a local holiday
    assert cal.is_workday(D(2026, 11, 21))  # a Saturday made a working day
    # Thu 11-19 + 2: 11-20 off, 11-21 worked, 11-23 Monday.
    assert cal.add_workdays(D(2026, 11, 19), 2).due == D(2026, 11, 23)
    assert not cal.is_workday(D(2027, 2, 8))
    assert not cal.add_workdays(D(2026, 12, 21), 20).provisional  # 2027 declared known


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("holidays:\n  not-a-date: x\n", "YYYY-MM-DD"),
        ("holidays: [2026-01-01]\n", "键值对"),
        ("announced_years: 2027\n", "年份列表"),
        ("provisional_fixed_holidays: ['13-01']\n", "MM-DD"),
        ("- just\n- a list\n", "键值对"),
    ],
)
def test_malformed_local_file_gets_a_clear_chinese_error(tmp_path: Path, content: str, words: str) -> None:
    f = tmp_path / "workdays.yaml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(WorkdaysConfigError, match=words):
        WorkCalendar.from_file(f)


def test_packaged_local_file_loads() -> None:
    cal = default_calendar()
    assert cal.is_workday(D(2026, 10, 10))
    assert not cal.is_workday(D(2027, 10, 1))  # fixed 国庆 assumption for an unannounced year


def test_dates_are_local_to_china() -> None:
    # 17:30 UTC on Sunday is 01:30 Monday in Beijing: accepted on Monday.
    assert local_date(dt.datetime(2026, 3, 1, 17, 30, tzinfo=dt.UTC)) == D(2026, 3, 2)


def test_a_changed_calendar_answers_afresh(calendar: WorkCalendar) -> None:
    # Answers are remembered per day; a day made a holiday afterwards must still move the deadline.
    friday = D(2026, 11, 20)
    assert calendar.add_workdays(D(2026, 11, 19), 1).due == friday
    assert calendar.workdays_between(D(2026, 11, 19), D(2026, 11, 23)) == 2
    calendar.extra_holidays = {friday: "县庆"}
    assert calendar.add_workdays(D(2026, 11, 19), 1).due == D(2026, 11, 23)
    assert calendar.workdays_between(D(2026, 11, 19), D(2026, 11, 23)) == 1
    # Changed only by assignment: an edit in place would go unseen, so it is refused.
    with pytest.raises(TypeError):
        calendar.extra_holidays[D(2026, 11, 23)] = "补休"  # type: ignore[index]
