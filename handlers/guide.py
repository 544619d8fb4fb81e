"""Free text is a question: match it against the catalog and answer with a card, a short list of
candidates, a one-facet follow-up answer, or an honest "not found". This router is LAST."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ParseMode
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, FSInputFile, InlineKeyboardMarkup, Message
from jinja2 import Environment

from bot.render import (
    Entry,
    EntryCb,
    NavCb,
    answer_html,
    bundle_keyboard,
    card_link_keyboard,
    chat_of,
    entries_keyboard,
    entry,
    item_keyboard,
    nav_keyboard,
    send_html,
)
from bot.templates import render
from handlers.common import is_command, pressed_entry
from knowledge.matcher import Matcher, MatchResult
from knowledge.schema import Catalog, Phone, Window
from models.questions import UnansweredWriter, mask_sensitive

log = logging.getLogger(__name__)
router = Router(name=__name__)


async def in_private_chat(message: Message) -> bool:
    """Free text is a question only in a private chat: in a group the bot must not answer every
    message (commands still work there)."""
    return message.chat.type == "private"


router.message.filter(in_private_chat)

# A non-confident best match at least this good is worth offering as "您要办的是：" rather than
# only the fallback. Below it the matcher is guessing: on the sample catalog out-of-scope questions
# ("附近哪家饭馆好吃") stay under 0.55 while in-scope non-confident ones reach 0.6+.
CANDIDATE_MIN_SCORE = 0.6
# Below that, down to here, the right entry is still usually first (bench/calibrate_matcher.py): the
# fallback offers it as a button under the honest "not found" instead of hiding it.
MAYBE_MIN_SCORE = 0.5
MAX_MAYBE = 2
# A confident best match with a runner-up this close is a tie ("许可证", "户口"): asking which one
# is honest, a card for an arbitrary one of them is not.
TIE_GAP = 0.02
MAX_CANDIDATES = 3
MAX_QUESTION = 500  # characters; longer text is not a question (handlers/errors.py answers it)

# Follow-up facets and the words people use for them. Order is the order of the answer.
FACETS: dict[str, tuple[str, ...]] = {
    "materials": ("带什么", "带啥", "材料", "资料", "准备什么", "准备啥", "要什么东西", "带哪些"),
    "fee": (
        "多少钱",
        "收费",
        "费用",
        "收钱",
        "要钱",
        "花钱",
        "交钱",
        "几块钱",
        "免费",
        "工本费",
        "价格",
        "钱",
    ),
    "days": (
        "多久",
        "几天",
        "多少天",
        "多长时间",
        "时限",
        "多快",
        "几个工作日",
        "什么时候能",
        "啥时候",
        "要多长",
    ),
    "where": (
        "在哪",
        "哪里办",
        "哪里",
        "哪儿",
        "地址",
        "窗口",
        "几楼",
        "地点",
        "怎么走",
        "去哪",
        "位置",
        "什么地方",
        "电话",
    ),
    "basis": ("依据", "法律", "法规", "条例", "凭什么"),
    "procedure": ("流程", "步骤", "程序"),
}
# What is left of a follow-up once the facet words are gone: "那（个）…要…吗" carries no item.
_FILLER = re.compile(
    r"[\s\W_]|[那这个它该要需得呢吗呀啊吧的了是还请问我想一下么啥什能可以会在去嘛哦和跟与及又再办理些哪样怎么多少]"
)


def detect_facets(text: str) -> tuple[list[str], str]:
    """(facets asked about, the text with those words removed)."""
    found: list[str] = []
    rest = text
    for facet, words in FACETS.items():
        for w in words:
            if w in rest:
                if facet not in found:
                    found.append(facet)
                rest = rest.replace(w, " ")
    return found, rest


def names_an_item(rest: str) -> bool:
    return len(_FILLER.sub("", rest)) >= 2


# ---------------------------------------------------------------- views (shared with inline, selfcheck)


def window_for(catalog: Catalog, e: Entry) -> Window | None:
    number = e.item.window if e.item else e.bundle.window  # type: ignore[union-attr]
    department = e.item.department if e.item else e.bundle.lead_department  # type: ignore[union-attr]
    return catalog.window(number) or next((w for w in catalog.windows if w.department == department), None)


def department_of(e: Entry) -> str:
    return e.item.department if e.item else e.bundle.lead_department  # type: ignore[union-attr]


def phones_for(catalog: Catalog, e: Entry) -> list[Phone]:
    dept = catalog.department(department_of(e))
    consult = (e.item.consult_phone if e.item else None) or (dept.phone if dept else None)
    supervise = e.item.supervise_phone if e.item else None
    if supervise is None:
        supervise = next(
            (p.number for p in catalog.center.phones if "监督" in p.label or "投诉" in p.label), None
        )
    out = []
    if consult:
        out.append(Phone(label="咨询电话", number=consult))
    if supervise:
        out.append(Phone(label="监督电话", number=supervise))
    return out


def card_text(catalog: Catalog, templates: Environment, e: Entry) -> str:
    common: dict[str, Any] = {"center": catalog.center, "window": window_for(catalog, e)}
    if e.item is not None:
        return render(templates, "item_card", item=e.item, phones=phones_for(catalog, e), **common)
    b = e.bundle
    assert b is not None
    return render(
        templates,
        "bundle_card",
        bundle=b,
        members=catalog.members(b),
        merged=catalog.bundle_materials(b),
        shared=catalog.bundle_shared(b),
        fees=catalog.bundle_fees(b),
        days=catalog.bundle_days(b),
        **common,
    )


def card_keyboard(catalog: Catalog, e: Entry) -> InlineKeyboardMarkup:
    return item_keyboard(catalog, e) if e.item is not None else bundle_keyboard(catalog, e)


class Cards:
    """Rendered cards with their keyboards. A card is the same for every citizen until the catalog
    changes, so each is rendered once (bounded, least recently used dropped first). One per
    dispatcher (workflow data `cards`), so a test's or a reloaded catalog never sees stale cards."""

    def __init__(self, catalog: Catalog, templates: Environment, size: int = 1024):
        self.catalog, self.templates, self.size = catalog, templates, size
        self._cache: OrderedDict[tuple[str, int], tuple[str, InlineKeyboardMarkup]] = OrderedDict()

    def get(self, e: Entry) -> tuple[str, InlineKeyboardMarkup]:
        key = (e.kind, e.index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        card = (card_text(self.catalog, self.templates, e), card_keyboard(self.catalog, e))
        self._cache[key] = card
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return card


def facet_text(catalog: Catalog, templates: Environment, e: Entry, facets: list[str]) -> str:
    if e.item is not None:
        it = e.item
        extra: dict[str, Any] = {
            "item": it,
            "bundle": None,
            "materials": it.materials,
            "basis": it.basis,
            "procedure": it.procedure,
        }
    else:
        b = e.bundle
        assert b is not None
        members = catalog.members(b)
        basis = list(dict.fromkeys(x for it in members for x in it.basis))
        steps = ["在综合窗口一次提交全部材料", "牵头部门受理并抄告相关部门", "各部门同步审批", "统一出件"]
        extra = {
            "item": None,
            "bundle": b,
            "bundle_fees": catalog.bundle_fees(b),
            "days": catalog.bundle_days(b),
            "materials": catalog.bundle_materials(b),
            "basis": basis,
            "procedure": steps,
        }
    return render(
        templates,
        "facets",
        name=e.name,
        facets=facets,
        center=catalog.center,
        department=department_of(e),
        window=window_for(catalog, e),
        phones=phones_for(catalog, e),
        **extra,
    )


# ---------------------------------------------------------------- replies


async def remember(state: FSMContext, e: Entry) -> None:
    await state.update_data(ctx={"k": e.kind, "n": e.name})


async def context_entry(state: FSMContext, catalog: Catalog) -> Entry | None:
    ctx = (await state.get_data()).get("ctx")
    return entry(catalog, ctx["k"], ctx["n"]) if ctx else None


async def send_card(bot: Bot, chat_id: int, e: Entry, *, cards: Cards, state: FSMContext) -> None:
    text, keyboard = cards.get(e)
    await send_html(bot, chat_id, text, keyboard)
    await remember(state, e)


async def send_facets(
    bot: Bot,
    chat_id: int,
    e: Entry,
    facets: list[str],
    *,
    catalog: Catalog,
    templates: Environment,
    state: FSMContext,
) -> None:
    await send_html(bot, chat_id, facet_text(catalog, templates, e, facets), card_link_keyboard(e))
    await remember(state, e)


async def send_fallback(
    bot: Bot,
    chat_id: int,
    question: str,
    *,
    catalog: Catalog,
    templates: Environment,
    unanswered: UnansweredWriter,
    maybe: Sequence[Entry] = (),
) -> None:
    """The honest "not found"; `maybe` are weak guesses shown as buttons under it, never as an answer."""
    unanswered.record(question)
    text = render(
        templates, "fallback", question=mask_sensitive(question), center=catalog.center, maybe=bool(maybe)
    )
    keyboard = nav_keyboard("depts")
    if maybe:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=entries_keyboard(maybe).inline_keyboard + keyboard.inline_keyboard
        )
    await send_html(bot, chat_id, text, keyboard)


