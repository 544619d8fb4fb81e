"""Case domain speed on SQLite (or DATABASE_URL): accept, move, look up. Not a test: prints numbers.

    python -m bench.bench_case_domain --cases 2000

The lookup number is dominated by design by the scrypt check of the second factor (~15 ms here):
cheap enough for a chat reply, costly for anyone trying all 10,000 factors.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench import BENCH_FACTOR_SECRET
from knowledge.loader import load_catalog
from knowledge.schema import Catalog
from models import crud
from models.crud import NoticeContext, RenderedNotice
from models.db import async_engine, prepare_database, session_factory
from models.privacy import FactorKey, use_factor_key


def _render(ctx: NoticeContext) -> RenderedNotice:
    return RenderedNotice(text=f"{ctx.case.number} {ctx.case.status_label}")


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms"


async def run(url: str, n: int, catalog: Catalog) -> None:
    engine = async_engine(url)
    await prepare_database(engine)
    sessions = session_factory(engine)
    item = catalog.items[0].name
    numbers: list[str] = []
    create, move, lookup = [], [], []
    async with sessions() as s:
        for i in range(n):
            t = time.perf_counter()
            made = await crud.create_case(
                session=s,
                catalog=catalog,
                item_name=item,
                applicant_name="张三",
                phone=f"138{i:08d}",
                channel="bench",
            )
            create.append(time.perf_counter() - t)
            numbers.append(made.case.number)
            await crud.subscribe(session=s, case=made.case, chat_id=10_000 + i)
        for i, number in enumerate(numbers):
            t = time.perf_counter()
            r = await crud.apply_event(
                session=s,
                number=number,
                status="in_review",
                actor="bench",
                event_id=f"b{i}",
                catalog=catalog,
                render=_render,
            )
            move.append(time.perf_counter() - t)
            assert r.applied and r.notices == 1
        for i, number in enumerate(numbers[:500]):
            t = time.perf_counter()
            ok = await crud.verify_lookup(session=s, number=number, factor=f"{i:04d}"[-4:], user_key=f"u{i}")
            lookup.append(time.perf_counter() - t)
            assert ok.ok
    await engine.dispose()
    print(f"{n} cases on {engine.dialect.name}")
    print(f"  create_case            {_ms(create)}")
    print(f"  apply_event (+notice)  {_ms(move)}")
    print(f"  verify_lookup (scrypt) {_ms(lookup)}")


def main() -> None:
    use_factor_key(FactorKey(BENCH_FACTOR_SECRET.encode()))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    catalog = load_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.cases, catalog))


if __name__ == "__main__":
    main()
