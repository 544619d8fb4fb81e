"""Counties keep their 事项目录 in Excel: read a sheet (.xlsx/.csv) into a Catalog, import it into a
catalog folder, and export a catalog back to the very columns the import reads.

One row is one item. Required columns: 事项名称, 实施部门, 申报材料, 收费标准, 法定时限, 承诺时限;
the rest are optional. A time limit states its unit in the cell ("20个工作日", "30日（自然日）",
"3个月"); a bare number ("20", "20日") takes the row's 时限单位 (工作日/自然日/月), else working days.
Columns may come in any order, unknown ones are ignored with a warning.
A bad row is reported (行号 + 列名 + 原因) and left out; the good rows are kept.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from knowledge.loader import CatalogError, describe_error
from knowledge.schema import (
    Catalog,
    Center,
    DaysUnit,
    Department,
    Fee,
    Item,
    ItemType,
    Material,
    MaterialForm,
    Phone,
    TimeLimit,
    Window,
    _material_key,
)
from knowledge.validate import Origin, Origins, Problem, check_catalog, promise_exceeds

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("事项名称", "实施部门", "申报材料", "收费标准", "法定时限", "承诺时限")
# Other headings real 事项目录 use for the same thing.
_SYNONYMS = {
    "事项": "事项名称",
    "实施主体": "实施部门",
    "实施机关": "实施部门",
    "办理部门": "实施部门",
    "申请材料": "申报材料",
    "所需材料": "申报材料",
    "收费": "收费标准",
    "收费情况": "收费标准",
    "法定办结时限": "法定时限",
    "承诺办结时限": "承诺时限",
    "时限计算单位": "时限单位",
    "窗口": "办理窗口",
    "窗口号": "办理窗口",
    "事项类别": "事项类型",
    "依据": "设定依据",
    "办理依据": "设定依据",
    "申请条件": "受理条件",
    "办事流程": "办理流程",
    "办理程序": "办理流程",
    "投诉电话": "监督电话",
    "俗称": "别名",
    "结果名称": "办理结果",
    "审批结果": "办理结果",
}
FIELD_COLUMNS = {
    "name": "事项名称",
    "code": "事项编码",
    "department": "实施部门",
    "window": "办理窗口",
    "type": "事项类型",
    "outputs": "办理结果",
    "basis": "设定依据",
    "conditions": "受理条件",
    "materials": "申报材料",
    "procedure": "办理流程",
    "fees": "收费标准",
    "statutory_days": "法定时限",
    "promised_days": "承诺时限",
    "statutory_unit": "时限单位",
    "promised_unit": "时限单位",
    "consult_phone": "咨询电话",
    "supervise_phone": "监督电话",
    "aliases": "别名",
    "keywords": "关键词",
}
# Export order: reads like the six publicities, name first.
COLUMNS = tuple(dict.fromkeys(FIELD_COLUMNS.values()))
OPTIONAL_COLUMNS = tuple(c for c in COLUMNS if c not in REQUIRED_COLUMNS)
_HEADER_SCAN_ROWS = 10  # a title row or two above the header is common


class CellError(ValueError):
    """A cell's text can't be read; the message is shown to the person who filled the sheet."""


# ---------------------------------------------------------------------------------------------
# Cell formats, written once for both directions.

_FREE = {"免费", "不收费", "无", "0", "0元", "无收费", "不收取费用", "否", "免收"}
_INSTANT = {"即办", "即时办结", "立即办结", "当场办结", "当场", "即时", "立即"}
_NUMBERING = re.compile(r"^\s*(?:\d{1,3}\s*[.、．)）:：](?!\d)|[（(]\d{1,3}[)）]|[①-⑳])\s*")
_FORM = r"(?P<form>原件和复印件|原件及复印件|原件、复印件|原件\+复印件|复印件|原件|电子版|电子)"
_COPIES = r"(?P<n>\d+|[一二两三四五六七八九十])\s*(?:份|张|本|套|页)"
_FORMS = {
    "原件": MaterialForm.ORIGINAL,
    "复印件": MaterialForm.COPY,
    "电子": MaterialForm.ELECTRONIC,
    "电子版": MaterialForm.ELECTRONIC,
}
_CN_DIGITS = {c: n for n, c in enumerate("一二三四五六七八九十", start=1)} | {"两": 2}
_HINT = re.compile(rf"\s*{_FORM}?\s*(?:{_COPIES})?")
_TRAILING_HINT = re.compile(rf"(?P<name>.+?)\s+{_FORM}?\s*(?:{_COPIES})?")
_SUFFIX_HINT = re.compile(rf"(?P<name>.{{2,}}?){_FORM}(?:\s*{_COPIES})?")
_SUFFIX_COPIES = re.compile(rf"(?P<name>.{{2,}}?)\s*{_COPIES}")
_AMOUNT = re.compile(r"(?P<name>.*?)\s*[：:]?\s*(?P<amount>\d+(?:\.\d+)?)\s*元(?:\s*[（(](?P<rule>.+)[）)])?")
_RULE_WORDS = ("按", "每", "以上", "以下", "超过", "不超", "最高", "最低", "至", "/")


_UNIT_WORDS = {
    "工作日": DaysUnit.WORKING,
    "自然日": DaysUnit.CALENDAR,
    "日历日": DaysUnit.CALENDAR,
    "月": DaysUnit.MONTH,
    "个月": DaysUnit.MONTH,
}
# What follows the number in a cell; "" / 日 / 天 alone say nothing about the unit.
_DAYS_SUFFIX = re.compile(
    r"(?:个)?(?P<unit>工作日|自然日|日历日|月)?(?:日|天)?(?:\((?P<paren>自然日|日历日)\))?"
)


def parse_unit(text: str) -> DaysUnit | None:
    """The 时限单位 cell: 工作日 / 自然日 / 月, or None when empty."""
    t = re.sub(r"\s+", "", text)
    if not t:
        return None
    unit = _UNIT_WORDS.get(t)
    if unit is None:
        raise CellError(f"「{text}」不是时限单位，应写「工作日」「自然日」或「月」")
    return unit


def parse_days(text: str, unit: DaysUnit | None = None) -> TimeLimit:
    """A 法定时限/承诺时限 cell. `unit` is the row's 时限单位: it applies to a bare number, and a
    cell naming another unit is an error rather than a silent choice between the two."""
    t = re.sub(r"\s+", "", text).replace("（", "(").replace("）", ")")
    if t in _INSTANT:
        return TimeLimit(0)
    m = re.fullmatch(r"(-?\d+)(?:\.0+)?(?P<rest>.*)", t)
    suffix = _DAYS_SUFFIX.fullmatch(m.group("rest")) if m else None
    if m is None or suffix is None or (suffix.group("unit") and suffix.group("paren")):
        raise CellError(f"无法识别「{text}」，应写成「20个工作日」「30日（自然日）」「3个月」或「即办」")
    days = int(m.group(1))
    if days < 0:
        raise CellError(f"不能为负数（{text}）")
    word = suffix.group("unit") or suffix.group("paren")
    said = _UNIT_WORDS[word] if word else None
    if said is not None and unit is not None and said != unit:
        raise CellError(f"「{text}」与时限单位「{unit.label}」不一致")
    return TimeLimit(days, said or unit or DaysUnit.WORKING)


def format_unit(*limits: TimeLimit) -> str:
    """The 时限单位 cell on export: the unit the row's limits share (即办 has none), else empty
    (every exported limit names its unit in its own cell anyway)."""
    units = {limit.unit for limit in limits if limit.days}
    return units.pop().label if len(units) == 1 else ""


def parse_material(line: str) -> Material:
    """Read "营业执照（复印件1份）", "身份证 原件", "户口簿复印件"; no hint means 原件 1份."""
    text = _NUMBERING.sub("", line).strip()
    name, form, copies, notes, source = text, MaterialForm.ORIGINAL, 1, None, None
    hint = None
    if text.endswith(("）", ")")) and (start := _opening_bracket(text)) is not None:
        hint = _parse_hint(text[start + 1 : -1])
        if hint is not None:
            name = text[:start].strip()
            form, copies, notes, source = hint
    if hint is None:
        for pattern in (_TRAILING_HINT, _SUFFIX_HINT, _SUFFIX_COPIES):
            m = pattern.fullmatch(text)
            if m and (m.groupdict().get("form") or m.group("n")):
                name = m.group("name").strip()
                form = _form(m.groupdict().get("form"))
                copies = _count(m.group("n"))
                break
    if not name:
        raise CellError(f"「{line.strip()}」缺少材料名称")
    return Material(name=name, form=form, copies=copies, notes=notes, source=source)


def format_material(m: Material) -> str:
    parts = [f"{m.form.value}{m.copies}份"]
    if m.notes:
        parts.append(m.notes)
    if m.source:
        parts.append(f"来源：{m.source}")
    return f"{m.name}（{'；'.join(parts)}）"


def parse_fees(text: str) -> list[Fee]:
    t = text.strip().rstrip("。.")
    if not t:
        raise CellError("不能为空（不收费请写「免费」）")
    if re.sub(r"\s+", "", t) in _FREE:
        return []
    fees: list[Fee] = []
    for line in _lines(t):
        pieces = [p.strip() for p in re.split(r"[；;]", line) if p.strip()]
        # "工本费20元；邮寄费10元" is two fees; a rule that merely contains "；" stays one.
        if len(pieces) > 1 and all(_AMOUNT.fullmatch(p) for p in pieces):
            fees += [_parse_fee(p) for p in pieces]
        else:
            fees.append(_parse_fee(line))
    return fees


def format_fees(fees: list[Fee]) -> str:
    return "\n".join(_format_fee(f) for f in fees) if fees else "免费"


def parse_type(text: str) -> ItemType | None:
    """None: not one of the four types (the caller warns and files it under 其他)."""
    t = text.strip().removeprefix("行政")
    if not t:
        return ItemType.LICENSE
    try:
        return ItemType(t)
    except ValueError:
        return None


def split_aliases(text: str) -> list[str]:
    return list(dict.fromkeys(s.strip() for s in re.split(r"[；;\n、，,]", text) if s.strip()))


def _lines(text: str) -> list[str]:
    return [s for raw in text.split("\n") if (s := _NUMBERING.sub("", raw).strip())]


def _parse_fee(piece: str) -> Fee:
    text = piece.strip().rstrip("。")
    basis = None
    for opener in ("（依据：", "（依据:", "(依据:", "(依据："):
        at = text.rfind(opener)
        if at > 0 and text.endswith(("）", ")")):
            text, basis = text[:at].strip(), text[at + len(opener) : -1].strip() or None
            break
    m = _AMOUNT.fullmatch(text)
    if m and not any(w in m.group("name") for w in _RULE_WORDS):
        name = m.group("name").strip() or "收费"
        return Fee(name=name, amount=float(m.group("amount")), rule=m.group("rule"), basis=basis)
    head, _, tail = text.replace(":", "：").partition("：")
    if head.strip() and tail.strip() and len(head.strip()) <= 15:
        return Fee(name=head.strip(), rule=text[len(head) + 1 :].strip(), basis=basis)
    return Fee(name="收费", rule=text, basis=basis)


def _format_fee(f: Fee) -> str:
    if f.amount is not None:
        amount = f"{f.amount:g}" if f.amount != int(f.amount) else str(int(f.amount))
        text = f"{f.name}{amount}元" + (f"（{f.rule}）" if f.rule else "")
    else:
        text = f"{f.name}：{f.rule or ''}"
    return text + (f"（依据：{f.basis}）" if f.basis else "")


_LAST_GROUP = re.compile(r"[（(][^（）()]*[）)]$")


def _opening_bracket(text: str) -> int | None:
    if m := _LAST_GROUP.search(text):  # the usual case: no brackets inside the hint
        return m.start()
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch in "）)":
            depth += 1
        elif ch in "（(":
            depth -= 1
            if depth == 0:
                return i
    return None


def _parse_hint(inner: str) -> tuple[MaterialForm, int, str | None, str | None] | None:
    m = _HINT.match(inner)
    if m is None or not (m.group("form") or m.group("n")):
        return None  # "（或户口簿）": part of the name, not a hint
    rest = inner[m.end() :]
    if rest and rest[0] not in "；;，,、 ":
        return None
    notes: list[str] = []
    source = None
    for part in re.split(r"[；;]", rest.lstrip("；;，,、 ")):
        part = part.strip()
        if part.startswith(("来源：", "来源:")):
            source = part[3:].strip() or None
        elif part:
            notes.append(part)
    return _form(m.group("form")), _count(m.group("n")), "；".join(notes) or None, source


def _form(word: str | None) -> MaterialForm:
    if not word:
        return MaterialForm.ORIGINAL
    if "原件" in word and "复印" in word:
        return MaterialForm.ORIGINAL_AND_COPY
    return _FORMS[word]


def _count(n: str | None) -> int:
    if not n:
        return 1
    return int(n) if n.isdigit() else _CN_DIGITS[n]


# ---------------------------------------------------------------------------------------------
# Reading a sheet.


@dataclass
class SheetImport:
    """What a sheet yielded: the good items (with their rows), per-row errors, warnings."""

    source: str  # file name, as shown in messages
    rows: int = 0  # data rows seen (blank rows not counted)
    items: list[Item] = field(default_factory=list)
    item_rows: list[int] = field(default_factory=list)  # parallel to items
    departments: list[Department] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)  # bad rows, each left out
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_rows(self) -> list[int]:
        return sorted({p.line for p in self.errors if p.line is not None})

    def catalog(self) -> Catalog:
        return Catalog(placeholder_center(self.source), self.departments, self.windows, self.items, [])

    def origins(self) -> Origins:
        return Origins(items=[Origin(self.source, r) for r in self.item_rows], field_names=FIELD_COLUMNS)


def placeholder_center(source: str) -> Center:
    # The sheet has no center; say so wherever the catalog is shown until a person fills it in.
    return Center(
        name="（待填写）行政服务中心",
        address="待填写",
        hours=["待填写"],
        phones=[Phone(label="咨询电话", number="待填写")],
        sample_notice=f"本目录由表格「{source}」导入，中心名称、地址、办公时间和电话尚未填写（center.yaml）。",
    )


def read_catalog(path: str | Path) -> Catalog:
    """A sheet as a Catalog (for `--catalog x.xlsx`): any bad row fails the whole load."""
    sheet = read_sheet(path)
    for w in sheet.warnings:
        log.warning("%s", w)
    if sheet.errors:
        raise CatalogError(sheet.errors)
    return sheet.catalog()


def read_sheet(path: str | Path) -> SheetImport:
    """Parse every row; raise CatalogError only when the file itself is unusable."""
    path = Path(path)
    sheet = SheetImport(source=path.name)
    if not path.is_file():
        raise CatalogError([Problem(path.name, "", "", "文件不存在")])
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, sheet.warnings)
    elif suffix == ".xlsx":
        rows = _xlsx_rows(path)
    else:
        raise CatalogError([Problem(path.name, "", "", "只支持 .xlsx 和 .csv 表格")])
    header_row, columns = _find_header(rows, sheet)
    parsed: list[tuple[int, Item]] = []
    for number, cells in rows:
        if number <= header_row or not any(cells):
            continue
        sheet.rows += 1
        values = {col: _cell(cells, i) for i, col in columns.items()}
        item = _row_item(number, values, sheet)
        if item is not None:
            parsed.append((number, item))
    _settle(parsed, sheet)
    return sheet


def _csv_rows(path: Path, warnings: list[str]) -> list[tuple[int, list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        # Excel on Chinese Windows saves "CSV" in GBK; read it rather than refuse it.
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError as e:
            raise CatalogError([Problem(path.name, "", "", "无法识别文件编码，请另存为 UTF-8 CSV")]) from e
        warnings.append(f"{path.name} 不是 UTF-8 编码，已按 GBK 读取")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return [(n, [_text(c) for c in row]) for n, row in enumerate(reader, start=1)]
    except csv.Error as e:
        raise CatalogError([Problem(path.name, "", "", f"CSV 格式错误：{e}")]) from e


def _xlsx_rows(path: Path) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        # Not read-only: merged cells (a department spanning its items) must be filled down.
        wb = load_workbook(path, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged or mislabelled file
        raise CatalogError([Problem(path.name, "", "", f"无法打开 Excel 文件：{e}")]) from e
    first: list[tuple[int, list[str]]] | None = None
    try:
        for ws in wb.worksheets:
            merged: dict[tuple[int, int], Any] = {}
            for rng in ws.merged_cells.ranges:
                value = ws.cell(rng.min_row, rng.min_col).value
                for r in range(rng.min_row, rng.max_row + 1):
                    for c in range(rng.min_col, rng.max_col + 1):
                        merged[(r, c)] = value
            rows = []
            for r, row in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
                cells = [_text(merged.get((r, c), v)) for c, v in enumerate(row, start=1)]
                rows.append((r, cells))
            # The catalog is the first sheet with a header row; others (notes, 填写说明) are skipped.
            if any("事项名称" in map(_header_name, cells) for _, cells in rows[:_HEADER_SCAN_ROWS]):
                return rows
            first = rows if first is None else first
        return first or []
    finally:
        wb.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 20.0 from a number cell means 20
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def _cell(cells: list[str], i: int) -> str:
    return cells[i] if i < len(cells) else ""


def _header_name(text: str) -> str:
    t = re.sub(r"[\s\u3000*＊]", "", text)
    t = re.sub(r"[（(][^）)]*[）)]$", "", t)  # "事项名称（必填）"
    return _SYNONYMS.get(t, t)


def _find_header(rows: list[tuple[int, list[str]]], sheet: SheetImport) -> tuple[int, dict[int, str]]:
    for number, cells in rows[:_HEADER_SCAN_ROWS]:
        names = [_header_name(c) for c in cells]
        if "事项名称" not in names:
            continue
        columns: dict[int, str] = {}
        for i, (raw, name) in enumerate(zip(cells, names, strict=True)):
            if not name:
                continue
            if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
                sheet.warnings.append(f"第{number}行：不认识的列「{raw}」，已忽略")
            elif name in columns.values():
                sheet.warnings.append(f"第{number}行：列「{raw}」重复，只读第一列")
            else:
                columns[i] = name
        missing = [c for c in REQUIRED_COLUMNS if c not in columns.values()]
        if missing:
            raise CatalogError(
                [Problem(sheet.source, "", c, "缺少必需的列（表头）", number) for c in missing]
            )
        return number, columns
    raise CatalogError(
        [Problem(sheet.source, "", "", f"前 {_HEADER_SCAN_ROWS} 行里找不到表头（应有「事项名称」等列）")]
    )


def _row_item(number: int, values: dict[str, str], sheet: SheetImport) -> Item | None:
    name = values.get("事项名称", "")
    errors: list[Problem] = []

    def fail(column: str, message: str) -> None:
        errors.append(Problem(sheet.source, name, column, message, number))

    def parsed(column: str, parse: Callable[[str], Any], default: Any) -> Any:
        try:
            return parse(values.get(column, ""))
        except CellError as e:
            fail(column, str(e))
            return default

    for column in ("事项名称", "实施部门"):
        if not values.get(column):
            fail(column, "不能为空")
    materials: list[Material] = []
    for n, line in enumerate(_lines(values.get("申报材料", "")), start=1):
        try:
            materials.append(parse_material(line))
        except CellError as e:
            fail(f"申报材料.第{n}条", str(e))
    if not values.get("申报材料"):
        fail("申报材料", "不能为空（一行写一种材料）")
    seen: set[str] = set()
    unique = []
    for m in materials:
        if _material_key(m.name) in seen:
            sheet.warnings.append(f"第{number}行「申报材料」：「{m.name}」重复列出，已合并")
        else:
            seen.add(_material_key(m.name))
            unique.append(m)
    fees = parsed("收费标准", parse_fees, [])
    unit = parsed("时限单位", parse_unit, None)
    limits: dict[str, TimeLimit] = {}
    for column in ("法定时限", "承诺时限"):
        if not values.get(column):
            fail(column, "不能为空（当场办结请写「即办」）")
        else:
            limits[column] = parsed(column, lambda text: parse_days(text, unit), TimeLimit(0))
    statutory, promised = limits.get("法定时限", TimeLimit(0)), limits.get("承诺时限", TimeLimit(0))
    too_long = promise_exceeds(statutory, promised)
    if too_long:
        fail("承诺时限", too_long)
    item_type = parse_type(values.get("事项类型", ""))
    if item_type is None:
        sheet.warnings.append(
            f"第{number}行「事项类型」：「{values['事项类型']}」不是许可/确认/给付/其他，按「其他」导入"
        )
        item_type = ItemType.OTHER
    if errors:
        sheet.errors += errors
        return None
    raw = {
        "name": name,
        "code": values.get("事项编码") or "AUTO-" + hashlib.sha1(name.encode()).hexdigest()[:8].upper(),
        "department": values["实施部门"],
        "window": values.get("办理窗口") or None,
        "type": item_type,
        "outputs": split_aliases(values.get("办理结果", "")),
        "basis": _lines(values.get("设定依据", "")),
        "conditions": _lines(values.get("受理条件", "")),
        "materials": unique,
        "procedure": _lines(values.get("办理流程", "")),
        "statutory_days": statutory.days,
        "statutory_unit": statutory.unit,
        "promised_days": promised.days,
        "promised_unit": promised.unit,
        "fees": fees,
        "consult_phone": values.get("咨询电话") or None,
        "supervise_phone": values.get("监督电话") or None,
        "aliases": [a for a in split_aliases(values.get("别名", "")) if a != name],
        "keywords": split_aliases(values.get("关键词", "")),
    }
    try:
        return Item.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            column = FIELD_COLUMNS.get(str(err["loc"][0]), str(err["loc"][0])) if err["loc"] else ""
            fail(column, describe_error(err))
        sheet.errors += errors
        return None


def _settle(parsed: list[tuple[int, Item]], sheet: SheetImport) -> None:
    """Resolve what only the whole sheet shows: duplicate names, shared aliases, shared windows."""
    kept: list[tuple[int, Item]] = []
    owner: dict[str, tuple[int, str, str]] = {}  # phrase -> (row, item name, 名称|别名)
    for number, it in parsed:
        if it.name in owner:
            row = owner[it.name][0]
            sheet.errors.append(Problem(sheet.source, it.name, "事项名称", f"与第{row}行的事项重名", number))
            continue
        owner[it.name] = (number, it.name, "名称")
        kept.append((number, it))
    window_owner: dict[str, tuple[int, str]] = {}
    settled: list[tuple[int, Item]] = []
    for number, it in kept:
        aliases = []
        for a in it.aliases:
            row, other, what = owner.setdefault(a, (number, it.name, "别名"))
            if other == it.name:
                aliases.append(a)
            else:
                sheet.warnings.append(
                    f"第{number}行「别名」：「{a}」已是第{row}行「{other}」的{what}，已忽略"
                )
        window = it.window
        if window is not None:
            row, dept = window_owner.setdefault(window, (number, it.department))
            if dept != it.department:
                sheet.warnings.append(
                    f"第{number}行「办理窗口」：窗口「{window}」在第{row}行属于「{dept}」，"
                    f"一个窗口只能属于一个部门，本事项未填窗口"
                )
                window = None
        if aliases != it.aliases or window != it.window:
            it = it.model_copy(update={"aliases": aliases, "window": window})
        settled.append((number, it))
    sheet.items = [it for _, it in settled]
    sheet.item_rows = [n for n, _ in settled]
    _derive_places(sheet)
    # Safety net: whatever the shared checks still find is a row error, so the folder written
    # from the good rows always loads.
    for _ in range(3):
        problems = check_catalog(sheet.catalog(), sheet.origins())
        bad = {p.line for p in problems}
        if not problems:
            return
        sheet.errors += problems
        keep = [i for i, n in enumerate(sheet.item_rows) if n not in bad]
        sheet.items = [sheet.items[i] for i in keep]
        sheet.item_rows = [sheet.item_rows[i] for i in keep]
        _derive_places(sheet)


def _derive_places(sheet: SheetImport) -> None:
    departments: dict[str, Department] = {}
    used_ids: set[str] = set()
    windows: dict[str, Window] = {}
    for it in sheet.items:
        if it.department not in departments:
            dept_id = _department_id(it.department, used_ids)
            used_ids.add(dept_id)
            departments[it.department] = Department(id=dept_id, name=it.department)
        if it.window and it.window not in windows:
            windows[it.window] = _placeholder_window(it.window, it.department)
    staffed = {w.department for w in windows.values()}
    n = 0
    for dept in departments:
        if dept in staffed:
            continue
        # A department with no window in the sheet still needs a place citizens can go.
        while (number := f"W{(n := n + 1):02d}") in windows:
            pass
        windows[number] = _placeholder_window(number, dept)
    sheet.departments = list(departments.values())
    sheet.windows = list(windows.values())


def _department_id(name: str, used: set[str]) -> str:
    # Stable across re-imports (buttons in old messages keep working) and ASCII for callback data.
    digest = hashlib.sha1(name.encode()).hexdigest()
    for length in range(6, 20):
        candidate = "d" + digest[:length]
        if candidate not in used:
            return candidate
    raise AssertionError("sha1 prefixes of 20 hex digits collided")  # pragma: no cover


def _placeholder_window(number: str, department: str) -> Window:
    return Window(number=number, department=department, chief_name="待填写", chief_title="首席代表（待填写）")


# ---------------------------------------------------------------------------------------------
# Import to a folder, export to a sheet.

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def import_sheet(path: str | Path, out_dir: str | Path, *, force: bool = False) -> SheetImport:
    """Write the good rows as a catalog folder that load_catalog accepts as it is.

    An existing folder is refused unless `force`; then departments, windows and items are
    replaced while center.yaml, bundles.yaml and forms/ (a person's work) are kept.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CatalogError([Problem(str(out), "", "", "输出位置是一个文件，不是文件夹")])
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CatalogError([Problem(str(out), "", "", "文件夹不是空的；要覆盖其中的事项请加 --force")])
    sheet = read_sheet(path)
    write_folder(sheet, out)
    return sheet


def write_folder(sheet: SheetImport, out: Path) -> None:
    (out / "items").mkdir(parents=True, exist_ok=True)
    (out / "forms").mkdir(exist_ok=True)
    for old in (out / "items").glob("*.yaml"):
        old.unlink()
    note = (
        f"# 由表格「{sheet.source}」导入（yichuang catalog import）。"
        "可直接编辑，改完运行 yichuang catalog check。\n"
    )
    if not (out / "center.yaml").exists():
        center = placeholder_center(sheet.source).model_dump(mode="json", exclude_none=True)
        _dump(
            out / "center.yaml",
            center,
            "# 待填写：导入的表格里没有中心信息，请填写名称、地址、办公时间和电话，\n"
            "# 并删除 sample_notice 一行。\n",
        )
    _dump(out / "departments.yaml", [_plain(d) for d in sheet.departments], note, flow=True)
    _dump(
        out / "windows.yaml",
        [_plain(w) for w in sheet.windows],
        note + "# 首席代表和位置待填写。\n",
        flow=True,
    )
    by_department: dict[str, list[dict[str, Any]]] = {}
    for it in sheet.items:
        by_department.setdefault(it.department, []).append(_plain(it))
    ids = {d.name: d.id for d in sheet.departments}
    for dept, items in by_department.items():
        _dump(out / "items" / f"{ids[dept]}.yaml", items, note + f"# {dept}\n")
    if not (out / "bundles.yaml").exists():
        (out / "bundles.yaml").write_text(
            "# 一件事（并联审批）：表格不含这部分，需要时在此添加。\n[]\n", encoding="utf-8"
        )


def _plain(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    for fee in data.get("fees", []):
        if isinstance(fee.get("amount"), float) and fee["amount"].is_integer():
            fee["amount"] = int(fee["amount"])  # "amount: 20", as a person would write it
    return {k: v for k, v in data.items() if v != []}


def _dump(path: Path, data: Any, header: str, flow: bool = False) -> None:
    if flow:  # small files: departments and windows, one line each
        text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000)
    else:
        text = "".join(line + "\n" for line in _block(data, ""))
    path.write_text(header + text, encoding="utf-8")


# PyYAML's representer costs ~1 s per 1,000 rich items; this emitter writes the same block
# style for plain data (dict/list/str/int/float/bool/None) about 20x faster.
def _block(value: Any, pad: str) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{pad}{_scalar(str(k))}:"
            if isinstance(v, dict | list) and v:
                yield key
                yield from _block(v, pad + "  " if isinstance(v, dict) else pad)
            else:
                yield f"{key} {_scalar(v)}"
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list) and v:
                lines = _block(v, pad + "  ")
                yield f"{pad}- {next(lines).lstrip()}"
                yield from lines
            else:
                yield f"{pad}- {_scalar(v)}"
    else:
        yield pad + _scalar(value)


