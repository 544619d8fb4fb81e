"""Catalog consistency checks that no single entry can see on its own.

Cross references (departments, windows, bundle members, related items, sample forms), deadlines,
duplicate names and alias collisions, repeated materials and fees that say nothing.
Every problem names the real file (and line) the entry came from, so `catalog check` output can be
acted on directly; the loaders pass that in as `Origins` because the frozen models carry no source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from knowledge.schema import Bundle, Catalog, Item, TimeLimit, Window, _material_key


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str  # item / bundle / department name, or "" for the file itself
    field: str
    message: str
    line: int | None = None  # 1-based line (YAML) or row (spreadsheet)

    def __str__(self) -> str:
        place = f"{self.file} 第{self.line}行" if self.line else self.file
        where = " / ".join(p for p in (place, self.entry, self.field) if p)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Origin:
    file: str
    line: int | None = None  # where the entry starts
    # Line of each top-level key, so "related: …" problems point at the `related:` line.
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Origins:
    """Where each entry came from; lists run parallel to the catalog's lists."""

    items: list[Origin] = field(default_factory=list)
    bundles: list[Origin] = field(default_factory=list)
    departments: list[Origin] = field(default_factory=list)
    windows: list[Origin] = field(default_factory=list)
    # Names of entries that failed to parse (already reported): a bundle naming one of them must
    # not get a second, misleading "member missing" problem.
    unparsed: set[str] = field(default_factory=set)
    # Spreadsheets speak in column names, not YAML keys.
    field_names: Mapping[str, str] = field(default_factory=dict)


_Add = Callable[[Origin, str, str, str], None]


def field_path(loc: Sequence[str | int]) -> str:
    """("materials", 0, "name") -> "materials.第1条.name": people count list entries from one."""
    return ".".join(f"第{p + 1}条" if isinstance(p, int) else str(p) for p in loc)


def check_catalog(catalog: Catalog, origins: Origins | None = None) -> list[Problem]:
    o = origins or Origins()
    problems: list[Problem] = []

    def at(kind: list[Origin], i: int, default: str) -> Origin:
        return kind[i] if i < len(kind) else Origin(default)

    def add(where: Origin, entry: str, fld: str, message: str) -> None:
        label = o.field_names.get(fld.split(".")[0], fld) if fld else ""
        if label != fld and "." in fld:
            label += fld[fld.index(".") :]
        line = where.key_lines.get(fld.split(".")[0], where.line)
        problems.append(Problem(where.file, entry, label, message, line))

    # Departments and windows.
    # Names of departments that failed to parse count as known: their problem is already reported.
    dept_names = {d.name for d in catalog.departments} | o.unparsed
    first_dept: dict[str, Origin] = {}
    first_dept_id: dict[str, Origin] = {}
    for i, d in enumerate(catalog.departments):
        where = at(o.departments, i, "departments.yaml")
        if d.name in first_dept:
            add(where, d.name, "name", f"部门名称重复（{_place(first_dept[d.name])}已有）")
        if d.id in first_dept_id:
            add(where, d.name, "id", f"部门编号「{d.id}」重复（{_place(first_dept_id[d.id])}已用）")
        first_dept.setdefault(d.name, where)
        first_dept_id.setdefault(d.id, where)

    windows: dict[str, Window] = {}
    for i, w in enumerate(catalog.windows):
        where = at(o.windows, i, "windows.yaml")
        if w.number in windows:
            add(where, w.number, "number", "窗口编号重复")
        windows.setdefault(w.number, w)
        if w.department not in dept_names:
            add(where, w.number, "department", f"未知部门「{w.department}」（departments.yaml 中没有）")

    # Names: items and bundles share one namespace because a question can land on either.
    first_name: dict[str, Origin] = {}
    entries: list[tuple[Item | Bundle, Origin]] = [
        (it, at(o.items, i, "items/")) for i, it in enumerate(catalog.items)
    ] + [(b, at(o.bundles, i, "bundles.yaml")) for i, b in enumerate(catalog.bundles)]
    for entry, where in entries:
        if entry.name in first_name:
            add(where, entry.name, "name", f"事项名称重复（{_place(first_name[entry.name])}已有同名事项）")
        else:
            first_name[entry.name] = where
    known = set(first_name) | o.unparsed

    forms_dir = PurePosixPath("forms")
    for i, it in enumerate(catalog.items):
        where = at(o.items, i, "items/")
        _check_item(it, where, add, dept_names, windows, known, catalog, forms_dir)

    for i, b in enumerate(catalog.bundles):
        where = at(o.bundles, i, "bundles.yaml")
        if b.lead_department not in dept_names:
            add(
                where,
                b.name,
                "lead_department",
                f"未知牵头部门「{b.lead_department}」（departments.yaml 中没有）",
            )
        seen: set[str] = set()
        for m in b.items:
            if m in seen:
                add(where, b.name, "items", f"成员事项「{m}」重复列出")
            elif catalog.item(m) is None and m not in o.unparsed:
                hint = "（这是一件事，不能作为成员）" if catalog.bundle(m) else ""
                add(where, b.name, "items", f"成员事项「{m}」不存在{hint}")
            seen.add(m)
        if b.window is not None and b.window not in windows and b.window not in o.unparsed:
            add(where, b.name, "window", f"未知窗口「{b.window}」（windows.yaml 中没有）")
        if b.promised_days is not None and b.promised_days < 0:
            add(where, b.name, "promised_days", "时限不能为负数")

    # One phrase must lead to one entry: an alias shared by two entries makes the matcher guess.
    owner: dict[str, str] = {e.name: e.name for e, _ in entries}
    for entry, where in entries:
        for a in dict.fromkeys(entry.aliases):
            if a == entry.name:
                continue
            other = owner.setdefault(a, entry.name)
            if other == entry.name:
                continue
            what = "名称" if a == other else "别名"
            add(where, entry.name, "aliases", f"别名「{a}」与「{other}」的{what}相同")
    return problems


