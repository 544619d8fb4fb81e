"""Migrations build every table on a fresh database and match the models; the db and staff CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (every table on the metadata)
from bot.cli import main
from models.db import sync_engine
from models.migrations import alembic_config, head_revision


def _diff(connection: object) -> list[object]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
    return list(compare_metadata(ctx, SQLModel.metadata))


def test_db_upgrade_builds_every_table_on_a_fresh_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'yichuang.db'}"
    assert main(["db", "current", "--database-url", url]) == 1
    assert "尚未建表" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "最新" in capsys.readouterr().out
    engine = sync_engine(url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables  # every model, the bot's questions included
        assert {"cases", "case_steps", "case_events", "notices", "unanswered_questions"} <= tables
        assert _diff(conn) == []  # the migrations say exactly what the models say
    engine.dispose()
    assert main(["db", "upgrade", "--database-url", url]) == 0  # running again is harmless
    assert main(["db", "current", "--database-url", url]) == 0
    assert head_revision() in capsys.readouterr().out


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'round.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    engine = sync_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    command.upgrade(cfg, "head")


async def test_models_match_migrations_on_every_backend(engine: AsyncEngine) -> None:
    """Fails when a table changes without a migration (then: yichuang db revision -m …)."""
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


def test_tables_without_version_record_get_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = sync_engine(url)
    SQLModel.metadata.create_all(engine)  # what the first prototype did instead of migrating
    engine.dispose()
    assert main(["db", "upgrade", "--database-url", url]) == 1
    assert "没有迁移版本记录" in capsys.readouterr().err


def test_unreachable_database_is_a_clear_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--database-url", "postgresql+psycopg://u:secret@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert "数据库操作失败" in err and "secret" not in err


def test_staff_cli_add_list_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'staff.db'}"]
    assert main(["db", "upgrade", *db]) == 0
    capsys.readouterr()
    add = ["staff", "add", "--user-id", "1001", "--name", "张三", "--title", "股长", "--role", "window", *db]
    assert main([*add, "--department", "县市场监督管理局"]) == 0
    assert "已添加" in capsys.readouterr().out
    assert (
        main(
            [
                "staff",
                "add",
                "--user-id",
                "1002",
                "--name",
                "李四",
                "--role",
                "department",
                "--department",
                "县财政局",
                *db,
            ]
        )
        == 2
    )
    assert "未知部门「县财政局」" in capsys.readouterr().err
    assert main(["staff", "add", "--user-id", "1003", "--name", "王五", "--role", "window", *db]) == 2
    assert "必须指定部门" in capsys.readouterr().err
    assert main(["staff", "list", *db]) == 0
    listing = capsys.readouterr().out
    assert "张三" in listing and "县市场监督管理局" in listing and "李四" not in listing
    assert main(["staff", "disable", "--user-id", "1001", *db]) == 0
    assert main(["staff", "disable", "--user-id", "4242", *db]) == 1
    assert "没有" in capsys.readouterr().err
    assert main(["staff", "list", *db]) == 0
    assert "已停用" in capsys.readouterr().out
