"""`yichuang report` on a seeded database: the table it prints and the three files it writes, with
figures worked out by hand from the seeded cases (sample catalog, October 2026)."""

from __future__ import annotations

import csv
import io
import re
import struct
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli import main
from bot.report import chart_size
from knowledge.loader import DEFAULT_CATALOG, load_catalog
from models import supervision
from models.workdays import WorkCalendar
from tests.cases.conftest import china
from tests.supervision.conftest import CITIZEN_CHAT, finished_case

FOOD = "食品经营许可证核发"  # sample catalog: 县市场监督管理局, window A02, 5 working days
HYGIENE = "公共场所卫生许可证核发"  # 县卫生健康局, window A05, 5 working days


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar) -> None:
    catalog = load_catalog()
    async with sessions() as s:
        # 30 Sep → 16 Oct, paused 9–13 Oct: 8 working days minus 3 paused = 5: on time.
        paused = await finished_case(
            s,
            catalog,
            calendar,
            item=FOOD,
            accepted=china(2026, 9, 30),
            finished=china(2026, 10, 16),
            correction=(china(2026, 10, 9), china(2026, 10, 13)),
        )
        # 12 → 20 Oct: 6 working days: late.
        late = await finished_case(
            s, catalog, calendar, item=FOOD, accepted=china(2026, 10, 12), finished=china(2026, 10, 20)
        )
        # 8 → 10 Oct (an adjusted working Saturday), refused: 2 working days, on time.
        await finished_case(
            s,
            catalog,
            calendar,
            item=HYGIENE,
            accepted=china(2026, 10, 8),
            finished=china(2026, 10, 10),
            outcome="rejected",
        )
        assert paused.id and late.id
        bad = await supervision.rate_case(
            session=s,
            number=paused.number,
            chat_id=CITIZEN_CHAT,
            stars=1,
            now=china(2026, 10, 17),
            calendar=calendar,
        )
        assert bad.rectification is not None
        number = bad.rectification.number
        await supervision.record_callback(
            session=s, number=number, actor="t", scope=None, now=china(2026, 10, 19)
        )
        await supervision.record_fix(
            session=s,
            number=number,
            actor="t",
            scope=None,
            note="已重新说明材料要求",
            now=china(2026, 10, 28),
        )
        await supervision.rate_case(
            session=s, number=late.number, chat_id=CITIZEN_CHAT, stars=5, now=china(2026, 10, 21)
        )
        c = await supervision.file_complaint(
            session=s,
            chat_id=CITIZEN_CHAT,
            department="scjg",
            text="窗口人员态度生硬",
            now=china(2026, 10, 9),
            calendar=calendar,
        )
        await supervision.reply_complaint(
            session=s, number=c.number, text="已约谈窗口人员并道歉", actor="t", now=china(2026, 10, 15)
        )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_month_report_prints_department_table_and_writes_files(
    seeded: None, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["report", "--month", "2026-10", "--out", str(out), "--database-url", db_url]
    code = await _run(args + ["--catalog", str(DEFAULT_CATALOG)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = printed.splitlines()
    scjg = next(line for line in lines if line.startswith("县市场监督管理局")).split()
    # 受理 1 (12 Oct; the other came in September), 办结 2, 按时 1 of 2, days 5 and 6, one correction,
    # ratings ★1→(fixed, not re-rated) and ★5, one 差评 fixed on time, one complaint answered on time.
    assert scjg[1:] == [
        "1",
        "2",
        "50.0%",
        "5.5",
        "6",
        "50.0%",
        "2",
        "50.0%",
        "3.00",
        "1",
        "1/1",
        "1",
        "1/1",
        "0",
    ]
    wsjk = next(line for line in lines if line.startswith("县卫生健康局")).split()
    assert wsjk[1:4] == ["1", "1", "100.0%"]
    total = next(line for line in lines if line.startswith("全中心")).split()
    assert total[1:4] == ["2", "3", "66.7%"]

    html = (out / "report-2026-10.html").read_text(encoding="utf-8")
    assert "窗口考评（2026年10月）" in html and "data:image/png;base64," in html
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)
    assert "138" not in text and "YC26" not in text  # no phone, no case number: publishable
    raw = (out / "report-2026-10.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # utf-8-sig: Excel shows the Chinese
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    window = next(r for r in rows if r[0] == "窗口" and r[1] == "A02")
    assert window[3] == "县市场监督管理局" and window[5] == "2"  # both food permits finished at A02
    assert png_size((out / "report-2026-10.png").read_bytes()) == chart_size(2)


async def test_year_report_and_bad_arguments(
    seeded: None, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["report", "--year", "2026", "--out", str(tmp_path), "--database-url", db_url]) == 0
    assert (tmp_path / "report-2026.csv").exists()
    capsys.readouterr()
    assert await _run(["report", "--month", "2026-13", "--out", str(tmp_path), "--database-url", db_url]) == 2
    assert "格式如 2026-11" in capsys.readouterr().err


async def _run(argv: list[str]) -> int:
    # The CLI runs its own event loop: keep it off the test's loop.
    import asyncio

    return await asyncio.to_thread(main, argv)
