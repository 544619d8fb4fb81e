"""Applicant status lookup latency with many cases in SQLite. Not a test: prints numbers.

    python -m bench.bench_lookup                       # 1,000,000 cases, kept in /tmp for reruns
    python -m bench.bench_lookup --cases 100000 --db /tmp/lookup100k.db

Rows are bulk-inserted (one case, one step, one event each) with one shared factor hash: the
lookup still runs its real scrypt check, the fill just skips computing a million of them.
Measured per lookup, as the bot does it: lockout check + case by number + factor check + audit
row + commit (verify_lookup), then steps, subscription and history (chat_status) and the status
template. Then the same through the production dispatcher (one user per lookup, replies recorded
instead of sent), for each of the two updates: the case number (asks for the factor) and the 4
digits (check, status reply). CPU is process time, which a shared machine's load inflates far less
than wall time; compare two versions by alternating runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import random
import statistics
import time
from pathlib import Path

from jinja2 import Environment
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench import BENCH_FACTOR_SECRET
from bot.app import build_dispatcher
from bot.runtime import RecordingSession, UpdateFactory, make_bot
from bot.settings import Settings
from bot.templates import make_templates, render
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from models.cases import Case, CaseEvent, CaseStep, new_case_number, utc_now
from models.crud import chat_status, get_case, verify_lookup
from models.db import async_engine, prepare_database, session_factory, sync_engine
from models.privacy import FactorKey, hash_factor, hash_token, mask_phone, new_salt, use_factor_key

CHUNK = 20_000


def fill(url: str, total: int) -> list[str]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(Case.__table__)).scalar_one()  # type: ignore[attr-defined]
        if have >= total:
            rows = conn.execute(select(Case.__table__.c.number).limit(total))  # type: ignore[attr-defined]
            return [r[0] for r in rows]
    salt = new_salt()
    factor_hash, binding = hash_factor("5678", salt), hash_token("X" * 10, salt)
    now = utc_now()
    numbers: list[str] = []
    started = time.monotonic()
    with engine.begin() as conn:
        for start in range(have, total, CHUNK):
            cases, steps, events = [], [], []
            for k in range(start + 1, min(start + CHUNK, total) + 1):
                day = (now - dt.timedelta(days=k % 365)).date()
                number = new_case_number(day)
                numbers.append(number)
                at = now - dt.timedelta(days=k % 365)
                cases.append(
                    dict(
                        id=k,
                        number=number,
                        kind="item",
                        item_name="食品经营许可证核发",
                        lead_department="scjg",
                        channel="window",
                        status="in_review",
                        promised_days=10,
                        promised_due_date=day + dt.timedelta(days=14),
                        paused_workdays=0,
                        external_id=None,
                        applicant_name="王小明",
                        phone_masked=mask_phone("13812345678"),
                        factor_salt=salt,
                        factor_hash=factor_hash,
                        binding_hash=binding,
                        accepted_at=at,
                        paused_since=None,
                        closed_at=None,
                        created_at=at,
                        updated_at=at,
                        version=1,
                    )
                )
                steps.append(
                    dict(
                        id=k,
                        case_id=k,
                        department="scjg",
                        department_name="县市场监督管理局",
                        items=["食品经营许可证核发"],
                        is_lead=True,
                        status="in_review",
                        handled_by="api",
                        started_at=at,
                        finished_at=None,
                        updated_at=at,
                    )
                )
                events.append(
                    dict(
                        id=k,
                        case_id=k,
                        event_id=f"create:{number}",
                        status="accepted",
                        department=None,
                        from_status=None,
                        to_status="accepted",
                        actor="bench",
                        note=None,
                        missing_materials=None,
                        at=at,
                    )
                )
            conn.execute(insert(Case.__table__), cases)  # type: ignore[attr-defined]
            conn.execute(insert(CaseStep.__table__), steps)  # type: ignore[attr-defined]
            conn.execute(insert(CaseEvent.__table__), events)  # type: ignore[attr-defined]
            print(
                f"\r  filled {min(start + CHUNK, total):,} cases ({time.monotonic() - started:.0f}s)", end=""
            )
    print()
    engine.dispose()
    return numbers


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms (n={len(samples)})"


def _cpu(seconds: float, n: int) -> str:
    return f"{seconds / n * 1000:.2f} ms CPU each"


async def measure(url: str, numbers: list[str], n: int) -> None:
    engine = async_engine(url)
    await prepare_database(engine)
    factory = session_factory(engine)
    templates = make_templates()
    picks = random.sample(numbers, n)
    full, find = [], []
    cpu_full = cpu_find = 0.0
    for i, number in enumerate(picks):
        t0, c0 = time.perf_counter(), time.process_time()
        async with factory() as s:
            result = await verify_lookup(session=s, number=number, factor="5678", user_key=f"bench:{i}")
            assert result.ok and result.case is not None
            public, subscribed = await chat_status(session=s, case=result.case, chat_id=8_000_000 + i)
            render(templates, "cases/status", case=public, subscribed=subscribed)
        full.append(time.perf_counter() - t0)
        cpu_full += time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        async with factory() as s:
            assert await get_case(session=s, number=number) is not None
        find.append(time.perf_counter() - t0)
        cpu_find += time.process_time() - c0
    print(
        f"full lookup (lockout, find, factor, audit, steps, subscription, history, template): {_ms(full)}, "
        f"{_cpu(cpu_full, n)}"
    )
    print(f"case by number alone: {_ms(find)}, {_cpu(cpu_find, n)}")
    await measure_dispatcher(factory, templates, picks)
    await engine.dispose()


async def measure_dispatcher(
    factory: async_sessionmaker[AsyncSession], templates: Environment, numbers: list[str]
) -> None:
    """Both updates of a lookup through build_dispatcher, as bench_load's looking-up users send them."""
    catalog = load_catalog()
    dp = build_dispatcher(
        settings=Settings(bot_token=None, throttle_rate=0),
        catalog=catalog,
        matcher=Matcher(catalog),
        templates=templates,
        session_factory=factory,
    )
    recorder = RecordingSession()
    bot = make_bot(Settings(bot_token=None), session=recorder)
    # Updates built beforehand: parsing Telegram's JSON is the web server's cost, not the lookup's.
    # Update ids unique across users, as Telegram's are: aiogram caches Update.event_type by id.
    update_ids = itertools.count(1)
    pairs = []
    for k, number in enumerate(numbers):
        users = UpdateFactory(bot, user_id=8_000_000 + k, _ids=update_ids)
        pairs.append((users.message(number), users.message("5678")))
    cpu_number = cpu_factor = 0.0
    for ask, answer in pairs:
        c0 = time.process_time()
        await dp.feed_update(bot, ask)
        c1 = time.process_time()
        await dp.feed_update(bot, answer)
        cpu_factor += time.process_time() - c1
        cpu_number += c1 - c0
        sent = recorder.take()
        reply = sent[-1].message if sent else None
        assert reply is not None and "当前状态" in (reply.text or ""), sent
    n = len(pairs)
    print(f"dispatcher, case number (asks for the factor): {_cpu(cpu_number, n)}")
    print(f"dispatcher, 4 digits (check, status reply): {_cpu(cpu_factor, n)}")
    print(f"dispatcher, whole lookup: {_cpu(cpu_number + cpu_factor, n)}")


def main() -> None:
    use_factor_key(FactorKey(BENCH_FACTOR_SECRET.encode()))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--db", type=Path, default=Path("/tmp/yichuang_bench_lookup.db"))
    p.add_argument("--lookups", type=int, default=500)
    a = p.parse_args()
    url = f"sqlite:///{a.db}"
    asyncio.run(prepare_database(async_engine(url)))
    t0 = time.monotonic()
    numbers = fill(url, a.cases)
    print(
        f"{a.cases:,} cases ready in {time.monotonic() - t0:.0f}s "
        f"({a.db}, {a.db.stat().st_size / 1e6:.0f} MB)"
    )
    asyncio.run(measure(url, numbers, min(a.lookups, len(numbers))))


if __name__ == "__main__":
    main()
