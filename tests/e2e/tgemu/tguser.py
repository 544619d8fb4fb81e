"""A scripted Telegram user for the Bot API emulator in this folder (standard library only).

emu = Emulator.start()                 # node tgemu.js on a free loopback port
# run the bot with its API base set to emu.base and a token like "123456:TEST"
u = emu.user(1001)
u.say("/start"); [r] = u.replies()     # r["message"]["text"], r["message"]["reply_markup"]
u.press(r, "<callback_data>")          # a press yields the edit and/or new messages
emu.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "123456:TEST"


def call(base: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def stop_group(proc: subprocess.Popen[Any], timeout: float = 5) -> int:
    """SIGTERM the process group started with start_new_session=True; SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Even after the leader exits, a child left in its group must not outlive the tests.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


class Emulator:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, token: str = TOKEN) -> None:
        self.proc, self.base, self.token = proc, base, token

    @classmethod
    def start(cls, port: int | None = None, token: str = TOKEN) -> Emulator:
        if not (HERE / "node_modules").is_dir():
            npm_ci = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
            subprocess.run(npm_ci, cwd=HERE, check=True, timeout=300)
        port = port or free_port()
        base = f"http://127.0.0.1:{port}"
        # Own process group, so stop() can end node and anything it spawned, and Ctrl-C in a
        # terminal reaches the test runner first instead of killing the emulator mid-test.
        proc = subprocess.Popen(
            ["node", str(HERE / "tgemu.js"), str(port)], stdout=subprocess.DEVNULL, start_new_session=True
        )
        emu = cls(proc, base, token)
        try:
            wait_for(lambda: call(base, f"/bot{token}/getMe")["ok"], 15, "the emulator")
        except BaseException:
            emu.stop()
            raise
        return emu

    def wait_polling(self, timeout: float = 60) -> None:
        wait_for(lambda: self.calls("getUpdates") or self.calls("setWebhook"), timeout, "the bot to connect")

    def user(self, uid: int, first_name: str = "Tester") -> User:
        return User(self, uid, first_name)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        q = f"?method={method}" if method else ""
        return [c["body"] for c in call(self.base, f"/_calls{q}")["result"]]

    def fault(self, **f: Any) -> None:
        """Inject errors: method, error_code, description, retry_after, times."""
        call(self.base, "/_fault", f)

    def reset(self) -> None:
        call(self.base, "/_reset", {})

    def stop(self) -> None:
        stop_group(self.proc)


class User:
    def __init__(self, emu: Emulator, uid: int, first_name: str) -> None:
        self.emu = emu
        self.user = {"id": uid, "is_bot": False, "first_name": first_name, "language_code": "zh-hans"}
        self.chat = {"id": uid, "type": "private", "first_name": first_name}

    def say(self, text: str) -> None:
        msg: dict[str, Any] = {
            "botToken": self.emu.token,
            "from": self.user,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            msg["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
        call(self.emu.base, "/sendCommand" if text.startswith("/") else "/sendMessage", msg)

    def press(self, reply: dict[str, Any], data: str) -> None:
        call(
            self.emu.base,
            "/sendCallback",
            {
                "botToken": self.emu.token,
                "from": self.user,
                "data": data,
                "message": {
                    "message_id": reply["messageId"],
                    "date": int(time.time()),
                    "chat": self.chat,
                    "text": reply["message"].get("text"),
                },
            },
        )

    def replies(self, n: int = 1, timeout: float = 10.0, settle: float = 0.3) -> list[dict[str, Any]]:
        """Wait for at least n bot messages, then collect any that follow within `settle` seconds."""
        got: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            new = self._fetch()
            got += new
            if len(got) >= n and not new:
                time.sleep(settle)
                more = self._fetch()
                if not more:
                    return got
                got += more
            time.sleep(0.01)
        if len(got) < n:
            raise AssertionError(f"wanted {n} bot messages, got {len(got)}: {got}")
        return got

    def _fetch(self) -> list[dict[str, Any]]:
        body = {"token": self.emu.token, "chatId": self.chat["id"]}
        result: list[dict[str, Any]] = call(self.emu.base, "/getUpdates", body)["result"]
        return result

    @staticmethod
    def buttons(reply: dict[str, Any]) -> list[tuple[str, str]]:
        """(text, callback_data or url) of every inline button in a bot message."""
        kb = (reply["message"].get("reply_markup") or {}).get("inline_keyboard") or []
        if isinstance(kb, str):
            kb = json.loads(kb)
        return [(b["text"], b.get("callback_data") or b.get("url") or "") for row in kb for b in row]
