"""The key behind the second-factor hashes: kept out of the database, checked at start-up, and
cases hashed the old way (scrypt) still open and move to the keyed hash."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from knowledge.schema import Catalog
from models import crud
from models.privacy import (
    FactorKey,
    FactorKeyError,
    factor_key,
    hash_factor,
    load_factor_key,
    use_factor_key,
    verify_factor,
)
from models.workdays import WorkCalendar
from tests.cases.test_crud import new_case


@pytest.fixture
def other_key() -> Iterator[FactorKey]:
    """Another key in use for one test; the suite's key is restored afterwards."""
    before = factor_key()
    key = FactorKey(b"another-deployment-secret-0123456789")
    use_factor_key(key)
    yield key
    use_factor_key(before)


def test_the_hash_depends_on_the_key_so_a_stolen_database_gives_nothing_to_try() -> None:
    salt = "00" * 16
    a = FactorKey(b"first-secret-0123456789").digest("5678", salt)
    b = FactorKey(b"second-secret-0123456789").digest("5678", salt)
    assert a != b and "5678" not in a
    # Trying all 10,000 factors against the row needs the key: without it no candidate matches.
    unkeyed = {hashlib.sha256(bytes.fromhex(salt) + f"{n:04d}".encode()).hexdigest() for n in range(10_000)}
    assert a.rsplit("$", 1)[1] not in unkeyed


def test_a_short_secret_is_refused_in_chinese() -> None:
    with pytest.raises(FactorKeyError, match="太短"):
        FactorKey(b"123")


def test_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "factor.key"
    first = load_factor_key(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_factor_key(None, path)
    assert again.id == first.id
    assert load_factor_key("configured-secret-0123456789", path).id != first.id


async def test_legacy_scrypt_hash_still_opens_the_case_and_is_replaced_by_a_keyed_one(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar
) -> None:
    case, _ = await new_case(session, catalog, calendar)
    legacy = hashlib.scrypt(b"5678", salt=bytes.fromhex(case.factor_salt), n=2**12, r=8, p=1, dklen=32).hex()
    case.factor_hash = legacy
    await session.commit()
    wrong = await crud.verify_lookup(session=session, number=case.number, factor="1234", user_key="tg:1")
    assert not wrong.ok
    ok = await crud.verify_lookup(session=session, number=case.number, factor="5678", user_key="tg:2")
    assert ok.ok
    stored = (await session.exec(text("SELECT factor_hash FROM cases"))).one()[0]  # type: ignore[call-overload]
    assert stored != legacy and stored.startswith("h1$")
    assert verify_factor("5678", case.factor_salt, stored)
    again = await crud.verify_lookup(session=session, number=case.number, factor="5678", user_key="tg:3")
    assert again.ok


async def test_start_up_with_another_key_is_refused_instead_of_denying_every_applicant(
    session: AsyncSession, catalog: Catalog, calendar: WorkCalendar, other_key: FactorKey
) -> None:
    use_factor_key(FactorKey(os.environ["FACTOR_SECRET"].encode()))
    await new_case(session, catalog, calendar)
    await crud.check_factor_key(session=session)  # the key the cases were made with: fine
    use_factor_key(other_key)
    with pytest.raises(FactorKeyError, match="FACTOR_SECRET"):
        await crud.check_factor_key(session=session)


async def test_an_empty_database_accepts_any_key(session: AsyncSession, other_key: FactorKey) -> None:
    await crud.check_factor_key(session=session)
    assert hash_factor("5678", "00" * 16).startswith(f"h1${other_key.id}$")


def test_bot_with_the_wrong_key_stops_with_a_chinese_message(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{db}"
    script = (
        "import asyncio, sys\n"
        "from knowledge.loader import load_catalog\n"
        "from models.crud import create_case\n"
        "from models.db import async_engine, prepare_database, session_factory\n"
        "from models.privacy import FactorKey, use_factor_key\n"
        "async def main():\n"
        "    use_factor_key(FactorKey(b'first-deployment-secret-123'))\n"
        "    e = async_engine(sys.argv[1]); await prepare_database(e)\n"
        "    async with session_factory(e)() as s:\n"
        "        c = load_catalog()\n"
        "        await create_case(session=s, catalog=c, item_name=c.items[0].name,\n"
        "                          applicant_name='李四', phone='13900001234', channel='window')\n"
        "        await s.commit()\n"
        "    await e.dispose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, env["DATABASE_URL"]], check=True, env=env, cwd=tmp_path)
    env["FACTOR_SECRET"] = "second-deployment-secret-456"
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console"],
        input="你好\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 1
    assert "FACTOR_SECRET" in out.stderr and "Traceback" not in out.stderr
