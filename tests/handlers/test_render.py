"""Splitting long HTML cleanly, and callback data that fits Telegram's 64 bytes."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render import EntryCb, entry, entry_cb, resolve, split_html, utf16_len
from bot.runtime import plain
from knowledge.schema import Catalog


def balanced(part: str) -> bool:
    stack: list[str] = []
    for closing, name in re.findall(r"<(/?)([a-z]+)[^>]*>", part):
        if closing:
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack


def test_short_text_is_one_message() -> None:
    assert split_html("<b>结婚登记</b>\n免费") == ["<b>结婚登记</b>\n免费"]


def test_split_prefers_section_boundaries() -> None:
    sections = [f"<b>第{n}节</b>\n" + "内容" * 300 for n in range(6)]
    parts = split_html("\n\n".join(sections), limit=1500)
    assert all(p.startswith("<b>第") for p in parts)
    assert "".join(parts).count("内容") == 6 * 300


def test_tag_spanning_a_cut_is_closed_and_reopened() -> None:
    text = "<b>" + "很长的加粗内容" * 400 + "</b>"
    parts = split_html(text, limit=1000)
    assert len(parts) > 2
    assert all(balanced(p) and p.startswith("<b>") and utf16_len(p) <= 1000 for p in parts)


def test_emoji_count_double_toward_the_limit() -> None:
    parts = split_html("😀" * 3000)  # 3,000 characters but 6,000 UTF-16 units: too long for one
    assert len(parts) == 2 and all(utf16_len(p) <= 4096 for p in parts)
    assert "".join(parts) == "😀" * 3000


segment = st.one_of(
    st.text(alphabet="办证材料ab😀 ", min_size=1, max_size=40).map(html.escape),
    st.just("&amp;"),
    st.just("\n"),
    st.just("\n\n"),
    st.text(alphabet="身份证明", min_size=1, max_size=30).map(lambda s: f"<b>{s}</b>"),
    st.text(alphabet="地址", min_size=1, max_size=30).map(
        lambda s: f'<a href="https://x.cn/?a=1&amp;b=2">{s}</a>'
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(segment, min_size=1, max_size=400), st.integers(min_value=120, max_value=600))
def test_split_never_breaks_tags_or_entities_or_loses_text(segments: list[str], limit: int) -> None:
    text = "".join(segments)
    parts = split_html(text, limit=limit)
    assert all(utf16_len(p) <= limit for p in parts)
    assert all(balanced(p) for p in parts)
    for p in parts:  # no cut inside "&amp;" or inside a tag
        assert not re.search(r"&[a-z]*$", p) and not re.search(r"<[^>]*$", p)
    squash = lambda s: re.sub(r"\s+", "", plain(s))  # noqa: E731
    assert squash("".join(parts)) == squash(text)


def test_every_button_of_the_sample_catalog_fits_64_bytes(sample_catalog: Catalog) -> None:
    for kind, names in (
        ("item", [i.name for i in sample_catalog.items]),
        ("bundle", [b.name for b in sample_catalog.bundles]),
    ):
        for name in names:
            e = entry(sample_catalog, kind, name)
            assert e is not None
            for act in "cfrbws":
                packed = entry_cb(e, act).pack()
                assert len(packed.encode()) <= 64
                assert resolve(sample_catalog, EntryCb.unpack(packed)) == e
