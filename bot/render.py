"""Turning rendered HTML into Telegram messages: clean splitting, typed callback data, keyboards.

Button labels live here (not in templates) because handlers, the console and the e2e tests all
refer to them; keep them stable.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.methods import SendMessage
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from pydantic import Field

from bot.middlewares import defer_reply
from knowledge.schema import Bundle, Catalog, Item

TELEGRAM_LIMIT = 4096
# Room for the closing/re-opening tags a split adds around a chunk.
_TAG_RESERVE = 64


class Labels:
    FORMS = "样表"
    RELATED = "相关事项"
    BUNDLE = "一件事"
    WHERE = "在哪办"
    SELFCHECK = "材料自查"
    CARD = "完整办事指南"
    DEPARTMENTS = "按部门查找"
    CENTER = "中心地址和电话"
    WINDOWS = "窗口一览"
    HELP = "使用帮助"
    NONE_OF_THESE = "都不是"
    HAVE = "有"
    MISSING = "没有"
    RESTART_CHECK = "重新自查"
    PREV = "上一页"
    NEXT = "下一页"
    BACK_DEPARTMENTS = "返回部门列表"


# ---------------------------------------------------------------- splitting


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")


def _open_tags(carry: list[str], piece: str) -> list[str]:
    stack = list(carry)
    for m in _TAG_RE.finditer(piece):
        closing, name = m.group(1), m.group(2).lower()
        if not closing:
            stack.append(m.group(0))
            continue
        for k in range(len(stack) - 1, -1, -1):
            if _TAG_RE.match(stack[k]).group(2).lower() == name:  # type: ignore[union-attr]
                del stack[k]
                break
    return stack


def _closing(stack: list[str]) -> str:
    return "".join(f"</{_TAG_RE.match(t).group(2)}>" for t in reversed(stack))  # type: ignore[union-attr]


def _safe(text: str, pos: int) -> bool:
    """True when cutting before text[pos] is outside any tag and any &entity;."""
    if text.rfind("<", 0, pos) > text.rfind(">", 0, pos):
        return False
    amp = text.rfind("&", 0, pos)
    return not (amp >= 0 and pos - amp <= 10 and ";" not in text[amp:pos])


def _best_cut(text: str, budget: int) -> int:
    size, end = 0, 0
    for ch in text:
        size += 2 if ord(ch) > 0xFFFF else 1
        if size > budget:
            break
        end += 1
    end = max(end, 1)
    # Prefer a section break, then a line break, as long as the chunk stays reasonably full.
    for sep in ("\n\n", "\n"):
        k = text.rfind(sep, 0, end)
        if k > end // 3 and _safe(text, k):
            return k + len(sep)
    k = end
    while k > 1 and not _safe(text, k):
        k -= 1
    return k


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split HTML into messages under `limit`, at section/line boundaries, never inside a tag;
    tags open at a cut are closed at the end of one part and re-opened at the start of the next."""
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    carry: list[str] = []
    rest = text
    while rest:
        prefix = "".join(carry)
        if utf16_len(prefix + rest) <= limit:
            parts.append(prefix + rest)
            break
        cut = _best_cut(rest, limit - utf16_len(prefix) - _TAG_RESERVE)
        piece, rest = rest[:cut], rest[cut:].lstrip("\n")
        stack = _open_tags(carry, piece)
        parts.append(prefix + piece.rstrip("\n") + _closing(stack))
        carry = stack
    # A part with no visible text (only tags and blanks) is refused by Telegram ("message text is empty").
    return [p for p in parts if _TAG_RE.sub("", p).strip()]


def chat_of(callback: CallbackQuery) -> int:
    """Where a button's answer goes: the chat the button is in (a group, too), else the presser."""
    return callback.message.chat.id if callback.message is not None else callback.from_user.id


