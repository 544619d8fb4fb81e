"""Hostile-input suites: the production dispatcher (bot.app.build_dispatcher via tests/conftest.py's
BotHarness) fed thousands of generated updates, with every reply checked against Telegram's rules.

One `World` per test module: one event loop (asyncio.Runner), one SQLite database seeded with other
people's cases, ratings and complaints, one dispatcher. Each generated example speaks as a fresh
user, so examples do not depend on each other and hypothesis can replay and shrink a failure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
import re
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiogram import Dispatcher
from aiogram.types import Update
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from jinja2 import Environment
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import build_dispatcher
from bot.notices_render import make_notice_renderer
from bot.runtime import Sent
from bot.settings import Settings
from bot.supervision_render import make_supervision_renderer
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.cases import CaseEvent
from models.crud import apply_event, create_case, get_case, subscribe
from models.db import async_engine, prepare_database, session_factory
from models.privacy import mask_name, mask_phone
from models.supervision import file_complaint, publish_announcement, rate_case
from tests.conftest import BotHarness
from tests.hostile.telegram_html import Reply, check_request

T = TypeVar("T")

# The bar (issue 6): at least 2,000 generated cases per suite. derandomize: CI runs the same cases
# every time; no example database, so a local failure cannot change what CI generates.
# HOSTILE_EXAMPLES lowers it for a quick local run; CI uses the default.
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Other people's data, seeded in every world. The fuzzing user owns none of it.
OTHERS = [
    # (item, applicant, phone, note of the last event)
    ("食品经营许可证核发", "甄秘密", "13907317391", "请补交卫生许可秘档甲"),
    ("结婚登记", "龚隐私", "15800428462", "秘档乙：已办结待领取"),
    ("开办餐饮店一件事", "欧阳保密", "18655502950", None),
]
OTHER_CHAT = 900_001  # the other applicants' chat
COMPLAINT_TEXT = "秘档丙：三号窗口工作人员态度恶劣"
ERROR_REPLY = "抱歉，刚才出了点问题"  # bot/templates/error.j2: the errors handler was reached

_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_SPACES = re.compile(r"[\s\-_]")
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})  # as case numbers are read (models/cases.py)


def _flat(text: str) -> str:
    return _SPACES.sub("", text).upper().translate(_FOLD)


class ErrorLog(logging.Handler):
    """Collects ERROR records (the errors handler logs each failure once)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class World:
    runner: asyncio.Runner
    engine: AsyncEngine
    dp: Dispatcher
    harness: BotHarness
    catalog: Catalog
    errors: ErrorLog
    max_examples: int
    numbers: list[str] = field(default_factory=list)  # other people's case numbers
    factors: list[str] = field(default_factory=list)  # their phones' last 4 digits (never generated)
    secrets: list[str] = field(default_factory=list)  # text no reply to the fuzzing user may contain
    event_ids: list[int] = field(default_factory=list)
    rating_ids: list[int] = field(default_factory=list)
    complaint_numbers: list[str] = field(default_factory=list)
    announcement_ids: list[int] = field(default_factory=list)
    examples: int = 0
    _users: Iterator[int] = field(default_factory=lambda: itertools.count(2_000_001))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def fuzz(
        self, strategy: st.SearchStrategy[T], body: Callable[[T], None], regressions: Sequence[T] = ()
    ) -> int:
        """Run `body` on `max_examples` generated values, each as a fresh user; returns how many
        ran, and fails if hypothesis generated fewer than the bar. `regressions`: inputs that once
        failed, always run first (too rare for random generation to find again every time)."""
        start = self.examples

        @settings(FUZZ, max_examples=self.max_examples)
        @given(strategy)
        def run(value: T) -> None:
            # hypothesis prints a nested test's arguments as empty: say what the input was.
            shown = repr(value)
            note(f"input: {shown if len(shown) < 3000 else shown[:3000] + f'… ({len(shown)} chars)'}")
            self.new_user()
            body(value)

        for value in reversed(regressions):
            run = example(value)(run)
        run()
        ran = self.examples - start
        assert ran >= self.max_examples, f"only {ran} cases generated"
        return ran

    def new_user(self) -> int:
        """A fresh user for each example: no FSM state, lockout or throttle carried over."""
        self.examples += 1
        uid = next(self._users)
        self.harness.updates.user_id = uid
        return uid

    def feed(self, update: Update) -> list[Sent]:
        self.errors.records.clear()
        sent = self.run(self.harness.feed(update))
        if self.errors.records:
            r = self.errors.records[0]
            raise AssertionError(f"handler error: {r.getMessage()}") from (
                r.exc_info[1] if r.exc_info else None
            )
        return sent

    def check(self, sent: list[Sent], inputs: list[str]) -> list[Reply]:
        """Every request valid for Telegram; no reply shows an error, a full phone or ID number, or
        another person's case data (unless the user typed that text themselves)."""
        replies = [r for s in sent for r in check_request(s.method)]
        typed = "\n".join(_flat(t) for t in inputs)
        for r in replies:
            assert ERROR_REPLY not in r.plain, f"errors handler reached: {r.plain[:200]!r}"
            for pattern in (_MOBILE, _ID_NUMBER):
                m = pattern.search(r.plain)
                assert m is None, f"unmasked number {m.group()!r} in {r.method}: {r.plain[:300]!r}"
            flat = _flat(r.plain)
            for secret in self.secrets:
                key = _flat(secret)
                if key in flat and key not in typed:
                    raise AssertionError(
                        f"{r.method} shows another case's data {secret!r}: {r.plain[:300]!r}"
                    )
        return replies


