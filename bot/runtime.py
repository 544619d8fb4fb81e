"""Runtimes around the one Dispatcher: long polling (default), webhook, and the local console.

The console feeds updates into the same dispatcher and handlers with a `RecordingSession`: a Bot
session that records each Bot API request and answers it locally instead of over HTTP. Tests and
the benchmark use the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import itertools
import logging
import multiprocessing
import multiprocessing.process
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendDocument,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import BotCommand, Chat, Document, InlineKeyboardMarkup, Message, Update, User
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import build_dispatcher
from bot.dealer import Front, serve_front, update_caller
from bot.metrics import OpsContext, add_ops_routes, ops_for
from bot.middlewares import BeforeSend, KeepResponseModels
from bot.settings import Settings
from bot.templates import make_templates
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.crud import check_factor_key
from models.db import async_engine, prepare_database, session_factory
from models.privacy import load_factor_key, use_factor_key
from models.questions import mask_sensitive

log = logging.getLogger("yichuang")

# The command menu (setMyCommands), in Chinese.
COMMANDS = [
    BotCommand(command="start", description="开始使用"),
    BotCommand(command="help", description="使用帮助"),
    BotCommand(command="departments", description="按部门查找事项"),
    BotCommand(command="windows", description="窗口与首席代表"),
    BotCommand(command="center", description="中心地址、时间和电话"),
    BotCommand(command="status", description="查询办件进度"),
    BotCommand(command="mycases", description="我订阅的办件"),
    BotCommand(command="complain", description="投诉建议"),
    BotCommand(command="news", description="中心公告"),
    BotCommand(command="subscribe_news", description="订阅中心公告"),
]

CONSOLE_BOT_ID = 100000001


# ---------------------------------------------------------------- logging


class MaskingFormatter(logging.Formatter):
    """Phone and ID numbers never reach a log line, whatever a handler or traceback printed."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_sensitive(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """Plain lines or JSON lines (LOG_FORMAT=json), phone and ID numbers masked: bot/logsetup.py."""
    from bot.logsetup import setup_logging as setup

    setup(level, fmt)


# ---------------------------------------------------------------- assembly


@dataclass
class Parts:
    """The long-lived objects a dispatcher is built from (design habit 4)."""

    settings: Settings
    catalog: Catalog
    matcher: Matcher
    templates: Environment
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]

    def dispatcher(self, **overrides: Any) -> Dispatcher:
        return build_dispatcher(
            settings=overrides.pop("settings", self.settings),
            catalog=self.catalog,
            matcher=self.matcher,
            templates=self.templates,
            session_factory=self.session_factory,
            **overrides,
        )


def run_until_done(main: Coroutine[Any, Any, None], *, server: bool = True) -> None:
    """asyncio.run, on uvloop for the servers (bot, webhook workers, API) when it is installed: the
    same webhook traffic costs markedly less CPU on it (bench/bench_load.py). The console keeps the
    standard loop, whose behaviour with a terminal on stdin is the one tested everywhere."""
    factory = None
    if server:
        try:
            import uvloop
        except ImportError:  # Windows, or an install without it: the standard loop works the same
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


async def assemble(settings: Settings, *, migrate: bool = True) -> Parts:
    """Load and check everything before touching Telegram. Raises CatalogError on a bad catalog.
    Webhook worker processes pass migrate=False: the parent brought the schema up to date."""
    catalog = load_catalog(settings.catalog_dir)
    matcher = Matcher(catalog)
    engine = async_engine(settings.database_url)
    if migrate:
        await prepare_database(engine)
    secret = settings.factor_secret.get_secret_value() if settings.factor_secret else None
    use_factor_key(load_factor_key(secret, settings.factor_key_file))
    async with session_factory(engine)() as session:
        await check_factor_key(session=session)
    # Everything built so far (catalog, matcher index, templates, imported modules: ~1 million
    # objects) lives as long as the process. Frozen, the collector stops walking it: a full
    # collection had stalled every update for 100+ ms, the worst latencies under load.
    gc.freeze()
    return Parts(settings, catalog, matcher, make_templates(), engine, session_factory(engine))


def make_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    if session is None and settings.telegram_api_base:
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base.rstrip("/")))
    token = settings.bot_token.get_secret_value() if settings.bot_token else "1:CONSOLE"
    bot = Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    bot.session.middleware(BeforeSend())
    bot.session.middleware(KeepResponseModels())
    return bot


async def set_commands(bot: Bot) -> None:
    try:
        await bot.set_my_commands(COMMANDS)
    except Exception as e:  # noqa: BLE001 - a missing menu must not stop the bot
        log.warning("setMyCommands failed: %s", e)


# ---------------------------------------------------------------- polling and webhook


async def run_bot(parts: Parts) -> None:
    """Polling, or webhook mode when WEBHOOK_URL is set. Returns after SIGTERM/SIGINT, cleaned up."""
    from bot.services import start_services

    bot = make_bot(parts.settings)
    dp = parts.dispatcher(reply_in_response=parts.settings.webhook_url is not None)
    # Integration API (when API_TOKEN is set), notice delivery and the daily digest (issue 4).
    services = await start_services(parts, bot)
    try:
        if parts.settings.webhook_url:
            await _run_webhook(parts.settings, bot, dp)
        else:
            await _run_polling(bot, dp)
    finally:
        await services.stop()
        # Background writes (update ids, unanswered questions) are drained here once nothing is
        # handled any more: aiohttp's own on_shutdown runs before the updates in hand finish.
        await dp.emit_shutdown(bot=bot)
        await bot.session.close()
        await parts.engine.dispose()


async def _run_polling(bot: Bot, dp: Dispatcher) -> None:
    me = await bot.me()
    # getUpdates is refused while a webhook is set (e.g. left over from webhook mode).
    await bot.delete_webhook(drop_pending_updates=False)
    await set_commands(bot)
    log.info("一窗 running as @%s (long polling)", me.username)
    # handle_signals: SIGTERM/SIGINT stop polling after the updates in hand are handled.
    await dp.start_polling(
        bot, handle_signals=True, close_bot_session=False, allowed_updates=dp.resolve_used_update_types()
    )
    log.info("stopped")


def webhook_target(settings: Settings) -> str:
    """WEBHOOK_URL is the public address; a bare origin gets WEBHOOK_PATH appended."""
    url = (settings.webhook_url or "").rstrip("/")
    return url + settings.webhook_path if urlsplit(url).path in ("", "/") else url


# Updates of one webhook process handled at once; later ones wait their turn in arrival order.
# Unbounded, a burst started every update together and throughput collapsed. When updates waited
# for group commits, 16 capped a process below 300/s and 64 let one commit release so many
# updates at once that a loop turn took 50-130 ms. Nothing waits for a commit now; 4 and 8 were
# not better than 24 (bench/bench_load.py, 500/s on two workers).
UPDATE_CONCURRENCY = 24


class BoundedRequestHandler(SimpleRequestHandler):
    """aiogram's webhook handler, handling each update inside its HTTP request so that the update's
    last reply can go back in the response (bot/middlewares.ReplyInResponse), as JSON
    (bot/dealer.update_caller), with at most UPDATE_CONCURRENCY updates in progress. Telegram waits for
    the response, but only as long as the handler takes; past aiogram's 55 s the response goes out
    empty and the handler finishes in the background, so a slow handler still never makes Telegram
    redeliver."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret_token: str) -> None:
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret_token)
        self._slots = asyncio.Semaphore(UPDATE_CONCURRENCY)
        self._call = update_caller(bot, dispatcher)  # the same as a worker behind the front

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._slots:
            reply = await self._call(body)
        return web.Response(body=reply, content_type="application/json")


