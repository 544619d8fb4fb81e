"""`yichuang` command line. Each area registers its own subcommands from bot/commands/<area>.py.

A command module exposes `register(subparsers) -> None`; each subparser sets `func=callable(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Order here is the order shown in --help.
COMMAND_MODULES = ["run", "api", "catalog", "matcher", "db", "staff", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yichuang", description="一窗：行政服务中心办事助手")
    sub = parser.add_subparsers(dest="command")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"bot.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"bot.commands.{name}":
                raise
            continue  # area not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # Bare `yichuang` is the main job: run the bot (or the local console when no token is set).
        try:
            args = parser.parse_args(["run"])
        except SystemExit:
            parser.print_help()
            return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `yichuang console | head`: the reader left. Point stdout at devnull so the interpreter's
        # final flush doesn't raise a second time, and exit like other tools killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
