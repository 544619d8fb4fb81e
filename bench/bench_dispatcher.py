"""Questions per second through the production Dispatcher (not a test: prints numbers).

    python -m bench.bench_dispatcher [--rounds 10] [--misses] [--concurrency 1]

Each question is a real Update fed with `dp.feed_update`: middlewares (role, DB session), router
order, matching, rendering the card with Jinja2, splitting, FSM context update and the reply,
answered by the recording session instead of HTTP. Throttling is off (one user asks everything).
Target: >= 1,000 questions/s on one core. CPU (process) time is shown beside wall time because a
shared machine's load inflates wall time. `--concurrency N` keeps N updates in flight, as a webhook
process under load does: writes that are grouped (unanswered questions, models/batching.py) then
serve several updates each; one at a time, every fallback waits for a write of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from aiogram.types import Update

from bot.app import build_dispatcher
from bot.runtime import RecordingSession, UpdateFactory, make_bot
from bot.settings import Settings
from bot.templates import make_templates
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from models.db import async_engine, prepare_database, session_factory

EVAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "eval" / "questions.dev.jsonl"
FALLBACK_QUESTIONS = [
    "开饭馆要办什么证",
    "结婚登记要带什么",
    "身份证丢了怎么补办",
    "二手房过户",
    "驾照到期换证",
]


def questions(misses: bool) -> list[str]:
    if EVAL.exists():
        rows = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r["q"] for r in rows if bool(r["expect"]) != misses] or FALLBACK_QUESTIONS
    return FALLBACK_QUESTIONS


async def run(rounds: int, misses: bool, remember: bool, concurrency: int) -> None:
    catalog = load_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        engine = async_engine(f"sqlite:///{tmp}/bench.db")
        await prepare_database(engine)
        settings = Settings(bot_token=None, throttle_rate=0)
        dp = build_dispatcher(
            settings=settings,
            catalog=catalog,
            # By default every question is matched afresh, as the first time it is asked.
            matcher=Matcher(catalog) if remember else Matcher(catalog, memo=0),
            templates=make_templates(),
            session_factory=session_factory(engine),
        )
        session = RecordingSession()
        bot = make_bot(settings, session=session)
        # One user per update in flight: a user's own updates are handled one after another.
        users = [UpdateFactory(bot, user_id=1 + k) for k in range(concurrency)]
        qs = questions(misses)
        for q in qs:  # warm-up: template compilation, caches
            await dp.feed_update(bot, users[0].message(q))
        session.take()
        # Updates are built before timing: building one is Telegram's job, not the bot's.
        queues = [
            [u.message(q) for _ in range(rounds) for q in qs[k::concurrency]] for k, u in enumerate(users)
        ]
        n = sum(map(len, queues))
        per: list[float] = []

        async def user(updates: list[Update]) -> None:  # sends again as soon as answered
            for u in updates:
                t = time.perf_counter()
                await dp.feed_update(bot, u)
                per.append(time.perf_counter() - t)

        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(user(q) for q in queues))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sent = session.take()
        # The matcher alone on the same questions, same moment: the share of the total that is
        # matching (a shared machine's load moves both numbers together).
        matcher = Matcher(catalog, memo=0)
        m0 = time.process_time()
        for _ in range(rounds):
            for text in qs:
                matcher.search(text)
        match_cpu = time.process_time() - m0
        await engine.dispose()
    pct = statistics.quantiles(per, n=100)
    kind = "out-of-catalog (fallback + DB write)" if misses else "in-catalog"
    kind += ", answers remembered (repeated questions)" if remember else ", each matched afresh"
    kind += f", {concurrency} in flight" if concurrency > 1 else ""
    print(f"{kind}: {n} questions, {len(sent)} Bot API requests")
    print(
        f"  wall {n / wall:,.0f} q/s   cpu {n / cpu:,.0f} q/s   (matcher alone: cpu {n / match_cpu:,.0f} q/s)"
    )
    print(f"  per question ms: p50 {pct[49] * 1000:.2f}  p95 {pct[94] * 1000:.2f}  p99 {pct[98] * 1000:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--misses", action="store_true", help="out-of-catalog questions instead")
    ap.add_argument(
        "--remember", action="store_true", help="keep the matcher's answer memo on (questions repeat)"
    )
    ap.add_argument("--concurrency", type=int, default=1, help="updates in flight at once")
    args = ap.parse_args()
    asyncio.run(run(args.rounds, args.misses, args.remember, max(1, args.concurrency)))


if __name__ == "__main__":
    main()
