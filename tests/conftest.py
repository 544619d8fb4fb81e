"""Shared fixtures: catalogs, templates, and a `BotHarness` that drives the production dispatcher
(bot.app.build_dispatcher) with `dp.feed_update` and a session recording every Bot API request.

Handler tests assert on what a user would see: the texts and buttons the bot sent.

With TEST_REDIS_URL set (CI: .ci/redis.sh), every test built on `make_harness` runs twice: on
memory (MemoryStorage, in-process lock and throttle) and on Redis (the production REDIS_URL path:
RedisStorage, the Redis event lock, update ledger and throttle), ids `[memory]` / `[redis]`;
`-m redis` selects the Redis runs alone. Without it nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiogram import Dispatcher
from aiogram.types import InlineKeyboardMarkup, Message
from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import build_dispatcher
from bot.middlewares import redis_client
from bot.runtime import RecordingSession, Sent, UpdateFactory, make_bot, plain
from bot.settings import Settings
from bot.templates import make_templates
from knowledge.loader import load_catalog
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.db import async_engine, prepare_database, session_factory
from models.privacy import FactorKey, use_factor_key

# The case-lookup factor key (models/privacy.py): one for the test process and, through the
# environment, for the `yichuang` processes the e2e and fault tests start.
os.environ.setdefault("FACTOR_SECRET", "yichuang-tests-factor-key-0123456789")
use_factor_key(FactorKey(os.environ["FACTOR_SECRET"].encode()))

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOT_CATALOG = FIXTURES / "bot_catalog"
TESTS = Path(__file__).resolve().parent

# The handler runs on Redis use a database index of their own and empty it before each test: the
# bot's keys (FSM state, ledger of update ids, throttle buckets) are named by bot id and user id,
# which every handler test shares, so a key left by one test would answer the next. tests/redis/
# use the URL's own index, where keys outlive runs, and pick fresh user ids instead.
HARNESS_REDIS_DB = 15


def harness_redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL")
    return urlsplit(url)._replace(path=f"/{HARNESS_REDIS_DB}").geturl() if url else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis: a handler test run with Redis FSM storage (TEST_REDIS_URL)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the harness, on both backends when a Redis server is given. Not
    tests/redis/: they put Redis in the settings themselves."""
    if (
        "harness_backend" in metafunc.fixturenames
        and harness_redis_url()
        and TESTS / "redis" not in metafunc.definition.path.parents
    ):
        backends = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
        metafunc.parametrize("harness_backend", backends, indirect=True)


@pytest.fixture(scope="session")
def bot_catalog() -> Catalog:
    """Small fictional catalog for handler tests (tests/fixtures/bot_catalog/)."""
    return load_catalog(BOT_CATALOG)


@pytest.fixture(scope="session")
def sample_catalog() -> Catalog:
    """The shipped sample catalog (knowledge/data/)."""
    return load_catalog()


@pytest.fixture(scope="session")
def templates() -> Environment:
    return make_templates()


