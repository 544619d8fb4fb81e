"""`yichuang report --month 2026-11 | --year 2026`: the window evaluation (窗口考评).

Prints the per-department table and writes report-<period>.html, .png and .csv to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.report import (
    Period,
    Report,
    build_report,
    matcher_attributor,
    render_chart,
    render_csv,
    render_html,
    text_table,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("report", help="窗口考评：按部门和窗口统计，输出 HTML、PNG 图表和 CSV")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--month", help="统计月份，如 2026-11")
    which.add_argument("--year", help="统计年份，如 2026")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="输出目录（默认 ./reports）")
    parser.add_argument("--database-url", help="数据库地址（默认：环境变量 DATABASE_URL）")
    parser.add_argument("--catalog", type=Path, help="事项目录（默认：环境变量 CATALOG_DIR 或内置示例）")
    parser.set_defaults(func=cmd_report)


@dataclass(frozen=True)
class Written:
    html: Path
    png: Path
    csv: Path


async def compute_report(
    *, database_url: str, catalog_dir: Path | None, period_text: str, today: dt.date | None = None
) -> Report:
    """Load the rows for the period and compute the figures (ValueError for a bad period)."""
    from knowledge.loader import load_catalog
    from knowledge.matcher import Matcher
    from models.cases import utc_now
    from models.db import async_engine, prepare_database, session_factory
    from models.supervision import report_rows
    from models.workdays import default_calendar, local_date

    period = Period.parse(period_text)
    catalog = load_catalog(catalog_dir)
    engine = async_engine(database_url)
    try:
        await prepare_database(engine)
        async with session_factory(engine)() as session:
            rows = await report_rows(session=session, start=period.start, end=period.end)
    finally:
        await engine.dispose()
    return build_report(
        rows,
        catalog=catalog,
        period=period,
        # Deadlines that fell after the period are judged as they stand today.
        as_of=today or local_date(utc_now()),
        calendar=default_calendar(),
        attribute=matcher_attributor(catalog, Matcher(catalog)),
    )


def write_report_files(report: Report, out: Path) -> Written:
    from bot.templates import make_templates

    png = render_chart(report)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"report-{report.period.slug}"
    written = Written(base.with_suffix(".html"), base.with_suffix(".png"), base.with_suffix(".csv"))
    written.png.write_bytes(png)
    written.html.write_text(render_html(report, make_templates(), png), encoding="utf-8")
    written.csv.write_bytes(render_csv(report))
    return written


def cmd_report(args: argparse.Namespace) -> int:
    from bot.commands.db import database_url, shown
    from bot.settings import Settings
    from knowledge.loader import CatalogError

    url = database_url(args)
    catalog_dir = args.catalog or Settings().catalog_dir
    try:
        report = asyncio.run(
            compute_report(database_url=url, catalog_dir=catalog_dir, period_text=args.month or args.year)
        )
        written = write_report_files(report, args.out)
    except ValueError as e:  # a bad --month / --year
        print(str(e), file=sys.stderr)
        return 2
    except CatalogError as e:
        print(e.report(), file=sys.stderr)
        return 1
    except ArgumentError:
        print(f"数据库地址格式不正确：{shown(url)}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"无法读取数据库（{shown(url)}）：{first[:300]}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"无法写入输出目录 {args.out}：{e.strerror or e}", file=sys.stderr)
        return 1
    print(text_table(report))
    print()
    print(f"已生成：{written.html}\n        {written.png}\n        {written.csv}")
    return 0
