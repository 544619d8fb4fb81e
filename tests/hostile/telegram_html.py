"""A strict checker for Telegram's HTML parse mode and the Bot API limits a reply must respect.

Strict on purpose: it follows the Bot API documentation ("Formatting options"), not what the
Telegram servers happen to tolerate today, so a reply that passes here is accepted everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiogram.client.default import Default
from aiogram.enums import ParseMode
from aiogram.types import InlineKeyboardMarkup

MESSAGE_LIMIT = 4096  # text of a message, after entities parsing, in UTF-16 code units
CAPTION_LIMIT = 1024
CALLBACK_ANSWER_LIMIT = 200
CALLBACK_DATA_LIMIT = 64  # bytes
INLINE_RESULTS_LIMIT = 50

# Tag -> attributes it may carry. `a` needs href; span only as a spoiler; code may name a language.
ALLOWED: dict[str, set[str]] = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "a": {"href"},
    "code": {"class"},
    "pre": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

_TAG = re.compile(
    r"<(?P<close>/)?(?P<name>[a-zA-Z][a-zA-Z0-9-]*)"
    r"(?P<attrs>(?:\s+[a-zA-Z][a-zA-Z0-9-]*(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>=`]+))?)*)"
    r"\s*>"
)
_ATTR = re.compile(r"([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'<>=`]+)))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")


class HtmlError(AssertionError):
    pass


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entity(m: re.Match[str]) -> str:
    if m.group(1):
        return _NAMED_ENTITIES[m.group(1)]
    code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise HtmlError(f"numeric entity {m.group(0)!r} is no character")
    return chr(code)


def _attrs(name: str, raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        key = m.group(1).lower()
        value = next((g for g in m.groups()[1:] if g is not None), "")
        if key not in ALLOWED[name]:
            raise HtmlError(f"<{name}> may not carry {key!r}")
        found[key] = _ENTITY.sub(_entity, value)
    if name == "a" and not found.get("href"):
        raise HtmlError("<a> without href")
    if name == "span" and found.get("class") != "tg-spoiler":
        raise HtmlError("<span> other than class=tg-spoiler")
    if name == "code" and "class" in found and not found["class"].startswith("language-"):
        raise HtmlError("<code class> must be language-…")
    if name == "tg-emoji" and not found.get("emoji-id", "").isdigit():
        raise HtmlError("<tg-emoji> needs a numeric emoji-id")
    return found


def parse(text: str) -> str:
    """Validate Telegram HTML; return the plain text Telegram would show. Raises HtmlError."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            m = _TAG.match(text, pos)
            if m is None:
                raise HtmlError(f"bare '<' at {pos}: {text[pos : pos + 30]!r}")
            name = m.group("name").lower()
            if name not in ALLOWED:
                raise HtmlError(f"tag <{name}> is not supported by Telegram")
            if m.group("close"):
                if m.group("attrs").strip():
                    raise HtmlError(f"closing tag </{name}> with attributes")
                if not stack or stack[-1] != name:
                    raise HtmlError(f"</{name}> closes {stack[-1] if stack else 'nothing'} at {pos}")
                stack.pop()
            else:
                _attrs(name, m.group("attrs"))
                inside = stack[-1] if stack else None
                if (inside == "pre" and name != "code") or inside == "code":
                    raise HtmlError(f"<{name}> inside <{inside}>")
                if name == "a" and "a" in stack:
                    raise HtmlError("<a> inside <a>")
                stack.append(name)
            pos = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, pos)
            if m is None:
                raise HtmlError(f"bare '&' at {pos}: {text[pos : pos + 12]!r}")
            out.append(_entity(m))
            pos = m.end()
        elif ch == ">":
            raise HtmlError(f"bare '>' at {pos}: {text[max(0, pos - 20) : pos + 1]!r}")
        else:
            out.append(ch)
            pos += 1
    if stack:
        raise HtmlError(f"unclosed tags: {stack}")
    return "".join(out)


