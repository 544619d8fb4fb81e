"""Spreadsheet import/export: the formats counties write, per-row errors, and the round trip."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from knowledge.loader import CatalogError, load_catalog
from knowledge.schema import Catalog, DaysUnit, Fee, Item, MaterialForm, TimeLimit
from knowledge.spreadsheet import (
    COLUMNS,
    CellError,
    _block,
    export_catalog,
    import_sheet,
    parse_days,
    parse_fees,
    parse_material,
    read_sheet,
)

HEADER = ["事项名称", "实施部门", "申报材料", "收费标准", "法定时限", "承诺时限"]
MARRIAGE = ["结婚登记", "县民政局", "居民户口簿\n居民身份证", "免费", "即办", "即办"]
MOVE = ["户口迁移登记", "县公安局", "居民户口簿（原件1份）", "免费", "20个工作日", "5个工作日"]
# What the sheet carries; everything else (keywords' neighbours like related, notes...) stays in YAML.
CARRIED = [
    "name",
    "code",
    "department",
    "window",
    "type",
    "basis",
    "conditions",
    "procedure",
    "statutory_days",
    "statutory_unit",
    "promised_days",
    "promised_unit",
    "fees",
    "consult_phone",
    "supervise_phone",
    "aliases",
    "keywords",
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


# -- cell formats ------------------------------------------------------------------------------


W, C, M = DaysUnit.WORKING, DaysUnit.CALENDAR, DaysUnit.MONTH


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("20个工作日", TimeLimit(20, W)),
        ("20 个工作日", TimeLimit(20, W)),
        ("20日", TimeLimit(20, W)),  # no 时限单位 column: working days, as 事项目录 mostly mean
        ("15天", TimeLimit(15, W)),
        ("即办", TimeLimit(0)),
        ("当场办结", TimeLimit(0)),
        ("7", TimeLimit(7, W)),
        ("30日（自然日）", TimeLimit(30, C)),
        ("30个自然日", TimeLimit(30, C)),
        ("45 日历日", TimeLimit(45, C)),
        ("3个月", TimeLimit(3, M)),
    ],
)
def test_deadline_formats(text: str, limit: TimeLimit) -> None:
    assert parse_days(text) == limit


def test_a_bare_number_takes_the_rows_unit_and_a_named_unit_must_agree() -> None:
    assert parse_days("30日", C) == TimeLimit(30, C)
    assert parse_days("30", C) == TimeLimit(30, C)
    assert parse_days("30日（自然日）", C) == TimeLimit(30, C)
    with pytest.raises(CellError, match="与时限单位「自然日」不一致"):
        parse_days("20个工作日", C)


@pytest.mark.parametrize(
    ("text", "says"),
    [("二十天", "20个工作日"), ("-3", "负数"), ("10个工作日（自然日）", "无法识别"), ("3周", "3个月")],
)
def test_unreadable_deadlines_say_how_to_write_them(text: str, says: str) -> None:
    with pytest.raises(CellError, match=says):
        parse_days(text)


def test_time_unit_column(tmp_path: Path) -> None:
    divorce = ["离婚登记", "县民政局", "结婚证", "免费", "30", "30", "自然日"]
    school = ["民办学校设立审批", "县教育局", "申办报告", "免费", "3个月", "30个工作日", ""]
    bad = ["医疗机构执业登记", "县卫生健康局", "申请书", "免费", "45", "15", "周"]
    path = write_csv(tmp_path / "s.csv", [[*HEADER, "时限单位"], divorce, school, bad])
    sheet = read_sheet(path)
    got = {i.name: (str(i.statutory), str(i.promised)) for i in sheet.items}
    assert got == {
        "离婚登记": ("30日（自然日）", "30日（自然日）"),
        "民办学校设立审批": ("3个月", "30个工作日"),
    }
    [error] = sheet.errors
    assert (error.line, error.field) == (
        4,
        "时限单位",
    ) and "应写「工作日」「自然日」或「月」" in error.message


def test_calendar_limits_round_trip_through_a_sheet(tmp_path: Path) -> None:
    row = ["医疗机构执业登记", "县卫生健康局", "申请书", "免费", "45日（自然日）", "15个工作日"]
    first = read_sheet(write_csv(tmp_path / "a.csv", [HEADER, row]))
    [it] = first.items
    assert (it.statutory, it.promised) == (TimeLimit(45, C), TimeLimit(15, W))
    export_catalog(first.catalog(), tmp_path / "b.xlsx")
    [again] = read_sheet(tmp_path / "b.xlsx").items
    assert (again.statutory, again.promised) == (it.statutory, it.promised)


def test_fee_formats() -> None:
    assert parse_fees("免费") == parse_fees("不收费") == []
    assert parse_fees("工本费20元") == [Fee(name="工本费", amount=20)]
    assert parse_fees("工本费20元；邮寄费10元") == [
        Fee(name="工本费", amount=20),
        Fee(name="邮寄费", amount=10),
    ]
    assert parse_fees("按面积收取，每平方米3元") == [Fee(name="收费", rule="按面积收取，每平方米3元")]
    assert parse_fees("邮寄费：按邮政实际收费") == [Fee(name="邮寄费", rule="按邮政实际收费")]
    # A rule that merely contains "；" stays one fee.
    assert parse_fees("登记费：住宅80元/件；非住宅550元/件") == [
        Fee(name="登记费", rule="住宅80元/件；非住宅550元/件")
    ]
    with pytest.raises(CellError, match="免费"):
        parse_fees("")


@pytest.mark.parametrize(
    ("line", "name", "form", "copies"),
    [
        ("营业执照（复印件1份）", "营业执照", MaterialForm.COPY, 1),
        ("身份证 原件", "身份证", MaterialForm.ORIGINAL, 1),
        ("户口簿复印件", "户口簿", MaterialForm.COPY, 1),
        ("身份证原件及复印件", "身份证", MaterialForm.ORIGINAL_AND_COPY, 1),
        ("1寸照片2张", "1寸照片", MaterialForm.ORIGINAL, 2),
        ("2. 申请人身份证（或户口簿）", "申请人身份证（或户口簿）", MaterialForm.ORIGINAL, 1),
        ("租赁合同（复印件两份）", "租赁合同", MaterialForm.COPY, 2),
        ("结婚证", "结婚证", MaterialForm.ORIGINAL, 1),
    ],
)
def test_material_hints(line: str, name: str, form: MaterialForm, copies: int) -> None:
    m = parse_material(line)
    assert (m.name, m.form, m.copies) == (name, form, copies)


def test_material_notes_and_source_in_the_hint() -> None:
    m = parse_material("营业执照（复印件1份，加盖公章；来源：市场监管局）")
    assert (m.name, m.notes, m.source) == ("营业执照", "加盖公章", "市场监管局")


# -- reading sheets ----------------------------------------------------------------------------


def test_columns_in_any_order_with_a_title_row_and_unknown_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "目录.csv",
        [
            ["示例县政务服务事项目录（2024版）"],
            ["承诺时限", "备注", "实施主体", "事项名称*", "收费标准", "法定时限", "申报材料（必填）", "别名"],
            ["即办", "无", "县民政局", "结婚登记", "免费", "即办", "居民户口簿", "扯证；领证、结婚证"],
        ],
    )
    sheet = read_sheet(path)
    assert sheet.errors == []
    [item] = sheet.items
    assert (item.name, item.department, item.aliases) == ("结婚登记", "县民政局", ["扯证", "领证", "结婚证"])
    assert sheet.warnings == ["第2行：不认识的列「备注」，已忽略"]


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [HEADER[:-1], MARRIAGE[:-1]])
    with pytest.raises(CatalogError) as e:
        read_sheet(path)
    [p] = e.value.problems
    assert (p.field, p.line) == ("承诺时限", 1) and "缺少必需的列" in p.message


def test_bad_rows_are_reported_by_row_and_column_and_good_rows_kept(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv",
        [
            HEADER,
            MARRIAGE,
            ["离婚登记", "县民政局", "", "免费", "三十天", "30个工作日"],
            MOVE,
            ["出生登记", "", "出生医学证明", "免费", "20个工作日", "25个工作日"],
        ],
    )
    sheet = read_sheet(path)
    assert [i.name for i in sheet.items] == ["结婚登记", "户口迁移登记"]
    assert sheet.failed_rows == [3, 5]
    got = {(p.line, p.field): p.message for p in sheet.errors}
    assert got.keys() == {(3, "申报材料"), (3, "法定时限"), (5, "实施部门"), (5, "承诺时限")}
    assert "三十天" in got[(3, "法定时限")]
    assert "长于法定时限" in got[(5, "承诺时限")]
    assert str(sheet.errors[0]).startswith("x.csv 第3行 / 离婚登记 / ")


def test_duplicate_name_rejects_the_later_row(tmp_path: Path) -> None:
    sheet = read_sheet(write_csv(tmp_path / "x.csv", [HEADER, MARRIAGE, MOVE, MARRIAGE]))
    assert [i.name for i in sheet.items] == ["结婚登记", "户口迁移登记"]
    [p] = sheet.errors
    assert (p.line, p.field, p.message) == (4, "事项名称", "与第2行的事项重名")


def test_alias_taken_by_another_item_is_dropped_with_a_warning(tmp_path: Path) -> None:
    rows = [HEADER + ["别名"], MARRIAGE + ["扯证；户口迁移登记"], MOVE + ["迁户口；扯证"]]
    sheet = read_sheet(write_csv(tmp_path / "x.csv", rows))
    assert sheet.errors == []
    assert [i.aliases for i in sheet.items] == [["扯证"], ["迁户口"]]
    assert len(sheet.warnings) == 2 and "「户口迁移登记」已是第3行「户口迁移登记」的名称" in sheet.warnings[0]


def test_departments_and_windows_are_derived(tmp_path: Path) -> None:
    birth = ["出生登记", *MOVE[1:], "B01"]
    rows = [HEADER + ["办理窗口"], MARRIAGE + ["B05"], MOVE + [""], birth]
    catalog = read_sheet(write_csv(tmp_path / "x.csv", rows)).catalog()
    assert [d.name for d in catalog.departments] == ["县民政局", "县公安局"]
    assert all(d.id.isascii() for d in catalog.departments)
    assert [(w.number, w.department) for w in catalog.windows] == [("B05", "县民政局"), ("B01", "县公安局")]


def test_department_without_any_window_gets_a_default_one(tmp_path: Path) -> None:
    catalog = read_sheet(write_csv(tmp_path / "x.csv", [HEADER, MARRIAGE])).catalog()
    [w] = catalog.windows
    assert w.department == "县民政局" and w.chief_name == "待填写"


def test_department_ids_are_stable_across_imports_and_row_order(tmp_path: Path) -> None:
    a = read_sheet(write_csv(tmp_path / "a.csv", [HEADER, MARRIAGE, MOVE])).catalog()
    b = read_sheet(write_csv(tmp_path / "b.csv", [HEADER, MOVE, MARRIAGE])).catalog()
    assert {d.name: d.id for d in a.departments} == {d.name: d.id for d in b.departments}


def test_gbk_csv_from_excel_is_read(tmp_path: Path) -> None:
    sheet = read_sheet(write_csv(tmp_path / "x.csv", [HEADER, MARRIAGE], encoding="gbk"))
    assert [i.name for i in sheet.items] == ["结婚登记"]
    assert any("GBK" in w for w in sheet.warnings)


def test_xlsx_with_title_row_merged_department_and_number_cells(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["县政务服务事项目录"])
    ws.merge_cells("A1:F1")
    ws.append(HEADER)
    ws.append(["户口迁移登记", "县公安局", "居民户口簿", "免费", 20, 5])
    ws.append(["出生登记", None, "出生医学证明\n父母身份证", "免费", 20.0, "即办"])
    ws.merge_cells("B3:B4")  # one department cell spanning its items, as county sheets do
    path = tmp_path / "目录.xlsx"
    wb.save(path)
    sheet = read_sheet(path)
    assert sheet.errors == []
    assert [(i.name, i.department, i.statutory_days) for i in sheet.items] == [
        ("户口迁移登记", "县公安局", 20),
        ("出生登记", "县公安局", 20),
    ]
    assert [m.name for m in sheet.items[1].materials] == ["出生医学证明", "父母身份证"]


def test_xlsx_catalog_on_a_later_sheet(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.append(["说明：本表由县政务服务中心整理"])
    ws = wb.create_sheet("目录")
    ws.append(HEADER)
    ws.append(MARRIAGE)
    path = tmp_path / "目录.xlsx"
    wb.save(path)
    assert [i.name for i in read_sheet(path).items] == ["结婚登记"]


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = tmp_path / "目录.xls"
    path.write_bytes(b"old excel")
    with pytest.raises(CatalogError, match="只支持"):
        read_sheet(path)


# -- import to a folder ------------------------------------------------------------------------


def test_import_writes_a_folder_that_loads_as_it_is(tmp_path: Path) -> None:
    rows = [HEADER + ["别名", "办理窗口"], MARRIAGE + ["扯证", "B05"], MOVE + ["迁户口", "B01"]]
    out = tmp_path / "catalog"
    import_sheet(write_csv(tmp_path / "x.csv", rows), out)
    catalog = load_catalog(out)
    assert {i.name: i.aliases for i in catalog.items} == {"结婚登记": ["扯证"], "户口迁移登记": ["迁户口"]}
    assert "尚未填写" in (catalog.center.sample_notice or "")  # the placeholder says it must be completed
    assert catalog.bundles == []


def test_import_keeps_good_rows_when_some_fail(tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    sheet = import_sheet(
        write_csv(tmp_path / "x.csv", [HEADER, ["离婚登记", "县民政局", "", "", "", ""], MOVE]), out
    )
    assert sheet.failed_rows == [2]
    assert [i.name for i in load_catalog(out).items] == ["户口迁移登记"]


def test_import_refuses_a_non_empty_folder_unless_forced_and_keeps_center(tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    path = write_csv(tmp_path / "x.csv", [HEADER, MARRIAGE])
    import_sheet(path, out)
    center = (out / "center.yaml").read_text(encoding="utf-8").replace("待填写", "示例县", 1)
    (out / "center.yaml").write_text(center, encoding="utf-8")
    with pytest.raises(CatalogError, match="--force"):
        import_sheet(path, out)
    import_sheet(write_csv(tmp_path / "y.csv", [HEADER, MOVE]), out, force=True)
    assert (out / "center.yaml").read_text(encoding="utf-8") == center
    assert [i.name for i in load_catalog(out).items] == ["户口迁移登记"]  # old items replaced


def test_text_that_looks_like_yaml_survives_import(tmp_path: Path) -> None:
    tricky = ["yes", "1", "a: b", "#井号开头", "- 横线开头", "null", "2024-01-01", "'引号'", '"双引号"']
    rows = [HEADER + ["别名"], MARRIAGE + ["；".join(tricky)]]
    out = tmp_path / "catalog"
    import_sheet(write_csv(tmp_path / "x.csv", rows), out)
    assert load_catalog(out).items[0].aliases == tricky


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(_text, _plain, max_size=5), max_size=4))
def test_the_folder_writer_reads_back_exactly(data: list[dict[str, object]]) -> None:
    text = "".join(line + "\n" for line in _block(data, ""))
    assert yaml.safe_load(text) == (data or None)


# -- export and the round trip -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> Catalog:
    return load_catalog()


def _carried(it: Item) -> dict[str, object]:
    data = it.model_dump(include=set(CARRIED))
    data["materials"] = [m.model_dump(exclude={"sample"}) for m in it.materials]  # forms stay in the folder
    return data


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_sample_catalog_round_trips_through_a_sheet(sample: Catalog, suffix: str, tmp_path: Path) -> None:
    first = tmp_path / f"目录{suffix}"
    assert export_catalog(sample, first) == len(sample.items)
    out = tmp_path / "catalog"
    sheet = import_sheet(first, out)
    assert sheet.errors == [] and sheet.warnings == []
    imported = load_catalog(out)
    assert {i.name: _carried(i) for i in imported.items} == {i.name: _carried(i) for i in sample.items}
    second = tmp_path / f"again{suffix}"
    export_catalog(imported, second)
    assert sorted(read_sheet(second).items, key=_name) == sorted(read_sheet(first).items, key=_name)


def _name(it: Item) -> str:
    return it.name


def test_export_writes_the_columns_import_reads(sample: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "目录.csv"
    export_catalog(sample, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS
    assert set(HEADER) <= set(header)
