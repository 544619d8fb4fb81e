"""End-to-end fixtures: the Bot API emulator (node) and `yichuang run` as a real subprocess.

Both live for the whole session: the bot is started once, every test talks to it as its own
Telegram user (fresh id, so FSM state and the throttle never leak between tests).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tgemu.tguser import TOKEN, Emulator, User, stop_group

START_TIMEOUT = 60.0  # first start imports aiogram, SQLAlchemy and builds the matcher index
STOP_TIMEOUT = 10.0  # graceful shutdown must finish well within what a service manager allows

BOT_LOG = pytest.StashKey[Path]()


def bot_command() -> list[str]:
    # The console script next to this interpreter is what a user runs; fall back to the module
    # when the package was installed without scripts on this interpreter's path.
    script = Path(sys.executable).with_name("yichuang")
    if script.exists():
        return [str(script), "run"]
    found = shutil.which("yichuang")
    return [found, "run"] if found else [sys.executable, "-m", "bot.cli", "run"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the e2e tests need Node 20+ to run the Bot API emulator")
    emu = Emulator.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def bot(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[None]:
    """`yichuang run` polling the emulator; stopped with SIGTERM and required to exit cleanly."""
    workdir = tmp_path_factory.mktemp("bot")
    log_path = workdir / "bot.log"
    request.config.stash[BOT_LOG] = log_path
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": emulator.base,
        "DATABASE_URL": f"sqlite:///{workdir / 'e2e.db'}",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    # cwd is the temp dir so a developer's .env in the checkout cannot change what is tested.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            bot_command(), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_polling(emulator, proc, log_path)
        yield
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"yichuang run ignored SIGTERM for {STOP_TIMEOUT:.0f} s\n{tail(log_path)}")
        assert code == 0, f"yichuang run exited with {code} after SIGTERM\n{tail(log_path)}"
    finally:
        stop_group(proc)  # no-op after a clean exit; otherwise nothing may outlive the session


def wait_until_polling(emulator: Emulator, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"yichuang run exited with {proc.returncode} before polling\n{tail(log_path)}")
        if emulator.calls("getUpdates"):
            return
        time.sleep(0.1)
    pytest.fail(f"yichuang run did not start polling within {START_TIMEOUT:.0f} s\n{tail(log_path)}")


def tail(path: Path, lines: int = 80) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "--- yichuang run output (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


_uids = itertools.count(700_001)


@pytest.fixture
def user(bot: None, emulator: Emulator) -> User:
    """A Telegram user nobody has used before in this session."""
    return emulator.user(next(_uids), first_name="张三")


@pytest.fixture
def set_commands(bot: None, emulator: Emulator) -> Callable[[], list[dict[str, Any]]]:
    """Every command list the bot published with setMyCommands (parsed from the raw call)."""

    def read() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for body in emulator.calls("setMyCommands"):
            commands = body.get("commands", [])
            out.extend(json.loads(commands) if isinstance(commands, str) else commands)
        return out

    return read


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    log_path = item.config.stash.get(BOT_LOG, None)
    if report.when == "call" and report.failed and log_path is not None and log_path.exists():
        report.sections.append(("yichuang run output", tail(log_path, lines=200)))
    return report
