"""`yichuang run` (the bot; the console when no BOT_TOKEN) and `yichuang console`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from knowledge.loader import CatalogError
from models.privacy import FactorKeyError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="运行机器人（未设置 BOT_TOKEN 时打开本地控制台）")
    run.add_argument(
        "--catalog", type=Path, help="事项目录文件夹或 .xlsx/.csv（默认：CATALOG_DIR 或内置示例）"
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="Webhook 模式下处理更新的进程数（默认：WEB_WORKERS 或 1）",
    )
    run.set_defaults(func=_run)
    con = sub.add_parser("console", help="在终端里和机器人对话，不需要 Telegram")
    con.add_argument(
        "--catalog", type=Path, help="事项目录文件夹或 .xlsx/.csv（默认：CATALOG_DIR 或内置示例）"
    )
    con.add_argument("--user", type=int, default=10001, help="以哪个 Telegram 用户 id 说话（默认 10001）")
    con.set_defaults(func=_console)


def _run(args: argparse.Namespace) -> int:
    return _start(args, console=False)


def _console(args: argparse.Namespace) -> int:
    return _start(args, console=True)


def _start(args: argparse.Namespace, *, console: bool) -> int:
    from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError
    from aiogram.utils.token import TokenValidationError

    from bot import runtime
    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        fields = "、".join(".".join(str(p) for p in err["loc"]).upper() for err in e.errors())
        print(f"配置有误：{fields}（请检查环境变量或 .env）", file=sys.stderr)
        return 1
    if getattr(args, "catalog", None) is not None:
        settings = settings.model_copy(update={"catalog_dir": args.catalog})
    workers = getattr(args, "workers", None)
    if workers is not None:
        if not 1 <= workers <= 64:
            print("--workers 应为 1 到 64 之间的整数", file=sys.stderr)
            return 1
        settings = settings.model_copy(update={"web_workers": workers})
    use_console = console or settings.bot_token is None
    runtime.setup_logging("WARNING" if use_console else settings.log_level, settings.log_format)

    async def main() -> None:
        parts = await runtime.assemble(settings)
        if use_console:
            await runtime.run_console(
                parts,
                user_id=getattr(args, "user", 10001),
                stdin=sys.stdin,
                stdout=sys.stdout,
                hint=not console,
            )
        else:
            await runtime.run_bot(parts)

    try:
        runtime.run_until_done(main(), server=not use_console)
    except CatalogError as e:
        print(e.report(), file=sys.stderr)
        return 1
    except FactorKeyError as e:
        print(str(e), file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        print(
            f"数据库无法使用（DATABASE_URL）：{type(e).__name__}: {e.args[0] if e.args else ''}",
            file=sys.stderr,
        )
        return 1
    except TokenValidationError:
        print("BOT_TOKEN 格式不对（应形如 123456:ABC...，向 @BotFather 申请）", file=sys.stderr)
        return 1
    except TelegramUnauthorizedError:
        print("BOT_TOKEN 无效：Telegram 拒绝了这个令牌", file=sys.stderr)
        return 1
    except TelegramNetworkError as e:
        where = settings.telegram_api_base or "https://api.telegram.org"
        print(f"无法连接 Telegram Bot API（{where}）：{e.message}", file=sys.stderr)
        return 1
    return 0