class BotHarness:
    """One private chat with the bot. `say` and `press` return the requests the bot made."""

    def __init__(self, dp: Dispatcher, user_id: int = 501):
        self.dp = dp
        self.session = RecordingSession()
        self.bot = make_bot(Settings(bot_token=None), session=self.session)
        self.updates = UpdateFactory(self.bot, user_id=user_id)
        self.last: list[Sent] = []
        self.with_buttons: list[Message] = []

    async def feed(self, update: Any) -> list[Sent]:
        await self.dp.feed_update(self.bot, update)
        self.last = self.session.take()
        for s in self.last:
            if s.message is not None and isinstance(s.message.reply_markup, InlineKeyboardMarkup):
                self.with_buttons.append(s.message)
        return self.last

    async def settled(self) -> None:
        """Wait for what the bot writes in the background after answering (unanswered questions,
        update ids): the shutdown hooks drain it, and the bot goes on working afterwards."""
        await self.dp.emit_shutdown()

    async def say(self, text: str | None = None, **content: Any) -> list[Sent]:
        return await self.feed(self.updates.message(text, **content))

    async def press(self, label: str) -> list[Sent]:
        """Press the button labelled `label` in the newest bot message that has it."""
        for msg in reversed(self.with_buttons):
            for row in msg.reply_markup.inline_keyboard:  # type: ignore[union-attr]
                for b in row:
                    if b.text == label:
                        return await self.feed(self.updates.callback(b.callback_data or "", msg))
        raise AssertionError(f"no button {label!r}; buttons: {self.all_buttons()}")

    async def press_data(self, data: str) -> list[Sent]:
        return await self.feed(self.updates.callback(data))

    async def inline(self, query: str) -> list[Sent]:
        return await self.feed(self.updates.inline(query))

    # what the user sees
    def texts(self, sent: list[Sent] | None = None) -> list[str]:
        return [
            plain(s.message.text)
            for s in (self.last if sent is None else sent)
            if s.message and s.message.text
        ]

    def text(self) -> str:
        return "\n".join(self.texts())

    def html(self) -> str:
        return "\n".join(s.message.text for s in self.last if s.message and s.message.text)

    def buttons(self, sent: list[Sent] | None = None) -> list[str]:
        out: list[str] = []
        for s in self.last if sent is None else sent:
            if s.message is not None and isinstance(s.message.reply_markup, InlineKeyboardMarkup):
                out += [b.text for row in s.message.reply_markup.inline_keyboard for b in row]
        return out

    def all_buttons(self) -> list[str]:
        return [b.text for m in self.with_buttons for row in m.reply_markup.inline_keyboard for b in row]  # type: ignore[union-attr]

    def alerts(self) -> list[str]:
        return [s.method.text for s in self.last if s.name == "AnswerCallbackQuery" and s.method.text]  # type: ignore[attr-defined]

    def calls(self, name: str) -> list[Any]:
        return [s.method for s in self.last if s.name == name]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    engine = async_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await prepare_database(engine)
    yield engine, session_factory(engine)
    await engine.dispose()


HarnessMaker = Callable[..., BotHarness]


@pytest.fixture
async def harness_backend(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """The Redis URL the harness's dispatchers use (None: memory), its database emptied first."""
    url = harness_redis_url() if getattr(request, "param", "memory") == "redis" else None
    if url is not None:
        client = redis_client(url)
        await client.flushdb()
        await client.aclose()
    yield url


@pytest.fixture
async def make_harness(
    bot_catalog: Catalog,
    templates: Environment,
    db: tuple[AsyncEngine, async_sessionmaker[AsyncSession]],
    harness_backend: str | None,
) -> AsyncIterator[HarnessMaker]:
    """Build a harness with the production factory; override catalog, matcher, settings as needed."""
    on_redis: list[Dispatcher] = []
    built: list[Dispatcher] = []

    def make(
        *,
        catalog: Catalog | None = None,
        matcher: Any = None,
        settings: Settings | None = None,
        user_id: int = 501,
        **kw: Any,
    ) -> BotHarness:
        cat = catalog or bot_catalog
        settings = settings or Settings(bot_token=None, throttle_rate=0)
        # A test that picks its storage or its Redis keeps it.
        redis = harness_backend is not None and "storage" not in kw and not settings.redis_url
        if redis:
            settings = settings.model_copy(update={"redis_url": harness_backend})
        dp = build_dispatcher(
            settings=settings,
            catalog=cat,
            matcher=matcher or Matcher(cat),
            templates=templates,
            session_factory=db[1],
            **kw,
        )
        if redis:
            on_redis.append(dp)
        built.append(dp)
        return BotHarness(dp, user_id=user_id)

    yield make
    for dp in built:
        await dp.emit_shutdown()  # background writes (update ids, unanswered questions) finish
    for dp in on_redis:
        await dp.storage.close()


@pytest.fixture
def harness(make_harness: HarnessMaker) -> BotHarness:
    return make_harness()
