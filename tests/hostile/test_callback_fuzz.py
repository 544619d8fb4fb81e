"""Suite 2: malformed, stale, forged and other people's button presses.

Callback data of every CallbackData prefix in the project (found by introspection, so a new one is
fuzzed too), with real and random field values, then truncated or altered; random strings; stale
buttons (catalog indexes past the end, wrong name checksums); other applicants' case numbers,
notice, rating, complaint and announcement ids; real buttons of the bot's own replies pressed in any
order. Properties, for every press: no handler error, exactly one answerCallbackQuery (no endless
spinner, no "query already answered"), every request valid for Telegram, no other person's data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import Message, Update
from hypothesis import strategies as st

import bot.app  # noqa: F401  (imports every handler module, so every CallbackData class exists)
from bot.render import name_hash
from bot.runtime import CONSOLE_BOT_ID
from models.feedback import REASON_LABELS
from tests.hostile.conftest import OTHER_CHAT, World
from tests.hostile.strategies import ANY_CHAR, INJECTION, INVISIBLE, WORDS, evenly

SEP = ":"


def callback_classes() -> list[type[CallbackData]]:
    found: list[type[CallbackData]] = []
    todo = list(CallbackData.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if getattr(cls, "__prefix__", None):
            found.append(cls)
    return sorted(found, key=lambda c: c.__prefix__)


CLASSES = callback_classes()
PREFIXES = [c.__prefix__ for c in CLASSES]

# Words the handlers compare fields with (acts, targets, reason codes, status words).
ACTS = (
    "c f r b w s i depts back center windows help none sub unsub view open list do ask fix tog txt send "
    "rej dep stop fu as ad re cl ph rc rf pub x qa qi qd qb tk done skip - accepted in_review "
    "correction_required completed rejected picked_up withdrawn"
).split() + list(REASON_LABELS)


def _no_sep(s: str) -> str:
    return s.replace(SEP, "")


def field_values(world: World) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    """(text fields, int fields) as strings: real values of this world, edge cases, junk."""
    cat = world.catalog
    names = [it.name for it in cat.items] + [b.name for b in cat.bundles]
    real_text = (
        ACTS
        + [d.id for d in cat.departments]
        + world.numbers
        + [n.lower() for n in world.numbers]
        + world.complaint_numbers
        + [name_hash(n) for n in names]
    )
    # NUL first: PostgreSQL refuses it in text, SQLite does not.
    odd = st.one_of(st.just("\x00"), INVISIBLE.map(_no_sep))
    poisoned = st.builds(lambda v, ch: v + ch, st.sampled_from(real_text), odd)
    texts = evenly(
        st.sampled_from(real_text),
        poisoned,
        st.text(ANY_CHAR, max_size=12).map(_no_sep),
        st.one_of(INJECTION, INVISIBLE, WORDS).map(_no_sep),
    )
    n_items = len(cat.items)
    real_ints = world.event_ids + world.rating_ids + world.announcement_ids + [n_items, len(cat.bundles)]
    ints = evenly(
        st.sampled_from(real_ints).map(str),
        st.integers(-3, n_items + 3).map(str),
        st.sampled_from(["2147483648", "-9223372036854775809", "99999999999999999999", "1e3", "0x1f"]),
        st.sampled_from(["", " 1", "１", "1.0", "NaN", "true", "-0", "٣"]),
    )
    return texts, ints


def _mutate(data: str, how: int, k: int, junk: str) -> str:
    """Truncated and altered versions of well-formed callback data."""
    n = k % (len(data) + 1)
    return [
        data,
        data,
        data[:n],  # truncated
        data + SEP + junk,  # one field too many
        SEP.join(data.split(SEP)[:-1]),  # one field too few
        data[:n] + junk + data[n:],  # something inserted
        data.replace(SEP, junk or "|"),  # separators gone
        data.upper(),
        SEP + data,
    ][how % 9]


def well_formed(world: World) -> st.SearchStrategy[str]:
    texts, ints = field_values(world)

    def one(cls: type[CallbackData]) -> st.SearchStrategy[str]:
        fields = [
            ints if info.annotation is int else texts for info in cls.model_fields.values()
        ]  # every field is str or int
        return st.tuples(*fields).map(lambda vals: SEP.join([cls.__prefix__, *vals]))

    return evenly(*[one(cls) for cls in CLASSES])


def callback_data(world: World) -> st.SearchStrategy[str | None]:
    prefix_junk = st.builds(lambda p, j: p + j, st.sampled_from(PREFIXES), st.text(ANY_CHAR, max_size=20))
    data = evenly(
        well_formed(world),
        st.builds(_mutate, well_formed(world), st.integers(0, 8), st.integers(0, 64), st.text(max_size=4)),
        prefix_junk,
        st.text(ANY_CHAR, max_size=64),
        st.none(),  # a game button: no data at all
    )
    return data.filter(lambda d: d is None or len(d.encode()) <= 64)  # Telegram's limit


@dataclass(frozen=True)
class Press:
    data: str | None
    where: str  # private | inaccessible | group | other_chat | inline
    text: str  # text of the bot message the button is under


@dataclass(frozen=True)
class PressReal:
    k: int  # which of the buttons the bot has shown in this conversation


@dataclass(frozen=True)
class Say:
    text: str


Step = Press | PressReal | Say


def steps(world: World) -> st.SearchStrategy[list[Step]]:
    press = st.builds(
        Press,
        callback_data(world),
        st.sampled_from(["private", "private", "inaccessible", "group", "other_chat", "inline"]),
        st.one_of(st.just("一窗"), st.text(ANY_CHAR, min_size=1, max_size=20)),
    )
    say = st.builds(
        Say,
        st.sampled_from(
            [
                "/start",
                "/departments",
                "/complain",
                "/status",
                "/mycases",
                "/news",
                "结婚登记",
                "开饭馆要办什么证",
                "开办餐饮店一件事",
                "户口",
                "要带什么",
            ]
        ),
    )
    real = st.builds(PressReal, st.integers(0, 40))
    kinds: list[st.SearchStrategy[Step]] = [press, real, say, press, real]
    return st.lists(evenly(*kinds), min_size=1, max_size=6)


def _bot_message(world: World, uid: int, where: str, text: str) -> dict[str, Any] | None:
    chat: dict[str, Any] = {"id": uid, "type": "private", "first_name": "访客"}
    if where == "group":
        chat = {"id": -100_123, "type": "supergroup", "title": "家人群"}
    elif where == "other_chat":
        chat = {"id": OTHER_CHAT, "type": "private", "first_name": "别人"}
    date = 0 if where == "inaccessible" else int(dt.datetime.now(dt.UTC).timestamp())
    msg: dict[str, Any] = {"message_id": 77, "date": date, "chat": chat}
    if date:
        msg |= {"from": {"id": CONSOLE_BOT_ID, "is_bot": True, "first_name": "一窗"}, "text": text}
    return msg


def _callback(world: World, uid: int, data: str | None, message: dict[str, Any] | None) -> Update:
    n = next(world.harness.updates._ids)
    cq: dict[str, Any] = {
        "id": f"cq{n}",
        "from": {"id": uid, "is_bot": False, "first_name": "访客", "language_code": "zh-hans"},
        "chat_instance": "hostile",
    }
    if data is not None:
        cq["data"] = data
    else:
        cq["game_short_name"] = "game"
    if message is None:
        cq["inline_message_id"] = f"im{n}"
    else:
        cq["message"] = message
    return Update.model_validate({"update_id": n, "callback_query": cq}, context={"bot": world.harness.bot})


def test_malformed_callbacks(world: World) -> None:
    def conversation(plan: list[Step]) -> None:
        uid = world.harness.updates.user_id
        shown: list[tuple[str, Message]] = []  # (callback data, the bot message it is under)
        inputs: list[str] = []
        for step in plan:
            if isinstance(step, Say):
                inputs.append(step.text)
                sent = world.feed(world.harness.updates.message(step.text))
            else:
                data: str | None
                if isinstance(step, PressReal):
                    if not shown:
                        continue
                    data, msg = shown[step.k % len(shown)]
                    update = world.harness.updates.callback(data, msg)
                else:
                    data = step.data
                    msg_dict = (
                        None if step.where == "inline" else _bot_message(world, uid, step.where, step.text)
                    )
                    update = _callback(world, uid, data, msg_dict)
                inputs.append(data or "")
                sent = world.feed(update)
                answers = [s for s in sent if s.name == "AnswerCallbackQuery"]
                assert len(answers) == 1, f"{len(answers)} answers to {data!r}: {[s.name for s in sent]}"
            world.check(sent, inputs)
            for s in sent:
                if s.message is not None and s.message.reply_markup is not None:
                    for row in s.message.reply_markup.inline_keyboard:  # type: ignore[union-attr]
                        shown += [(b.callback_data, s.message) for b in row if b.callback_data]

    regressions: list[list[Step]] = [
        [Press("a1:99999999999999999999", "private", "x")],  # id out of range: OverflowError
        [Press("f3:fu::TS\x00", "private", "x")],  # NUL in a lookup key: PostgreSQL DataError
        [Press("f1:YC\x00:1:1", "private", "x")],
    ]
    world.fuzz(steps(world), conversation, regressions)


def test_every_prefix_is_fuzzed() -> None:
    """The introspection finds the project's callback data classes (a rename must not silently
    shrink the suite)."""
    assert {"g1", "d1", "n1", "s1", "c1", "a1", "w1", "f1", "f2", "f3", "f4", "f5"} <= set(PREFIXES)
