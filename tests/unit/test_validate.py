"""Each kind of broken catalog gets one precise problem naming the real file, entry and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from knowledge.loader import CatalogError, Problem, load_catalog
from knowledge.validate import check_catalog
from tests.fixtures import CATALOG_OK, copy_catalog, edit_yaml

ID_CARD = "居民身份证申领、换领、补领"


@dataclass
class Case:
    file: str  # the file to edit, relative to the catalog
    change: Callable[[Any], object]  # mutates the loaded YAML in place
    where: tuple[str, str, str]  # expected (file, entry, field)
    says: str  # part of the message


def _set(index: int, **values: Any) -> Callable[[Any], object]:
    return lambda entries: entries[index].update(values)


CASES = {
    "unknown department": Case(
        "items/mzj.yaml",
        _set(1, department="县婚姻局"),
        ("items/mzj.yaml", "离婚登记", "department"),
        "未知部门「县婚姻局」",
    ),
    "unknown window": Case(
        "items/gaj.yaml",
        _set(1, window="B99"),
        ("items/gaj.yaml", "户口迁移登记", "window"),
        "未知窗口「B99」",
    ),
    "window of another department": Case(
        "items/gaj.yaml",
        _set(1, window="B05"),
        ("items/gaj.yaml", "户口迁移登记", "window"),
        "窗口「B05」属于「县民政局」",
    ),
    "bundle member missing": Case(
        "bundles.yaml",
        lambda bs: bs[0]["items"].append("出生登记"),
        ("bundles.yaml", "结婚落户一件事", "items"),
        "成员事项「出生登记」不存在",
    ),
    "bundle lead department unknown": Case(
        "bundles.yaml",
        _set(0, lead_department="县婚姻局"),
        ("bundles.yaml", "结婚落户一件事", "lead_department"),
        "未知牵头部门「县婚姻局」",
    ),
    "negative deadline": Case(
        "items/gaj.yaml",
        _set(1, statutory_days=-20, promised_days=5),
        ("items/gaj.yaml", "户口迁移登记", "statutory_days"),
        "不能为负数",
    ),
    "promised longer than statutory": Case(
        "items/gaj.yaml",
        _set(1, statutory_days=20, promised_days=25),
        ("items/gaj.yaml", "户口迁移登记", "promised_days"),
        "承诺时限（25个工作日）长于法定时限（20个工作日）",
    ),
    "unknown time unit": Case(
        "items/gaj.yaml",
        _set(1, promised_unit="自然天"),
        ("items/gaj.yaml", "户口迁移登记", "promised_unit"),
        "时限单位只能是 working（工作日）、calendar（自然日）或 month（月）",
    ),
    "promised working days longer than statutory calendar days": Case(
        "items/gaj.yaml",
        _set(1, statutory_days=10, statutory_unit="calendar", promised_days=10),
        ("items/gaj.yaml", "户口迁移登记", "promised_days"),
        "承诺时限（10个工作日）长于法定时限（10日（自然日））（单位不同",
    ),
    "duplicate item name": Case(
        "items/mzj.yaml",
        _set(1, name="户口迁移登记", aliases=[]),
        ("items/mzj.yaml", "户口迁移登记", "name"),
        "事项名称重复（items/gaj.yaml 第",
    ),
    "alias equal to another item's alias": Case(
        "items/mzj.yaml",
        _set(1, aliases=["迁户口"]),
        ("items/mzj.yaml", "离婚登记", "aliases"),
        "别名「迁户口」与「户口迁移登记」的别名相同",
    ),
    "alias equal to another item's name": Case(
        "items/mzj.yaml",
        _set(1, aliases=["结婚登记"]),
        ("items/mzj.yaml", "离婚登记", "aliases"),
        "别名「结婚登记」与「结婚登记」的名称相同",
    ),
    "bundle alias equal to an item's alias": Case(
        "bundles.yaml",
        _set(0, aliases=["扯证"]),
        ("bundles.yaml", "结婚落户一件事", "aliases"),
        "别名「扯证」与「结婚登记」的别名相同",
    ),
    "empty materials": Case(
        "items/mzj.yaml",
        _set(1, materials=[]),
        ("items/mzj.yaml", "离婚登记", "materials"),
        "申报材料不能为空",
    ),
    "related item missing": Case(
        "items/mzj.yaml",
        _set(1, related=["复婚登记"]),
        ("items/mzj.yaml", "离婚登记", "related"),
        "相关事项「复婚登记」不存在",
    ),
    "sample form missing": Case(
        "items/mzj.yaml",
        lambda items: items[1]["materials"][0].update(sample="结婚证样本.pdf"),
        ("items/mzj.yaml", "离婚登记", "materials.第1条.sample"),
        "样表文件 forms/结婚证样本.pdf 不存在",
    ),
    "sample form outside forms/": Case(
        "items/mzj.yaml",
        lambda items: items[1]["materials"][0].update(sample="../center.yaml"),
        ("items/mzj.yaml", "离婚登记", "materials.第1条.sample"),
        "必须是 forms/ 下的文件名",
    ),
    "material listed twice": Case(
        "items/mzj.yaml",
        lambda items: items[0]["materials"].append({"name": "居民户口簿 ", "form": "复印件"}),
        ("items/mzj.yaml", "结婚登记", "materials.第3条"),
        "材料「居民户口簿」重复列出（与第1条相同）",
    ),
    "fee with neither amount nor rule": Case(
        "items/mzj.yaml",
        _set(1, fees=[{"name": "工本费"}]),
        ("items/mzj.yaml", "离婚登记", "fees.第1条"),
        "既没有金额（amount）也没有收费规则（rule）",
    ),
    "window of an unknown department": Case(
        "windows.yaml",
        _set(1, department="县婚姻局"),
        ("windows.yaml", "B05", "department"),
        "未知部门「县婚姻局」",
    ),
    "duplicate department id": Case(
        "departments.yaml", _set(1, id="gaj"), ("departments.yaml", "县民政局", "id"), "部门编号「gaj」重复"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_kind_of_problem_is_reported_precisely(case: Case, tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / case.file, case.change)
    with pytest.raises(CatalogError) as e:
        load_catalog(root)
    problems = e.value.problems
    matching = [p for p in problems if (p.file, p.entry, p.field) == case.where]
    assert matching, f"expected a problem at {case.where}, got:\n{e.value.report()}"
    assert case.says in matching[0].message
    assert all(p.line for p in problems)  # every problem says where to look


def test_the_line_points_at_the_offending_field(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", _set(1, related=["复婚登记"]))
    with pytest.raises(CatalogError) as e:
        load_catalog(root)
    [p] = e.value.problems
    lines = (root / "items" / "mzj.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[p.line - 1].strip().startswith("related:")  # type: ignore[operator]


def test_duplicate_names_across_files_name_both_files(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", _set(1, name=ID_CARD, aliases=[]))
    with pytest.raises(CatalogError) as e:
        load_catalog(root)
    [p] = e.value.problems
    assert p.file == "items/mzj.yaml" and "items/gaj.yaml 第1行" in p.message


def test_promised_within_statutory_and_instant_items_pass(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "gaj.yaml", _set(1, statutory_days=20, promised_days=20))
    load_catalog(root)  # equal is allowed; the fixture also has a 即办 item (0 / 0)
    # 医疗机构执业登记: 45 calendar days in law, 15 working days promised.
    edit_yaml(
        root / "items" / "gaj.yaml", _set(1, statutory_days=45, statutory_unit="calendar", promised_days=15)
    )
    it = load_catalog(root).item("户口迁移登记")
    assert it is not None and (str(it.statutory), str(it.promised)) == ("45日（自然日）", "15个工作日")


def test_check_catalog_without_origins_still_names_the_kind_of_file() -> None:
    catalog = load_catalog(CATALOG_OK)
    broken = catalog.items[1].model_copy(update={"department": "县婚姻局"})
    catalog.items[1] = broken
    problems = check_catalog(catalog)
    assert problems == [
        Problem("items/", broken.name, "department", "未知部门「县婚姻局」（departments.yaml 中没有）")
    ]


def test_clean_catalog_has_no_problems() -> None:
    assert check_catalog(load_catalog(CATALOG_OK)) == []