def _check_item(
    it: Item,
    where: Origin,
    add: _Add,
    dept_names: set[str],
    windows: Mapping[str, Window],
    known: set[str],
    catalog: Catalog,
    forms_dir: PurePosixPath,
) -> None:
    if it.department not in dept_names:
        add(where, it.name, "department", f"未知部门「{it.department}」（departments.yaml 中没有）")
    if it.window is not None:
        w = windows.get(it.window)
        if w is None:
            if it.window not in known:
                add(where, it.name, "window", f"未知窗口「{it.window}」（windows.yaml 中没有）")
        elif w.department != it.department and it.department in dept_names:  # else: dept reported
            add(where, it.name, "window", f"窗口「{it.window}」属于「{w.department}」，不是本事项的实施部门")
    if not it.materials:
        add(where, it.name, "materials", "申报材料不能为空")
    seen: dict[str, int] = {}
    for n, m in enumerate(it.materials, start=1):
        key = _material_key(m.name)
        if key in seen:
            add(where, it.name, f"materials.第{n}条", f"材料「{m.name}」重复列出（与第{seen[key]}条相同）")
        seen.setdefault(key, n)
        if m.sample is not None:
            _check_sample(it, n, m.sample, where, add, catalog, forms_dir)
    for fld, days in (("statutory_days", it.statutory_days), ("promised_days", it.promised_days)):
        if days < 0:
            add(where, it.name, fld, f"时限不能为负数（{days}）")
    too_long = promise_exceeds(it.statutory, it.promised)
    if too_long:
        add(where, it.name, "promised_days", too_long)
    for n, f in enumerate(it.fees, start=1):
        if f.amount is None and not f.rule:
            add(
                where, it.name, f"fees.第{n}条", f"收费「{f.name}」既没有金额（amount）也没有收费规则（rule）"
            )
    for r in it.related:
        if r == it.name:
            add(where, it.name, "related", "相关事项不能是自己")
        elif r not in known:
            add(where, it.name, "related", f"相关事项「{r}」不存在")


def promise_exceeds(statutory: TimeLimit, promised: TimeLimit) -> str | None:
    """The problem with a promise longer than the law allows, or None (also used by the sheet import)."""
    if statutory.days == 0 or not promised.longer_than(statutory):
        return None
    rough = "（单位不同，按5个工作日约7日、1个月约30日估算）" if promised.unit != statutory.unit else ""
    return f"承诺时限（{promised}）长于法定时限（{statutory}）{rough}"


def _check_sample(
    it: Item, n: int, sample: str, where: Origin, add: _Add, catalog: Catalog, forms_dir: PurePosixPath
) -> None:
    # The bot sends this file to citizens: it must stay inside forms/ and actually exist.
    rel = PurePosixPath(sample)
    if rel.is_absolute() or ".." in rel.parts or "\\" in sample:
        add(where, it.name, f"materials.第{n}条.sample", f"样表路径「{sample}」必须是 forms/ 下的文件名")
        return
    if catalog.root is None:
        return  # spreadsheets carry no forms
    if not (Path(catalog.root) / forms_dir / rel).is_file():
        add(where, it.name, f"materials.第{n}条.sample", f"样表文件 forms/{sample} 不存在")


def _place(o: Origin) -> str:
    return f"{o.file} 第{o.line}行" if o.line else o.file
