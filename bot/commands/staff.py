"""`yichuang staff add|list|disable`: who may use the staff features of the bot."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.commands.db import database_url, shown
from knowledge.loader import CatalogError, load_catalog
from knowledge.schema import Catalog
from models.staff import Staff, StaffRole


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("staff", help="工作人员：添加、列出、停用")
    sub = parser.add_subparsers(dest="staff_command", required=True)
    url_help = "数据库地址（默认：环境变量 DATABASE_URL）"

    add = sub.add_parser("add", help="添加工作人员（已存在则更新并重新启用）")
    add.add_argument("--user-id", type=int, required=True, help="Telegram 用户 ID（数字）")
    add.add_argument("--name", required=True, help="姓名")
    add.add_argument("--title", default="", help="职务，如「审批股股长」")
    add.add_argument("--department", help="部门名称或编号（窗口人员和部门审批人员必填）")
    add.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in StaffRole],
        help="window 窗口人员 | department 部门审批人员 | admin 中心管理员",
    )
    add.add_argument("--catalog", type=Path, help="事项目录（默认：CATALOG_DIR 或内置示例），用于核对部门")
    add.add_argument("--database-url", help=url_help)
    add.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", help="列出工作人员")
    ls.add_argument("--catalog", type=Path, help="事项目录，用于显示部门名称")
    ls.add_argument("--database-url", help=url_help)
    ls.set_defaults(func=cmd_list)

    dis = sub.add_parser("disable", help="停用工作人员（保留记录以备审计）")
    dis.add_argument("--user-id", type=int, required=True, help="Telegram 用户 ID")
    dis.add_argument("--database-url", help=url_help)
    dis.set_defaults(func=cmd_disable)


def _catalog(path: Path | None) -> Catalog:
    if path is None:
        from bot.settings import Settings

        path = Settings().catalog_dir
    return load_catalog(path)


def _run(args: argparse.Namespace, action: str) -> int:
    url = database_url(args)
    try:
        return asyncio.run(_with_session(url, args, action))
    except CatalogError as e:
        print(e.report(), file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(
            f"数据库操作失败（{shown(url)}）：{first[:300]}。是否已运行 yichuang db upgrade？",
            file=sys.stderr,
        )
        return 1


async def _with_session(url: str, args: argparse.Namespace, action: str) -> int:
    from models import crud
    from models.db import async_engine, session_factory

    engine = async_engine(url)
    try:
        async with session_factory(engine)() as session:
            if action == "add":
                catalog = _catalog(args.catalog)
                try:
                    staff, created = await crud.add_staff(
                        session=session,
                        catalog=catalog,
                        user_id=args.user_id,
                        name=args.name,
                        title=args.title,
                        department=args.department,
                        role=args.role,
                    )
                except crud.InputError as e:
                    print(f"错误：{e}", file=sys.stderr)
                    return 2
                print(("已添加：" if created else "已更新并启用：") + _line(staff, catalog))
                return 0
            if action == "list":
                catalog = _catalog(args.catalog)
                rows = await crud.list_staff(session=session)
                if not rows:
                    print("还没有工作人员。添加：yichuang staff add --user-id … --name … --role …")
                    return 0
                for s in rows:
                    print(_line(s, catalog))
                return 0
            disabled = await crud.disable_staff(session=session, user_id=args.user_id)
            if disabled is None:
                print(f"错误：没有 Telegram 用户 ID 为 {args.user_id} 的工作人员", file=sys.stderr)
                return 1
            print(f"已停用：{disabled.name}（{disabled.user_id}）")
            return 0
    finally:
        await engine.dispose()


def _line(s: Staff, catalog: Catalog) -> str:
    dep = catalog.department(s.department) if s.department else None
    dep_name = dep.name if dep else (s.department or "全部部门")
    state = "" if s.active else "  [已停用]"
    title = f" {s.title}" if s.title else ""
    return f"{s.user_id}  {s.name}{title}  {dep_name}  {StaffRole(s.role).label}{state}"


def cmd_add(args: argparse.Namespace) -> int:
    return _run(args, "add")


def cmd_list(args: argparse.Namespace) -> int:
    return _run(args, "list")


def cmd_disable(args: argparse.Namespace) -> int:
    return _run(args, "disable")
