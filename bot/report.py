"""Window evaluation (窗口考评): figures per department and window for a month or a year, as an
HTML report, a PNG ranking chart and a CSV. Aggregates only, no personal data: the whole output
may be published as 网上公示.

The figures are pure functions over the plain rows of models.supervision.report_rows(), so they
can be checked by hand on a fixed data set. Definitions (also printed in the report's notes):

- 受理: cases (department rows: that department's step of a case) accepted in the period.
- 办结: decided in the period (已办结 or 不予许可; for a department, when its own step was decided).
- 用时: working days from acceptance to the decision, holidays and 调休 per the working-day
  calendar, minus the working days paused for corrections (补正时间不计入审批期限).
- 按时: 用时 within the promised working days. A promise the law counts in calendar days or months
  (离婚冷静期…) is on time when decided by its due date, computed as the case's own
  (models.workdays.add_days: paused calendar days added, a due date on a day off moves to the next
  working day). 用时 stays in working days for every case so averages compare.
  平均 and P90 (nearest rank) are over the 办结.
- 补正率: share of the 办结 that needed a correction at least once.
- 满意率: share of ★4–5 among the ratings given in the period (a case's latest round counts);
  a bundle's rating counts for every department that worked on it.
- 差评: ★1–2 ratings in the period. 整改按时: tickets opened in the period with the callback within
  1 and the fix within 15 working days, among those decided (fixed, or past a deadline) by the
  report date.
- 投诉按时答复: first reply by the promised date, among tickets answered or past that date.
- 未答问题: asks of unanswered questions last seen in the period, attributed to the department of
  the item the matcher finds closest (a hint of where the catalog needs words).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import Environment

from knowledge.schema import Catalog, DaysUnit
from models.feedback import BAD_STARS, GOOD_STARS
from models.lifecycle import CaseStatus
from models.supervision import (
    ComplaintRow,
    RatingRow,
    RectificationRow,
    ReportRows,
    WorkUnit,
)
from models.workdays import Deadline, WorkCalendar

DONE = frozenset({CaseStatus.COMPLETED.value, CaseStatus.PICKED_UP.value, CaseStatus.REJECTED.value})
UNKNOWN_DEPARTMENT = "未指明部门"


# --- the period -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive
    label: str  # "2026年11月"
    slug: str  # "2026-11", used in file names

    @classmethod
    def parse(cls, text: str) -> Period:
        """'2026-11' (a month) or '2026' (a year); ValueError with a Chinese message otherwise."""
        s = (text or "").strip()
        m = re.fullmatch(r"(\d{4})-(\d{1,2})", s)
        if m:
            year, month = int(m.group(1)), int(m.group(2))
            if not (2000 <= year <= 2100 and 1 <= month <= 12):
                raise ValueError(f"月份「{s}」不存在，格式如 2026-11")
            start = dt.date(year, month, 1)
            end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            return cls(start, end, f"{year}年{month}月", f"{year}-{month:02d}")
        if re.fullmatch(r"\d{4}", s) and 2000 <= int(s) <= 2100:
            year = int(s)
            return cls(dt.date(year, 1, 1), dt.date(year, 12, 31), f"{year}年", str(year))
        raise ValueError(f"「{s[:20]}」不是月份或年份，格式如 2026-11 或 2026")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end


# --- figures ---------------------------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Figures:
    accepted: int = 0
    finished: int = 0
    on_time: int = 0
    days: list[int] = field(default_factory=list)  # net working days of each 办结
    corrected: int = 0
    ratings: int = 0
    satisfied: int = 0
    stars_total: int = 0
    bad: int = 0
    rect_decided: int = 0
    rect_on_time: int = 0
    complaints: int = 0
    complaints_decided: int = 0
    complaints_on_time: int = 0
    unanswered: int = 0

    @property
    def on_time_rate(self) -> float | None:
        return _share(self.on_time, self.finished)

    @property
    def avg_days(self) -> float | None:
        return sum(self.days) / len(self.days) if self.days else None

    @property
    def p90_days(self) -> int | None:
        if not self.days:
            return None
        ordered = sorted(self.days)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank

    @property
    def correction_rate(self) -> float | None:
        return _share(self.corrected, self.finished)

    @property
    def satisfaction(self) -> float | None:
        return _share(self.satisfied, self.ratings)

    @property
    def avg_stars(self) -> float | None:
        return self.stars_total / self.ratings if self.ratings else None

    @property
    def rect_on_time_rate(self) -> float | None:
        return _share(self.rect_on_time, self.rect_decided)

    @property
    def complaint_on_time_rate(self) -> float | None:
        return _share(self.complaints_on_time, self.complaints_decided)

    @property
    def active(self) -> bool:
        return bool(self.accepted or self.finished or self.ratings or self.complaints or self.unanswered)


class Workdays(Protocol):
    def workdays_between(self, start: dt.date, end: dt.date) -> int: ...

    def count_between(self, start: dt.date, end: dt.date, unit: DaysUnit = DaysUnit.WORKING) -> int: ...

    def add_days(
        self, start: dt.date, days: int, unit: DaysUnit = DaysUnit.WORKING, *, paused: int = 0
    ) -> Deadline: ...


class WorkdayIndex:
    """Cumulative working-day counts over the dates a report touches, so each "working days
    between" is one subtraction instead of a walk asking the calendar about every day (a year
    report over 20,000 cases went from ~23 s to well under a second)."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        self.first: dt.date | None = None
        self.cum: list[int] = []  # cum[k]: working days in first..first+k

    def _cover(self, lo: dt.date, hi: dt.date) -> None:
        if self.first is not None and self.first <= lo and hi < self.first + dt.timedelta(days=len(self.cum)):
            return
        first = min(lo, self.first or lo) - dt.timedelta(days=31)
        last = max(hi, (self.first or hi) + dt.timedelta(days=max(len(self.cum) - 1, 0))) + dt.timedelta(
            days=31
        )
        total, cum = 0, []
        for k in range((last - first).days + 1):
            total += self.calendar.is_workday(first + dt.timedelta(days=k))
            cum.append(total)
        self.first, self.cum = first, cum

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Working days d with start < d <= end, like WorkCalendar.workdays_between."""
        if end < start:
            return -self.workdays_between(end, start)
        self._cover(start, end)
        assert self.first is not None
        return self.cum[(end - self.first).days] - self.cum[(start - self.first).days]

    def count_between(self, start: dt.date, end: dt.date, unit: DaysUnit = DaysUnit.WORKING) -> int:
        if unit == DaysUnit.WORKING:
            return self.workdays_between(start, end)
        return self.calendar.count_between(start, end, unit)

    def add_days(
        self, start: dt.date, days: int, unit: DaysUnit = DaysUnit.WORKING, *, paused: int = 0
    ) -> Deadline:
        return self.calendar.add_days(start, days, unit, paused=paused)


def _paused(unit: WorkUnit, calendar: Workdays, days_unit: DaysUnit) -> int:
    """Days paused for corrections before the decision, counted the way the promise counts."""
    assert unit.finished is not None
    return sum(
        max(calendar.count_between(start, min(end or unit.finished, unit.finished), days_unit), 0)
        for start, end in unit.pauses
        if start < unit.finished
    )


def net_workdays(unit: WorkUnit, calendar: Workdays) -> int | None:
    """Working days from acceptance to decision, minus working days paused for corrections."""
    if unit.finished is None:
        return None
    used = calendar.workdays_between(unit.accepted, unit.finished) - _paused(unit, calendar, DaysUnit.WORKING)
    return max(used, 0)


def on_time(unit: WorkUnit, calendar: Workdays) -> bool:
    """Decided within the promise, in the unit the promise counts (see the module notes)."""
    days_unit = DaysUnit(unit.days_unit)
    if unit.finished is None:
        return False
    if days_unit == DaysUnit.WORKING:
        used = net_workdays(unit, calendar)
        return used is not None and used <= unit.promised_days
    paused = _paused(unit, calendar, days_unit)
    return unit.finished <= calendar.add_days(unit.accepted, unit.promised_days, days_unit, paused=paused).due


def add_work(fig: Figures, units: Iterable[WorkUnit], period: Period, calendar: Workdays) -> None:
    for u in units:
        if u.accepted in period:
            fig.accepted += 1
        if u.finished in period and u.outcome in DONE:
            days = net_workdays(u, calendar)
            assert days is not None
            fig.finished += 1
            fig.days.append(days)
            fig.on_time += on_time(u, calendar)
            fig.corrected += u.corrected


def latest_ratings(ratings: Iterable[RatingRow], period: Period) -> list[RatingRow]:
    """The ratings given in the period, one per case: its latest round."""
    best: dict[str, RatingRow] = {}
    for r in ratings:
        if r.at in period and (r.case_number not in best or r.round > best[r.case_number].round):
            best[r.case_number] = r
    return list(best.values())


def add_ratings(fig: Figures, ratings: Iterable[RatingRow], bad: Iterable[RatingRow]) -> None:
    for r in ratings:
        fig.ratings += 1
        fig.stars_total += r.stars
        fig.satisfied += r.stars >= GOOD_STARS
    fig.bad += sum(1 for r in bad if r.stars <= BAD_STARS)


def rectification_on_time(r: RectificationRow) -> bool:
    return (
        r.called_back is not None
        and r.called_back <= r.callback_due
        and r.fixed is not None
        and r.fixed <= r.fix_due
    )


def rectification_decided(r: RectificationRow, as_of: dt.date) -> bool:
    """Known to be on time or late by `as_of`."""
    return (
        r.fixed is not None
        or as_of > r.fix_due
        or (r.called_back is None and as_of > r.callback_due)
        or (r.called_back is not None and r.called_back > r.callback_due)
    )


def add_rectifications(fig: Figures, rows: Iterable[RectificationRow], as_of: dt.date) -> None:
    for r in rows:
        if rectification_decided(r, as_of):
            fig.rect_decided += 1
            fig.rect_on_time += rectification_on_time(r)


def add_complaints(fig: Figures, rows: Iterable[ComplaintRow], as_of: dt.date) -> None:
    for c in rows:
        fig.complaints += 1
        if c.replied is not None or as_of > c.promised_reply:
            fig.complaints_decided += 1
            fig.complaints_on_time += c.replied is not None and c.replied <= c.promised_reply


# --- the report -------------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str  # department id or window number
    name: str
    figures: Figures
    department: str = ""  # a window's department name
    chief: str = ""  # a window's 首席代表 (public in the catalog)


@dataclass
class Report:
    period: Period
    as_of: dt.date
    center: str
    total: Figures
    departments: list[Row]
    windows: list[Row]

    def ranking(self) -> list[Row]:
        """Departments with 办结 in the period, best on-time rate first, then satisfaction."""
        rows = [r for r in self.departments if r.figures.finished]
        return sorted(
            rows,
            key=lambda r: (
                -(r.figures.on_time_rate or 0.0),
                -(r.figures.satisfaction if r.figures.satisfaction is not None else -1.0),
                r.key,
            ),
        )


# question text -> department id of the closest item, or None
QuestionAttributor = Callable[[str], str | None]


def window_of(catalog: Catalog, items: Sequence[str], department: str) -> str | None:
    """The window that handles a unit: its first item's (or bundle's), else the department's first."""
    for name in items:
        item = catalog.item(name)
        number = item.window if item else (b.window if (b := catalog.bundle(name)) else None)
        if number and catalog.window(number):
            return number
    dep = catalog.department(department)
    if dep is not None:
        return next((w.number for w in catalog.windows if w.department == dep.name), None)
    return None


