"""Group commit for small writes many updates make at once (update ids, unanswered questions).

On SQLite a write transaction costs ~0.8 ms CPU almost whatever its size, mostly the commit: under
load, one transaction per update was a large share of the bot's CPU (bench/bench_load.py). So
callers queue their item; one writer task takes everything queued, writes it in one transaction
on a bare connection (an ORM session cost more than the insert itself) and hands each caller its
own result, or the batch's exception. Writes start at most every `spacing` seconds: back to back
under load they carried one or two items each. A caller that waits (submit) waits at most
`spacing` more; a lone item, long after the previous write, does not wait at all. A caller that
must not wait (post) leaves its item to be written in the background.

The caller must not hold a write transaction of its own on SQLite while it waits: the batch needs
the one write lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes a batch in the connection's transaction; one result per item, in order.
BatchWrite = Callable[[AsyncConnection, list[Item]], Awaitable[list[Result]]]

log = logging.getLogger(__name__)


class GroupWriter(Generic[Item, Result]):
    def __init__(
        self,
        engine: AsyncEngine,
        write: BatchWrite[Item, Result],
        *,
        spacing: float = 0.025,
        batch: int = 500,  # capped: SQLite allows some thousands of bound values in one statement
        name: str = "group writer",
    ) -> None:
        self.engine, self.write, self.name = engine, write, name
        self._failing = False
        self.spacing, self.batch = spacing, batch
        self._last_write = float("-inf")
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Queue `item` for the next write and wait for it: its result, or the write's exception."""
        return await self._enqueue(item)

    def post(self, item: Item, on_result: Callable[[Result], object] | None = None) -> None:
        """Queue `item` for the next write without waiting for it. A failed write is logged here,
        once until a write succeeds again; `on_result` gets the item's result otherwise."""

        def done(answer: asyncio.Future[Result]) -> None:
            if not answer.cancelled() and answer.exception() is None and on_result is not None:
                on_result(answer.result())

        self._enqueue(item).add_done_callback(done)

    def _enqueue(self, item: Item) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, answer))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = asyncio.create_task(self._run())
        return answer

    async def drain(self) -> None:
        """Return once everything queued so far is written (or failed): before a process exits."""
        writer = self._writer
        if writer is not None and not writer.done() and writer.get_loop() is asyncio.get_running_loop():
            await asyncio.wait({writer})

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
                    if not self._failing:
                        log.warning(
                            "%s: a write of %d items failed (%s)", self.name, len(batch), type(e).__name__
                        )
                    self._failing = True
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(e)
                    continue
                self._failing = False
                for (_, answer), result in zip(batch, results, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            # Cancelled (shutdown): nobody may wait forever for a write that will not come. (Futures
            # already answered ignore this.)
            for _, answer in batch + self._waiting:
                answer.cancel()
            self._waiting = []