def best_entry(catalog: Catalog, result: MatchResult) -> Entry | None:
    """The one entry the question clearly names: confident and not tied with the runner-up."""
    ms = result.matches
    if not result.confident or not ms or (len(ms) > 1 and ms[0].score - ms[1].score <= TIE_GAP):
        return None
    return entry(catalog, ms[0].kind, ms[0].name)


def candidate_entries(
    catalog: Catalog, result: MatchResult, min_score: float = CANDIDATE_MIN_SCORE
) -> list[Entry]:
    out: list[Entry] = []
    for m in result.matches:
        if m.score < min_score and not result.confident:
            continue
        e = entry(catalog, m.kind, m.name)
        if e is not None and e not in out:
            out.append(e)
        if len(out) == MAX_CANDIDATES:
            break
    return out


# ---------------------------------------------------------------- handlers


@router.message(CommandStart())
async def start_with_payload(message: Message, catalog: Catalog, templates: Environment) -> None:
    """`/start <payload>` nobody else claimed (e.g. from inline mode): the plain welcome."""
    from handlers.start import send_welcome

    await send_welcome(message, catalog=catalog, templates=templates)


async def is_text(message: Message) -> bool:
    return message.text is not None


# Greetings and thanks with nothing else in them ("你好", "在吗？", "谢谢！"): answered in kind, not
# with "没能找到和「你好」对应的事项", and not recorded as an unanswered question.
_GREETING = r"你好|您好|在吗|在不在|有人吗|哈喽|嗨|hello|hi|早上好|上午好|中午好|下午好|晚上好"
_THANKS = r"谢谢|多谢|感谢|谢了|好的|好滴|知道了|明白了|收到|ok|辛苦了"
_SMALL_TALK = re.compile(rf"(?:{_GREETING}|{_THANKS}|[啊呀哈呢吗嘛哦喔噢啦您你])+")
_THANKS_RE = re.compile(_THANKS)
_NOT_WORDS = re.compile(r"[\W_]+")


