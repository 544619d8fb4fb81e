"""The fault-injection bar of issue 6 at full size: 3,000 notices through the Bot API emulator with
injected 429 (retry_after), 5xx and timeouts, the delivery worker SIGKILLed a third of the way in
and restarted. Not a test (tests/faults runs the same thing smaller): prints lost / duplicated /
in flight.

    python -m bench.bench_faults [--count 3000] [--chats 1000] [--database-url URL]

Bar: 0 lost, duplicates <= the notices in flight at the kill (the worker's concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from tests.e2e.tgemu.tguser import Emulator
from tests.faults.broadcast import broadcast
from tests.faults.worker_proc import CONFIG


async def run(count: int, chats: int, url: str | None) -> None:
    emu = Emulator.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = await broadcast(emu, url or f"sqlite:///{Path(tmp) / 'faults.db'}", count, chats, limit=900)
    finally:
        emu.stop()
    print(
        f"worker: {CONFIG.rate:g} sends/s, {CONFIG.concurrency} in flight, "
        f"send timeout {CONFIG.send_timeout} s"
    )
    print(out.summary())
    ok = not out.lost and len(out.duplicated) <= out.in_flight_at_kill and out.pending_after == 0
    print("bar met" if ok else "BAR MISSED", f"(duplicated notices: {out.duplicated[:10]})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--chats", type=int, default=1000)
    p.add_argument("--database-url", help="default: a fresh SQLite file; PostgreSQL: $TEST_DATABASE_URL")
    a = p.parse_args()
    asyncio.run(run(a.count, a.chats, a.database_url))


if __name__ == "__main__":
    main()
