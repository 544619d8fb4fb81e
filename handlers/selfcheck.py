"""材料自查: walk an item's (or bundle's merged) materials one by one with 有/没有, then tell the
citizen everything still missing in ONE message, with where to get each (一次性告知)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from jinja2 import Environment

from bot.render import (
    CheckCb,
    Entry,
    EntryCb,
    chat_of,
    check_done_keyboard,
    check_keyboard,
    edit_html,
    entry,
    send_html,
)
from bot.templates import render
from handlers.common import pressed_entry
from handlers.guide import department_of, phones_for, remember, window_for
from knowledge.schema import Catalog, MaterialForm

router = Router(name=__name__)


@dataclass(frozen=True)
class CheckMaterial:
    name: str
    form: MaterialForm
    copies: int
    notes: str | None
    source: str | None


def checklist(catalog: Catalog, e: Entry) -> list[CheckMaterial]:
    if e.item is not None:
        mats: list[Any] = list(e.item.materials)
    else:
        assert e.bundle is not None
        mats = catalog.bundle_materials(e.bundle)
    return [CheckMaterial(m.name, m.form, m.copies, m.notes, m.source) for m in mats]


def _step_text(templates: Environment, e: Entry, mats: list[CheckMaterial], step: int) -> str:
    return render(templates, "selfcheck_step", name=e.name, step=step, total=len(mats), material=mats[step])


def _result_text(
    catalog: Catalog, templates: Environment, e: Entry, mats: list[CheckMaterial], missing: list[int]
) -> str:
    consult = next((p.number for p in phones_for(catalog, e) if p.label == "咨询电话"), None)
    return render(
        templates,
        "selfcheck_result",
        name=e.name,
        missing=[mats[i] for i in missing],
        total=len(mats),
        department=department_of(e),
        window=window_for(catalog, e),
        center=catalog.center,
        consult=consult,
    )


@router.callback_query(EntryCb.filter(F.act == "s"))
async def start_check(
    callback: CallbackQuery,
    callback_data: EntryCb,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
) -> None:
    e = await pressed_entry(callback, callback_data, catalog, templates)
    if e is None:
        return
    mats = checklist(catalog, e)
    chat_id = chat_of(callback)
    if not mats:
        await send_html(bot, chat_id, _result_text(catalog, templates, e, mats, []), check_done_keyboard(e))
        return
    await state.update_data(check={"k": e.kind, "n": e.name, "step": 0, "missing": []})
    await remember(state, e)
    await send_html(bot, chat_id, _step_text(templates, e, mats, 0), check_keyboard(0))


@router.callback_query(CheckCb.filter())
async def answer_step(
    callback: CallbackQuery,
    callback_data: CheckCb,
    bot: Bot,
    state: FSMContext,
    catalog: Catalog,
    templates: Environment,
) -> None:
    check = (await state.get_data()).get("check")
    e = entry(catalog, check["k"], check["n"]) if check else None
    # A press on an older walk, or twice on the same step, must not skip or double-count a material.
    if check is None or e is None or callback_data.step != check["step"]:
        await callback.answer(render(templates, "selfcheck_stale"))
        return
    await callback.answer()
    mats = checklist(catalog, e)
    step = check["step"]
    missing: list[int] = list(check["missing"])
    if not callback_data.have:
        missing.append(step)
    message = callback.message if isinstance(callback.message, Message) else None
    chat_id = chat_of(callback)
    if step + 1 < len(mats):
        await state.update_data(check={**check, "step": step + 1, "missing": missing})
        await edit_html(
            bot, message, chat_id, _step_text(templates, e, mats, step + 1), check_keyboard(step + 1)
        )
        return
    await state.update_data(check=None)
    await edit_html(
        bot, message, chat_id, _result_text(catalog, templates, e, mats, missing), check_done_keyboard(e)
    )