def small_talk(text: str) -> str | None:
    """'thanks', 'greeting', or None when the message asks for something."""
    bare = _NOT_WORDS.sub("", text.lower())
    if not bare or len(bare) > 12 or not _SMALL_TALK.fullmatch(bare):
        return None
    return "thanks" if _THANKS_RE.search(bare) else "greeting"


@router.message(is_command)
async def unknown_command(message: Message, templates: Environment) -> None:
    # Echoed back: "/13812345678" must not show a phone number unmasked.
    command = mask_sensitive((message.text or "").split(maxsplit=1)[0][:32])
    await answer_html(message, render(templates, "unknown_command", command=command))


@router.message(is_text)
async def question(
    message: Message,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    matcher: Matcher,
    templates: Environment,
    cards: Cards,
    unanswered: UnansweredWriter,
) -> None:
    text = " ".join((message.text or "").split())
    chat_id = message.chat.id
    kw: dict[str, Any] = {"catalog": catalog, "templates": templates, "state": state}
    if (talk := small_talk(text)) is not None:
        reply = render(templates, "small_talk", center=catalog.center, thanks=talk == "thanks")
        await send_html(bot, chat_id, reply)
        return

    facets, rest = detect_facets(text)
    result: MatchResult | None = None
    if facets:
        # A follow-up must not swallow a new question: "那结婚登记要多少钱" names another item.
        if names_an_item(rest):
            result = matcher.search(rest)
            named = best_entry(catalog, result)
            if named is not None:
                await send_facets(bot, chat_id, named, facets, **kw)
                return
        if result is None or not result.confident:
            target = await context_entry(state, catalog)
            if target is not None:
                await send_facets(bot, chat_id, target, facets, **kw)
                return
            if result is None:
                await answer_html(message, render(templates, "no_context"))
                return
        # Names something, but not one thing ("户口要多少钱"): ask which, below.

    if result is None or not result.confident:
        result = matcher.search(text)
    best = best_entry(catalog, result)
    if best is not None:
        await send_card(bot, chat_id, best, cards=cards, state=state)
        return
    candidates = candidate_entries(catalog, result)
    if candidates:
        await state.update_data(asked=mask_sensitive(text)[:MAX_QUESTION])
        await send_html(
            bot, chat_id, render(templates, "candidates"), entries_keyboard(candidates, none_of_these=True)
        )
        return
    maybe = candidate_entries(catalog, result, MAYBE_MIN_SCORE)[:MAX_MAYBE]
    await send_fallback(
        bot, chat_id, text, catalog=catalog, templates=templates, unanswered=unanswered, maybe=maybe
    )