def is_html(parse_mode: Any) -> bool:
    # The bot's default parse mode (DefaultBotProperties) is HTML; Default() stands for it.
    return isinstance(parse_mode, Default) or parse_mode == ParseMode.HTML


def check_text(text: str | None, parse_mode: Any, limit: int = MESSAGE_LIMIT, what: str = "text") -> str:
    """A message text or caption: valid markup, not empty, within the limit. Returns plain text."""
    if text is None:
        raise HtmlError(f"{what} missing")
    plain = parse(text) if is_html(parse_mode) else text
    if not plain.strip():
        raise HtmlError(f"{what} is empty after parsing: {text!r}")
    if utf16_len(plain) > limit:
        raise HtmlError(f"{what} has {utf16_len(plain)} UTF-16 units, limit {limit}")
    return plain


def check_keyboard(markup: Any) -> list[str]:
    """Inline buttons: a label, callback data within 64 bytes, at most 8 a row and 100 in all
    (Telegram's limits, not in the Bot API text: REPLY_MARKUP_TOO_LONG beyond). Returns the data."""
    if not isinstance(markup, InlineKeyboardMarkup):
        return []
    rows = markup.inline_keyboard
    if any(len(row) > 8 for row in rows) or sum(len(row) for row in rows) > 100:
        raise HtmlError(f"keyboard too large: {[len(row) for row in rows]}")
    data: list[str] = []
    for row in rows:
        for b in row:
            if not b.text.strip():
                raise HtmlError("button without a label")
            if b.callback_data is not None:
                if not 1 <= len(b.callback_data.encode()) <= CALLBACK_DATA_LIMIT:
                    raise HtmlError(f"callback data {b.callback_data!r} not 1–64 bytes")
                data.append(b.callback_data)
            elif not (b.url or b.switch_inline_query is not None or b.switch_inline_query_current_chat):
                raise HtmlError(f"button {b.text!r} does nothing")
    return data


@dataclass
class Reply:
    """What one Bot API request shows a person (plain text), for the data-leak checks."""

    method: str
    plain: str


_START_PARAM = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_request(method: Any) -> Iterable[Reply]:
    """Check one recorded Bot API request against Telegram's rules; yield what it shows."""
    name = type(method).__name__
    if name in ("SendMessage", "EditMessageText"):
        yield Reply(name, check_text(method.text, method.parse_mode))
        check_keyboard(method.reply_markup)
    elif name in ("SendDocument", "SendPhoto"):
        if method.caption is not None:
            yield Reply(name, check_text(method.caption, method.parse_mode, CAPTION_LIMIT, "caption"))
        check_keyboard(method.reply_markup)
    elif name == "EditMessageReplyMarkup":
        check_keyboard(method.reply_markup)
    elif name == "AnswerCallbackQuery":
        if method.text is not None:
            if not method.text.strip() or len(method.text) > CALLBACK_ANSWER_LIMIT:
                raise HtmlError(f"callback answer must be 1–200 characters: {method.text!r}")
            yield Reply(name, method.text)
    elif name == "AnswerInlineQuery":
        if len(method.results) > INLINE_RESULTS_LIMIT:
            raise HtmlError(f"{len(method.results)} inline results")
        ids = [r.id for r in method.results]
        if len(set(ids)) != len(ids) or any(not 1 <= len(i.encode()) <= 64 for i in ids):
            raise HtmlError(f"inline result ids must be unique, 1–64 bytes: {ids}")
        for r in method.results:
            if not getattr(r, "title", "x").strip():
                raise HtmlError("inline result without a title")
            content = r.input_message_content
            yield Reply(name, check_text(content.message_text, content.parse_mode))
            yield Reply(name, f"{getattr(r, 'title', '')}\n{getattr(r, 'description', '') or ''}")
        button = method.button
        if button is not None and (
            not button.text.strip()
            or button.start_parameter is not None
            and not _START_PARAM.fullmatch(button.start_parameter)
        ):
            raise HtmlError(f"bad inline results button {button!r}")
