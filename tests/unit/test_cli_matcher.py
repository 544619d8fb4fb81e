"""`yichuang ask` / `yichuang eval` as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_matcher import fixture_catalog

from bot.cli import main


def _dump(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = fixture_catalog()
    root = tmp_path_factory.mktemp("catalog")
    (root / "items").mkdir()

    def dump_all(models: list) -> list:  # type: ignore[type-arg]
        return [m.model_dump(mode="json", exclude_defaults=True) for m in models]

    _dump(root / "center.yaml", c.center.model_dump(mode="json", exclude_defaults=True))
    _dump(root / "departments.yaml", dump_all(c.departments))
    _dump(root / "windows.yaml", dump_all(c.windows))
    _dump(root / "items" / "all.yaml", dump_all(c.items))
    _dump(root / "bundles.yaml", dump_all(c.bundles))
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_json_has_exactly_the_documented_shape(
    capsys: pytest.CaptureFixture[str], catalog_dir: Path
) -> None:
    code, out, _ = _run(capsys, "ask", "扯证要带啥", "--json", "--catalog", str(catalog_dir), "--limit", "3")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"question", "confident", "matches"}
    assert data["question"] == "扯证要带啥" and data["confident"] is True
    assert data["matches"][0] == {"name": "结婚登记", "kind": "item", "score": data["matches"][0]["score"]}
    assert isinstance(data["matches"][0]["score"], float) and len(data["matches"]) <= 3


def test_ask_text_marks_bundles_and_doubt(capsys: pytest.CaptureFixture[str], catalog_dir: Path) -> None:
    _, out, _ = _run(capsys, "ask", "开饭店要办哪些证", "--catalog", str(catalog_dir))
    assert "开办餐饮店一件事（一件事）" in out.splitlines()[1]
    _, out, _ = _run(capsys, "ask", "附近有什么好吃的饭馆", "--catalog", str(catalog_dir))
    assert out.startswith("没有把握")


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_eval_json_counts_hits_rejections_and_misses(
    capsys: pytest.CaptureFixture[str], catalog_dir: Path, tmp_path: Path
) -> None:
    f = _write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"q": "扯证要带啥", "expect": ["结婚登记"]},
            {"q": "交契税", "expect": ["契税申报"]},
            {"q": "交契税", "expect": ["离婚登记"]},  # deliberately wrong: must show up as a miss
            {"q": "讲个笑话", "expect": []},
        ],
    )
    code, out, _ = _run(capsys, "eval", str(f), "--json", "--catalog", str(catalog_dir))
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"total", "top1", "top3", "oos_rejection", "latency_ms", "misses"}
    assert data["total"] == 4
    assert data["top1"] == pytest.approx(2 / 3, abs=1e-3)
    assert data["oos_rejection"] == 1.0
    assert set(data["latency_ms"]) == {"p50", "p95", "p99"}
    assert [m["line"] for m in data["misses"]] == [3]
    assert data["misses"][0]["got"][0] == "契税申报"


def test_eval_text_lists_misses(
    capsys: pytest.CaptureFixture[str], catalog_dir: Path, tmp_path: Path
) -> None:
    f = _write_jsonl(tmp_path / "q.jsonl", [{"q": "交契税", "expect": ["离婚登记"]}])
    code, out, _ = _run(capsys, "eval", str(f), "--catalog", str(catalog_dir))
    assert code == 0
    assert "Top-1 命中率：0.000（0/1）" in out
    assert "第 1 行「交契税」期望 离婚登记" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"q": "身份证", "expect": []}\n{"q": "少了括号"\n', "第 2 行：不是有效的 JSON"),
        ('{"q": "身份证", "expect": "居民身份证"}\n', "第 1 行：expect 应为事项名称的列表"),
        ('{"expect": []}\n', "第 1 行：缺少问题文字 q"),
        ("[1, 2]\n", "第 1 行：应为"),
        ("\n\n", "里没有任何问题"),
    ],
)
def test_eval_bad_file_names_the_line(
    capsys: pytest.CaptureFixture[str], catalog_dir: Path, tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content, encoding="utf-8")
    code, out, err = _run(capsys, "eval", str(f), "--catalog", str(catalog_dir))
    assert code != 0 and message in err
    assert "Traceback" not in err + out


def test_eval_warns_about_expected_names_missing_from_the_catalog(
    capsys: pytest.CaptureFixture[str], catalog_dir: Path, tmp_path: Path
) -> None:
    f = _write_jsonl(tmp_path / "q.jsonl", [{"q": "交契税", "expect": ["没有这个事项"]}])
    code, _, err = _run(capsys, "eval", str(f), "--catalog", str(catalog_dir))
    assert code == 0 and "第 1 行「没有这个事项」" in err


def test_eval_missing_file(capsys: pytest.CaptureFixture[str], catalog_dir: Path, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "eval", str(tmp_path / "none.jsonl"), "--catalog", str(catalog_dir))
    assert code != 0 and "找不到评测文件" in err


def test_broken_catalog_prints_the_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, "ask", "身份证", "--catalog", str(tmp_path / "nowhere"))
    assert code == 1
    assert "事项目录有" in err and "Traceback" not in err + out
