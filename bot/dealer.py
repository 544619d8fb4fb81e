"""Several webhook worker processes on one machine (WEB_WORKERS=N): one front, N workers.

The parent process is the front: the only HTTP server on the webhook port. It checks Telegram's
secret, reads which user an update is about and hands the raw update, over a Unix socket, to the
worker that owns that user (user id modulo N); the worker's reply goes back into the HTTP response.
Every update of one user is handled by the same process, so a conversation (a case number, then
its 4 digits), the per-user lock that keeps a double-pressed button from acting twice, and the
per-user throttle all hold in plain process memory: REDIS_URL is only needed across machines.

Why not every process on the port (SO_REUSEPORT): the kernel spreads connections, not updates,
and Telegram keeps its few connections open, so one process took most of the load; and users'
conversations had to live in Redis, which cost ~2 ms CPU per update in round trips
(bench/bench_load.py, issue 6 notes).

Frames on the socket: a header (payload length, request id, kind) and the payload.
Front to worker: UPDATE with the update's JSON, or METRICS. Worker to front: REPLY with the
webhook response body (JSON, possibly empty), FAILED, or the metrics text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import Default
from aiogram.methods import SendMessage, TelegramMethod
from aiohttp import web
from prometheus_client.exposition import generate_latest
from pydantic_core import PydanticSerializationError

from bot.metrics import REGISTRY

log = logging.getLogger(__name__)

HEADER = struct.Struct("!IQB")  # payload length, request id, kind
HELLO, UPDATE, METRICS, REPLY, FAILED = range(5)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A worker being replaced: its users' updates wait this long for the new one, then get 503 and
# Telegram delivers them again later (the update ledger drops any it had already handled).
WORKER_WAIT = 10.0
EMPTY = b"{}"


def json_reply(bot: Bot, method: TelegramMethod[Any] | None) -> bytes | None:
    """The webhook response body that makes Telegram run `method`: JSON with a "method" field
    (the Bot API takes application/json there, and it costs a fraction of aiogram's multipart
    writer). None when the method carries a file, which only multipart can: call it instead."""
    if method is None:
        return EMPTY
    params = _message_params(bot, method) if isinstance(method, SendMessage) else None
    if params is None:
        files: dict[str, Any] = {}
        fields = method.model_dump(warnings=False)
        params = bot.session.prepare_value(fields, bot=bot, files=files, _dumps_json=False)
        if files:
            return None
    return json.dumps({"method": method.__api_method__, **params}, ensure_ascii=False).encode()


def _message_params(bot: Bot, method: SendMessage) -> dict[str, Any] | None:
    """What aiogram's session would send for a text message, by pydantic's own serializer: the
    session's generic walk over the dumped fields cost more than the rest of the reply (nearly
    every reply is a text message). None when a value needs that walk after all."""
    defaults = {name: value for name, value in method if isinstance(value, Default)}
    try:
        params = method.model_dump(mode="json", exclude_none=True, exclude=set(defaults), warnings=False)
    except PydanticSerializationError:  # e.g. a bot default inside a nested object
        return None
    for name, default in defaults.items():  # the bot's defaults, as the session fills them in
        value = bot.default[default.name]
        if value is not None:
            params[name] = bot.session.prepare_value(value, bot=bot, files={}, _dumps_json=False)
    return params


def owner(update: dict[str, Any]) -> int:
    """The user an update is about (whoever pressed, wrote or joined), else its chat, else 0."""
    for key, value in update.items():
        if key != "update_id" and isinstance(value, dict):
            for who in ("from", "user", "chat"):
                ident = value.get(who)
                if isinstance(ident, dict) and isinstance(ident.get("id"), int):
                    return int(ident["id"])
    return 0


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes] | None:
    try:
        size, rid, kind = HEADER.unpack(await reader.readexactly(HEADER.size))
        return rid, kind, await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class FrameWriter:
    """Frames written in one system call per event-loop turn: under load many updates (or replies)
    cross the socket together instead of paying a write each, the front's largest cost."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._buffer: list[bytes] = []

    def send(self, rid: int, kind: int, payload: bytes = b"") -> None:
        if not self._buffer:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buffer += (HEADER.pack(len(payload), rid, kind), payload)

    def _flush(self) -> None:
        data, self._buffer = b"".join(self._buffer), []
        if not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        self._flush()
        self.writer.close()


# ---------------------------------------------------------------- front (the parent process)


