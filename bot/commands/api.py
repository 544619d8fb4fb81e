"""`yichuang api`: the integration API alone (without the bot), e.g. on its own host or port.

The bot process (`yichuang run`) delivers the notices the API writes; `--with-worker` delivers
them from this process too (needs BOT_TOKEN), e.g. when the bot runs elsewhere without a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from knowledge.loader import CatalogError
from models.privacy import FactorKeyError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    api = sub.add_parser("api", help="只运行集成接口（API_HOST、API_PORT、API_TOKEN）")
    api.add_argument(
        "--catalog", type=Path, help="事项目录文件夹或 .xlsx/.csv（默认：CATALOG_DIR 或内置示例）"
    )
    api.add_argument("--with-worker", action="store_true", help="同时在本进程发送通知（需要 BOT_TOKEN）")
    api.set_defaults(func=_api)


def _api(args: argparse.Namespace) -> int:
    from bot import runtime
    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        fields = "、".join(".".join(str(p) for p in err["loc"]).upper() for err in e.errors())
        print(f"配置有误：{fields}（请检查环境变量或 .env）", file=sys.stderr)
        return 1
    if args.catalog is not None:
        settings = settings.model_copy(update={"catalog_dir": args.catalog})
    if settings.api_token is None or not settings.api_token.get_secret_value():
        print("请设置 API_TOKEN（调用方在 Authorization: Bearer 中携带）", file=sys.stderr)
        return 1
    if args.with_worker and settings.bot_token is None:
        print("--with-worker 需要 BOT_TOKEN", file=sys.stderr)
        return 1
    runtime.setup_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        from bot.services import start_services

        parts = await runtime.assemble(settings)
        bot = runtime.make_bot(settings) if settings.bot_token is not None else None
        services = await start_services(parts, bot, worker=args.with_worker, digest=args.with_worker)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await services.stop()
            if bot is not None:
                await bot.session.close()
            await parts.engine.dispose()

    try:
        runtime.run_until_done(main())
    except CatalogError as e:
        print(e.report(), file=sys.stderr)
        return 1
    except FactorKeyError as e:
        print(str(e), file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        print(f"数据库无法使用（DATABASE_URL）：{type(e).__name__}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"无法在 {settings.api_host}:{settings.api_port} 上监听：{e.strerror or e}", file=sys.stderr)
        return 1
    return 0
