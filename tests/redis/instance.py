"""One bot process for the Redis tests: the production assembly (bot.runtime.assemble, then
bot.app.build_dispatcher with REDIS_URL from the environment), fed updates by the test over stdin.

    python -m tests.redis.instance FIRST_UPDATE_ID

Settings come from the environment like the real bot's (REDIS_URL, DATABASE_URL, CATALOG_DIR,
THROTTLE_RATE). YC_TG_LATENCY (seconds) delays every Bot API request, as a real Telegram round trip
does: that gap between reading and writing a user's FSM state is where two processes would interleave.

Commands, one JSON object a line: {"user": 1, "say": "text"}, {"user": 1, "callback": "data",
"message": {...}}, or {"configure": {"throttle_rate": 60, "latency": 0.2}} (a fresh dispatcher with
those settings: starting a process takes far longer than a test). Each is answered with one JSON
line, {"sent": [...]}, after the update is handled; the first line out is {"ready": true}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from typing import Any

from aiogram import Bot
from aiogram.methods import AnswerCallbackQuery, TelegramMethod
from aiogram.types import Message

from bot.runtime import RecordingSession, Sent, UpdateFactory, assemble, buttons, make_bot, plain
from bot.settings import Settings


class SlowSession(RecordingSession):
    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        await asyncio.sleep(self.latency)
        return await super().make_request(bot, method, timeout)


def describe(sent: Sent) -> dict[str, Any]:
    out: dict[str, Any] = {"method": sent.name}
    if isinstance(sent.method, AnswerCallbackQuery):
        out["text"] = sent.method.text
    if sent.message is not None:
        out["text"] = plain(sent.message.text or "")
        out["buttons"] = [b for row in buttons(sent.message) for b in row]
        out["message"] = sent.message.model_dump(mode="json", exclude_none=True, by_alias=True)
    return out


async def main(first_update_id: int) -> None:
    settings = Settings()
    parts = await assemble(settings)
    session = SlowSession(float(os.environ.get("YC_TG_LATENCY", "0")))
    bot = make_bot(settings, session=session)
    dp = parts.dispatcher()
    factories: dict[int, UpdateFactory] = {}
    # Update ids unique across the test's processes, as Telegram's are.
    ids = itertools.count(first_update_id)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = json.loads(line)
        if "configure" in cmd:
            options = dict(cmd["configure"])
            session.latency = float(options.pop("latency", 0))
            await dp.storage.close()
            dp = parts.dispatcher(settings=settings.model_copy(update=options))
            print(json.dumps({"sent": []}), flush=True)
            continue
        user = int(cmd["user"])
        factory = factories.setdefault(user, UpdateFactory(bot, user_id=user, _ids=ids))
        if "say" in cmd:
            update = factory.message(cmd["say"])
        else:
            message = None
            if cmd.get("message"):
                message = Message.model_validate(cmd["message"], context={"bot": bot})
            update = factory.callback(cmd["callback"], message)
        await dp.feed_update(bot, update)
        print(json.dumps({"sent": [describe(s) for s in session.take()]}, ensure_ascii=False), flush=True)
    await dp.storage.close()
    await parts.engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
    # Connections are closed; skip the interpreter's teardown of every loaded module, which takes
    # seconds on a busy machine and is paid once per test module.
    sys.stdout.flush()
    os._exit(0)
