"""Load in webhook mode: `yichuang run` on loopback, simulated users posting updates. Not a test.

    python -m bench.bench_load                                   # SQLite, 1 worker, 300/500/700 per s
    python -m bench.bench_load --workers 2 --redis               # 2 processes sharing FSM in Redis
    python -m bench.bench_load --database-url "$TEST_DATABASE_URL"   # PostgreSQL
    python -m bench.bench_load --rates 500 --duration 30 --lookup-share 0.3

The bot is the real console script in webhook mode (WEBHOOK_URL, WEBHOOK_SECRET, WEB_WORKERS),
its replies going to a minimal Bot API stub in this process that answers every call at once (the
emulator is far slower than the bot, so it would measure itself). Users are open-loop: update k is
due at t0 + k/rate whatever happened before, spread round-robin over `--users` Telegram users (each
user writes every users/rate seconds, slower than the per-user throttle), on as many connections
at a time as the bot's setWebhook max_connections allows (Telegram: at most 100, 40 if unset), one
update per connection until it is answered. Latency is from the moment an update was due to
the first reply reaching that chat, whether as a sendMessage call to the stub or inside the webhook's
HTTP response, where the bot puts an update's last reply (bot/middlewares.ReplySlot) as it does in
production (coordinated omission avoided: queueing in this process counts against the bot).

Traffic: questions from bench/questions.*.jsonl; `--lookup-share` of the users look up a case
instead (case number, then the second factor: two updates, both answered from the database).
With several workers and no Redis each process has its own FSM, so a factor may reach a process
that never saw the number: use --redis for lookups across workers (as production must).

Bar (issue 6): >= 500 updates/s sustained, p99 < 200 ms, SQLite, this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web

from bench import BENCH_FACTOR_SECRET
from bot.settings import Settings
from knowledge.loader import load_catalog
from models.crud import create_case
from models.db import async_engine, prepare_database, session_factory
from models.privacy import FactorKey, use_factor_key

HERE = Path(__file__).resolve().parent
TOKEN = "123456:LOAD"
SECRET = "bench-secret-0123456789"
# Warm-up: every worker's answer memo and caches hold the common questions, as in a bot that has
# been running for a while (cold, the first seconds of a step measured first-time matching).
WARMUP_RATE = 150
DEFAULT_MAX_CONNECTIONS = 40  # Telegram's, when setWebhook names none
FALLBACK = ["开饭馆要办什么证", "结婚登记要带什么", "身份证丢了怎么补办", "二手房过户", "驾照到期换证"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def questions() -> list[str]:
    out: list[str] = []
    for path in sorted(HERE.glob("questions.*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["q"])
    return out or FALLBACK


# ---------------------------------------------------------------- the Bot API stub


@dataclass
class Stub:
    """Answers every Bot API call at once; notes when each chat got its first reply."""

    pending: dict[int, float] = field(default_factory=dict)  # chat -> when its update was due
    latencies: list[float] = field(default_factory=list)
    dues: list[float] = field(default_factory=list)  # when each answered update was due
    calls: dict[str, int] = field(default_factory=dict)
    webhook_set: asyncio.Event = field(default_factory=asyncio.Event)
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # as the bot asked in setWebhook
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] = self.calls.get(method, 0) + 1
        form = await request.post()
        if method == "getMe":
            me = {"id": 123456, "is_bot": True, "first_name": "一窗", "username": "yichuang_load_bot"}
            return web.json_response({"ok": True, "result": me})
        if method == "setWebhook":
            self.max_connections = int(str(form.get("max_connections", DEFAULT_MAX_CONNECTIONS)))
            self.webhook_set.set()
        if method in ("sendMessage", "sendDocument"):
            chat = int(str(form.get("chat_id", "0")))
            self.replied(chat)
            msg = {
                "message_id": next(self.ids),
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private"},
                "text": str(form.get("text", "")),
            }
            return web.json_response({"ok": True, "result": msg})
        return web.json_response({"ok": True, "result": True})

    def replied(self, chat: int) -> None:
        """A reply reached `chat`: by a Bot API call, or inside the webhook's HTTP response."""
        due = self.pending.pop(chat, None)
        if due is not None:
            self.latencies.append(time.monotonic() - due)
            self.dues.append(due)


# A reply the bot put in the webhook response: JSON naming the method and the chat.
IN_RESPONSE = re.compile(rb'^\{"method": "(\w+)", "chat_id": (-?\d+)')


# ---------------------------------------------------------------- users


@dataclass
class LoadUser:
    uid: int
    case: tuple[str, str] | None  # (number, factor) for a user who looks up a case
    step: int = 0

    def next_text(self, qs: list[str], rng: random.Random) -> str:
        if self.case is None:
            return rng.choice(qs)
        self.step += 1
        return f"我的件 {self.case[0]}" if self.step % 2 else self.case[1]


def update_json(update_id: int, uid: int, text: str) -> bytes:
    msg = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": uid, "type": "private", "first_name": "用户"},
        "from": {"id": uid, "is_bot": False, "first_name": "用户", "language_code": "zh-hans"},
        "text": text,
    }
    return json.dumps({"update_id": update_id, "message": msg}, ensure_ascii=False).encode()


