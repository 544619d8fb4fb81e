"""The evaluation figures on a fixed data set, every expected number worked out by hand.

October 2026: 1–7 National Day holiday, Saturday 10th an adjusted working day (调休上班). So from
Wed 30 Sep to Fri 16 Oct there are 8 working days (8, 9, 10, 12–16), not the 12 weekdays a naive
count gives, and a correction pause from Fri 9 to Tue 13 Oct takes 3 of them (10, 12, 13).
"""

from __future__ import annotations

import datetime as dt

import pytest

from bot.report import Period, build_report, net_workdays, text_table
from knowledge.schema import Catalog
from models.lifecycle import CaseStatus
from models.supervision import ComplaintRow, QuestionRow, RatingRow, RectificationRow, ReportRows, WorkUnit
from models.workdays import WorkCalendar
from tests.cases.conftest import FOOD, HYGIENE, build_catalog

D = dt.date
DONE, REJECTED, REVIEW, WITHDRAWN = "completed", "rejected", "in_review", "withdrawn"
OCTOBER = Period.parse("2026-10")
AS_OF = D(2026, 11, 5)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(package_last_year=2026)


def unit(
    number: str,
    dep: str,
    item: str,
    accepted: D,
    finished: D | None,
    outcome: str,
    days: int,
    pauses: tuple[tuple[D, D | None], ...] = (),
) -> WorkUnit:
    return WorkUnit(number, dep, (item,), accepted, finished, outcome, days, pauses)


UNITS = [
    unit("A", "scjg", FOOD, D(2026, 9, 29), D(2026, 10, 9), DONE, 5),  # 3 days: on time
    unit("B", "scjg", FOOD, D(2026, 9, 30), D(2026, 10, 16), DONE, 5, ((D(2026, 10, 9), D(2026, 10, 13)),)),
    unit("C", "scjg", FOOD, D(2026, 10, 12), D(2026, 10, 20), DONE, 5),  # 6 days: late
    unit("D", "scjg", FOOD, D(2026, 10, 26), None, REVIEW, 5),  # accepted only
    unit("E", "scjg", FOOD, D(2026, 9, 20), D(2026, 9, 25), DONE, 5),  # finished before October
    unit("F", "scjg", FOOD, D(2026, 10, 14), D(2026, 10, 14), DONE, 0),  # 即办: 0 days
    unit("G", "scjg", FOOD, D(2026, 10, 15), None, WITHDRAWN, 5),  # withdrawn: never finished
    unit("H", "wsjk", HYGIENE, D(2026, 10, 8), D(2026, 10, 10), REJECTED, 10),  # 不予许可 on a 调休 Saturday
]


def rating(case: str, dep: str, item: str, stars: int, at: D, rnd: int = 1) -> RatingRow:
    return RatingRow(case, (dep,), (item,), stars, rnd, at)


RATINGS = [
    rating("A", "scjg", FOOD, 5, D(2026, 10, 10)),
    rating("B", "scjg", FOOD, 1, D(2026, 10, 17)),
    rating("B", "scjg", FOOD, 4, D(2026, 10, 30), rnd=2),  # after the fix: replaces the ★1
    rating("C", "scjg", FOOD, 3, D(2026, 10, 21)),
    rating("H", "wsjk", HYGIENE, 2, D(2026, 10, 12)),
    rating("E", "scjg", FOOD, 5, D(2026, 9, 26)),  # September
]


def o(day: int) -> D:
    return D(2026, 10, day)


def n(day: int) -> D:
    return D(2026, 11, day)


# (number, department, opened, callback due, fix due, called back, fixed)
RECTIFICATIONS = [
    # B's ★1 on Saturday 17 Oct: callback by Mon 19 Oct, fix by 6 Nov; both met.
    RectificationRow("ZG1", "scjg", o(17), o(19), n(6), o(19), o(28)),
    # H's ★2 on Mon 12 Oct: callback due 13 Oct but made on 14 Oct: late, although the fix was quick.
    RectificationRow("ZG2", "wsjk", o(12), o(13), n(2), o(14), o(20)),
    # Still within both deadlines on 5 Nov: not yet judged.
    RectificationRow("ZG3", "scjg", o(30), n(2), n(20), n(2), None),
]

COMPLAINTS = [
    ComplaintRow("TS1", "scjg", D(2026, 10, 9), D(2026, 10, 15), D(2026, 10, 15)),  # on the promised day
    ComplaintRow("TS2", None, D(2026, 10, 20), D(2026, 10, 27), D(2026, 10, 28)),  # a day late
    ComplaintRow("TS3", "scjg", D(2026, 10, 29), D(2026, 11, 5), None),  # due today: not yet late
]

QUESTIONS = [
    QuestionRow("开奶茶店要什么证", 4, D(2026, 10, 10)),
    QuestionRow("怎么办护照", 2, D(2026, 10, 5)),
    QuestionRow("九月的问题", 7, D(2026, 9, 1)),
]


def attribute(text: str) -> str | None:
    return "scjg" if "奶茶" in text else None


def october(cal: WorkCalendar, catalog: Catalog | None = None):  # type: ignore[no-untyped-def]
    rows = ReportRows(UNITS, UNITS, RATINGS, RECTIFICATIONS, COMPLAINTS, QUESTIONS)
    return build_report(
        rows,
        catalog=catalog or build_catalog(),
        period=OCTOBER,
        as_of=AS_OF,
        calendar=cal,
        attribute=attribute,
    )


