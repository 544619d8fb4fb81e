"""`yichuang catalog check|import|export`: keep the 事项目录 correct and let counties edit it in Excel."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from knowledge.loader import DEFAULT_CATALOG, SPREADSHEET_SUFFIXES, CatalogError, load_catalog
from knowledge.schema import Catalog


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("catalog", help="事项目录：检查、从表格导入、导出为表格")
    sub = parser.add_subparsers(dest="catalog_command", required=True)

    check = sub.add_parser("check", help="检查事项目录，列出所有问题")
    check.add_argument(
        "path", nargs="?", type=Path, help="目录文件夹或 .xlsx/.csv 表格（默认：CATALOG_DIR 或内置示例）"
    )
    check.set_defaults(func=cmd_check)

    imp = sub.add_parser("import", help="从 .xlsx/.csv 表格导入，生成目录文件夹")
    imp.add_argument("file", type=Path, help="事项目录表格（.xlsx 或 .csv）")
    imp.add_argument("--out", type=Path, required=True, help="输出文件夹")
    imp.add_argument(
        "--force", action="store_true", help="文件夹不为空时仍写入（保留 center.yaml、bundles.yaml）"
    )
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="把事项目录导出为 .xlsx/.csv 表格（与导入的列相同）")
    exp.add_argument("--catalog", type=Path, help="目录文件夹或表格（默认：CATALOG_DIR 或内置示例）")
    exp.add_argument("--out", type=Path, required=True, help="输出文件（.xlsx 或 .csv）")
    exp.set_defaults(func=cmd_export)


def default_catalog() -> Path:
    """What the bot would load: CATALOG_DIR if set, else the packaged sample."""
    from bot.settings import Settings

    return Settings().catalog_dir or DEFAULT_CATALOG


def cmd_check(args: argparse.Namespace) -> int:
    path: Path = args.path or default_catalog()
    if path.suffix.lower() in SPREADSHEET_SUFFIXES and not path.is_dir():
        return _check_sheet(path)
    try:
        catalog = load_catalog(path)
    except CatalogError as e:
        print(e.report())
        return 1
    print(f"事项目录检查通过（{path}）：{summary(catalog)}。")
    return 0


def _check_sheet(path: Path) -> int:
    from knowledge.spreadsheet import read_sheet

    try:
        sheet = read_sheet(path)
    except CatalogError as e:
        print(e.report())
        return 1
    _print_warnings(sheet.warnings)
    if sheet.errors:
        print(CatalogError(sheet.errors).report())
        print(f"共 {sheet.rows} 行，{len(sheet.failed_rows)} 行有问题。")
        return 1
    print(f"事项目录检查通过（{path}）：{summary(sheet.catalog())}。")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from knowledge.spreadsheet import import_sheet

    try:
        sheet = import_sheet(args.file, args.out, force=args.force)
    except CatalogError as e:
        print(e.report())
        return 1
    _print_warnings(sheet.warnings)
    print(
        f"已导入 {len(sheet.items)} 个事项（{len(sheet.departments)} 个部门、{len(sheet.windows)} 个窗口）"
        f"到 {args.out}。"
    )
    if sheet.errors:
        print(f"有 {len(sheet.failed_rows)} 行未导入（共 {sheet.rows} 行），请修改表格后重新导入：")
        for p in sheet.errors:
            print(f"  - {p}")
    if not sheet.items:
        print("没有可导入的事项。")
        return 1
    if args.force:
        # Kept center.yaml / bundles.yaml may not fit the new items (a bundle naming a dropped item).
        # Without --force the folder is exactly what the in-memory checks passed.
        try:
            load_catalog(args.out)
        except CatalogError as e:
            print(f"导入后的目录文件夹还有问题：\n{e.report()}")
            return 1
    if "待填写" in (args.out / "center.yaml").read_text(encoding="utf-8"):
        print(f"请补充 {args.out / 'center.yaml'} 的中心名称、地址、办公时间和电话，")
        print("以及 windows.yaml 的首席代表，然后运行 yichuang catalog check 检查。")
    return 1 if sheet.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from knowledge.spreadsheet import export_catalog

    source: Path = args.catalog or default_catalog()
    out: Path = args.out
    if out.suffix.lower() not in SPREADSHEET_SUFFIXES:
        print(f"只能导出为 .xlsx 或 .csv：{out}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(source)
    except CatalogError as e:
        print("目录有问题，先修正再导出。")
        print(e.report())
        return 1
    try:
        n = export_catalog(catalog, out)
    except OSError as e:
        print(f"无法写入 {out}：{e.strerror or e}", file=sys.stderr)
        return 1
    print(f"已导出 {n} 个事项到 {out}。")
    if catalog.bundles:
        print(
            f"提示：{len(catalog.bundles)} 个一件事不在表格中（表格一行一个事项），仍以 bundles.yaml 为准。"
        )
    return 0


def summary(catalog: Catalog) -> str:
    return (
        f"{len(catalog.departments)} 个部门、{len(catalog.windows)} 个窗口、"
        f"{len(catalog.items)} 个事项、{len(catalog.bundles)} 个一件事"
    )


def _print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        print(f"提示：{w}")
