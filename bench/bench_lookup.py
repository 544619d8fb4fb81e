"""Applicant status lookup latency with many cases in SQLite. Not a test: prints numbers.

    python -m bench.bench_lookup                       # 1,000,000 cases, kept in /tmp for reruns
    python -m bench.bench_lookup --cases 100000 --db /tmp/lookup100k.db

Rows are bulk-inserted (one case, one step, one event each) with one shared factor hash: the
lookup still runs its real scrypt check, the fill just skips computing a million of them.
Measured per lookup, as the bot does it: lockout check + case by number + factor check + audit
row + commit (verify_lookup), then steps + history (case_public) and the status template.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from bench import BENCH_FACTOR_SECRET
from bot.templates import make_templates, render
from models.cases import Case, CaseEvent, CaseStep, new_case_number, utc_now
from models.crud import case_public, get_case, verify_lookup
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


async def measure(url: str, numbers: list[str], n: int) -> None:
    engine = async_engine(url)
    await prepare_database(engine)
    factory = session_factory(engine)
    templates = make_templates()
    picks = random.sample(numbers, n)
    full, find = [], []
    for i, number in enumerate(picks):
        t0 = time.perf_counter()
        async with factory() as s:
            result = await verify_lookup(session=s, number=number, factor="5678", user_key=f"bench:{i}")
            assert result.ok and result.case is not None
            public = await case_public(session=s, case=result.case)
            render(templates, "cases/status", case=public, subscribed=False)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with factory() as s:
            assert await get_case(session=s, number=number) is not None
        find.append(time.perf_counter() - t0)
    await engine.dispose()
    print(f"full lookup (lockout, find, scrypt factor, audit, steps, history, template): {_ms(full)}")
    print(f"case by number alone: {_ms(find)}")


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
