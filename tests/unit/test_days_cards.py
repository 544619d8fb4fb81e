"""Cards state each time limit in the unit the law gives it: a citizen reading the 离婚冷静期 must not
be told "30个工作日" (that would be six weeks, not thirty days)."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from bot.render import entry
from bot.templates import make_templates
from handlers.guide import card_text, facet_text
from knowledge.loader import load_catalog
from knowledge.schema import Catalog


@pytest.fixture(scope="module")
def sample() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def templates() -> Environment:
    return make_templates()


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("离婚登记", "法定时限：30日（自然日）；承诺时限：30日（自然日）"),
        ("医疗机构执业登记", "法定时限：45日（自然日）；承诺时限：15个工作日"),
        ("民办学校设立审批", "法定时限：3个月；承诺时限：30个工作日"),
        ("户口迁移登记", "法定时限：20个工作日；承诺时限：3个工作日"),
    ],
)
def test_item_card_names_the_unit_of_each_limit(
    sample: Catalog, templates: Environment, name: str, line: str
) -> None:
    e = entry(sample, "item", name)
    assert e is not None
    assert line in card_text(sample, templates, e)
    assert line in facet_text(sample, templates, e, ["days"])


def test_divorce_card_never_says_working_days(sample: Catalog, templates: Environment) -> None:
    e = entry(sample, "item", "离婚登记")
    assert e is not None
    assert "工作日" not in card_text(sample, templates, e)