def build_report(
    rows: ReportRows,
    *,
    catalog: Catalog,
    period: Period,
    as_of: dt.date,
    calendar: WorkCalendar,
    attribute: QuestionAttributor | None = None,
) -> Report:
    days: Workdays = WorkdayIndex(calendar)
    total = Figures()
    add_work(total, rows.cases, period, days)
    latest = latest_ratings(rows.ratings, period)
    in_period = [r for r in rows.ratings if r.at in period]
    add_ratings(total, latest, in_period)
    rects = [r for r in rows.rectifications if r.opened in period]
    add_rectifications(total, rects, as_of)
    complaints = [c for c in rows.complaints if c.received in period]
    add_complaints(total, complaints, as_of)
    questions = [q for q in rows.questions if q.last_seen in period]
    total.unanswered = sum(q.count for q in questions)

    dep_fig: dict[str, Figures] = {d.id: Figures() for d in catalog.departments}

    def dep(key: str | None) -> Figures:
        return dep_fig.setdefault(key or "", Figures())

    for u in rows.steps:
        add_work(dep(u.department), [u], period, days)
    for r in latest:
        for d in set(r.departments):
            add_ratings(dep(d), [r], [])
    for r in in_period:
        for d in set(r.departments):
            add_ratings(dep(d), [], [r])
    for rect in rects:
        add_rectifications(dep(rect.department), [rect], as_of)
    for c in complaints:
        add_complaints(dep(c.department), [c], as_of)
    if attribute is not None:
        for q in questions:
            dep(attribute(q.text)).unanswered += q.count

    departments: list[Row] = []
    for key, fig in dep_fig.items():
        known = catalog.department(key) if key else None
        if known is None and not fig.active:
            continue
        departments.append(Row(key or "-", known.name if known else (key or UNKNOWN_DEPARTMENT), fig))

    win_fig: dict[str, Figures] = {w.number: Figures() for w in catalog.windows}
    for u in rows.steps:
        number = window_of(catalog, u.items, u.department)
        if number is not None:
            add_work(win_fig.setdefault(number, Figures()), [u], period, days)
    for r in latest:
        for number in {n for n in (window_of(catalog, [i], "") for i in r.items) if n}:
            add_ratings(win_fig.setdefault(number, Figures()), [r], [])
    for r in in_period:
        for number in {n for n in (window_of(catalog, [i], "") for i in r.items) if n}:
            add_ratings(win_fig.setdefault(number, Figures()), [], [r])
    windows = []
    for number, fig in win_fig.items():
        w = catalog.window(number)
        windows.append(
            Row(number, f"{number} 窗口", fig, w.department if w else "", f"{w.chief_name}" if w else "")
        )
    windows.sort(key=lambda r: r.key)
    return Report(period, as_of, catalog.center.name, total, departments, windows)


