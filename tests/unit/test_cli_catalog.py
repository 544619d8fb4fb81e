"""`yichuang catalog check|import|export`: exit codes and what the operator reads."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bot.cli import main
from knowledge.loader import load_catalog
from tests.fixtures import copy_catalog, edit_yaml

HEADER = ["事项名称", "实施部门", "申报材料", "收费标准", "法定时限", "承诺时限"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["catalog", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_check_sample_catalog_passes_with_a_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CATALOG_DIR", raising=False)
    code, out = run(capsys, "check")
    assert code == 0
    assert out.startswith("事项目录检查通过") and "个部门" in out and "个一件事" in out


def test_check_reports_every_problem_and_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[1].update(department="县婚姻局", materials=[]))
    code, out = run(capsys, "check", str(root))
    assert code == 1
    assert "事项目录有 2 处问题" in out
    assert "items/mzj.yaml 第" in out and "未知部门「县婚姻局」" in out and "申报材料不能为空" in out
    assert "Traceback" not in out


def test_check_uses_catalog_dir_by_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_catalog(tmp_path)
    monkeypatch.setenv("CATALOG_DIR", str(root))
    code, out = run(capsys, "check")
    assert code == 0 and "2 个部门、2 个窗口、4 个事项、1 个一件事" in out


def test_check_a_spreadsheet_lists_bad_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "目录.csv"
    _write(
        path,
        [
            HEADER + ["备注"],
            ["结婚登记", "县民政局", "居民户口簿", "免费", "即办", "即办", ""],
            ["离婚登记", "县民政局", "结婚证", "免费", "一个月", "即办", ""],
        ],
    )
    code, out = run(capsys, "check", str(path))
    assert code == 1
    assert "提示：第1行：不认识的列「备注」" in out
    assert "目录.csv 第3行 / 离婚登记 / 法定时限: 无法识别「一个月」" in out


def test_check_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = run(capsys, "check", str(tmp_path / "nowhere"))
    assert code == 1 and "目录不存在" in out


def test_import_reports_bad_rows_and_keeps_good_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "目录.csv"
    _write(
        path,
        [
            HEADER,
            ["结婚登记", "县民政局", "居民户口簿", "免费", "即办", "即办"],
            ["离婚登记", "县民政局", "", "免费", "30个工作日", "30个工作日"],
        ],
    )
    out_dir = tmp_path / "catalog"
    code, out = run(capsys, "import", str(path), "--out", str(out_dir))
    assert code == 1
    assert "已导入 1 个事项" in out
    assert "有 1 行未导入（共 2 行）" in out
    assert "目录.csv 第3行 / 离婚登记 / 申报材料: 不能为空" in out
    assert [i.name for i in load_catalog(out_dir).items] == ["结婚登记"]


def test_import_into_non_empty_folder_needs_force(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "目录.csv"
    _write(path, [HEADER, ["结婚登记", "县民政局", "居民户口簿", "免费", "即办", "即办"]])
    out_dir = copy_catalog(tmp_path)
    code, out = run(capsys, "import", str(path), "--out", str(out_dir))
    assert code == 1 and "--force" in out


def test_import_with_force_reports_a_kept_bundle_that_no_longer_fits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "目录.csv"
    _write(path, [HEADER, ["结婚登记", "县民政局", "居民户口簿", "免费", "即办", "即办"]])
    out_dir = copy_catalog(tmp_path)  # its bundles.yaml also needs 户口迁移登记
    code, out = run(capsys, "import", str(path), "--out", str(out_dir), "--force")
    assert code == 1
    assert "导入后的目录文件夹还有问题" in out and "成员事项「户口迁移登记」不存在" in out


def test_export_then_import_then_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    sheet = tmp_path / "目录.xlsx"
    code, out = run(capsys, "export", "--catalog", str(root), "--out", str(sheet))
    assert code == 0 and "已导出 4 个事项" in out and "1 个一件事不在表格中" in out
    code, out = run(capsys, "import", str(sheet), "--out", str(tmp_path / "again"))
    assert code == 0 and "已导入 4 个事项（2 个部门、2 个窗口）" in out
    code, out = run(capsys, "check", str(tmp_path / "again"))
    assert code == 0


def test_export_refuses_a_broken_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = copy_catalog(tmp_path)
    edit_yaml(root / "items" / "mzj.yaml", lambda items: items[1].update(department="县婚姻局"))
    code, out = run(capsys, "export", "--catalog", str(root), "--out", str(tmp_path / "x.csv"))
    assert code == 1 and "先修正再导出" in out
    assert not (tmp_path / "x.csv").exists()


def test_export_needs_a_sheet_suffix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = run(
        capsys, "export", "--catalog", str(copy_catalog(tmp_path)), "--out", str(tmp_path / "x.txt")
    )
    assert code == 2 and ".xlsx 或 .csv" in out


def _write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
