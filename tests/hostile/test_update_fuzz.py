"""Suite 3: everything that is not a private text message.

Stickers, photos (with hostile captions), documents, voice, locations, venues, contacts (a phone
number the bot must never echo), polls, dice, service messages; edited messages, channel posts,
group and supergroup chatter (with and without a sender), replies and forwards; inline queries with
random text (also far over Telegram's 256 characters) and chosen inline results. Properties, for
every update: no handler error, every request valid for Telegram, no full phone number or other
person's data shown.
"""

from __future__ import annotations

import time
from typing import Any

from aiogram.types import Update
from hypothesis import strategies as st

from bot.runtime import CONSOLE_BOT_ID
from tests.hostile.conftest import World
from tests.hostile.strategies import ANY_CHAR, COMMANDS, evenly, huge, junk, message_texts, near_limits

PHONE = "13912345678"  # a contact's number: the bot must not show it back


def _file(kind: str, n: int) -> dict[str, Any]:
    return {"file_id": f"{kind}{n}", "file_unique_id": f"u{kind}{n}"}


MEDIA = [
    "sticker", "photo", "document", "voice", "audio", "video", "video_note", "animation", "location",
    "venue", "contact", "dice", "poll", "new_chat_title", "new_chat_members", "left_chat_member",
    "group_chat_created",
]  # fmt: skip
CAPTIONED = {"photo", "document", "voice", "audio", "video", "animation"}
BOT_USER = {"id": CONSOLE_BOT_ID, "is_bot": True, "first_name": "一窗"}


@st.composite
def media(draw: st.DrawFn, kind: str, caption: st.SearchStrategy[str | None]) -> dict[str, Any]:
    """One non-text message kind, its free-text fields (names, titles, captions) hostile."""
    n = draw(st.integers(1, 9))
    words = junk(24).map(lambda t: t if t.strip() else "空")
    coord = st.floats(-90, 90, allow_nan=False)
    body: Any
    if kind == "sticker":
        body = _file("s", n) | {
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": draw(st.sampled_from(["😀", "🤔", "🇨🇳"])),
        }
    elif kind == "photo":
        body = [
            _file("p", n) | {"width": 90, "height": 90},
            _file("p", n + 1) | {"width": 800, "height": 600},
        ]
    elif kind in ("document", "audio"):
        body = (
            _file(kind, n)
            | {"file_name": draw(words), "title": draw(words)}
            | ({"duration": 3} if kind == "audio" else {})
        )
    elif kind in ("voice", "video", "video_note", "animation"):
        body = _file(kind, n) | {"duration": 1, "width": 1, "height": 1, "length": 1}
    elif kind == "location":
        body = {"latitude": draw(coord), "longitude": draw(coord)}
    elif kind == "venue":
        body = {
            "location": {"latitude": draw(coord), "longitude": draw(coord)},
            "title": draw(words),
            "address": draw(words),
        }
    elif kind == "contact":
        phone = draw(
            st.sampled_from([PHONE, "+86 139-1234-5678", "110", "+8613912345678"])
            | st.from_regex(r"\A\+?[0-9 \-]{3,20}\Z")
        )
        body = {"phone_number": phone, "first_name": draw(words), "user_id": draw(st.integers(1, 2**40))}
    elif kind == "dice":
        body = {"emoji": "🎲", "value": draw(st.integers(1, 6))}
    elif kind == "poll":
        body = {
            "id": "p1",
            "question": draw(words),
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
            "options": [{"persistent_id": k, "text": draw(words), "voter_count": 0} for k in "ab"],
        }
    elif kind == "new_chat_title":
        body = draw(words)
    elif kind == "new_chat_members":
        body = [BOT_USER]
    elif kind == "left_chat_member":
        body = BOT_USER
    else:
        body = True
    content = {kind: body}
    text = draw(caption) if kind in CAPTIONED else None
    return content | ({"caption": text} if text else {})


def contents(world: World) -> st.SearchStrategy[dict[str, Any]]:
    """The content part of a message: one of Telegram's message kinds, text about a third of them.

    The kind is drawn first from one list (see strategies.evenly): with st.one_of(media, text)
    hypothesis generated text almost only."""
    # Light on purpose: a 20k-character caption would crowd out every other example.
    caption = st.one_of(st.none(), junk(60), near_limits().map(lambda t: t[:1024]))
    text = st.one_of(
        message_texts(world.numbers, world.factors),
        st.builds(lambda c, j: f"{c} {j}", COMMANDS, junk(20)),
    ).map(lambda t: {"text": t})
    return st.sampled_from(MEDIA + ["text"] * 8).flatmap(
        lambda kind: text if kind == "text" else media(kind, caption)
    )


def _chat(kind: str, uid: int) -> dict[str, Any]:
    return {
        "private": {"id": uid, "type": "private", "first_name": "访客"},
        "group": {"id": -4001, "type": "group", "title": "家人群"},
        "supergroup": {"id": -100_4002, "type": "supergroup", "title": "<b>业主群</b>"},
        "channel": {"id": -100_4003, "type": "channel", "title": "政务公开"},
    }[kind]


