"""Load a catalog folder (or spreadsheet) and report *every* problem at once, never a traceback.

Folder layout (see knowledge/data/):
    center.yaml        the center (name, address, hours, phones)
    departments.yaml   list of departments
    windows.yaml       list of windows
    items/*.yaml       lists of items, any number of files
    bundles.yaml       list of bundles (optional)
    forms/             sample forms referenced by materials (optional)

Problems carry the file and line of the entry (and of the field where YAML knows it), so a county
editing its own files can go straight to the spot.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from knowledge.schema import Bundle, Catalog, Center, Department, Fee, Item, Material, Phone, Window
from knowledge.validate import Origin, Origins, Problem, check_catalog, field_path

__all__ = ["DEFAULT_CATALOG", "CatalogError", "Problem", "describe_error", "load_catalog", "validate"]

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data"
SPREADSHEET_SUFFIXES = {".xlsx", ".csv"}

# libyaml is ~10x faster on big imported catalogs; the pure-Python loader behaves the same.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

M = TypeVar("M", bound=BaseModel)

_ALL_FIELDS = sorted(
    {f for m in (Center, Phone, Department, Window, Item, Material, Fee, Bundle) for f in m.model_fields}
)


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
    if root.suffix.lower() in SPREADSHEET_SUFFIXES and not root.is_dir():
        from knowledge.spreadsheet import read_catalog  # openpyxl only when a sheet is asked for

        return read_catalog(root)
    if not root.is_dir():
        raise CatalogError([Problem(str(root), "", "", "目录不存在，或不是 .xlsx/.csv 文件")])
    return _load_folder(root)


def validate(catalog: Catalog, origins: Origins | None = None) -> list[Problem]:
    """Cross-reference and consistency checks that no single entry can see on its own."""
    return check_catalog(catalog, origins)


def _load_folder(root: Path) -> Catalog:
    problems: list[Problem] = []
    origins = Origins()
    center_doc = _read_yaml(root, "center.yaml", problems, expect=dict)
    center = None
    if center_doc is not None:
        center = _parse(Center, center_doc.data, center_doc.node, "center.yaml", "中心", problems)
    departments = _parse_list(Department, root, "departments.yaml", problems, origins.departments, origins)
    windows = _parse_list(Window, root, "windows.yaml", problems, origins.windows, origins)
    items: list[Item] = []
    item_files = sorted((root / "items").glob("*.yaml")) if (root / "items").is_dir() else []
    if not item_files:
        problems.append(Problem("items/", "", "", "没有任何事项文件（items/*.yaml）"))
    for f in item_files:
        items += _parse_list(Item, root, f"items/{f.name}", problems, origins.items, origins)
    bundles: list[Bundle] = []
    if (root / "bundles.yaml").exists():
        bundles = _parse_list(Bundle, root, "bundles.yaml", problems, origins.bundles, origins)
    # Keep checking without a usable center: the point is to report everything in one run.
    stand_in = Center(name="-", address="-", hours=["-"], phones=[Phone(label="-", number="---")])
    catalog = Catalog(center or stand_in, departments, windows, items, bundles, root=str(root))
    problems += check_catalog(catalog, origins)
    if problems:
        raise CatalogError(problems)
    return catalog


@dataclass
class _Doc:
    data: Any
    node: yaml.Node | None


def _read_yaml(
    root: Path, rel: str, problems: list[Problem], expect: type, unparsed: set[str] | None = None
) -> _Doc | None:
    path = root / rel
    if not path.exists():
        problems.append(Problem(rel, "", "", "文件不存在"))
        return None
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError:
        problems.append(Problem(rel, "", "", "文件不是 UTF-8 编码，请另存为 UTF-8"))
        _guess_names(path.read_bytes().decode("gb18030", errors="replace"), unparsed)  # Windows editors
        return None
    except OSError as e:
        problems.append(Problem(rel, "", "", f"无法读取：{e.strerror or e}"))
        return None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        detail = getattr(e, "problem", None) or str(e)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(rel, "", "", f"YAML 格式错误：{detail}（检查缩进、冒号和引号）", line))
        _guess_names(text, unparsed)
        return None
    if data is None:
        data = expect()
    if not isinstance(data, expect):
        kind = "列表（每条以「- 」开头）" if expect is list else "键值表（字段: 值）"
        problems.append(Problem(rel, "", "", f"顶层应为{kind}", 1))
        _guess_names(text, unparsed)
        return None
    if node is not None:
        _check_duplicate_keys(node, rel, problems)
    return _Doc(data, node)


def _guess_names(text: str, unparsed: set[str] | None) -> None:
    # A file that does not parse still tells roughly which names it holds; others referring to
    # them should not each get a misleading "does not exist".
    if unparsed is not None:
        unparsed.update(m.strip("'\" ") for m in _NAME_LINE.findall(text))


_NAME_LINE = re.compile(r"(?:^[\s-]*|[{,]\s*)(?:name|number):\s*([^,}\n]+)", re.M)


def _check_duplicate_keys(root: yaml.Node, rel: str, problems: list[Problem]) -> None:
    # YAML silently keeps the last of two equal keys; a second `aliases:` would drop the first list.
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        problems.append(
                            Problem(
                                rel, "", k.value, "字段重复出现（后一个会覆盖前一个）", k.start_mark.line + 1
                            )
                        )
                    seen.add(k.value)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _parse_list(
    model: type[M],
    root: Path,
    rel: str,
    problems: list[Problem],
    where: list[Origin],
    origins: Origins,
) -> list[M]:
    doc = _read_yaml(root, rel, problems, expect=list, unparsed=origins.unparsed)
    out: list[M] = []
    if doc is None:
        return out
    nodes = doc.node.value if isinstance(doc.node, yaml.SequenceNode) else []
    for n, entry in enumerate(doc.data):
        node = nodes[n] if n < len(nodes) else None
        label = _label(entry) or f"第{n + 1}条"
        parsed = _parse(model, entry, node, rel, label, problems)
        if parsed is None:
            origins.unparsed.add(label)
            continue
        out.append(parsed)
        where.append(_origin(rel, node))
    return out


def _origin(rel: str, node: yaml.Node | None) -> Origin:
    if node is None:
        return Origin(rel)
    keys = {}
    if isinstance(node, yaml.MappingNode):
        keys = {str(k.value): k.start_mark.line + 1 for k, _v in node.value if isinstance(k, yaml.ScalarNode)}
    return Origin(rel, node.start_mark.line + 1, keys)


def _label(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    for key in ("name", "number", "id"):
        if isinstance(entry.get(key), str | int):
            return str(entry[key])
    return None


def _parse(
    model: type[M],
    raw: Any,
    node: yaml.Node | None,
    file: str,
    entry: str,
    problems: list[Problem],
) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            loc = err["loc"]
            line = _line_at(node, loc) if node is not None else None
            problems.append(Problem(file, entry, field_path(loc), describe_error(err), line))
        return None


def _line_at(node: yaml.Node, loc: tuple[str | int, ...]) -> int:
    """The line of the deepest YAML node the error location still reaches."""
    for depth, part in enumerate(loc, start=1):
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if pair is not None:
                # Last step: the key's own line ("unknown field" is exactly that line).
                nxt = pair[0] if depth == len(loc) else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
    return int(node.start_mark.line) + 1


_PYDANTIC_MESSAGES = {
    "missing": "缺少必填字段",
    "greater_than_equal": "不能为负数",
    "string_pattern_mismatch": "格式不对",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为列表",
    "string_type": "应为文字",
    "dict_type": "应为键值表",
    "model_type": "应为键值表",
    "model_attributes_type": "应为键值表",
}


def describe_error(err: Any) -> str:
    """One pydantic error in plain Chinese (the field path is shown next to it)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = err["loc"]
    last = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(last, _ALL_FIELDS, n=1)
        return "未知字段" + (f"（是不是「{close[0]}」？）" if close else "（拼写错误？）")
    if kind == "enum" and last.endswith("_unit"):
        return "时限单位只能是 working（工作日）、calendar（自然日）或 month（月）"
    if kind == "enum":
        return f"取值不在允许范围内（允许：{ctx.get('expected', '')}）"
    if kind in ("string_too_short", "too_short"):
        n = ctx.get("min_length", 1)
        if n <= 1:
            return "不能为空"
        return f"至少 {n} 个字" if kind == "string_too_short" else f"至少要有 {n} 项"
    if kind == "string_too_long":
        return f"最多 {ctx.get('max_length')} 个字"
    base = _PYDANTIC_MESSAGES.get(kind, err["msg"])
    if kind in ("int_parsing", "int_type") and last.endswith("_days"):
        base += f"（整数，单位由 {last.removesuffix('_days')}_unit 指定，默认工作日；即办写 0）"
    if kind == "string_pattern_mismatch" and last == "id":
        base += "（小写字母开头，只用小写字母、数字和下划线，2—24 位）"
    return base
