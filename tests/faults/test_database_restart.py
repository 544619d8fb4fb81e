"""The database server restarted while the bot serves (PostgreSQL from .ci/postgres.sh, stopped and
started with pg_ctl): during the outage updates get the short apology instead of crashing the bot;
afterwards the same dispatcher and delivery worker carry on without anyone restarting them.
SQLite is a file inside the bot's own process: nothing to restart, so PostgreSQL only."""

from __future__ import annotations

import asyncio
import glob
import os
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jinja2 import Environment
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_dispatcher
from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.settings import Settings
from knowledge.matcher import Matcher
from knowledge.schema import Catalog
from models.crud import create_case
from models.db import async_engine, prepare_database, session_factory
from models.notices import enqueue_notice
from tests.cases_handlers.conftest import FACTOR, FOOD, PHONE
from tests.conftest import BotHarness

PG_URL = os.environ.get("TEST_DATABASE_URL")
STATE = Path(os.environ.get("YICHUANG_PG_STATE", "/tmp/yichuang-ci-postgres"))

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set"),
    pytest.mark.skipif(not (STATE / "dir").exists(), reason="no .ci/postgres.sh server to restart"),
]


def pg_ctl(*args: str) -> None:
    """pg_ctl on the .ci/postgres.sh cluster, as the postgres user (the script runs it so)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl") or "pg_ctl"]
    data = Path((STATE / "dir").read_text().strip()) / "data"
    cmd = [found[-1], "-D", str(data), "-w", "-t", "60", *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=90)


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    assert PG_URL
    eng = async_engine(PG_URL)
    async with eng.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await prepare_database(eng)
    yield eng
    await eng.dispose()


async def look_up(h: BotHarness, number: str) -> str:
    await h.say(number)
    await h.say(FACTOR)
    return h.text()


async def test_bot_and_worker_carry_on_after_the_database_restarts(
    engine: AsyncEngine, bot_catalog: Catalog, templates: Environment
) -> None:
    factory = session_factory(engine)
    async with factory() as s:
        made = await create_case(
            session=s,
            catalog=bot_catalog,
            item_name=FOOD,
            applicant_name="王小明",
            phone=PHONE,
            channel="window",
        )
    number = made.case.number
    dp = build_dispatcher(
        settings=Settings(bot_token=None, throttle_rate=0),
        catalog=bot_catalog,
        matcher=Matcher(bot_catalog),
        templates=templates,
        session_factory=factory,
        role_ttl=0,  # every update asks the database who the user is
    )
    h = BotHarness(dp, user_id=7301)
    worker = DeliveryWorker(
        h.bot, factory, DeliveryConfig(rate=50, chat_interval=0, poll_interval=0.1, backoff_base=0.2)
    )
    task = asyncio.create_task(worker.run())
    try:
        assert "已受理" in await look_up(h, number)

        pg_ctl("stop", "-m", "fast")
        try:
            # Down: a short apology, no exception out of the dispatcher, no status shown.
            await h.say(number)
            assert h.texts() and "已受理" not in h.text()
        finally:
            pg_ctl("start", "-o", _server_options())

        # Back: the same dispatcher answers (stale pooled connections are replaced on their own).
        assert "已受理" in await look_up(h, number)
        async with factory() as s:
            enqueue_notice(session=s, chat_id=7302, kind="test", text="重启后的通知")
            await s.commit()
        for _ in range(200):
            if any(m.text == "重启后的通知" for m in h.session.messages.values()):
                break
            await asyncio.sleep(0.05)
        assert any(m.text == "重启后的通知" for m in h.session.messages.values())
    finally:
        worker.stop()
        await task


def _server_options() -> str:
    """The options .ci/postgres.sh started the server with (a plain pg_ctl start forgets them)."""
    opts = Path((STATE / "dir").read_text().strip()) / "data" / "postmaster.opts"
    words = shlex.split(opts.read_text())[1:]
    kept = [w for k, w in enumerate(words) if w != "-D" and (k == 0 or words[k - 1] != "-D")]
    return shlex.join(kept)