class Link:
    """The front's connection to one worker: requests in flight, answered by request id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, FrameWriter(writer)
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.closed = False
        self._ids = itertools.count(1)

    async def call(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        if self.closed:
            raise ConnectionError("webhook worker gone")
        rid = next(self._ids)
        answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = answer
        try:
            self.writer.send(rid, kind, payload)
            return await answer
        finally:
            self.pending.pop(rid, None)

    async def pump(self) -> None:
        """Deliver the worker's answers until it goes away; then every waiting call fails."""
        while (frame := await read_frame(self.reader)) is not None:
            rid, kind, payload = frame
            answer = self.pending.get(rid)
            if answer is not None and not answer.done():
                answer.set_result((kind, payload))
        self.closed = True
        for answer in self.pending.values():
            if not answer.done():
                answer.set_exception(ConnectionError("webhook worker gone"))
        self.writer.close()


class Front:
    """Takes Telegram's updates on the webhook path and deals them to N worker processes."""

    def __init__(self, workers: int, secret: str, socket_path: str) -> None:
        self.n, self.secret, self.socket_path = workers, secret, socket_path
        self.links: list[Link | None] = [None] * workers
        self._changed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=self.socket_path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            if link is not None:
                link.writer.close()

    def connected(self) -> int:
        return sum(link is not None for link in self.links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_frame(reader)
        if hello is None or hello[1] != HELLO or not 0 <= hello[0] < self.n:
            writer.close()
            return
        index, link = hello[0], Link(reader, writer)
        self.links[index] = link
        self._changed.set()
        try:
            await link.pump()
        finally:
            if self.links[index] is link:
                self.links[index] = None

    async def _link(self, index: int, wait: float) -> Link | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (link := self.links[index]) is None and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        return link

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self.secret):
            return web.Response(body="Unauthorized", status=401)
        body = await request.read()
        try:
            update = json.loads(body)
        except ValueError:
            return web.Response(body="Bad Request", status=400)
        if not isinstance(update, dict):
            return web.Response(body="Bad Request", status=400)
        link = await self._link(owner(update) % self.n, WORKER_WAIT)
        if link is None:
            return web.Response(body="Service Unavailable", status=503)
        try:
            kind, payload = await link.call(UPDATE, body)
        except ConnectionError:
            # The worker died with this update in hand: Telegram will deliver it again.
            return web.Response(body="Service Unavailable", status=503)
        if kind != REPLY:
            return web.Response(body="Internal Server Error", status=500)
        return web.Response(body=payload, content_type="application/json")

    async def worker_metrics(self) -> list[bytes]:
        """Each live worker's own counters (updates, handler latency, lookups), for /metrics."""
        links = [link for link in self.links if link is not None]
        answers = await asyncio.gather(*(link.call(METRICS, b"") for link in links), return_exceptions=True)
        return [a[1] for a in answers if isinstance(a, tuple) and a[0] == REPLY]


# ---------------------------------------------------------------- worker


UpdateCall = Callable[[bytes], Awaitable[bytes]]


def update_caller(bot: Bot, dp: Dispatcher) -> UpdateCall:
    """Handle one raw update as the webhook would and return the response body."""

    async def call(body: bytes) -> bytes:
        method: TelegramMethod[Any] | None = await dp.feed_webhook_update(bot, json.loads(body))
        reply = json_reply(bot, method)
        if reply is None:  # a file: sent by a Bot API call instead
            assert method is not None
            await dp.silent_call_request(bot=bot, result=method)
            return EMPTY
        return reply

    return call


async def serve_front(socket_path: str, index: int, call: UpdateCall, *, concurrency: int) -> None:
    """A worker's whole job: take updates from the front until it closes the connection."""
    reader, stream = await asyncio.open_unix_connection(socket_path)
    writer = FrameWriter(stream)
    writer.send(index, HELLO)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(rid: int, kind: int, payload: bytes) -> None:
        try:
            if kind == METRICS:
                out = generate_latest(REGISTRY)
            else:
                async with slots:
                    out = await call(payload)
            writer.send(rid, REPLY, out)
        except Exception:  # noqa: BLE001 - logged once here; the front answers Telegram with 500
            log.exception("update failed in webhook worker %d", index)
            writer.send(rid, FAILED)

    try:
        while (frame := await read_frame(reader)) is not None:
            task = asyncio.create_task(answer(*frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