_PLAIN_UNSAFE = re.compile(r"^[\s\-?:,\[\]{}#&*!|>'\"%@`]|[\x00-\x1f\x7f\x85\u2028\u2029\ufeff]|: | #|[:\s]$")
_resolver = yaml.resolver.Resolver()


@functools.lru_cache(maxsize=65_536)
def _plain_ok(s: str) -> bool:
    # Plain (unquoted) only when YAML would read it back as this very string.
    if not s or _PLAIN_UNSAFE.search(s) or _NOT_PRINTABLE.search(s):
        return False
    return bool(_resolver.resolve(yaml.ScalarNode, s, (True, False)) == "tag:yaml.org,2002:str")


# JSON leaves these raw, but YAML refuses them (or reads them as line breaks) even inside quotes.
_NOT_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return v if _plain_ok(v) else _NOT_PRINTABLE.sub(_escape, json.dumps(v, ensure_ascii=False))
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return ".nan" if v != v else (".inf" if v > 0 else "-.inf")
        mantissa, e, exp = repr(v).partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exp  # YAML 1.1 floats need a dot
    if isinstance(v, dict | list):
        return "{}" if isinstance(v, dict) else "[]"
    raise TypeError(f"cannot write {type(v).__name__} to YAML")


def item_row(it: Item) -> dict[str, str]:
    """One item as the sheet's cells, in the formats the import reads back."""
    return {
        "事项名称": it.name,
        "事项编码": it.code,
        "实施部门": it.department,
        "办理窗口": it.window or "",
        "事项类型": it.type.value,
        "办理结果": "；".join(it.outputs),
        "设定依据": "\n".join(it.basis),
        "受理条件": "\n".join(it.conditions),
        "申报材料": "\n".join(format_material(m) for m in it.materials),
        "办理流程": "\n".join(it.procedure),
        "收费标准": format_fees(it.fees),
        "法定时限": str(it.statutory),
        "承诺时限": str(it.promised),
        "时限单位": format_unit(it.statutory, it.promised),
        "咨询电话": it.consult_phone or "",
        "监督电话": it.supervise_phone or "",
        "别名": "；".join(it.aliases),
        "关键词": "；".join(it.keywords),
    }