@router.callback_query(NavCb.filter(F.to == "none"))
async def none_of_these(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
    unanswered: UnansweredWriter,
) -> None:
    await callback.answer()
    asked = (await state.get_data()).get("asked") or ""
    await send_fallback(
        bot, chat_of(callback), asked, catalog=catalog, templates=templates, unanswered=unanswered
    )


@router.callback_query(EntryCb.filter())
async def entry_button(
    callback: CallbackQuery,
    callback_data: EntryCb,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
    cards: Cards,
) -> None:
    e = await pressed_entry(callback, callback_data, catalog, templates)
    if e is None:
        return
    chat_id = chat_of(callback)
    kw: dict[str, Any] = {"catalog": catalog, "templates": templates, "state": state}
    act = callback_data.act
    if act == "w":
        await send_facets(bot, chat_id, e, ["where"], **kw)
    elif act == "f" and e.item is not None:
        await send_forms(bot, chat_id, e, catalog=catalog, templates=templates)
    elif act == "r" and e.item is not None:
        related = [
            r for n in e.item.related if (r := entry(catalog, "item", n) or entry(catalog, "bundle", n))
        ]
        await send_html(bot, chat_id, render(templates, "related", name=e.name), entries_keyboard(related))
    elif act == "b" and e.item is not None:
        bundles = [b for x in catalog.bundles_of(e.item.name) if (b := entry(catalog, "bundle", x.name))]
        if len(bundles) == 1:
            await send_card(bot, chat_id, bundles[0], cards=cards, state=state)
        else:
            await send_html(
                bot, chat_id, render(templates, "bundles_of", name=e.name), entries_keyboard(bundles)
            )
    else:
        await send_card(bot, chat_id, e, cards=cards, state=state)


def sample_forms(catalog: Catalog, e: Entry) -> list[tuple[str, Path | None]]:
    """(material name, file) for each material with a sample form; None when the file is missing
    or points outside the catalog's forms/ folder."""
    assert e.item is not None
    forms_dir = Path(catalog.root or ".").resolve() / "forms"
    out: list[tuple[str, Path | None]] = []
    for mat in e.item.materials:
        if mat.sample:
            path = (forms_dir / mat.sample).resolve()
            ok = forms_dir in path.parents and path.is_file()
            if not ok:
                log.warning("sample form missing for %s: %s", e.name, mat.sample)
            out.append((mat.name, path if ok else None))
    return out


async def send_forms(bot: Bot, chat_id: int, e: Entry, *, catalog: Catalog, templates: Environment) -> None:
    """Each sample form as a document; a missing file gets an honest line, never a crash."""
    missing = False
    for material, path in sample_forms(catalog, e):
        if path is None:
            missing = True
            continue
        caption = render(templates, "form_caption", material=material, name=e.name)
        await bot.send_document(chat_id, FSInputFile(path), caption=caption, parse_mode=ParseMode.HTML)
    if missing:
        window = window_for(catalog, e)
        text = render(templates, "forms_missing", name=e.name, window=window, department=department_of(e))
        await send_html(bot, chat_id, text)


@router.callback_query()
async def unknown_button(callback: CallbackQuery, templates: Environment) -> None:
    """Leftover buttons from an older version, or forged data: refuse politely."""
    await callback.answer(render(templates, "expired"), show_alert=True)
