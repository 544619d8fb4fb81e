"""Inline mode: `@bot 关键词` in any chat offers the matching cards, to share with family."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.types import (
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InlineQueryResultUnion,
    InputTextMessageContent,
)
from jinja2 import Environment

from bot.render import TELEGRAM_LIMIT, entry, split_html, utf16_len
from bot.templates import render
from handlers.guide import Cards, candidate_entries, window_for
from knowledge.matcher import Matcher
from knowledge.schema import Catalog

router = Router(name=__name__)

MAX_QUERY = 100
MAX_RESULTS = 5


@router.inline_query()
async def inline_search(
    query: InlineQuery, catalog: Catalog, matcher: Matcher, templates: Environment, cards: Cards
) -> None:
    text = " ".join(query.query.split())[:MAX_QUERY]
    button = InlineQueryResultsButton(text=render(templates, "inline_button"), start_parameter="inline")
    if not text:
        await query.answer([], cache_time=60, button=button)
        return
    result = matcher.search(text, limit=MAX_RESULTS)
    if result.confident:
        entries = [e for m in result.matches if (e := entry(catalog, m.kind, m.name))]
    else:
        entries = candidate_entries(catalog, result)
    more = render(templates, "inline_more")
    articles: list[InlineQueryResultUnion] = []
    for e in entries[:MAX_RESULTS]:
        card, _ = cards.get(e)
        if utf16_len(card) > TELEGRAM_LIMIT:
            card = split_html(card, TELEGRAM_LIMIT - utf16_len(more))[0] + more
        w = window_for(catalog, e)
        if e.item is not None:
            desc = f"{e.item.department} · 承诺{e.item.promised}"
        else:
            assert e.bundle is not None
            desc = f"一件事 · 牵头：{e.bundle.lead_department} · 承诺{catalog.bundle_days(e.bundle)}"
        if w is not None:
            desc += f" · {w.number}号窗口"
        articles.append(
            InlineQueryResultArticle(
                id=f"{e.kind[0]}{e.index}",
                title=e.name,
                description=desc,
                input_message_content=InputTextMessageContent(
                    message_text=card,
                    parse_mode=ParseMode.HTML,
                ),
            )
        )
    # Results are the same for everyone (no personal data), so Telegram may cache them.
    await query.answer(articles, cache_time=300, is_personal=False, button=button)
