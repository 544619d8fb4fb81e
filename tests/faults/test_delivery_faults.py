"""Fault injection through the Bot API emulator: a broadcast meets 429 with retry_after, 5xx and
timeouts, and its delivery worker is SIGKILLed mid-run and restarted. Every notice arrives; only
the few in flight at the kill may arrive twice. (bench/bench_faults.py: the 3,000-notice run.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.tgemu.tguser import Emulator
from tests.faults.broadcast import broadcast

pytestmark = pytest.mark.faults


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the fault tests need Node 20+ to run the Bot API emulator")
    emu = Emulator.start()
    try:
        yield emu
    finally:
        emu.stop()


async def test_broadcast_through_faults_and_a_killed_worker_loses_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = await broadcast(emulator, f"sqlite:///{tmp_path / 'faults.db'}", total=400, chats=400, limit=120)
    assert out.pending_after == 0, out.summary()
    assert out.lost == [], out.summary()
    assert len(out.duplicated) <= out.in_flight_at_kill, out.summary()
    assert all(out.received[k] == 2 for k in out.duplicated), out.summary()
    # The faults did happen (the emulator failed those calls), so the run proved something.
    assert out.faults["429"] >= 2 and out.faults["500"] >= 3 and out.faults["timeout"] >= 2, out.summary()
