"""`yichuang run --workers 2` in webhook mode: two processes listen on the one port, every one of
them refuses updates without the secret, and updates with it are answered whichever process the
kernel hands the connection to."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.settings import Settings
from tests.e2e.tgemu.tguser import free_port

SECRET = "workers-secret-0123456789"
TOKEN = "123456:WORKERS"


class StubApi:
    """The Bot API as far as the bot needs it here; remembers who was sent a message."""

    def __init__(self) -> None:
        self.chats: list[int] = []
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


# The webhook response carrying a reply: multipart form data with method=sendMessage and its chat.
REPLY_IN_RESPONSE = re.compile(
    rb'name="method"\r\n\r\nsendMessage\r\n.*?name="chat_id"\r\n\r\n(-?\d+)\r\n', re.S
)


def listeners(port: int) -> int:
    """Listening TCP sockets on `port` (several processes with SO_REUSEPORT each hold one)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def update(uid: int, text: str) -> dict[str, Any]:
    user = {"id": uid, "is_bot": False, "first_name": "用户"}
    msg = {"message_id": uid, "date": int(time.time()), "chat": {"id": uid, "type": "private"}, "from": user}
    return {"update_id": uid, "message": {**msg, "text": text}}


async def test_two_webhook_workers_share_the_port_and_both_check_the_secret(
    stub: tuple[StubApi, str], tmp_path: Path
) -> None:
    api, base = stub
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": base,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": str(port),
        "LOG_LEVEL": "WARNING",
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
            if api.webhook and listeners(port) >= 2:
                break
            await asyncio.sleep(0.1)
        assert api.webhook.get("secret_token") == SECRET
        assert listeners(port) == 2  # the parent and one spawned worker
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        # A new connection per request (force_close), so the kernel spreads them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for k in range(40):
                for bad in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(url, json=update(5000 + k, "/center"), headers=bad) as r:
                        assert r.status == 401
            assert api.chats == []
            good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            for k in range(40):
                async with http.post(url, json=update(6000 + k, "/center"), headers=good) as r:
                    assert r.status == 200
                    # The reply rides in the webhook response (or, failing that, a Bot API call).
                    m = REPLY_IN_RESPONSE.search(await r.read())
                    if m is not None:
                        api.chats.append(int(m.group(1)))
        for _ in range(300):
            if len(set(api.chats)) == 40:
                break
            await asyncio.sleep(0.05)
        assert sorted(set(api.chats)) == list(range(6000, 6040))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert listeners(port) == 0  # the spawned worker went with its parent