def webhook_secret(settings: Settings) -> str:
    """WEBHOOK_SECRET, or a random one made once per start and shared by every worker process."""
    return (
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_urlsafe(32)
    )


def webhook_app(
    settings: Settings, bot: Bot, dp: Dispatcher, *, secret: str | None = None
) -> tuple[web.Application, str]:
    """The aiohttp app receiving updates, and the secret Telegram must send with each one.

    Always checked: without a configured WEBHOOK_SECRET a random one is generated and handed to
    Telegram at setWebhook; a request without the right header gets 401 and never reaches a handler.
    """
    from aiogram.webhook.aiohttp_server import setup_application

    secret = secret or webhook_secret(settings)
    app = web.Application()
    BoundedRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(
        app, path=settings.webhook_path
    )
    setup_application(app, dp, bot=bot)
    add_ops_routes(app, ops_for(dp, bot))  # GET /healthz and /metrics on every webhook worker
    return app, secret


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def front_app(settings: Settings, front: Front, ops: OpsContext) -> web.Application:
    """The parent's HTTP server with WEB_WORKERS > 1: updates dealt to the workers, and the same
    /healthz and /metrics (with the workers' counters summed in) as a single process serves."""
    app = web.Application()
    app.router.add_post(settings.webhook_path, front.handle)
    add_ops_routes(app, ops, more_metrics=front.worker_metrics)
    return app


