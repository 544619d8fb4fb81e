"""Suite 4: the HTML the bot builds stays valid Telegram HTML whatever text goes into it.

- The checker the suites rely on rejects what Telegram rejects (else every suite could pass vacuously).
- split_html: any valid message, up to 20,000 characters, splits into valid parts within the limit
  that together say the same thing.
- Cards, one-facet answers and self-check messages of catalog entries whose every text field is
  hostile (markup, entities, control characters, any plane, very long) are valid messages once sent.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from jinja2 import Environment

from bot.render import Entry, split_html
from handlers.guide import card_text, facet_text
from handlers.selfcheck import _result_text, _step_text, checklist
from knowledge.schema import Catalog, Fee, Material
from tests.hostile.conftest import FUZZ
from tests.hostile.strategies import ANY_CHAR, CONTROL, EMOJI, INJECTION, INVISIBLE
from tests.hostile.telegram_html import MESSAGE_LIMIT, HtmlError, parse, utf16_len

GOOD = [
    "<b>粗体</b> <i>斜体</i> <u>下划线</u> <s>删除</s> <tg-spoiler>剧透</tg-spoiler>",
    '<a href="https://example.org/?a=1&amp;b=2">链接</a>',
    '<pre><code class="language-python">x &lt; 1</code></pre>',
    '<span class="tg-spoiler">s</span> <blockquote expandable>引用</blockquote> &#128512; &#x1F600;',
    "<b><i>嵌套</i></b> &quot;&amp;&gt;",
]
BAD = [
    "<b>未闭合",
    "<b><i>交叉</b></i>",
    "</b>",
    "<script>alert(1)</script>",
    "<a>没有链接</a>",
    '<span class="x">s</span>',
    "a < b",
    "a > b",
    "A & B",
    "&nbsp;",
    "&#0;",
    "<br>",
    "<pre><b>x</b></pre>",
    '<b class="x">x</b>',
    "<a href='x'><a href='y'>y</a></a>",
]


@pytest.mark.parametrize("text", GOOD)
def test_checker_accepts_telegram_html(text: str) -> None:
    assert parse(text)


@pytest.mark.parametrize("text", BAD)
def test_checker_rejects_what_telegram_rejects(text: str) -> None:
    with pytest.raises(HtmlError):
        parse(text)


# ---------------------------------------------------------------- split_html

hostile_text = st.one_of(
    st.text(ANY_CHAR, max_size=40), INJECTION, EMOJI, INVISIBLE, st.text(CONTROL, max_size=4), st.just("\n\n")
)


@st.composite
def telegram_html(draw: st.DrawFn, depth: int = 0, in_link: bool = False) -> str:
    """Valid Telegram HTML: escaped text in properly nested allowed tags, long runs included."""
    parts: list[str] = []
    tags = ["b", "i", "u", "s", "code", "tg-spoiler"] + (
        [] if in_link else ['a href="https://e.org/?q=&amp;"']
    )
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 9))
        if kind < 6 or depth >= 3:
            text = html.escape(draw(hostile_text))
            parts.append(text * draw(st.sampled_from([1, 1, 1, 50, 400])))
        else:
            tag = draw(st.sampled_from(tags))
            link = in_link or tag.startswith("a ")
            inner = draw(telegram_html(depth + 1, link)) if tag != "code" else html.escape(draw(hostile_text))
            parts.append(f"<{tag}>{inner}</{tag.split()[0]}>")
    return "".join(parts)


@FUZZ
@given(telegram_html())
@example("<b>" + "办" * 5000 + "</b>")
@example("&amp;" * 1500)
@example("😀" * 3000)
@example("x" * 4030 + "\n\n<b>" + " " * 80 + "</b>")  # was: a second part with no visible text
def test_split_html_parts_are_valid_and_complete(text: str) -> None:
    plain = parse(text)
    assume(plain.strip())  # the bot never sends an empty message (test_dispatcher_fuzz checks)
    parts = split_html(text)
    shown = ""
    for part in parts:
        part_plain = parse(part)
        assert utf16_len(part_plain) <= MESSAGE_LIMIT
        assert part_plain.strip(), f"empty part in {len(parts)} parts"
        shown += part_plain
    # Cuts drop the line breaks and blanks they fall on; no visible character is lost or added.
    assert "".join(shown.split()) == "".join(plain.split())


# ---------------------------------------------------------------- cards with hostile catalog text

field = st.one_of(
    st.text(ANY_CHAR, min_size=2, max_size=30),
    st.lists(
        st.one_of(INJECTION, EMOJI, INVISIBLE, st.text(ANY_CHAR, max_size=5)), min_size=1, max_size=8
    ).map("".join),
    st.builds(
        lambda s, n: (s * n)[:3000],
        st.one_of(INJECTION, st.text(ANY_CHAR, min_size=1, max_size=5)),
        st.integers(1, 3000),
    ),
).filter(lambda s: len(s.strip()) >= 2)


def _material(name: str, notes: str | None, source: str | None) -> Material:
    return Material(name=name, notes=notes, source=source)


materials = st.lists(st.builds(_material, field, st.none() | field, st.none() | field), max_size=25)


def _hostile_entry(catalog: Catalog, kind: str, index: int, data: dict[str, Any]) -> Entry:
    if kind == "item":
        it = catalog.items[index % len(catalog.items)]
        item = it.model_copy(update=data)
        return Entry("item", index % len(catalog.items), item, None)
    b = catalog.bundles[index % len(catalog.bundles)]
    bundle = b.model_copy(update={k: v for k, v in data.items() if k in ("name", "notes")})
    return Entry("bundle", index % len(catalog.bundles), None, bundle)


entries = st.fixed_dictionaries(
    {
        "name": field,
        "materials": materials,
        "basis": st.lists(field, max_size=5),
        "procedure": st.lists(field, max_size=5),
        "conditions": st.lists(field, max_size=5),
        "outputs": st.lists(field, max_size=3),
        "fees": st.lists(st.builds(lambda n, r: Fee(name=n, rule=r), field, st.none() | field), max_size=3),
        "notes": st.none() | field,
        "online": st.none() | field,
    }
)


def _sendable(text: str) -> None:
    for part in split_html(text):
        plain = parse(part)
        assert plain.strip() and utf16_len(plain) <= MESSAGE_LIMIT


def test_hostile_catalog_text_renders_valid_messages(sample_catalog: Catalog, templates: Environment) -> None:
    facets = ["materials", "fee", "days", "where", "basis", "procedure"]

    @FUZZ
    @given(st.sampled_from(["item", "item", "bundle"]), st.integers(0, 100), entries, st.integers(0, 30))
    def run(kind: str, index: int, data: dict[str, Any], missing: int) -> None:
        e = _hostile_entry(sample_catalog, kind, index, data)
        _sendable(card_text(sample_catalog, templates, e))
        _sendable(facet_text(sample_catalog, templates, e, facets))
        mats = checklist(sample_catalog, e)
        if mats:
            _sendable(_step_text(templates, e, mats, missing % len(mats)))
            _sendable(
                _result_text(sample_catalog, templates, e, mats, list(range(missing % (len(mats) + 1))))
            )

    run()
