"""Load a catalog folder (or spreadsheet) and report *every* problem at once, never a traceback.

Folder layout (see knowledge/data/):
    center.yaml        the center (name, address, hours, phones)
    departments.yaml   list of departments
    windows.yaml       list of windows
    items/*.yaml       lists of items, any number of files
    bundles.yaml       list of bundles (optional)
    forms/             sample forms referenced by materials (optional)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from knowledge.schema import Bundle, Catalog, Center, Department, Item, Window

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data"
SPREADSHEET_SUFFIXES = {".xlsx", ".csv"}


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str  # item / bundle / department name, or "" for the file itself
    field: str
    message: str

    def __str__(self) -> str:
        where = " / ".join(p for p in (self.file, self.entry, self.field) if p)
        return f"{where}: {self.message}"


class CatalogError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        lines = [f"事项目录有 {len(self.problems)} 处问题："]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate; raise CatalogError listing every problem found."""
    root = Path(path) if path else DEFAULT_CATALOG
    if root.is_file() and root.suffix.lower() in SPREADSHEET_SUFFIXES:
        from knowledge.spreadsheet import read_catalog  # spreadsheet support is optional at import time

        return read_catalog(root)
    if not root.is_dir():
        raise CatalogError([Problem(str(root), "", "", "目录不存在，或不是 .xlsx/.csv 文件")])
    problems: list[Problem] = []
    raw_center = _read_yaml(root / "center.yaml", problems, expect=dict)
    center = _parse(Center, raw_center, "center.yaml", "中心", problems) if raw_center is not None else None
    departments = _parse_list(Department, root / "departments.yaml", problems)
    windows = _parse_list(Window, root / "windows.yaml", problems)
    items: list[Item] = []
    item_files = sorted((root / "items").glob("*.yaml")) if (root / "items").is_dir() else []
    if not item_files:
        problems.append(Problem("items/", "", "", "没有任何事项文件（items/*.yaml）"))
    for f in item_files:
        items += _parse_list(Item, f, problems, rel=f"items/{f.name}")
    bundles = (
        _parse_list(Bundle, root / "bundles.yaml", problems) if (root / "bundles.yaml").exists() else []
    )
    if center is None:
        raise CatalogError(problems or [Problem("center.yaml", "", "", "缺少中心信息")])
    catalog = Catalog(center, departments, windows, items, bundles, root=str(root))
    problems += validate(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def validate(catalog: Catalog) -> list[Problem]:
    """Cross-reference and consistency checks that no single entry can see on its own."""
    from knowledge.validate import check_catalog

    return check_catalog(catalog)


def _read_yaml(path: Path, problems: list[Problem], expect: type) -> Any:
    rel = path.name if path.parent.name != "items" else f"items/{path.name}"
    if not path.exists():
        problems.append(Problem(rel, "", "", "文件不存在"))
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        line = f"第 {mark.line + 1} 行" if mark is not None else ""
        problems.append(Problem(rel, "", line, f"YAML 格式错误：{getattr(e, 'problem', None) or e}"))
        return None
    if data is None:
        data = expect()
    if not isinstance(data, expect):
        kind = "列表" if expect is list else "键值表"
        problems.append(Problem(rel, "", "", f"顶层应为{kind}"))
        return None
    return data


def _parse_list[M: BaseModel](
    model: type[M], path: Path, problems: list[Problem], rel: str | None = None
) -> list[M]:
    raw = _read_yaml(path, problems, expect=list)
    out: list[M] = []
    for n, entry in enumerate(raw or [], start=1):
        label = entry.get("name") or entry.get("number") if isinstance(entry, dict) else None
        parsed = _parse(model, entry, rel or path.name, str(label or f"第{n}条"), problems)
        if parsed is not None:
            out.append(parsed)
    return out


def _parse[M: BaseModel](
    model: type[M], raw: Any, file: str, entry: str, problems: list[Problem]
) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(Problem(file, entry, loc, _message(err)))
        return None


_PYDANTIC_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "未知字段（拼写错误？）",
    "string_too_short": "不能为空",
    "too_short": "不能为空",
    "greater_than_equal": "不能为负数",
    "enum": "取值不在允许范围内",
    "string_pattern_mismatch": "格式不对",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "list_type": "应为列表",
    "string_type": "应为文字",
    "dict_type": "应为键值表",
    "model_type": "应为键值表",
}


def _message(err: Any) -> str:
    base = _PYDANTIC_MESSAGES.get(err["type"], err["msg"])
    if err["type"] == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{base}（允许：{expected}）"
    return base
