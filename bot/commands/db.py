"""`yichuang db upgrade|current|revision`: the database schema, by Alembic migrations."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="数据库：升级表结构、查看当前版本")
    sub = parser.add_subparsers(dest="db_command", required=True)
    url_help = "数据库地址（默认：环境变量 DATABASE_URL，或 ./data 下的 SQLite 文件）"

    up = sub.add_parser("upgrade", help="把数据库升级到最新表结构（新库会建好全部表）")
    up.add_argument("--database-url", help=url_help)
    up.set_defaults(func=cmd_upgrade)

    cur = sub.add_parser("current", help="显示数据库当前的表结构版本")
    cur.add_argument("--database-url", help=url_help)
    cur.set_defaults(func=cmd_current)

    rev = sub.add_parser("revision", help="（开发用）比较模型与数据库，生成新的迁移脚本")
    rev.add_argument("-m", "--message", required=True, help="这次改动的简短说明")
    rev.add_argument("--database-url", help=url_help + "；须已升级到最新版本")
    rev.set_defaults(func=cmd_revision)


def database_url(args: argparse.Namespace) -> str:
    if getattr(args, "database_url", None):
        return str(args.database_url)
    from bot.settings import Settings

    return Settings().database_url


def shown(url: str) -> str:
    """The URL as printed: never the password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "（无法解析的地址）"


def _fail(url: str, e: Exception) -> int:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"数据库操作失败（{shown(url)}）：{first[:300]}", file=sys.stderr)
    return 1


def cmd_upgrade(args: argparse.Namespace) -> int:
    from models.migrations import head_revision, upgrade

    url = database_url(args)
    try:
        upgrade(url)
    except ArgumentError:
        print(f"数据库地址格式不正确：{shown(url)}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, OSError, RuntimeError) as e:
        return _fail(url, e)
    print(f"数据库已是最新表结构（版本 {head_revision()}）：{shown(url)}")
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    from models.db import sync_engine
    from models.migrations import current_revision, head_revision

    url = database_url(args)
    try:
        engine = sync_engine(url)
        with engine.connect() as conn:
            rev = current_revision(conn)
        engine.dispose()
    except ArgumentError:
        print(f"数据库地址格式不正确：{shown(url)}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, OSError) as e:
        return _fail(url, e)
    head = head_revision()
    if rev is None:
        print(f"数据库尚未建表（最新版本 {head}），请运行 yichuang db upgrade")
        return 1
    state = "已是最新" if rev == head else f"需要升级到 {head}（yichuang db upgrade）"
    print(f"当前版本 {rev}，{state}")
    return 0 if rev == head else 1


def cmd_revision(args: argparse.Namespace) -> int:
    from models.migrations import make_revision

    url = database_url(args)
    try:
        make_revision(url, args.message)
    except (SQLAlchemyError, OSError) as e:
        return _fail(url, e)
    except Exception as e:  # alembic's CommandError: "Target database is not up to date" etc.
        print(f"无法生成迁移脚本：{e}", file=sys.stderr)
        return 1
    return 0
