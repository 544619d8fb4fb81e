"""Group commit for small writes many updates make at once (update ids, unanswered questions).

On SQLite a write transaction costs ~0.8 ms CPU almost whatever its size, mostly the commit: under
load, one transaction per update was a large share of the bot's CPU (bench/bench_load.py). So
callers queue their item and wait; one writer task takes everything queued, writes it in one
transaction on a bare connection (an ORM session cost more than the insert itself) and hands each
caller its own result, or the batch's exception. Writes start at most every `spacing` seconds:
back to back under load they carried one or two items each. A caller waits at most `spacing` more;
a lone item, long after the previous write, does not wait at all.

The caller must not hold a write transaction of its own on SQLite while it waits: the batch needs
the one write lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes a batch in the connection's transaction; one result per item, in order.
BatchWrite = Callable[[AsyncConnection, list[Item]], Awaitable[list[Result]]]


class GroupWriter(Generic[Item, Result]):
    def __init__(
        self,
        engine: AsyncEngine,
        write: BatchWrite[Item, Result],
        *,
        spacing: float = 0.025,
        batch: int = 500,  # capped: SQLite allows some thousands of bound values in one statement
    ) -> None:
        self.engine, self.write = engine, write
        self.spacing, self.batch = spacing, batch
        self._last_write = float("-inf")
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Queue `item` for the next write and wait for it: its result, or the write's exception."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, answer))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = asyncio.create_task(self._run())
        return await answer

    async def _run(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                delay = self._last_write + self.spacing - time.monotonic()
                if delay > 0 and len(self._waiting) < self.batch:
                    await asyncio.sleep(delay)
                self._last_write = time.monotonic()
                batch, self._waiting = self._waiting[: self.batch], self._waiting[self.batch :]
                try:
                    async with self.engine.begin() as conn:
                        results = await self.write(conn, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
                except Exception as e:  # noqa: BLE001 - each waiter decides what a failure means
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(e)
                    continue
                for (_, answer), result in zip(batch, results, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            # Cancelled (shutdown): nobody may wait forever for a write that will not come. (Futures
            # already answered ignore this.)
            for _, answer in batch + self._waiting:
                answer.cancel()
            self._waiting = []
