"""Working days on the Chinese mainland calendar, for promised deadlines (承诺时限).

Most time limits in the catalog are counted in working days (工作日): weekends and statutory
holidays do not count, and adjusted working weekends (调休上班) do. The national schedule comes from
the maintained package `chinesecalendar`; models/workdays.yaml adds local days off / working days.
Some limits are calendar days or months in law (knowledge.schema.DaysUnit); they are counted as the
民法典 counts periods (第二百零一条～第二百零三条): the start day does not count, a month ends on the
same day number (or the month's last day), and a period whose last day is a day off ends on the
next working day.

chinesecalendar only knows years the State Council has announced. A deadline that reaches past
them must still be given to the applicant, so it is computed from weekends, the fixed-date
statutory holidays and the local file, and marked provisional (暂定) instead of failing.

Dates here are local dates in China (UTC+8, no daylight saving): a case accepted at 09:00 Beijing
time on Monday is accepted on Monday even though it is Monday 01:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import chinese_calendar
import yaml
from chinese_calendar import constants as cc_constants

from knowledge.schema import DaysUnit, TimeLimit

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
DEFAULT_FILE = Path(__file__).resolve().parent / "workdays.yaml"
# A promise longer than this is a data error; the cap keeps a typo from looping for years.
MAX_WORKDAYS = 2000


def local_date(moment: dt.datetime) -> dt.date:
    """The calendar date in China of an aware timestamp (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(CHINA_TZ).date()


class WorkdaysConfigError(ValueError):
    """The local calendar file is malformed; the message says where, in Chinese."""


@dataclass(frozen=True)
class Deadline:
    due: dt.date
    provisional: bool  # some day on the way lies in a year nobody has announced yet


@dataclass
class WorkCalendar:
    extra_holidays: Mapping[dt.date, str] = field(default_factory=dict)
    extra_workdays: Mapping[dt.date, str] = field(default_factory=dict)
    announced_years: frozenset[int] = frozenset()
    fixed_holidays: frozenset[tuple[int, int]] = frozenset()  # (month, day) for unannounced years
    # Years the package has data for; kept as fields so tests can simulate an older package.
    package_first_year: int = min(cc_constants.holidays).year
    package_last_year: int = max(cc_constants.holidays).year
    # Per year: working days from 1 January through each day of it, counted on first use. Every
    # status reply counts the working days to its due date; with these that is two look-ups instead
    # of asking chinesecalendar about each day (it scans its whole table per date, ~30 µs a day).
    _running: dict[int, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Any change to the calendar's data (a test simulating an older package) forgets the counts.
        # The day maps are kept as read-only copies, so they cannot change behind the counts' back.
        if name != "_running":
            if isinstance(value, dict):
                value = MappingProxyType(dict(value))
            object.__setattr__(self, "_running", {})
        object.__setattr__(self, name, value)

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> WorkCalendar:
        p = Path(path) if path else DEFAULT_FILE
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise WorkdaysConfigError(f"{p}: 无法读取工作日配置（{e}）") from e
        if not isinstance(raw, dict):
            raise WorkdaysConfigError(f"{p}: 顶层应是键值对")
        return cls(
            extra_holidays=_dates(raw.get("holidays"), p, "holidays"),
            extra_workdays=_dates(raw.get("workdays"), p, "workdays"),
            announced_years=frozenset(_years(raw.get("announced_years"), p)),
            fixed_holidays=frozenset(_month_days(raw.get("provisional_fixed_holidays"), p)),
        )

    def is_known(self, year: int) -> bool:
        """True when the year's national schedule is really known (package or local file)."""
        return self.package_first_year <= year <= self.package_last_year or year in self.announced_years

    def is_workday(self, day: dt.date) -> bool:
        # A working day is one on which the year's running count goes up.
        k, running = _day_of_year(day), self._year(day.year)
        return running[k] > (running[k - 1] if k else 0)

    def _year(self, year: int) -> list[int]:
        running = self._running.get(year)
        if running is None:
            first, total, running = dt.date(year, 1, 1), 0, []
            for k in range((dt.date(year, 12, 31) - first).days + 1):
                total += self._decide(first + dt.timedelta(days=k))
                running.append(total)
            self._running[year] = running
        return running

    def _through(self, day: dt.date) -> int:
        """Working days from 1 January of day's year through `day`."""
        return self._year(day.year)[_day_of_year(day)]

    def _decide(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self.package_first_year <= day.year <= self.package_last_year:
            return bool(chinese_calendar.is_workday(day))
        # Unannounced (or pre-2004) year: weekends and the fixed-date holidays are the best guess.
        return day.weekday() < 5 and (day.month, day.day) not in self.fixed_holidays

    def add_workdays(self, start: dt.date, days: int) -> Deadline:
        """The `days`-th working day after `start`; 0 (即办) is `start` itself.

        The start day is not counted, as 行政许可法 counts a limit from the day after acceptance.
        """
        if days < 0 or days > MAX_WORKDAYS:
            raise ValueError(f"工作日数不合理：{days}")
        day, left = start, days
        while left:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                left -= 1
        return Deadline(day, self.is_provisional(start, day))

    def add_days(
        self, start: dt.date, days: int, unit: DaysUnit = DaysUnit.WORKING, *, paused: int = 0
    ) -> Deadline:
        """When a limit of `days` in `unit` counted from `start` falls due.

        `paused`: days not counted (补正), in the unit `count_between` gives for this limit: working
        days for a working-day limit, calendar days otherwise.
        """
        if unit == DaysUnit.WORKING:
            return self.add_workdays(start, days + paused)
        if days < 0 or paused < 0 or days > MAX_WORKDAYS:
            raise ValueError(f"期限不合理：{days}")
        if days == 0 and paused == 0:
            return Deadline(start, self.is_provisional(start, start))  # 即办
        day = _add_months(start, days) if unit == DaysUnit.MONTH else start + dt.timedelta(days=days)
        day += dt.timedelta(days=paused)
        while not self.is_workday(day):  # 民法典 第二百零三条: a period does not end on a day off
            day += dt.timedelta(days=1)
        return Deadline(day, self.is_provisional(start, day))

    def count_between(self, start: dt.date, end: dt.date, unit: DaysUnit = DaysUnit.WORKING) -> int:
        """Days d with start < d <= end as a limit in `unit` counts them: working days for a
        working-day limit, calendar days for the others (a pause of a month-long limit is days)."""
        return self.workdays_between(start, end) if unit == DaysUnit.WORKING else (end - start).days

    def binding_limit(self, start: dt.date, limits: tuple[TimeLimit, ...]) -> tuple[TimeLimit, Deadline]:
        """Of limits running in parallel from `start`, the one that falls due last, with its date."""
        dues = [(limit, self.add_days(start, limit.days, limit.unit)) for limit in limits]
        return max(dues, key=lambda pair: pair[1].due)

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Working days d with start < d <= end; negative when end is before start.

        Used both for "working days left" (today → due date) and for paused correction time
        (the day corrections were requested → the day review resumed).
        """
        if end < start:
            return -self.workdays_between(end, start)
        full_years = sum(self._year(y)[-1] for y in range(start.year, end.year))
        return full_years + self._through(end) - self._through(start)

    def is_provisional(self, start: dt.date, end: dt.date) -> bool:
        lo, hi = min(start, end), max(start, end)
        return any(not self.is_known(y) for y in range(lo.year, hi.year + 1))


@lru_cache(maxsize=1)
def default_calendar() -> WorkCalendar:
    """The packaged calendar (national data + models/workdays.yaml), loaded once per process."""
    return WorkCalendar.from_file()


def _day_of_year(day: dt.date) -> int:
    """0 for 1 January."""
    return (day - dt.date(day.year, 1, 1)).days


def _add_months(start: dt.date, months: int) -> dt.date:
    """The same day number `months` later, or that month's last day (民法典 第二百零二条)."""
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    return dt.date(year, month0 + 1, min(start.day, monthrange(year, month0 + 1)[1]))


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _dates(raw: Any, path: Path, key: str) -> dict[dt.date, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WorkdaysConfigError(f"{path} / {key}: 应写成「日期: 原因」的键值对")
    out: dict[dt.date, str] = {}
    for k, reason in raw.items():
        d = _as_date(k)
        if d is None:
            raise WorkdaysConfigError(f"{path} / {key}: 日期「{k}」格式应为 YYYY-MM-DD")
        out[d] = str(reason or "")
    return out


def _years(raw: Any, path: Path) -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(y, int) for y in raw):
        raise WorkdaysConfigError(f"{path} / announced_years: 应是年份列表，如 [2027]")
    return list(raw)


def _month_days(raw: Any, path: Path) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in raw or []:
        try:
            month, day = (int(x) for x in str(v).split("-"))
            dt.date(2000, month, day)  # leap year: accepts 02-29
        except ValueError as e:
            raise WorkdaysConfigError(f"{path} / provisional_fixed_holidays: 「{v}」格式应为 MM-DD") from e
        out.append((month, day))
    return out