async def _seed(world: World, catalog: Catalog, templates: Environment) -> None:
    factory = session_factory(world.engine)
    notice = make_notice_renderer(templates)
    supervision = make_supervision_renderer(templates, catalog)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    for n, (item, name, phone, last_note) in enumerate(OTHERS):
        async with factory() as s:
            made = await create_case(
                session=s,
                catalog=catalog,
                item_name=item,
                applicant_name=name,
                phone=phone,
                channel="window",
                now=now,
            )
        number = made.case.number
        world.numbers.append(number)
        world.factors.append(phone[-4:])
        world.secrets += [number, made.binding_code, name, mask_name(name), phone, mask_phone(phone)]
        async with factory() as s:
            case = await get_case(session=s, number=number)
            assert case is not None
            await subscribe(session=s, case=case, chat_id=OTHER_CHAT + n)
            await s.commit()
        if last_note is None:
            continue
        for k, status in enumerate(["in_review", "correction_required" if n == 0 else "completed"]):
            async with factory() as s:
                await apply_event(
                    session=s,
                    number=number,
                    status=status,
                    actor="api",
                    event_id=f"hostile-{n}-{k}",
                    catalog=catalog,
                    render=notice,
                    note=last_note if k else None,
                    missing_materials=["秘档材料清单甲"] if n == 0 and k else None,
                )
        world.secrets.append(last_note)
    async with factory() as s:
        rated = await rate_case(
            session=s, number=world.numbers[1], chat_id=OTHER_CHAT + 1, stars=1, render=supervision
        )
        assert rated.rating.id is not None
        world.rating_ids.append(rated.rating.id)
    async with factory() as s:
        complaint = await file_complaint(
            session=s, chat_id=OTHER_CHAT, department="scjg", text=COMPLAINT_TEXT, render=supervision
        )
        world.complaint_numbers.append(complaint.number)
        world.secrets.append(COMPLAINT_TEXT)
    async with factory() as s:
        ann = await publish_announcement(
            session=s,
            text="关于调整办公时间的公告",
            user_id=1,
            render=supervision,
            document_file_id="doc-secret-file",
            document_name="公告附件.pdf",
        )
        assert ann.id is not None
        world.announcement_ids.append(ann.id)
    async with factory() as s:
        world.event_ids += [e.id for e in (await s.exec(select(CaseEvent))).all() if e.id is not None]
    # The masked applicant name alone may be a common pattern ("甄*密" is not): keep only the
    # distinctive ones, and the "申请人：" line that only a case status shows.
    world.secrets.append("申请人：")


PG_URL = os.environ.get("TEST_DATABASE_URL")
# PostgreSQL rejects what SQLite stores (NUL characters, over-long strings): the suites run against
# it too when CI provides one, with fewer cases (the 2,000-case bar is met on SQLite).
PG_EXAMPLES = int(os.environ.get("HOSTILE_PG_EXAMPLES", "300"))


def _databases() -> list[Any]:
    pg = pytest.param(
        "postgres",
        marks=[pytest.mark.postgres]
        + ([] if PG_URL else [pytest.mark.skip(reason="TEST_DATABASE_URL not set")]),
    )
    return ["sqlite", pg]


async def _fresh_engine(url: str) -> AsyncEngine:
    engine = async_engine(url)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await prepare_database(engine)
    return engine


@pytest.fixture(scope="module", params=_databases())
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sample_catalog: Catalog,
    templates: Environment,
) -> Iterator[World]:
    runner = asyncio.Runner()
    if request.param == "postgres":
        assert PG_URL
        url, examples = PG_URL, min(PG_EXAMPLES, EXAMPLES)
    else:
        url, examples = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('hostile') / 'bot.db'}", EXAMPLES
    engine = runner.run(_fresh_engine(url))
    dp = build_dispatcher(
        settings=Settings(bot_token=None, throttle_rate=0),
        catalog=sample_catalog,
        matcher=Matcher(sample_catalog),
        templates=templates,
        session_factory=session_factory(engine),
    )
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    w = World(runner, engine, dp, BotHarness(dp), sample_catalog, errors, examples)
    runner.run(_seed(w, sample_catalog, templates))
    try:
        yield w
    finally:
        logging.getLogger().removeHandler(errors)
        runner.run(dp.emit_shutdown())  # background writes (unanswered questions) finish first
        runner.run(engine.dispose())
        runner.close()
