"""Fixtures for the tests against a real Redis server (TEST_REDIS_URL, see .ci/redis.sh).

`procs` are two bot processes (tests/redis/instance.py) sharing one Redis and one database, as
webhook workers behind a load balancer do; `Chat` is one Telegram user whose updates the test
hands to whichever process it likes. `redis_server` is a private redis-server the outage tests
may stop and restart without disturbing the shared one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.db import async_engine, prepare_database
from tests.conftest import BOT_CATALOG

ROOT = Path(__file__).resolve().parents[2]
SKIP_REASON = (
    "TEST_REDIS_URL is not set; start a throwaway server: export TEST_REDIS_URL=$(bash .ci/redis.sh)"
)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip(SKIP_REASON)
    return url


def fresh_user() -> int:
    """A user id no earlier test run used: the shared server keeps keys between runs."""
    return random.randrange(10**9, 2 * 10**9)


class Proc:
    """One bot process; `send` hands it one update and returns what the bot sent for it."""

    def __init__(self, proc: subprocess.Popen[str], name: str, log: Path):
        self.proc, self.name, self.log = proc, name, log

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"bot process {self.name} died: {self.log.read_text()[-2000:]}")
        return dict(json.loads(line))

    def send(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        return list(self._line()["sent"])

    def configure(self, throttle_rate: float = 0, latency: float = 0) -> None:
        self.send({"configure": {"throttle_rate": throttle_rate, "latency": latency}})

    def stop(self) -> None:
        """End of input: the process closes its connections and exits."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def procs(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    """Two bot processes on the same Redis and database, started once per module (importing the
    bot takes seconds); each test sets them up with `Proc.configure`."""
    tmp = tmp_path_factory.mktemp("procs")
    db_url = f"sqlite:///{tmp / 'bot.db'}"
    # Migrate once up front, so the processes don't race to create the tables.
    asyncio.run(_migrate(db_url))
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "WEBHOOK_URL", "API_TOKEN")}
    env |= {"REDIS_URL": redis_url, "DATABASE_URL": db_url, "CATALOG_DIR": str(BOT_CATALOG)}
    started: list[Proc] = []
    try:
        for i, name in enumerate("AB", start=1):
            log = tmp / f"{name}.log"
            with open(log, "w") as err:
                p = subprocess.Popen(
                    # Update ids unique across the processes, as Telegram's are.
                    [sys.executable, "-m", "tests.redis.instance", str(i * 1_000_000)],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    encoding="utf-8",
                )
            started.append(Proc(p, name, log))
        for proc in started:  # started together, waited for together
            assert proc._line() == {"ready": True}
        yield started[0], started[1]
    finally:
        for proc in started:
            proc.stop()
        for proc in started:
            proc.wait()


async def _migrate(db_url: str) -> None:
    engine = async_engine(db_url)
    await prepare_database(engine)
    await engine.dispose()


class Chat:
    """One Telegram user. Each update goes to the process the test names."""

    def __init__(self, user: int | None = None):
        self.user = user or fresh_user()
        self.last: list[dict[str, Any]] = []
        self.with_buttons: list[dict[str, Any]] = []

    def keep(self, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Take `sent` as the bot's latest reply (for updates sent with Proc.send directly)."""
        self.last = sent
        self.with_buttons += [s for s in sent if s.get("buttons")]
        return sent

    def say(self, proc: Proc, text: str) -> list[dict[str, Any]]:
        return self.keep(proc.send({"user": self.user, "say": text}))

    def button(self, label: str) -> dict[str, Any]:
        """The update pressing the button `label` in the newest message that has it."""
        for sent in reversed(self.with_buttons):
            for text, data in sent["buttons"]:
                if text == label:
                    return {"user": self.user, "callback": data, "message": sent["message"]}
        raise AssertionError(f"no button {label!r}")

    def press(self, proc: Proc, label: str) -> list[dict[str, Any]]:
        return self.keep(proc.send(self.button(label)))

    def texts(self, sent: list[dict[str, Any]] | None = None) -> list[str]:
        return [s["text"] for s in (self.last if sent is None else sent) if s.get("text")]

    def text(self) -> str:
        return "\n".join(self.texts())


@pytest.fixture
def chat() -> Chat:
    return Chat()


# ---------------------------------------------------------------- a private server to stop and restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process of this test alone, on a fixed port across restarts, persisting
    nothing (like .ci/redis.sh's): a restart loses every key, as a crashed cache server would."""

    def __init__(self, binary: str, directory: Path):
        self.binary, self.dir, self.port = binary, directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen([*args, "--dir", str(self.dir)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start: " + (self.dir / "redis.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(redis_url: str, tmp_path: Path) -> Iterator[RedisServer]:
    """Not started: the test decides when Redis is up."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (bash .ci/redis.sh installs it)")
    server = RedisServer(binary, tmp_path)
    yield server
    server.stop()
