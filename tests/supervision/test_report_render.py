"""The report's files as a reader gets them: the PNG chart decodes at the expected size, the HTML
opens in headless Chromium (Debian `chromium`; skipped when absent), the CSV opens in Excel."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from matplotlib import image

from bot.report import Figures, Period, Report, Row, chart_size, render_chart, render_csv, render_html
from bot.templates import make_templates
from models.workdays import WorkCalendar
from tests.supervision.test_report_figures import october

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def report() -> Report:
    return october(WorkCalendar(package_last_year=2026))


def test_chart_is_a_valid_png_of_the_expected_size(report: Report, tmp_path: Path) -> None:
    data = render_chart(report)
    assert png_size(data) == chart_size(len(report.ranking())) == (1000, 248)
    (tmp_path / "chart.png").write_bytes(data)
    pixels = image.imread(tmp_path / "chart.png")  # decodes the whole file, not just its header
    assert pixels.shape[:2] == (248, 1000)
    assert pixels.std() > 0.05  # bars and labels, not an empty canvas


def test_chart_without_any_finished_case_still_renders() -> None:
    empty = Report(Period.parse("2026-02"), Period.parse("2026-02").end, "测试中心", Figures(), [], [])
    assert png_size(render_chart(empty)) == chart_size(0)


def test_html_escapes_names_and_csv_has_excel_bom(report: Report) -> None:
    report.center = "A&B<县>中心"
    report.departments.append(Row("x", "<script>局", Figures(accepted=1)))
    page = render_html(report, make_templates(), None)
    assert "A&amp;B&lt;县&gt;中心" in page and "<script>" not in page
    data = render_csv(report)
    assert data.startswith(b"\xef\xbb\xbf")
    header = data.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:6] == ["类型", "编号", "名称", "所属部门", "受理", "办结"]


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium is not installed (apt-get install chromium)"
)
def test_html_report_opens_in_headless_chromium(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report, make_templates(), render_chart(report)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium",
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1400",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shot.exists(), done.stderr[-2000:]
    assert png_size(shot.read_bytes()) == (1280, 1400)
    pixels = image.imread(shot)
    # The page drew something: a white page would have no variance at all.
    assert pixels[:, :, :3].std() > 0.02
