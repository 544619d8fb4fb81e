"""Property-based API tests: schemathesis generates requests from /api/v1/openapi.json (valid and
invalid) and checks every answer against the same document: never a 5xx, only documented status
codes and content types, bodies matching their schemas, schema-violating input refused."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from aiohttp import web  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from bot.api import ApiContext, build_app, openapi_document  # noqa: E402
from bot.templates import make_templates  # noqa: E402
from knowledge.loader import load_catalog  # noqa: E402
from models.db import async_engine, prepare_database, session_factory  # noqa: E402
from tests.api.conftest import AUTH, TOKEN  # noqa: E402
from tests.conftest import BOT_CATALOG  # noqa: E402

schema = schemathesis.openapi.from_dict(openapi_document(load_catalog(BOT_CATALOG)))


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API on a real socket, served from its own thread (schemathesis calls it synchronously)."""
    db = Path(tmp_path_factory.mktemp("st")) / "api.db"
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        engine = async_engine(f"sqlite+aiosqlite:///{db}")
        await prepare_database(engine)
        ctx = ApiContext(load_catalog(BOT_CATALOG), make_templates(), session_factory(engine), "TestNameBot")
        runner = web.AppRunner(build_app(ctx, token=TOKEN))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.update(runner=runner, engine=engine, port=site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:

        async def stop() -> None:
            await state["runner"].cleanup()  # type: ignore[attr-defined]
            await state["engine"].dispose()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, base_url: str) -> None:
    # Excluded: "everything the schema allows must be accepted". Some rules are the catalog's and
    # the law's, not JSON Schema's (a real phone number, a name that is not only spaces): those
    # schema-valid bodies are rightly refused with 422.
    case.call_and_validate(base_url=base_url, headers=AUTH, excluded_checks=[positive_data_acceptance])
