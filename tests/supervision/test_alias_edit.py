"""Adding a question as an item's alias edits the hand-written YAML in place: only the aliases
change, comments and layout stay, and whatever YAML needs quoted is quoted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from handlers.admin import AliasError, add_alias_and_reload, insert_alias
from knowledge.loader import load_catalog
from tests.conftest import BOT_CATALOG

BLOCK = """\
# 县市场监督管理局
- name: 甲事项
  code: A1
  aliases:
    - 甲证   # 常见叫法
    - 办甲
  keywords: [甲]

- name: 乙事项
  code: B1
  materials:
    - {name: 身份证}
"""


def aliases_of(text: str, name: str) -> list[str]:
    return next(e.get("aliases") for e in yaml.safe_load(text) if e["name"] == name)


def test_block_list_gets_one_more_line_with_the_same_indent() -> None:
    out = insert_alias(BLOCK, "甲事项", "甲怎么办")
    assert out is not None
    assert "    - 办甲\n    - 甲怎么办\n  keywords: [甲]" in out
    assert "# 常见叫法" in out and out.startswith("# 县市场监督管理局")
    assert aliases_of(out, "甲事项") == ["甲证", "办甲", "甲怎么办"]


def test_missing_aliases_key_is_added_after_the_last_field() -> None:
    out = insert_alias(BLOCK, "乙事项", "乙许可")
    assert out is not None and out.endswith("    - {name: 身份证}\n  aliases: [乙许可]\n")
    assert aliases_of(out, "乙事项") == ["乙许可"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  aliases: [x1, x2]", ["x1", "x2", "新说法"]),
        ("  aliases: []", ["新说法"]),
        ("  aliases:", ["新说法"]),
    ],
)
def test_flow_and_empty_lists(line: str, expected: list[str]) -> None:
    text = f"- name: 丙事项\n  code: C1\n{line}\n  keywords: [丙]\n"
    out = insert_alias(text, "丙事项", "新说法")
    assert out is not None and aliases_of(out, "丙事项") == expected
    assert out.endswith("  keywords: [丙]\n")


def test_characters_yaml_would_misread_are_quoted() -> None:
    for alias in ("费用: 多少", "#号窗口", "[加急] 怎么办", "yes"):
        out = insert_alias(BLOCK, "甲事项", alias)
        assert out is not None and aliases_of(out, "甲事项")[-1] == alias


def test_unknown_item_is_not_in_the_file() -> None:
    assert insert_alias(BLOCK, "丁事项", "丁") is None


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(BOT_CATALOG, tmp_path / "catalog"))


def test_add_and_reload_refuses_duplicates_and_masked_text(copy: Path) -> None:
    catalog = load_catalog(copy)
    before = (copy / "items" / "scjg.yaml").read_text(encoding="utf-8")
    with pytest.raises(AliasError, match="已经是目录中的名称或常用说法"):
        add_alias_and_reload(catalog, "食品经营许可证核发", "餐饮许可证")
    with pytest.raises(AliasError, match="隐去的号码"):
        add_alias_and_reload(catalog, "食品经营许可证核发", "138****5678 开店")
    with pytest.raises(AliasError, match="没有事项"):
        add_alias_and_reload(catalog, "不存在的事项", "随便问问")
    assert (copy / "items" / "scjg.yaml").read_text(encoding="utf-8") == before


def test_add_and_reload_returns_the_new_catalog(copy: Path) -> None:
    path, catalog = add_alias_and_reload(load_catalog(copy), "结婚登记", "结婚要带啥")
    assert path.name == "mzj.yaml"
    assert catalog.item("结婚登记").aliases[-1] == "结婚要带啥"  # type: ignore[union-attr]
    assert not list((copy / "items").glob(".*"))  # no temporary file left behind
