"""`yichuang run --workers 2` in webhook mode: one front process on the port refuses updates without
the secret and deals the others to two worker processes, each user's to the same one, so a case
lookup (number, then 4 digits) works without Redis; a worker killed mid-traffic is replaced and its
users are answered again; /metrics counts both workers' updates."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.runtime import plain
from bot.settings import Settings
from knowledge.loader import load_catalog
from models.crud import create_case
from models.db import async_engine, prepare_database, session_factory
from tests.e2e.tgemu.tguser import free_port

SECRET = "workers-secret-0123456789"
TOKEN = "123456:WORKERS"


class StubApi:
    """The Bot API as far as the bot needs it here; remembers who was sent a message."""

    def __init__(self) -> None:
        self.chats: list[int] = []
        self.texts: dict[int, list[str]] = {}
        self.webhook: dict[str, Any] = {}

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = dict(await request.post())
        if method == "getMe":
            me = {"id": 123456, "is_bot": True, "first_name": "一窗", "username": "yichuang_bot"}
            return web.json_response({"ok": True, "result": me})
        if method == "setWebhook":
            self.webhook = form
        if method == "sendMessage":
            chat = int(str(form["chat_id"]))
            self.chats.append(chat)
            self.texts.setdefault(chat, []).append(str(form.get("text", "")))
            msg = {
                "message_id": len(self.chats),
                "date": 0,
                "chat": {"id": chat, "type": "private"},
                "text": "x",
            }
            return web.json_response({"ok": True, "result": msg})
        return web.json_response({"ok": True, "result": True})


@pytest.fixture
async def stub() -> AsyncIterator[tuple[StubApi, str]]:
    api = StubApi()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield api, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def listeners(port: int) -> int:
    """Listening TCP sockets on `port`."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def update(uid: int, text: str, update_id: int) -> dict[str, Any]:
    user = {"id": uid, "is_bot": False, "first_name": "用户"}
    msg = {"message_id": update_id, "date": int(time.time()), "chat": {"id": uid, "type": "private"}}
    return {"update_id": update_id, "message": {**msg, "from": user, "text": text}}


async def seed_case(url: str) -> tuple[str, str]:
    engine = async_engine(url)
    await prepare_database(engine)
    catalog = load_catalog()
    async with session_factory(engine)() as session:
        made = await create_case(
            session=session,
            catalog=catalog,
            item_name=catalog.items[0].name,
            applicant_name="李四",
            phone="13900001234",
            channel="window",
        )
    await engine.dispose()
    return made.case.number, "1234"


class Telegram:
    """Posts updates to the front as Telegram does; what the user was sent in answer, whether in
    the webhook response or by Bot API calls made while the update was handled."""

    def __init__(self, http: aiohttp.ClientSession, url: str, api: StubApi) -> None:
        self.http, self.url, self.api, self.ids = http, url, api, 1000

    async def say(self, uid: int, text: str) -> tuple[int, str]:
        self.ids += 1
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        before = len(self.api.texts.get(uid, []))
        async with self.http.post(self.url, json=update(uid, text, self.ids), headers=headers) as r:
            if r.status != 200:
                return r.status, ""
            reply = await r.json()
        assert reply.get("method", "sendMessage") == "sendMessage"
        assert reply.get("chat_id", uid) == uid
        sent = [*self.api.texts.get(uid, [])[before:], str(reply.get("text", ""))]
        return 200, plain("\n".join(sent))


async def test_front_deals_users_to_two_workers(stub: tuple[StubApi, str], tmp_path: Path) -> None:
    api, base = stub
    port = free_port()
    db = f"sqlite:///{tmp_path / 'w.db'}"
    number, factor = await seed_case(db)
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": base,
        "DATABASE_URL": db,
        "WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "FACTOR_SECRET": os.environ["FACTOR_SECRET"],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--workers",
        "2",
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(600):
            if api.webhook:
                break
            await asyncio.sleep(0.1)
        assert api.webhook.get("secret_token") == SECRET
        assert listeners(port) == 1  # only the front
        workers = children(proc.pid)
        assert len(workers) >= 2
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        async with aiohttp.ClientSession() as http:
            for k in range(20):
                for bad in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(url, json=update(5000 + k, "/center", k), headers=bad) as r:
                        assert r.status == 401
            assert api.chats == []
            tg = Telegram(http, url, api)
            users = range(6000, 6020)  # even and odd ids: both workers
            answers = await asyncio.gather(*(tg.say(u, "/center") for u in users))
            assert all(status == 200 and text for status, text in answers)
            # The number and the digits are two updates; each user's reach the worker that
            # remembers the number, with no shared store (no REDIS_URL here).
            asked = await asyncio.gather(*(tg.say(u, number) for u in users))
            assert all("手机号后 4 位" in text for _, text in asked), asked
            shown = await asyncio.gather(*(tg.say(u, factor) for u in users))
            assert all(f"办件 {number}" in text for _, text in shown), shown
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                exposition = await r.text()
            counted = [
                ln
                for ln in exposition.splitlines()
                if ln.startswith('yichuang_updates_total{type="message"}')
            ]
            assert counted and float(counted[0].split()[-1]) == 60.0  # 3 x 20, from both workers

            # A worker killed with updates in flight: its users get 503 (Telegram delivers again)
            # or a reply, and once it is replaced every one of them is answered.
            os.kill(workers[0], signal.SIGKILL)
            again = await asyncio.gather(*(tg.say(u, "/center") for u in users))
            assert all(status in (200, 503) for status, _ in again)
            for _ in range(100):
                again = await asyncio.gather(*(tg.say(u, "/center") for u in users))
                if all(status == 200 and text for status, text in again):
                    break
                await asyncio.sleep(0.2)
            assert all(status == 200 and text for status, text in again)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0
    assert listeners(port) == 0
    await asyncio.sleep(0.5)
    assert children(proc.pid) == []  # the workers went with the front