async def _run_webhook(settings: Settings, bot: Bot, dp: Dispatcher) -> None:
    """Webhook mode. With WEB_WORKERS=1 this process takes the updates and handles them. With
    WEB_WORKERS=N (`yichuang run --workers N`) it is the front (bot/dealer.py), the only process
    on the port, and runs the background services; N spawned worker processes handle the updates,
    each user's always in the same one."""
    secret = webhook_secret(settings)
    stop = _stop_event()
    front: Front | None = None
    pool: WebWorkers | None = None
    sockets: Path | None = None
    if settings.web_workers > 1:
        sockets = Path(tempfile.mkdtemp(prefix="yichuang-"))
        front = Front(settings.web_workers, secret, str(sockets / "front.sock"))
        await front.start()
        pool = WebWorkers(settings, front.socket_path)
        pool.start(settings.web_workers)
        app = front_app(settings, front, ops_for(dp, bot))
    else:
        app, _ = webhook_app(settings, bot, dp, secret=secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if front is not None and pool is not None:
            # Telegram's first updates should not wait for workers still loading the catalog.
            deadline = time.monotonic() + WORKERS_READY_TIMEOUT
            while front.connected() < settings.web_workers and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                pool.replace_dead()
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        await bot.set_webhook(
            webhook_target(settings),
            secret_token=secret,
            allowed_updates=dp.resolve_used_update_types(),
            max_connections=settings.webhook_max_connections,
        )
        await set_commands(bot)
        log.info(
            "一窗 webhook on %s:%s%s (%d worker process%s)",
            settings.web_host,
            settings.web_port,
            settings.webhook_path,
            settings.web_workers,
            "es" if settings.web_workers > 1 else "",
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if pool is not None and not stop.is_set():
                pool.replace_dead()
    finally:
        await runner.cleanup()  # the updates in hand are answered first
        if front is not None:
            await front.stop()
        if pool is not None:
            pool.stop()
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)
        log.info("stopped")


WORKERS_READY_TIMEOUT = 120.0  # seconds for every worker to load the catalog and connect


class WebWorkers:
    """The webhook worker processes (spawned, not forked: the parent already runs an event loop
    and threads). A worker that dies is replaced; all are stopped with the parent."""

    STOP_TIMEOUT = 15.0

    def __init__(self, settings: Settings, socket_path: str) -> None:
        self.settings, self.socket_path = settings, socket_path
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []

    def _spawn(self, index: int) -> multiprocessing.process.BaseProcess:
        proc = self.ctx.Process(
            target=webhook_worker_main,
            args=(self.settings, self.socket_path, index, os.getpid()),
            name=f"yichuang-web-{index}",
        )
        proc.start()
        return proc

    def start(self, n: int) -> None:
        self.procs = [self._spawn(k) for k in range(n)]

    def replace_dead(self) -> None:
        for k, proc in enumerate(self.procs):
            if not proc.is_alive():
                log.warning("webhook worker %d exited with %s; starting a new one", k, proc.exitcode)
                self.procs[k] = self._spawn(k)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            proc.join(self.STOP_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join()


def webhook_worker_main(settings: Settings, socket_path: str, index: int, parent_pid: int) -> None:
    """Entry point of webhook worker process `index` (0..N-1): handle the updates the front deals
    it until the front closes the connection, SIGTERM/SIGINT, or the parent is gone (a SIGKILLed
    parent must not leave orphans)."""
    setup_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        parts = await assemble(settings, migrate=False)
        bot = make_bot(settings)
        dp = parts.dispatcher(reply_in_response=True)
        stop = _stop_event()
        call = update_caller(bot, dp)
        serving = asyncio.create_task(serve_front(socket_path, index, call, concurrency=UPDATE_CONCURRENCY))
        try:
            while not serving.done() and not stop.is_set() and os.getppid() == parent_pid:
                await asyncio.wait({serving}, timeout=1.0)
            if not serving.done():
                serving.cancel()  # stops taking updates; the ones in hand are finished first
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await serving
        finally:
            await dp.emit_shutdown(bot=bot)
            await bot.session.close()
            await parts.engine.dispose()
            log.info("webhook worker %d stopped", index)

    run_until_done(main())


# ---------------------------------------------------------------- recording session (console, tests, bench)


@dataclass
class Sent:
    """One Bot API request as the console and tests see it."""

    method: TelegramMethod[Any]
    message: Message | None = None  # what the bot sent or edited, when the request made one

    @property
    def name(self) -> str:
        return type(self.method).__name__


class RecordingSession(BaseSession):
    """Answers Bot API requests locally: messages get ids and are kept, everything else is True."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Sent] = []
        self.messages: dict[tuple[int, int], Message] = {}
        self._ids = itertools.count(1)
        self.me = User(id=CONSOLE_BOT_ID, is_bot=True, first_name="一窗", username="yichuang_bot")

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        sent = Sent(method)
        self.requests.append(sent)
        if isinstance(method, GetMe):
            return self.me
        if isinstance(method, SendMessage | SendDocument):
            sent.message = self._message(bot, int(method.chat_id), next(self._ids), method)
            return sent.message
        if isinstance(method, EditMessageText | EditMessageReplyMarkup) and method.message_id is not None:
            sent.message = self._message(bot, int(method.chat_id or 0), method.message_id, method)
            return sent.message
        return True

    def _message(self, bot: Bot, chat_id: int, message_id: int, method: Any) -> Message:
        old = self.messages.get((chat_id, message_id))
        text = getattr(method, "text", None)
        if text is None and isinstance(method, EditMessageReplyMarkup) and old is not None:
            text = old.text
        markup = method.reply_markup if isinstance(method.reply_markup, InlineKeyboardMarkup) else None
        doc = None
        if isinstance(method, SendDocument):
            name = (
                getattr(method.document, "filename", None)
                or Path(str(getattr(method.document, "path", "file"))).name
            )
            doc = Document(file_id=f"f{message_id}", file_unique_id=f"u{message_id}", file_name=name)
        msg = Message(
            message_id=message_id,
            date=datetime.now(UTC),
            chat=Chat(id=chat_id, type="private"),
            from_user=self.me,
            text=text,
            caption=getattr(method, "caption", None),
            document=doc,
            reply_markup=markup,
        ).as_(bot)
        self.messages[(chat_id, message_id)] = msg
        return msg

    def take(self) -> list[Sent]:
        """Requests recorded since the last take()."""
        out, self.requests = self.requests, []
        return out


@dataclass
class UpdateFactory:
    """Builds private-chat updates as Telegram would send them, bound to `bot` (so shortcuts such
    as message.answer work without aiogram's JSON round trip in feed_update)."""

    bot: Bot
    user_id: int = 10001
    first_name: str = "访客"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _user(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": "zh-hans",
        }

    def message(self, text: str | None = None, **content: Any) -> Update:
        n = next(self._ids)
        msg: dict[str, Any] = {
            "message_id": 10_000_000 + n,
            "date": int(time.time()),
            "chat": {"id": self.user_id, "type": "private", "first_name": self.first_name},
            "from": self._user(),
            **content,
        }
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return Update.model_validate({"update_id": n, "message": msg}, context={"bot": self.bot})

    def callback(self, data: str, message: Message | None = None) -> Update:
        n = next(self._ids)
        cq: dict[str, Any] = {
            "id": f"cq{n}",
            "from": self._user(),
            "chat_instance": "local",
            "data": data,
        }
        if message is not None:
            cq["message"] = message.model_dump(exclude_none=True, by_alias=True)
        return Update.model_validate({"update_id": n, "callback_query": cq}, context={"bot": self.bot})

    def inline(self, query: str) -> Update:
        n = next(self._ids)
        iq = {"id": f"iq{n}", "from": self._user(), "query": query, "offset": ""}
        return Update.model_validate({"update_id": n, "inline_query": iq}, context={"bot": self.bot})


# ---------------------------------------------------------------- console


_TAG = re.compile(r"<[^>]+>")


def plain(html_text: str) -> str:
    return html.unescape(_TAG.sub("", html_text))


def buttons(message: Message | None) -> list[list[tuple[str, str]]]:
    markup = message.reply_markup if message is not None else None
    if not isinstance(markup, InlineKeyboardMarkup):
        return []
    return [[(b.text, b.callback_data or b.url or "") for b in row] for row in markup.inline_keyboard]


class Console:
    """Chat with the bot in a terminal. Non-TTY: one message a line, every reply printed with its
    buttons as [label]; `> label` presses that button in the latest reply that has it."""

    def __init__(self, parts: Parts, out: TextIO, user_id: int, numbered: bool):
        self.session = RecordingSession()
        self.bot = make_bot(parts.settings.model_copy(update={"bot_token": None}), session=self.session)
        # One local user typing (or a pipe delivering lines at once): throttling would only get in the way.
        self.dp = parts.dispatcher(settings=parts.settings.model_copy(update={"throttle_rate": 0.0}))
        self.updates = UpdateFactory(self.bot, user_id=user_id)
        self.out, self.numbered = out, numbered
        self.history: list[Message] = []  # bot messages with buttons, newest last

    async def say(self, text: str) -> None:
        await self._feed(self.updates.message(text))

    async def press(self, label: str) -> bool:
        for msg in reversed(self.history):
            flat = [b for row in buttons(msg) for b in row]
            hit = next((b for b in flat if b[0] == label), None) or next(
                (b for b in flat if label and label in b[0]), None
            )
            if hit is not None:
                await self._feed(self.updates.callback(hit[1], msg))
                return True
        return False

    async def press_number(self, n: int) -> bool:
        flat = [b for row in buttons(self.history[-1]) for b in row] if self.history else []
        if not 1 <= n <= len(flat):
            return False
        await self._feed(self.updates.callback(flat[n - 1][1], self.history[-1]))
        return True

    async def _feed(self, update: Update) -> None:
        await self.dp.feed_update(self.bot, update)
        for sent in self.session.take():
            self._show(sent)

    def _show(self, sent: Sent) -> None:
        m = sent.method
        if sent.message is not None:
            msg = sent.message
            if msg.document is not None:
                self._print(
                    f"[文件] {msg.document.file_name}" + (f"  {plain(msg.caption)}" if msg.caption else "")
                )
            elif msg.text:
                self._print(plain(msg.text))
            rows = buttons(msg)
            if rows:
                self.history = [h for h in self.history if h.message_id != msg.message_id] + [msg]
                k = itertools.count(1)
                for row in rows:
                    if self.numbered:
                        self._print("  ".join(f"[{next(k)}] {label}" for label, _ in row))
                    else:
                        self._print(" ".join(f"[{label}]" for label, _ in row))
            self._print("")
        elif type(m).__name__ == "AnswerCallbackQuery" and getattr(m, "text", None):
            self._print(f"（提示）{m.text}\n")  # type: ignore[attr-defined]

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


CONSOLE_HINT = (
    "这是本地控制台：与真实机器人相同的回答，不需要 Telegram。\n"
    "连接真实的 Telegram 机器人：向 @BotFather 申请令牌，设置环境变量 BOT_TOKEN=<令牌>（或写入 .env），"
    "然后运行 yichuang run。"
)


async def run_console(
    parts: Parts, *, user_id: int, stdin: TextIO, stdout: TextIO, hint: bool = False
) -> None:
    interactive = stdin.isatty() and stdout.isatty()
    console = Console(parts, stdout, user_id, numbered=interactive)
    try:
        if interactive:
            await _interactive(console, parts, hint)
        else:
            if hint:
                print(CONSOLE_HINT, file=sys.stderr)
            for line in stdin:
                await _line(console, line.rstrip("\r\n"))
    finally:
        await console.dp.emit_shutdown(bot=console.bot)  # unanswered questions still queued
        await parts.engine.dispose()


async def _line(console: Console, line: str) -> None:
    if not line.strip():
        return
    if line.startswith(">"):
        label = line[1:].strip()
        if not await console.press(label):
            console._print(f"（没有找到按钮 [{label}]）\n")
        return
    await console.say(line)


async def _interactive(console: Console, parts: Parts, hint: bool) -> None:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    print(f"一窗 · {parts.catalog.center.name} 办事助手（本地控制台）")
    if hint:
        print(CONSOLE_HINT)
    print("直接输入问题；输入按钮编号或“> 按钮名”点按钮；Ctrl-D 退出。\n")
    await console.say("/start")
    while True:
        try:
            line = await asyncio.to_thread(input, "你：")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        line = line.strip()
        if line.isdigit() and len(line) <= 2:
            if not await console.press_number(int(line)):
                print("（没有这个按钮）\n")
            continue
        await _line(console, line)