def export_catalog(catalog: Catalog, path: str | Path) -> int:
    """Write every item as one row (.xlsx or .csv by suffix); returns the number of rows."""
    path = Path(path)
    rows = [item_row(it) for it in catalog.items]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as f:  # BOM: Excel opens it as UTF-8
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows([r[c] for c in COLUMNS] for r in rows)
    elif suffix == ".xlsx":
        _write_xlsx(path, rows)
    else:
        raise CatalogError([Problem(path.name, "", "", "只能导出为 .xlsx 或 .csv")])
    return len(rows)


_WIDE = {"事项名称": 30, "设定依据": 40, "受理条件": 40, "申报材料": 50, "办理流程": 30, "收费标准": 30}


def _write_xlsx(path: Path, rows: Iterable[dict[str, str]]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)  # streams rows: 10,000 items in seconds, not minutes
    ws = wb.create_sheet("事项目录")
    for i, c in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = _WIDE.get(c, 14)
    ws.freeze_panes = "B2"
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")

    def cell(value: str, **style: Any) -> WriteOnlyCell:
        c = WriteOnlyCell(ws, value=value)
        if value.startswith("="):
            c.data_type = "s"  # text, never a formula
        for k, v in style.items():
            setattr(c, k, v)
        return c

    ws.append([cell(c, font=bold) for c in COLUMNS])
    for r in rows:
        ws.append([cell(r[c], alignment=wrap) for c in COLUMNS])
    help_ws = wb.create_sheet("填写说明")
    help_ws.column_dimensions["A"].width = 100
    for line in _HELP:
        help_ws.append([line])
    wb.save(path)


_HELP = (
    "每行一个事项；列的顺序可以调整，不认识的列导入时忽略。",
    "必填列：事项名称、实施部门、申报材料、收费标准、法定时限、承诺时限。",
    "申报材料：一行一种，可在括号里注明形式和份数，如「营业执照（复印件1份）」；不注明按原件1份。",
    "收费标准：「免费」，或「工本费20元」，多项用分号或换行分开；按规则收费的写「名称：规则」。",
    "时限：「20个工作日」「30日（自然日）」「3个月」或「即办」；只写数字的按「时限单位」列（工作日/自然日/月），该列空着按工作日。",
    "别名、关键词：用分号或换行分开。",
    "导入：yichuang catalog import 表格.xlsx --out 目录；检查：yichuang catalog check 目录。",
)
