"""Backup and restore as docs/operations.md describes them: back up a live database, wipe it,
restore it, and find the case again with its second factor. SQLite always; PostgreSQL when
TEST_DATABASE_URL is set (.ci/postgres.sh)."""

from __future__ import annotations

import asyncio
import glob
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog
from models.crud import create_case, verify_lookup
from models.db import async_engine, prepare_database, session_factory
from tests.cases_handlers.conftest import FOOD, PHONE

DB = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
Maker = Callable[..., Awaitable[Any]]
PG_URL = os.environ.get("TEST_DATABASE_URL")


async def sh(*cmd: str) -> None:
    await asyncio.to_thread(subprocess.run, cmd, check=True, timeout=120)


async def found(factory: async_sessionmaker[AsyncSession], number: str) -> bool:
    async with factory() as s:
        result = await verify_lookup(session=s, number=number, factor=PHONE[-4:], user_key="tg:backup")
    return result.ok and result.case is not None and result.case.number == number


@pytest.mark.parametrize("method", ["sqlite3 .backup", "VACUUM INTO"])
async def test_sqlite_backup_while_running_then_wipe_and_restore(
    tmp_path: Path, db: DB, new_case: Maker, method: str
) -> None:
    live = tmp_path / "bot.db"  # tests/conftest.py's database, open and in WAL mode
    number = (await new_case()).case.number
    backup = tmp_path / "backup.db"
    async with db[1]() as s:  # a reader holds the database open during the backup
        await s.exec(text("SELECT count(*) FROM cases"))  # type: ignore[call-overload]
        if method == "sqlite3 .backup":
            if shutil.which("sqlite3") is None:
                pytest.skip("sqlite3 command-line tool not installed")
            await sh("sqlite3", str(live), f".backup '{backup}'")
        else:
            with sqlite3.connect(live) as conn:
                conn.execute("VACUUM INTO ?", (str(backup),))
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    await db[0].dispose()  # the bot is stopped …
    for path in glob.glob(f"{live}*"):  # … and the database lost, WAL and all
        os.remove(path)
    shutil.copy(backup, live)  # restore: the backup file becomes the database

    engine = async_engine(f"sqlite+aiosqlite:///{live}")
    try:
        await prepare_database(engine)  # start-up migrations accept the restored file
        assert await found(session_factory(engine), number)
        assert not await found(session_factory(engine), number[:-1] + ("0" if number[-1] != "0" else "1"))
    finally:
        await engine.dispose()


def _pg_tool(name: str) -> str:
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    tool = shutil.which(name)
    if tool is None:
        pytest.skip(f"{name} not installed")
    return tool


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")
async def test_postgres_pg_dump_then_drop_and_pg_restore(tmp_path: Path, bot_catalog: Catalog) -> None:
    assert PG_URL
    server = make_url(PG_URL)
    name = f"yc_backup_{secrets.token_hex(4)}"
    url = server.set(database=name)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = async_engine(server.render_as_string(hide_password=False))

    async def ddl(statement: str) -> None:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))

    await ddl(f'CREATE DATABASE "{name}"')
    dump = tmp_path / "yichuang.dump"
    try:
        engine = async_engine(url.render_as_string(hide_password=False))
        await prepare_database(engine)
        async with session_factory(engine)() as s:
            new = await create_case(
                session=s,
                catalog=bot_catalog,
                item_name=FOOD,
                applicant_name="王小明",
                phone=PHONE,
                channel="window",
            )
        number = new.case.number
        # While the database is in use (the engine's pool holds connections): pg_dump reads a snapshot.
        await sh(_pg_tool("pg_dump"), "-Fc", "-f", str(dump), libpq)
        await engine.dispose()

        await ddl(f'DROP DATABASE "{name}"')
        await ddl(f'CREATE DATABASE "{name}"')
        await sh(_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "-d", libpq, str(dump))
        engine = async_engine(url.render_as_string(hide_password=False))
        try:
            await prepare_database(engine)
            assert await found(session_factory(engine), number)
        finally:
            await engine.dispose()
    finally:
        await ddl(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()
