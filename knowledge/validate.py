"""Catalog consistency checks (cross references, deadlines, name/alias collisions)."""

from __future__ import annotations

from collections import defaultdict

from knowledge.schema import Catalog


def check_catalog(catalog: Catalog) -> list:  # list[Problem]; import cycle kept out of the signature
    from knowledge.loader import Problem

    problems: list[Problem] = []
    dept_names = {d.name for d in catalog.departments}
    window_numbers = {w.number for w in catalog.windows}

    def dup(kind: str, file: str, names: list[str]) -> None:
        seen: set[str] = set()
        for n in names:
            if n in seen:
                problems.append(Problem(file, n, "name", f"{kind}名称重复"))
            seen.add(n)

    dup("部门", "departments.yaml", [d.name for d in catalog.departments])
    dup("部门编号", "departments.yaml", [d.id for d in catalog.departments])
    dup("窗口", "windows.yaml", [w.number for w in catalog.windows])
    dup("事项", "items/", [i.name for i in catalog.items] + [b.name for b in catalog.bundles])

    for w in catalog.windows:
        if w.department not in dept_names:
            problems.append(Problem("windows.yaml", w.number, "department", f"未知部门「{w.department}」"))

    item_names = {i.name for i in catalog.items}
    for it in catalog.items:
        where = "items/"
        if it.department not in dept_names:
            problems.append(Problem(where, it.name, "department", f"未知部门「{it.department}」"))
        if it.window is not None and it.window not in window_numbers:
            problems.append(Problem(where, it.name, "window", f"未知窗口「{it.window}」"))
        if not it.materials:
            problems.append(Problem(where, it.name, "materials", "申报材料不能为空"))
        if it.statutory_days < 0 or it.promised_days < 0:
            problems.append(Problem(where, it.name, "promised_days", "时限不能为负数"))
        elif it.statutory_days and it.promised_days > it.statutory_days:
            problems.append(
                Problem(where, it.name, "promised_days", "承诺时限不能长于法定时限")
            )
        for r in it.related:
            if r not in item_names and catalog.bundle(r) is None:
                problems.append(Problem(where, it.name, "related", f"相关事项「{r}」不存在"))

    for b in catalog.bundles:
        if b.lead_department not in dept_names:
            problems.append(
                Problem("bundles.yaml", b.name, "lead_department", f"未知部门「{b.lead_department}」")
            )
        for m in b.items:
            if m not in item_names:
                problems.append(Problem("bundles.yaml", b.name, "items", f"成员事项「{m}」不存在"))
        if b.promised_days is not None and b.promised_days < 0:
            problems.append(Problem("bundles.yaml", b.name, "promised_days", "时限不能为负数"))

    # One phrase must lead to one entry: an alias shared by two entries makes the matcher guess.
    owners: dict[str, set[str]] = defaultdict(set)
    for entry in [*catalog.items, *catalog.bundles]:
        for a in entry.aliases:
            owners[a].add(entry.name)
    for name in item_names | {b.name for b in catalog.bundles}:
        owners[name].add(name)
    for alias, names in sorted(owners.items()):
        if len(names) > 1:
            problems.append(
                Problem("items/", "、".join(sorted(names)), "aliases", f"别名「{alias}」同时属于多个事项")
            )
    return problems
