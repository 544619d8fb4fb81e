"""Alembic environment: every SQLModel table (models.tables) on the configured connection or URL."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import models.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from models.cases import UTCDateTime
from models.db import sync_engine

# Any constant works; it only has to be the same in every process that migrates this database.
_PG_MIGRATION_LOCK = 7_315_524_119

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: Any, _autogen: Any) -> str | Literal[False]:
    # Revisions must not import app code (it changes; migrations must not): plain SQLAlchemy types.
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    if context.get_context().get_current_revision() is None:
        existing = set(inspect(connection).get_table_names()) & set(target_metadata.tables)
        if existing:
            # Tables without a version record: made by an old create_all; guessing their shape is unsafe.
            raise RuntimeError(
                "数据库里已有数据表，但没有迁移版本记录（可能由早期版本直接建表）。"
                "请备份后删除该数据库（SQLite 即删除文件），再运行 yichuang db upgrade。"
            )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Bot and API processes starting together must not both create the tables.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a URL or a connection to models.migrations")
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
