"""Suite 1: random text messages through the production dispatcher.

Random Unicode from every plane, control and invisible characters, texts up to 20,000 characters,
HTML/Markdown/template injection, emoji and whitespace only, commands with junk arguments, forged
case numbers and factor guesses, in short conversations from fresh users. Properties, for every
update: no handler error; every request valid for Telegram (HTML parse mode, ≤ 4,096 characters,
not empty); no full phone or ID number shown; no other person's case data shown.
"""

from __future__ import annotations

from tests.hostile.conftest import World
from tests.hostile.strategies import conversations

# Minimal failing examples of bugs this suite found (fixed; see the report in the commit).
REGRESSIONS = [
    ["/13812345678"],  # unknown-command reply echoed the phone number unmasked
    ["附近\x00哪家饭馆好吃"],  # NUL in an unanswered question: PostgreSQL DataError
]


def test_random_text_messages(world: World) -> None:
    def conversation(texts: list[str]) -> None:
        for text in texts:
            sent = world.feed(world.harness.updates.message(text))
            world.check(sent, texts)

    world.fuzz(conversations(world.numbers, world.factors), conversation, REGRESSIONS)