async def edit_html(
    bot: Bot,
    message: Message | None,
    chat_id: int,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Replace a bot message in place (browsing, self-check steps); send anew when it can't be edited."""
    if isinstance(message, Message) and utf16_len(text) <= TELEGRAM_LIMIT:
        try:
            await message.edit_text(text, parse_mode=ParseMode.HTML, reply_markup=reply_markup)
            return
        except TelegramBadRequest as e:
            if "not modified" in e.message:  # the same button pressed twice
                return
    await send_html(bot, chat_id, text, reply_markup)


async def send_html(
    bot: Bot,
    chat_id: int,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
    *,
    thread_id: int | None = None,
) -> None:
    """Send a possibly long HTML text; the keyboard goes on the last part, under the whole text.

    In webhook mode the last part rides in the webhook's HTTP response (bot/middlewares.ReplySlot),
    which is why nothing is returned: no Message exists for it yet."""
    parts = split_html(text)
    for n, part in enumerate(parts):
        method = SendMessage(
            chat_id=chat_id,
            message_thread_id=thread_id,
            text=part,
            parse_mode=ParseMode.HTML,
            reply_markup=reply_markup if n == len(parts) - 1 else None,
        )
        if n < len(parts) - 1 or not defer_reply(method):
            await bot(method)


async def answer_html(message: Message, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
    """A handler's reply to `message`, in its chat (and forum topic, as Message.answer does).

    Not Message.answer: that is always a Bot API call of its own, while this goes through send_html,
    so the reply can ride in the webhook response and a long text is split instead of refused."""
    assert message.bot is not None  # set by the Dispatcher on every update it feeds
    thread_id = message.message_thread_id if message.is_topic_message else None
    await send_html(message.bot, message.chat.id, text, reply_markup, thread_id=thread_id)


# ---------------------------------------------------------------- callback data

Kind = Literal["item", "bundle"]

# A database row id inside callback data. Callback data can be forged: an id beyond the integer
# columns' range made the lookup itself fail (SQLite OverflowError, PostgreSQL out of range); bounded
# here, such a button does not parse and gets the "expired" answer like any unknown button.
DbId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class EntryCb(CallbackData, prefix="g1"):
    """An action on a catalog entry. Entries are referred to by index (item names in UTF-8 blow the
    64-byte limit) plus a short checksum of the name, so a button left over from an older catalog
    says "expired" instead of opening a different item."""

    k: str  # "i" item, "b" bundle
    act: str  # c card, f forms, r related, b bundles, w where, s self-check
    i: int
    h: str


class DeptCb(CallbackData, prefix="d1"):
    id: str
    p: int = 0  # page of the department's item list


class NavCb(CallbackData, prefix="n1"):
    to: str  # depts, center, windows, help, none


class CheckCb(CallbackData, prefix="s1"):
    have: int  # 1 有, 0 没有
    step: int  # which material the press answers; stale presses are refused


def name_hash(name: str) -> str:
    return format(zlib.crc32(name.encode("utf-8")) & 0xFFFF, "04x")


@dataclass(frozen=True)
class Entry:
    kind: Kind
    index: int
    item: Item | None
    bundle: Bundle | None

    @property
    def name(self) -> str:
        return self.item.name if self.item else self.bundle.name  # type: ignore[union-attr]


_INDEXES: dict[int, tuple[Catalog, dict[tuple[str, str], int]]] = {}


def _index(catalog: Catalog) -> dict[tuple[str, str], int]:
    cached = _INDEXES.get(id(catalog))
    if cached is None or cached[0] is not catalog:
        idx = {("item", it.name): n for n, it in enumerate(catalog.items)}
        idx.update({("bundle", b.name): n for n, b in enumerate(catalog.bundles)})
        if len(_INDEXES) > 16:  # tests build many catalogs; a running bot has one
            _INDEXES.clear()
        cached = _INDEXES[id(catalog)] = (catalog, idx)
    return cached[1]


def entry(catalog: Catalog, kind: str, name: str) -> Entry | None:
    n = _index(catalog).get((kind, name))
    if n is None:
        return None
    if kind == "item":
        return Entry("item", n, catalog.items[n], None)
    return Entry("bundle", n, None, catalog.bundles[n])


def entry_cb(e: Entry, act: str) -> EntryCb:
    return EntryCb(k=e.kind[0], act=act, i=e.index, h=name_hash(e.name))


def resolve(catalog: Catalog, cb: EntryCb) -> Entry | None:
    """The entry a button points at, or None when the catalog changed since it was sent."""
    items: Sequence[Item | Bundle] = catalog.items if cb.k == "i" else catalog.bundles
    if not 0 <= cb.i < len(items) or name_hash(items[cb.i].name) != cb.h:
        return None
    return entry(catalog, "item" if cb.k == "i" else "bundle", items[cb.i].name)


# ---------------------------------------------------------------- keyboards


def _button(text: str, cb: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=cb.pack())


def _markup(*rows: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    # Built directly: InlineKeyboardBuilder deep-copies every button, a measurable share of a reply.
    return InlineKeyboardMarkup(inline_keyboard=[list(r) for r in rows if r])


def _pairs(buttons: list[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return [buttons[k : k + 2] for k in range(0, len(buttons), 2)]


def item_keyboard(catalog: Catalog, e: Entry) -> InlineKeyboardMarkup:
    it = e.item
    assert it is not None
    extra: list[InlineKeyboardButton] = []
    if any(m.sample for m in it.materials):
        extra.append(_button(Labels.FORMS, entry_cb(e, "f")))
    if it.related:
        extra.append(_button(Labels.RELATED, entry_cb(e, "r")))
    if catalog.bundles_of(it.name):
        extra.append(_button(Labels.BUNDLE, entry_cb(e, "b")))
    return _markup(
        [_button(Labels.WHERE, entry_cb(e, "w")), _button(Labels.SELFCHECK, entry_cb(e, "s"))], extra
    )


def bundle_keyboard(catalog: Catalog, e: Entry) -> InlineKeyboardMarkup:
    b = e.bundle
    assert b is not None
    rows = [
        [_button(m.name, entry_cb(m, "c"))]
        for it in catalog.members(b)
        if (m := entry(catalog, "item", it.name))
    ]
    rows.append([_button(Labels.WHERE, entry_cb(e, "w")), _button(Labels.SELFCHECK, entry_cb(e, "s"))])
    return _markup(*rows)


def entries_keyboard(entries: Sequence[Entry], *, none_of_these: bool = False) -> InlineKeyboardMarkup:
    rows = [[_button(e.name, entry_cb(e, "c"))] for e in entries]
    if none_of_these:
        rows.append([_button(Labels.NONE_OF_THESE, NavCb(to="none"))])
    return _markup(*rows)


def card_link_keyboard(e: Entry) -> InlineKeyboardMarkup:
    """Under a one-facet answer: the way to the full card."""
    return _markup([_button(Labels.CARD, entry_cb(e, "c"))])


NAV_LABELS = {
    "depts": Labels.DEPARTMENTS,
    "center": Labels.CENTER,
    "windows": Labels.WINDOWS,
    "help": Labels.HELP,
}


def nav_keyboard(*targets: str) -> InlineKeyboardMarkup:
    return _markup(*_pairs([_button(NAV_LABELS[to], NavCb(to=to)) for to in targets]))


def departments_keyboard(catalog: Catalog, only: Sequence[str] | None = None) -> InlineKeyboardMarkup:
    buttons = [
        _button(d.name, DeptCb(id=d.id))
        for d in catalog.departments
        if (only is None or d.id in only) and catalog.items_of(d.name)
    ]
    return _markup(*_pairs(buttons))


PAGE_SIZE = 10


def department_items_keyboard(
    catalog: Catalog, dept_id: str, dept_name: str, page: int
) -> InlineKeyboardMarkup:
    items = catalog.items_of(dept_name)
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    rows = [
        [_button(it.name, entry_cb(e, "c"))]
        for it in items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        if (e := entry(catalog, "item", it.name))
    ]
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(_button(Labels.PREV, DeptCb(id=dept_id, p=page - 1)))
    if page < pages - 1:
        nav.append(_button(Labels.NEXT, DeptCb(id=dept_id, p=page + 1)))
    return _markup(*rows, nav, [_button(Labels.BACK_DEPARTMENTS, NavCb(to="back"))])


def check_keyboard(step: int) -> InlineKeyboardMarkup:
    return _markup(
        [
            _button(Labels.HAVE, CheckCb(have=1, step=step)),
            _button(Labels.MISSING, CheckCb(have=0, step=step)),
        ]
    )


def check_done_keyboard(e: Entry) -> InlineKeyboardMarkup:
    return _markup([_button(Labels.WHERE, entry_cb(e, "w")), _button(Labels.RESTART_CHECK, entry_cb(e, "s"))])