def matcher_attributor(catalog: Catalog, matcher: Any) -> QuestionAttributor:
    """Attribute a question to the department of the matcher's best (even unconfident) match."""

    def attribute(text: str) -> str | None:
        best = matcher.search(text, limit=1).best
        if best is None:
            return None
        item = catalog.item(best.name)
        name = item.department if item else (b.lead_department if (b := catalog.bundle(best.name)) else None)
        d = catalog.department(name) if name else None
        return d.id if d else None

    return attribute


# --- output: text table, CSV, chart, HTML ---------------------------------------------------------------


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def ratio(part: int, whole: int) -> str:
    return f"{part}/{whole}" if whole else "—"


COLUMNS: list[tuple[str, Callable[[Figures], str]]] = [
    ("受理", lambda f: str(f.accepted)),
    ("办结", lambda f: str(f.finished)),
    ("按时率", lambda f: pct(f.on_time_rate)),
    ("平均用时", lambda f: num(f.avg_days)),
    ("P90用时", lambda f: num(f.p90_days, 0)),
    ("补正率", lambda f: pct(f.correction_rate)),
    ("评价数", lambda f: str(f.ratings)),
    ("满意率", lambda f: pct(f.satisfaction)),
    ("平均星级", lambda f: num(f.avg_stars, 2)),
    ("差评", lambda f: str(f.bad)),
    ("整改按时", lambda f: ratio(f.rect_on_time, f.rect_decided)),
    ("投诉", lambda f: str(f.complaints)),
    ("按时答复", lambda f: ratio(f.complaints_on_time, f.complaints_decided)),
    ("未答问题", lambda f: str(f.unanswered)),
]


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, width: int, left: bool) -> str:
    gap = " " * max(width - _width(s), 0)
    return s + gap if left else gap + s


