"""Supervision speed on SQLite: announcement fan-out into the outbox, and the evaluation report.
Not a test: prints numbers.

    python -m bench.bench_supervision --subscribers 10000 --cases 20000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from bot.report import Period, build_report, render_chart, render_csv, render_html
from bot.supervision_render import make_supervision_renderer
from bot.templates import make_templates
from knowledge.loader import load_catalog
from models.db import async_engine, prepare_database, session_factory
from models.feedback import NewsSubscription
from models.supervision import RatingRow, ReportRows, WorkUnit, publish_announcement
from models.workdays import default_calendar


async def fan_out(subscribers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = async_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        await prepare_database(engine)
        factory = session_factory(engine)
        now = dt.datetime.now(dt.UTC)
        async with factory() as s:
            rows = [{"chat_id": 10_000 + k, "created_at": now} for k in range(subscribers)]
            await s.exec(insert(NewsSubscription), params=rows)  # type: ignore[call-overload]
            await s.commit()
        catalog = load_catalog()
        render = make_supervision_renderer(make_templates(), catalog)
        async with factory() as s:
            t = time.perf_counter()
            ann = await publish_announcement(
                session=s, text="国庆期间窗口安排" * 20, user_id=1, render=render
            )
            took = time.perf_counter() - t
        await engine.dispose()
    print(f"announcement to {ann.recipients} subscribers: {took * 1000:.0f} ms in one transaction "
          f"({took / max(ann.recipients, 1) * 1e6:.0f} µs per outbox row)")  # fmt: skip


def report(cases: int) -> None:
    catalog = load_catalog()
    cal = default_calendar()
    rnd = random.Random(7)
    items = [it for it in catalog.items if it.promised_days > 0]
    deps = {d.name: d.id for d in catalog.departments}
    units, ratings = [], []
    for k in range(cases):
        it = rnd.choice(items)
        accepted = dt.date(2026, 1, 1) + dt.timedelta(days=rnd.randrange(360))
        finished = accepted + dt.timedelta(days=rnd.randrange(1, 30)) if rnd.random() < 0.9 else None
        pause = (
            ((accepted + dt.timedelta(days=1), accepted + dt.timedelta(days=4)),)
            if rnd.random() < 0.2
            else ()
        )
        u = WorkUnit(
            f"C{k}", deps[it.department], (it.name,), accepted, finished, "completed", it.promised_days, pause
        )
        units.append(u)
        if finished and rnd.random() < 0.5:
            ratings.append(RatingRow(u.case_number, (u.department,), u.items, rnd.randint(1, 5), 1, finished))
    rows = ReportRows(units, units, ratings, [], [], [])
    t = time.perf_counter()
    rep = build_report(
        rows, catalog=catalog, period=Period.parse("2026"), as_of=dt.date(2027, 1, 5), calendar=cal
    )
    t_fig = time.perf_counter() - t
    t = time.perf_counter()
    png = render_chart(rep)
    t_png = time.perf_counter() - t
    t = time.perf_counter()
    render_html(rep, make_templates(), png)
    render_csv(rep)
    t_out = time.perf_counter() - t
    print(f"year report over {cases} cases, {len(ratings)} ratings: figures {t_fig * 1000:.0f} ms, "
          f"chart {t_png * 1000:.0f} ms, HTML+CSV {t_out * 1000:.0f} ms")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--subscribers", type=int, default=10_000)
    p.add_argument("--cases", type=int, default=20_000)
    a = p.parse_args()
    asyncio.run(fan_out(a.subscribers))
    report(a.cases)


if __name__ == "__main__":
    main()
