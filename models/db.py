"""Engines and sessions for SQLite (embedded default) and PostgreSQL, from one DATABASE_URL.

Handlers use the async engine; CLI commands and migrations use the sync one. Both come from the
same URL so a county switches databases by configuration only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from models import sqlite_inline

SQLITE_BUSY_TIMEOUT_MS = 5000


def _urls(url: str) -> tuple[str, str]:
    """(sync_url, async_url) for one configured URL."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return (
            u.set(drivername="sqlite").render_as_string(hide_password=False),
            u.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False),
        )
    if u.get_backend_name() == "postgresql":
        s = u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return s, s
    return url, url


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return u.database


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    # WAL lets the delivery worker read while a handler writes; busy_timeout waits instead of failing
    # (the async engine waits on the event loop instead: models/sqlite_inline.py).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _inline_sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_conn, record, busy_timeout_ms=0)


def _drop_nul(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _params_without_nul(params: Any) -> Any:
    if isinstance(params, dict):
        return {k: _drop_nul(v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return type(params)(
            _params_without_nul(p) if isinstance(p, dict | list | tuple) else _drop_nul(p) for p in params
        )
    return params


def _postgres_no_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    # PostgreSQL text cannot hold NUL (psycopg raises DataError) where SQLite stores it. Public input
    # (questions, complaints, forged callback data used as lookup keys) may carry one, and a NUL
    # means nothing in this application: dropped here, once, for every statement.
    return statement, _params_without_nul(parameters)


def sync_engine(url: str) -> Engine:
    sync_url, _ = _urls(url)
    engine = create_engine(sync_url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _postgres_no_nul, retval=True)
    return engine


def async_engine(url: str) -> AsyncEngine:
    _, async_url = _urls(url)
    # The ping before each checkout finds a PostgreSQL connection the server dropped (a restart).
    # A SQLite file connection cannot go stale: no ping there.
    u = make_url(async_url)
    if u.get_backend_name() == "sqlite":
        # Run on the event loop's thread, not aiosqlite's threads (models/sqlite_inline.py).
        database = u.database or ":memory:"
        engine = create_async_engine(async_url, async_creator=lambda: sqlite_inline.connect(database))
        event.listen(engine.sync_engine, "connect", _inline_sqlite_pragmas)
        return engine
    engine = create_async_engine(async_url, pool_pre_ping=True)
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "before_cursor_execute", _postgres_no_nul, retval=True)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def prepare_database(engine: AsyncEngine) -> None:
    """Bring the schema up to date at start-up: Alembic `upgrade head` (models/migrations/).

    The same migrations as `yichuang db upgrade`, so a fresh SQLite file, an existing database
    and PostgreSQL all end at the same schema.
    """
    from models.migrations import upgrade_connection

    async with engine.begin() as conn:
        await conn.run_sync(upgrade_connection)
