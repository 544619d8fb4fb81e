"""Loading a catalog folder: every problem at once, with file and line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.loader import DEFAULT_CATALOG, CatalogError, Problem, load_catalog
from knowledge.schema import Catalog
from tests.fixtures import copy_catalog, edit_yaml


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    return e.value.problems


def test_sample_catalog_loads_and_passes_every_check() -> None:
    catalog = load_catalog()  # None: the packaged sample
    assert len(catalog.items) >= 40
    assert catalog.root == str(DEFAULT_CATALOG)
    assert catalog.center.sample_notice  # the sample says it is one


def test_fixture_catalog_loads(tmp_path: Path) -> None:
    catalog = load_catalog(copy_catalog(tmp_path))
    assert isinstance(catalog, Catalog)
    assert [b.name for b in catalog.bundles] == ["结婚落户一件事"]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    text = (root / "items" / "mzj.yaml").read_text(encoding="utf-8").splitlines()
    text[5] = "  aliases: [扯证, 领结婚证"  # unclosed list on line 6
    (root / "items" / "mzj.yaml").write_text("\n".join(text), encoding="utf-8")
    [p] = problems_of(root)
    assert p.file == "items/mzj.yaml"
    assert p.line is not None and p.line >= 6
    assert "YAML 格式错误" in p.message
    assert str(p).startswith(f"items/mzj.yaml 第{p.line}行")


def test_unknown_field_points_at_its_line_and_suggests_the_right_name(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    path = root / "items" / "gaj.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  procedure:", "  procedur:"), encoding="utf-8")
    [p] = problems_of(root)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert (p.file, p.entry, p.field) == ("items/gaj.yaml", "居民身份证申领、换领、补领", "procedur")
    assert lines[p.line - 1].strip() == "procedur:"  # type: ignore[operator]
    assert "未知字段" in p.message and "procedure" in p.message


def test_missing_required_field(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[1].pop("code"))
    [p] = problems_of(root)
    assert (p.file, p.entry, p.field, p.message) == ("items/mzj.yaml", "离婚登记", "code", "缺少必填字段")


def test_wrong_nested_value_shows_the_entry_number_people_count(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "gaj.yaml", lambda items: items[0]["materials"][1].update(form="扫描件"))
    [p] = problems_of(root)
    assert p.field == "materials.第2条.form"
    assert "原件" in p.message  # lists what is allowed


def test_days_written_as_text_get_a_hint(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[0].update(promised_days="即办"))
    [p] = problems_of(root)
    assert p.field == "promised_days" and "即办写 0" in p.message


def test_duplicate_yaml_key_is_reported_not_silently_overwritten(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    path = root / "items" / "mzj.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "  aliases: [扯证, 领结婚证]", "  aliases: [扯证]\n  aliases: [领证]"
        ),
        encoding="utf-8",
    )
    [p] = problems_of(root)
    assert (p.file, p.field) == ("items/mzj.yaml", "aliases")
    assert "重复" in p.message


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    (root / "center.yaml").unlink()
    edit_yaml(root / "departments.yaml", lambda ds: ds[1].update(id="民政"))
    edit_yaml(root / "items" / "gaj.yaml", lambda items: items[1].update(promised_days=-1))
    files = {p.file for p in problems_of(root)}
    assert files == {"center.yaml", "departments.yaml", "items/gaj.yaml"}


def test_an_entry_that_failed_to_parse_is_not_reported_again_as_missing(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    # 结婚登记 is a bundle member; break its materials only.
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[0].update(materials="户口簿"))
    problems = problems_of(root)
    assert [(p.entry, p.field) for p in problems] == [("结婚登记", "materials")]


def test_top_level_must_be_a_list(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    path = root / "windows.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("windows:\n" + "\n".join("  " + line for line in lines), encoding="utf-8")
    [p] = problems_of(root)
    assert p.file == "windows.yaml" and "列表" in p.message


def test_no_item_files(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    for f in (root / "items").glob("*.yaml"):
        f.unlink()
    (root / "bundles.yaml").unlink()
    [p] = problems_of(root)
    assert p.file == "items/" and "没有任何事项文件" in p.message


def test_non_utf8_file(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    path = root / "items" / "mzj.yaml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    [p] = problems_of(root)
    assert p.file == "items/mzj.yaml" and "UTF-8" in p.message


def test_missing_folder(tmp_path: Path) -> None:
    [p] = problems_of(tmp_path / "nowhere")
    assert "目录不存在" in p.message


def test_report_is_plain_text_listing_each_problem(tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[1].update(department="县婚姻局"))
    with pytest.raises(CatalogError) as e:
        load_catalog(root)
    report = e.value.report()
    assert report.splitlines()[0] == "事项目录有 1 处问题："
    assert "items/mzj.yaml 第" in report and "离婚登记 / department: 未知部门「县婚姻局」" in report
    assert "Traceback" not in report


def test_spreadsheet_path_loads_directly(tmp_path: Path) -> None:
    sheet = tmp_path / "目录.csv"
    sheet.write_text(
        "事项名称,实施部门,申报材料,收费标准,法定时限,承诺时限\n结婚登记,县民政局,居民户口簿,免费,即办,即办\n",
        encoding="utf-8-sig",
    )
    catalog = load_catalog(sheet)
    assert [i.name for i in catalog.items] == ["结婚登记"]
    assert [d.name for d in catalog.departments] == ["县民政局"]
