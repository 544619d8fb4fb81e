"""End-to-end fixtures: the Bot API emulator (node) and `yichuang run` as a real subprocess.

Both live for the whole session: the bot is started once, every test talks to it as its own
Telegram user (fresh id, so FSM state and the throttle never leak between tests).
"""

from __future__ import annotations

import html
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from tests.e2e.tgemu.tguser import TOKEN, Emulator, User, stop_group

START_TIMEOUT = 60.0  # first start imports aiogram, SQLAlchemy and builds the matcher index
STOP_TIMEOUT = 10.0  # graceful shutdown must finish well within what a service manager allows

BOT_LOG = pytest.StashKey[Path]()


def bot_command() -> list[str]:
    # The console script of this interpreter's install is what a user runs; the module is the
    # same entry point when the install put no scripts there.
    script = Path(sys.executable).with_name("yichuang")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot.cli", "run"]


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
) -> Iterator[Path]:
    """`yichuang run` polling the emulator; yields the file its output (logs) goes to.
    Stopped with SIGTERM at the end of the session and required to exit cleanly."""
    workdir = tmp_path_factory.mktemp("bot")
    log_path = workdir / "bot.log"
    request.config.stash[BOT_LOG] = log_path
    # Embedded defaults (packaged sample catalog, memory FSM, polling) whatever the developer's
    # shell exports: the tests compare the bot's answers with that same catalog.
    inherited = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env = {
        **inherited,
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
        yield log_path
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"yichuang run ignored SIGTERM for {STOP_TIMEOUT:.0f} s\n{tail(log_path)}")
        assert code == 0, f"yichuang run exited with {code} after SIGTERM\n{tail(log_path)}"
        # A handler error is answered with an apology the tests might not look for; the log has it.
        logged = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [line for line in logged if " ERROR " in line or line.startswith("Traceback")]
        assert not errors, "yichuang run logged errors during the e2e session:\n" + "\n".join(errors)
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


class Citizen:
    """A Telegram user as the tests see the chat: plain text as displayed and buttons by label.

    Acts no faster than the bot's per-user throttle allows (THROTTLE_RATE, default 0.5 s), as a
    person tapping through a card would; faster, the bot rightly answers "您发得太快了".
    """

    def __init__(self, user: User, pace: float = Settings.model_fields["throttle_rate"].default) -> None:
        self.user, self.pace = user, pace
        self._last = 0.0

    def say(self, text: str, n: int = 1) -> list[Reply]:
        self._wait_turn()
        self.user.say(text)
        return self._replies(n)

    def press(self, reply: Reply, label: str, n: int = 1) -> list[Reply]:
        """Tap the button labelled `label` under `reply`; returns the new and edited messages."""
        data = dict(reply.buttons).get(label)
        assert data is not None, f"no button {label!r} under the message; buttons: {reply.labels}"
        self._wait_turn()
        self.user.press(reply.raw, data)
        return self._replies(n)

    def _wait_turn(self) -> None:
        delay = self._last + self.pace - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._last = time.monotonic()

    def _replies(self, n: int) -> list[Reply]:
        return [Reply(r) for r in self.user.replies(n, timeout=15)]


class Reply:
    """One bot message (sent or edited) as the user sees it."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.html: str = raw["message"].get("text") or raw["message"].get("caption") or ""
        # parse_mode=HTML: the user sees the text without tags and with entities decoded.
        self.text = html.unescape(re.sub(r"<[^>]+>", "", self.html))
        self.buttons = User.buttons(raw)

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.buttons]

    def __repr__(self) -> str:
        return f"Reply({self.text[:200]!r}, buttons={self.labels})"


_uids = itertools.count(700_001)


@pytest.fixture
def citizen(bot: Path, emulator: Emulator) -> Citizen:
    """A Telegram user nobody has used before in this session (no FSM state, full throttle bucket)."""
    return Citizen(emulator.user(next(_uids), first_name="张三"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing e2e test shows what the bot logged (its tracebacks, throttling, shutdown)."""
    report = yield
    log_path = item.config.stash.get(BOT_LOG, None)
    if report.when == "call" and report.failed and log_path is not None and log_path.exists():
        report.sections.append(("yichuang run output", tail(log_path, lines=200)))
    return report