def text_table(report: Report) -> str:
    """The per-department table for a terminal (CJK characters count as two columns)."""
    header = ["部门", *(c for c, _ in COLUMNS)]
    body = [[r.name, *(fn(r.figures) for _, fn in COLUMNS)] for r in report.departments]
    body.append(["全中心", *(fn(report.total) for _, fn in COLUMNS)])
    widths = [max(_width(row[k]) for row in [header, *body]) for k in range(len(header))]
    lines = [
        f"{report.center} 窗口考评 {report.period.label}（{report.period.start}～{report.period.end}，"
        f"截至 {report.as_of}）"
    ]
    for n, row in enumerate([header, *body]):
        lines.append("  ".join(_pad(cell, widths[k], k == 0) for k, cell in enumerate(row)))
        if n == 0 or n == len(body) - 1:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_csv(report: Report) -> bytes:
    """Department, window and total rows; utf-8-sig so Excel opens the Chinese correctly."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["类型", "编号", "名称", "所属部门", *(c for c, _ in COLUMNS)])
    for r in report.departments:
        w.writerow(["部门", r.key, r.name, "", *(fn(r.figures) for _, fn in COLUMNS)])
    for r in report.windows:
        w.writerow(["窗口", r.key, r.name, r.department, *(fn(r.figures) for _, fn in COLUMNS)])
    w.writerow(["合计", "", "全中心", "", *(fn(report.total) for _, fn in COLUMNS)])
    return out.getvalue().encode("utf-8-sig")


CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
CHART_WIDTH = 1000  # pixels
CHART_DPI = 100


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """A font family matplotlib knows that has Chinese glyphs (Debian: fonts-noto-cjk), or None."""
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FAMILIES if name in known), None)


def chart_size(bars: int) -> tuple[int, int]:
    """(width, height) in pixels of the ranking chart with `bars` departments."""
    return CHART_WIDTH, 160 + 44 * max(bars, 1)


def render_chart(report: Report) -> bytes:
    """PNG: departments ranked by on-time rate, with their satisfaction share beside it.

    Without a CJK font on the machine the labels fall back to department ids and ASCII words, so
    the chart never shows empty boxes.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font = cjk_font()
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    ranked = report.ranking()
    width, height = chart_size(len(ranked))
    fig = Figure(figsize=(width / CHART_DPI, height / CHART_DPI), dpi=CHART_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    on_label, sat_label = ("按时办结率", "满意率（★4–5）") if font else ("on time", "satisfied (4-5 stars)")
    title = f"{report.center} 窗口考评排名 {report.period.label}" if font else f"Ranking {report.period.slug}"
    if ranked:
        names = [r.name if font else r.key for r in ranked][::-1]
        on_time = [(r.figures.on_time_rate or 0.0) * 100 for r in ranked][::-1]
        sat = [r.figures.satisfaction for r in ranked][::-1]
        ys = range(len(ranked))
        ax.barh([y + 0.2 for y in ys], on_time, height=0.38, color="#2f6db5", label=on_label)
        ax.barh(
            [y - 0.2 for y in ys],
            [(v or 0.0) * 100 for v in sat],
            height=0.38,
            color="#e59a2f",
            label=sat_label,
        )
        for y, v, s in zip(ys, on_time, sat, strict=True):
            ax.text(v + 1, y + 0.2, f"{v:.0f}%", va="center", fontsize=8)
            shown = ("无评价" if font else "no ratings") if s is None else f"{s * 100:.0f}%"
            ax.text((s or 0.0) * 100 + 1, y - 0.2, shown, va="center", fontsize=8, fontfamily=family)
        ax.set_yticks(list(ys))
        ax.set_yticklabels(names, fontfamily=family)
        ax.set_xlim(0, 112)
        ax.legend(
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncols=2,
            frameon=False,
            prop={"family": family, "size": 9},
        )
    else:
        empty = "本期无办结件" if font else "no cases finished"
        ax.text(0.5, 0.5, empty, ha="center", va="center", fontfamily=family, transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("%")
    ax.set_title(title, fontfamily=family, loc="left", pad=28)
    fig.subplots_adjust(left=0.26, right=0.97, top=1 - 70 / height, bottom=60 / height)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CHART_DPI)
    return buf.getvalue()


def render_html(report: Report, env: Environment, chart_png: bytes | None = None) -> str:
    """One self-contained page (the chart inlined), to send as a document or publish as is."""
    chart = base64.b64encode(chart_png).decode("ascii") if chart_png else None
    return env.get_template("report/report.html.j2").render(
        report=report, columns=COLUMNS, chart=chart, pct=pct, num=num, ratio=ratio
    )