def _message(uid: int, n: int, chat: str, content: dict[str, Any], extra: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": 500 + n,
        "date": int(time.time()),
        "chat": _chat(chat, uid),
    } | content
    # "from" is missing only in channels; a group message sent on behalf of a chat carries the
    # chat in sender_chat and Telegram's fake GroupAnonymousBot in "from" (Bot API, Message).
    if chat in ("group", "supergroup") and extra == "anonymous":
        msg["sender_chat"] = _chat(chat, uid)
        msg["from"] = {
            "id": 1087968824,
            "is_bot": True,
            "first_name": "Group",
            "username": "GroupAnonymousBot",
        }
    elif chat != "channel":
        msg["from"] = {"id": uid, "is_bot": False, "first_name": "访客", "language_code": "zh-hans"}
    if extra == "reply":
        msg["reply_to_message"] = {
            "message_id": 1,
            "date": int(time.time()),
            "chat": _chat(chat, uid),
            "text": "<b>旧消息</b>",
            "from": {"id": CONSOLE_BOT_ID, "is_bot": True, "first_name": "一窗"},
        }
    if extra == "forward":
        msg["forward_origin"] = {"type": "hidden_user", "date": 1, "sender_user_name": "</a>"}
    if "text" in content and content["text"].startswith("/"):
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(content["text"].split()[0])}]
    return msg


def updates(world: World) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(kind, payload): the payload gets the user's id and an update id when fed."""
    chat = st.sampled_from(["private", "private", "group", "supergroup", "channel"])
    extra = st.sampled_from(["", "", "anonymous", "reply", "forward"])
    message = st.builds(
        lambda c, k, e: ("message", {"chat": k, "content": c, "extra": e}), contents(world), chat, extra
    )
    edited = st.builds(
        lambda c, k: ("edited_message", {"chat": k, "content": c, "extra": ""}), contents(world), chat
    )
    query = evenly(
        message_texts(world.numbers, world.factors),
        st.text(ANY_CHAR, min_size=257, max_size=600),
        huge().map(lambda t: t[:5000]),
    )
    inline = st.builds(
        lambda q, ct, loc: ("inline_query", {"query": q, "chat_type": ct, "location": loc}),
        query,
        st.sampled_from([None, "sender", "private", "group", "supergroup", "channel"]),
        st.sampled_from([None, {"latitude": 39.9, "longitude": 116.4}]),
    )
    chosen = st.builds(
        lambda r, q: ("chosen_inline_result", {"result_id": r, "query": q}), st.text(max_size=64), query
    )
    member = st.sampled_from(["kicked", "member"]).map(lambda s: ("my_chat_member", {"status": s}))
    return evenly(message, message, edited, inline, chosen, member)


def build(world: World, uid: int, kind: str, p: dict[str, Any]) -> tuple[Update, list[str]]:
    """The update as Telegram sends it, and the texts the user typed in it."""
    n = next(world.harness.updates._ids)
    user = {"id": uid, "is_bot": False, "first_name": "访客", "language_code": "zh-hans"}
    typed: list[str] = []
    body: dict[str, Any]
    if kind in ("message", "edited_message"):
        chat = p["chat"]
        update_kind = kind
        if chat == "channel":
            update_kind = "channel_post" if kind == "message" else "edited_channel_post"
        body = _message(uid, n, chat, p["content"], p["extra"])
        if kind == "edited_message":
            body["edit_date"] = int(time.time())
        typed += [str(p["content"].get("text", "")), str(p["content"].get("caption", ""))]
        return Update.model_validate(
            {"update_id": n, update_kind: body}, context={"bot": world.harness.bot}
        ), typed
    if kind == "inline_query":
        body = {"id": f"iq{n}", "from": user, "query": p["query"], "offset": ""}
        body |= {
            k: v for k, v in (("chat_type", p["chat_type"]), ("location", p["location"])) if v is not None
        }
        typed.append(p["query"])
    elif kind == "chosen_inline_result":
        body = {"result_id": p["result_id"], "from": user, "query": p["query"]}
        typed += [p["query"], p["result_id"]]
    else:
        member = {"status": p["status"], "user": {"id": CONSOLE_BOT_ID, "is_bot": True, "first_name": "一窗"}}
        if p["status"] == "kicked":
            member["until_date"] = 0
        body = {
            "chat": _chat("private", uid),
            "from": user,
            "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": member["user"]},
            "new_chat_member": member,
        }
    return Update.model_validate({"update_id": n, kind: body}, context={"bot": world.harness.bot}), typed


def test_non_text_updates(world: World) -> None:
    def conversation(plan: list[tuple[str, dict[str, Any]]]) -> None:
        uid = world.harness.updates.user_id
        typed: list[str] = []
        for kind, payload in plan:
            update, said = build(world, uid, kind, payload)
            typed += said
            world.check(world.feed(update), typed)

    world.fuzz(st.lists(updates(world), min_size=1, max_size=3), conversation)