# ---------------------------------------------------------------- bot processes


def bot_pids(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


async def seed_cases(url: str, n: int) -> list[tuple[str, str]]:
    catalog = load_catalog()
    engine = async_engine(url)
    await prepare_database(engine)
    factory = session_factory(engine)
    item = catalog.items[0].name
    out = []
    async with factory() as s:
        for k in range(n):
            phone = f"139{k:08d}"
            made = await create_case(
                session=s,
                catalog=catalog,
                item_name=item,
                applicant_name="李四",
                phone=phone,
                channel="window",
            )
            out.append((made.case.number, phone[-4:]))
    await engine.dispose()
    return out


# ---------------------------------------------------------------- one run


@dataclass
class Step:
    rate: float
    sent: int
    refused: int
    replies: int
    seconds: float
    latencies: list[float]
    cpu: float
    driver_cpu: float  # this process: the simulated users and the Bot API stub
    dues: list[float] = field(default_factory=list)

    WINDOW = 20.0  # seconds: a long step also reports p99 per window, to show it is sustained

    def windows(self) -> str:
        if self.seconds < 3 * self.WINDOW or not self.dues:
            return ""
        start = min(self.dues)
        by: dict[int, list[float]] = {}
        for due, lat in zip(self.dues, self.latencies, strict=True):
            by.setdefault(int((due - start) // self.WINDOW), []).append(lat)
        p99s = [sorted(v)[min(len(v) - 1, int(len(v) * 0.99))] * 1000 for _, v in sorted(by.items())]
        return f"\n  p99 per {self.WINDOW:g} s: " + ", ".join(f"{p:.0f}" for p in p99s) + " ms"

    def line(self) -> str:
        lat = sorted(self.latencies) or [float("nan")]
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        lost = self.sent - self.replies
        return (
            f"target {self.rate:5.0f}/s  achieved {self.replies / self.seconds:6.1f} replies/s  "
            f"p50 {p50:6.1f} ms  p99 {p99:7.1f} ms  max {lat[-1] * 1000:7.1f} ms  "
            f"no reply {lost}  non-200 {self.refused}  bot CPU {self.cpu / self.seconds:4.0%}  "
            f"({self.cpu / max(self.replies, 1) * 1000:.2f} ms/update; load generator "
            f"{self.driver_cpu / max(self.replies, 1) * 1000:.2f} ms/update)" + self.windows()
        )


class TelegramSide:
    """Telegram's side of the webhook: at most `limit` kept-alive HTTP/1.1 connections, one update
    at a time on each until it is answered. Plain asyncio streams rather than aiohttp's client:
    this process shares the bot's two cores, and aiohttp's client cost it about 0.3 ms per update
    that the bot then could not have (a real Telegram is not on the bot's machine)."""

    def __init__(self, port: int, path: str, limit: int) -> None:
        self.port = port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n"
        ).encode()
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, response body); ConnectionError when the connection failed."""
        async with self.slots:
            reader, writer = (
                self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
            )
            try:
                writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status = int((await reader.readline()).split()[1])
                length, keep = 0, True
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        keep = False
                data = await reader.readexactly(length) if length else b""
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                writer.close()
                raise ConnectionError(str(e)) from e
            if keep:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return status, data

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def drive(
    tg: TelegramSide,
    stub: Stub,
    users: list[LoadUser],
    qs: list[str],
    rate: float,
    seconds: float,
    ids: itertools.count[int],
    pids: list[int],
) -> Step:
    rng = random.Random(7)
    total = int(rate * seconds)
    refused = 0
    stub.latencies, stub.dues = [], []
    stub.pending.clear()

    async def post(due: float, user: LoadUser) -> None:
        nonlocal refused
        body = update_json(next(ids), user.uid, user.next_text(qs, rng))
        stub.pending[user.uid] = due
        try:
            status, answer = await tg.post(body)
        except ConnectionError:
            refused += 1
            return
        if status != 200:
            refused += 1
        elif (m := IN_RESPONSE.search(answer)) is not None:
            key = f"{m.group(1).decode()} (in webhook response)"
            stub.calls[key] = stub.calls.get(key, 0) + 1
            stub.replied(int(m.group(2)))

    cpu0, own0 = cpu_seconds(pids), time.process_time()
    t0 = time.monotonic()
    tasks = []
    for k in range(total):
        due = t0 + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(due, users[k % len(users)])))
    await asyncio.gather(*tasks)
    # Replies still on their way: give them a moment, the latency keeps counting.
    for _ in range(100):
        if not stub.pending:
            break
        await asyncio.sleep(0.05)
    elapsed = max(time.monotonic() - t0, seconds)
    return Step(
        rate,
        total,
        refused,
        len(stub.latencies),
        elapsed,
        list(stub.latencies),
        cpu_seconds(pids) - cpu0,
        time.process_time() - own0,
        list(stub.dues),
    )


async def run(a: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    db_url = a.database_url or f"sqlite:///{tmp / 'load.db'}"
    redis_proc: subprocess.Popen[bytes] | None = None
    bot: subprocess.Popen[bytes] | None = None
    stub = Stub()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", stub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    api_port, web_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()
    try:
        cases = await seed_cases(db_url, a.cases)
        env = {
            # The developer's own settings (a .env, exported DATABASE_URL …) must not leak in.
            **{k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields},
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE": f"http://127.0.0.1:{api_port}",
            "DATABASE_URL": db_url,
            "WEBHOOK_URL": f"http://127.0.0.1:{web_port}",
            "WEBHOOK_SECRET": SECRET,
            "WEB_PORT": str(web_port),
            "WEB_WORKERS": str(a.workers),
            "LOG_LEVEL": "WARNING",
            "FACTOR_SECRET": BENCH_FACTOR_SECRET,  # the key the seeded cases were hashed with
        }
        if a.redis:
            port = free_port()
            redis_proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        script = Path(sys.executable).with_name("yichuang")
        cmd = [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot.cli", "run"]
        if a.profile:
            cmd = [sys.executable, "-m", "cProfile", "-o", str(a.profile), "-m", "bot.cli", "run"]
        log = (tmp / "bot.log").open("wb")
        bot = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        # Set once every worker is connected to the front (bot/dealer.py).
        await asyncio.wait_for(stub.webhook_set.wait(), 120)

        qs = questions()
        rng = random.Random(1)
        n_lookup = int(a.users * a.lookup_share)
        users = [
            LoadUser(7_000_000 + k, cases[rng.randrange(len(cases))] if k < n_lookup else None)
            for k in range(a.users)
        ]
        rng.shuffle(users)
        url = f"http://127.0.0.1:{web_port}/telegram/webhook"
        # Update ids new to the database even when it is reused (a PostgreSQL server kept between
        # runs): the bot drops an id its update ledger already holds, as it must for Telegram's.
        ids = itertools.count(int(time.time()) * 1000)
        tg = TelegramSide(web_port, "/telegram/webhook", stub.max_connections)
        async with aiohttp.ClientSession() as http:
            # Wrong secret first: every worker must refuse it.
            async with http.post(
                url, data=update_json(0, 1, "x"), headers={"X-Telegram-Bot-Api-Secret-Token": "no"}
            ) as r:
                assert r.status == 401, r.status
            await drive(tg, stub, users, qs, WARMUP_RATE, a.warmup, ids, [bot.pid])
            # Every other case-looking user sends its number now, so that in each round over the
            # users half of them send a number and half the 4 digits. Otherwise all 4-digit steps
            # (the costly half of a lookup) fell in the same stretch of each round: bursts no crowd
            # of independent people makes, which the latencies then measured.
            primed = [u for u in users if u.case is not None and u.uid % 2 and u.step % 2 == 0]
            if primed:
                await drive(tg, stub, primed, qs, 100, len(primed) / 100, ids, [bot.pid])
            pids = bot_pids(bot.pid)
            mem0 = rss_mb(pids)
            print(
                f"database {'PostgreSQL' if a.database_url else 'SQLite'}, {a.workers} worker process(es)"
                f"{', Redis FSM/throttle' if a.redis else ', memory FSM'}, {a.users} users "
                f"({n_lookup} looking up cases), {len(qs)} distinct questions, {a.duration:g} s per step"
            )
            print(f"bot RSS after warm-up: {' + '.join(f'{m:.0f}' for m in mem0)} MB")
            for rate in a.rates:
                # This process's own full collections stalled it up to 120 ms mid-step, sending
                # updates late: latency the bot did not cause. None during a step.
                gc.collect()
                gc.freeze()
                gc.disable()
                try:
                    step = await drive(tg, stub, users, qs, rate, a.duration, ids, pids)
                finally:
                    gc.enable()
                print(step.line(), flush=True)
            mem1 = rss_mb(pids)
            print(f"bot RSS at the end:    {' + '.join(f'{m:.0f}' for m in mem1)} MB")
        print(f"Bot API calls seen by the stub: {dict(sorted(stub.calls.items()))}")
    finally:
        if bot is not None:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(bot.pid, signal.SIGKILL)
                bot.wait()
            errors = [
                ln for ln in (tmp / "bot.log").read_text(errors="replace").splitlines() if "ERROR" in ln
            ]
            print(f"bot exit code {bot.returncode}, {len(errors)} ERROR lines in its log")
            for line in errors[:5]:
                print("  " + line)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        await runner.cleanup()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def main() -> None:
    use_factor_key(FactorKey(BENCH_FACTOR_SECRET.encode()))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[300.0, 500.0, 700.0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per rate step")
    p.add_argument("--warmup", type=float, default=8.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--redis", action="store_true", help="start a redis-server and set REDIS_URL")
    p.add_argument(
        "--database-url", help="e.g. $TEST_DATABASE_URL (PostgreSQL); default: a fresh SQLite file"
    )
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--lookup-share", type=float, default=0.3)
    p.add_argument("--profile", type=Path, help="run the bot under cProfile, stats written here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (bot.log, database)")
    # uvloop, like the bot: the load generator shares the machine's two cores with it.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