def test_working_days_skip_holidays_and_correction_pauses(cal: WorkCalendar) -> None:
    a, b, c, *_ = UNITS
    assert net_workdays(a, cal) == 3  # 30 Sep, 8 and 9 Oct: the holiday week is not counted
    assert net_workdays(b, cal) == 5  # 8 working days minus 3 paused: exactly the promise
    assert net_workdays(c, cal) == 6
    assert net_workdays(UNITS[3], cal) is None


def test_department_case_figures(cal: WorkCalendar) -> None:
    scjg = next(r for r in october(cal).departments if r.key == "scjg").figures
    assert (scjg.accepted, scjg.finished, scjg.on_time) == (4, 4, 3)  # C, D, F, G accepted; A, B, C, F done
    assert scjg.on_time_rate == pytest.approx(0.75)
    assert scjg.avg_days == pytest.approx(3.5)  # (3 + 5 + 6 + 0) / 4
    assert scjg.p90_days == 6  # nearest rank: the 4th of 4
    assert scjg.correction_rate == pytest.approx(0.25)  # only B


def test_rejection_on_adjusted_saturday_counts_as_finished_on_time(cal: WorkCalendar) -> None:
    wsjk = next(r for r in october(cal).departments if r.key == "wsjk").figures
    assert (wsjk.accepted, wsjk.finished, wsjk.on_time, wsjk.days) == (1, 1, 1, [2])


def test_satisfaction_uses_latest_round_per_case(cal: WorkCalendar) -> None:
    report = october(cal)
    total = report.total
    assert (total.ratings, total.satisfied) == (4, 2)  # A★5, B★4 (round 2), C★3, H★2
    assert total.satisfaction == pytest.approx(0.5)
    assert total.avg_stars == pytest.approx(3.5)
    assert total.bad == 2  # B's first ★1 and H's ★2 were both 差评 given in October
    scjg = next(r for r in report.departments if r.key == "scjg").figures
    assert scjg.satisfaction == pytest.approx(2 / 3)
    assert scjg.avg_stars == pytest.approx(4.0)
    assert scjg.bad == 1


def test_rectification_timing(cal: WorkCalendar) -> None:
    report = october(cal)
    assert (report.total.rect_on_time, report.total.rect_decided) == (1, 2)  # ZG3 not judged yet
    figures = {r.key: r.figures for r in report.departments}
    assert (figures["scjg"].rect_on_time, figures["scjg"].rect_decided) == (1, 1)
    assert (figures["wsjk"].rect_on_time, figures["wsjk"].rect_decided) == (0, 1)


def test_complaints_answered_on_time(cal: WorkCalendar) -> None:
    report = october(cal)
    t = report.total
    assert (t.complaints, t.complaints_on_time, t.complaints_decided) == (3, 1, 2)
    unknown = next(r for r in report.departments if r.key == "-")
    assert unknown.name == "未指明部门"
    assert (unknown.figures.complaints, unknown.figures.complaints_on_time) == (1, 0)


def test_unanswered_questions_attributed_by_department(cal: WorkCalendar) -> None:
    report = october(cal)
    assert report.total.unanswered == 6  # the September question is outside the period
    figures = {r.key: r.figures for r in report.departments}
    assert figures["scjg"].unanswered == 4
    assert figures["-"].unanswered == 2


def test_center_total_and_windows(cal: WorkCalendar) -> None:
    report = october(cal)
    assert (report.total.accepted, report.total.finished, report.total.on_time) == (5, 5, 4)
    windows = {r.key: r for r in report.windows}
    assert windows["A01"].department == "县市场监督管理局" and windows["A01"].chief == "周立"
    assert (windows["A01"].figures.finished, windows["A01"].figures.on_time) == (4, 3)
    assert windows["A01"].figures.ratings == 3 and windows["A05"].figures.ratings == 1


def test_ranking_orders_by_on_time_rate(cal: WorkCalendar) -> None:
    assert [r.key for r in october(cal).ranking()] == ["wsjk", "scjg"]  # 100% before 75%; xf had no cases


def test_text_table_lists_every_department_and_the_total(cal: WorkCalendar) -> None:
    table = text_table(october(cal))
    lines = table.splitlines()
    assert "2026年10月" in lines[0]
    scjg = next(line for line in lines if line.startswith("县市场监督管理局"))
    assert scjg.split()[1:4] == ["4", "4", "75.0%"]
    assert any(line.startswith("全中心") for line in lines)
    assert any(line.startswith("县消防救援大队") for line in lines)  # no activity, still listed


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", D(2026, 11, 1), D(2026, 11, 30)),
        ("2028-2", D(2028, 2, 1), D(2028, 2, 29)),
        ("2026", D(2026, 1, 1), D(2026, 12, 31)),
    ],
)
def test_period_parse(text: str, start: D, end: D) -> None:
    p = Period.parse(text)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("text", ["2026-13", "11-2026", "二〇二六", "", "2026-11-01"])
def test_period_parse_refuses_with_chinese_message(text: str) -> None:
    with pytest.raises(ValueError, match="格式如"):
        Period.parse(text)


def test_status_words_match_the_lifecycle() -> None:
    assert {DONE, REJECTED, REVIEW, WITHDRAWN} <= {s.value for s in CaseStatus}


def test_workday_index_agrees_with_the_calendar(cal: WorkCalendar) -> None:
    from bot.report import WorkdayIndex

    index = WorkdayIndex(cal)
    days = [D(2025, 12, 20) + dt.timedelta(days=k) for k in range(0, 420, 13)]
    for a in days:
        for b in days[::3]:
            assert index.workdays_between(a, b) == cal.workdays_between(a, b), (a, b)
