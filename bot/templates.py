"""The one Jinja2 Environment for every message text (templates are files in bot/templates/).

Autoescape is on because replies go out in Telegram HTML parse mode: a material or item name with
"<" or "&" must never break the markup. StrictUndefined turns a typo in a template into an error in
the tests instead of a silently empty line in front of a citizen.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from knowledge.schema import Fee, days_text
from models.workdays import CHINA_TZ

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def fee_text(fee: Fee) -> str:
    """ "工本费 20 元" / "按面积计收（…）": an amount when fixed, the rule when one decides it."""
    parts: list[str] = []
    if fee.amount is not None:
        parts.append(f"{fee.amount:g} 元")
    if fee.rule:
        parts.append(fee.rule)
    return "，".join(parts) or "按规定收取"


def local_time(moment: dt.datetime) -> str:
    """Stored UTC timestamps as people in the county read them (Beijing time)."""
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def date_text(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def make_templates(path: Path | None = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(path or TEMPLATE_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["days"] = days_text
    env.filters["fee"] = fee_text
    env.filters["local_time"] = local_time
    env.filters["date_cn"] = date_text
    return env


def render(env: Environment, template: str, /, **context: Any) -> str:
    """Render `template` (without the .j2 suffix) and tidy blank lines left by optional sections."""
    text = env.get_template(f"{template}.j2").render(**context)
    lines = [line.rstrip() for line in text.strip().split("\n")]
    out: list[str] = []
    for line in lines:
        # Optional sections leave runs of empty lines; one blank line separates sections.
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out)
