"""Runtimes around the dispatcher: the local console, webhook secret checking, start-up errors,
and that logs and stored questions never keep a phone number in clear."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.cli import main
from bot.runtime import MaskingFormatter, RecordingSession, assemble, make_bot, run_console, webhook_app
from bot.settings import Settings
from tests.conftest import BOT_CATALOG


def settings_for(tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        bot_token=None, catalog_dir=BOT_CATALOG, database_url=f"sqlite:///{tmp_path / 'c.db'}", **kw
    )


async def test_console_line_mode_prints_replies_and_presses_buttons(tmp_path: Path) -> None:
    parts = await assemble(settings_for(tmp_path))
    stdin = io.StringIO("开饭馆要办什么证\n\n> 食品经营许可证核发\n> 在哪办\n> 不存在的按钮\n")
    out = io.StringIO()
    await run_console(parts, user_id=77, stdin=stdin, stdout=out)
    text = out.getvalue()
    assert "开办餐饮店一件事" in text and "<b>" not in text  # HTML shown as plain text
    assert "[个体工商户设立登记]\n[食品经营许可证核发]" in text
    assert "[在哪办] [材料自查]" in text
    assert "法定时限：10个工作日" in text  # the member card opened by "> 食品经营许可证核发"
    assert "A01 号窗口 · 一楼 A 区" in text
    assert "（没有找到按钮 [不存在的按钮]）" in text


def test_bare_console_bar_on_sample_catalog(tmp_path: Path) -> None:
    """`printf '开饭馆要办什么证\\n' | yichuang console` names 食品经营许可证核发 with its materials."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'bar.db'}"}
    env.pop("BOT_TOKEN", None)
    env.pop("CATALOG_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console"],
        input="开饭馆要办什么证\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "食品经营许可证核发" in proc.stdout
    assert "申报材料" in proc.stdout and "食品经营许可申请书" in proc.stdout


def test_console_piped_into_a_reader_that_quits_ends_quietly(tmp_path: Path) -> None:
    """`yichuang console | head -3`: no traceback when the reader closes the pipe early."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}"}
    env.pop("BOT_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write("开饭馆要办什么证\n".encode() * 3)
    proc.stdin.close()
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves after one line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_no_token_run_opens_console_and_says_how_to_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("CATALOG_DIR", str(BOT_CATALOG))
    monkeypatch.setattr(sys, "stdin", io.StringIO("/center\n"))
    assert main([]) == 0  # bare `yichuang`
    out, err = capsys.readouterr()
    assert "测试县新城路 1 号" in out
    assert "BOT_TOKEN" in err and "yichuang run" in err


def test_broken_catalog_exits_1_with_report_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'y.db'}")
    (tmp_path / "center.yaml").write_text("name: x\n", encoding="utf-8")
    assert main(["run", "--catalog", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "事项目录有" in err and "center.yaml" in err
    assert "Traceback" not in err


async def test_webhook_refuses_requests_without_the_secret(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook_url="https://example.org", webhook_secret=SecretStr("s3cret"))
    parts = await assemble(settings)
    session = RecordingSession()
    bot = make_bot(settings, session=session)
    app, secret = webhook_app(settings, bot, parts.dispatcher())
    assert secret == "s3cret"
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "A"},
            "text": "/center",
        },
    }
    async with TestClient(TestServer(app)) as client:
        assert (await client.post(settings.webhook_path, json=update)).status == 401
        bad = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
        assert (await client.post(settings.webhook_path, json=update, headers=bad)).status == 401
        assert not session.requests
        good = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
        assert (await client.post(settings.webhook_path, json=update, headers=good)).status == 200
        for _ in range(200):  # handled in the background after the 200
            if session.requests:
                break
            await asyncio.sleep(0.01)
    assert any("测试县新城路 1 号" in (s.message.text or "") for s in session.requests if s.message)
    await parts.engine.dispose()


async def test_webhook_without_configured_secret_still_checks_one(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook_url="https://example.org")
    parts = await assemble(settings)
    _, secret = webhook_app(settings, make_bot(settings, session=RecordingSession()), parts.dispatcher())
    assert len(secret) >= 32
    await parts.engine.dispose()


def test_logs_mask_phone_and_id_numbers() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "问题：%s", ("电话13812345678 身份证11010119900307123X",), None
    )
    line = MaskingFormatter("%(message)s").format(record)
    assert line == "问题：电话138****5678 身份证110101********123X"
