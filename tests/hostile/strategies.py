"""Hypothesis strategies for what a hostile or careless public sends a bot."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from knowledge.loader import load_catalog
from models.cases import ALPHABET, _check_char

T = TypeVar("T")

_CATALOG = load_catalog()

# Every plane, control and format characters included; surrogates cannot reach a bot (Telegram
# sends valid UTF-8), so they are left out.
ANY_CHAR = st.characters(codec="utf-8")
CONTROL = st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Mn", "Co"])
INVISIBLE = st.sampled_from(
    [
        "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d",
        "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff", "\u00ad", "\u034f", "\u2060",
        "\u180e", "\u3000", "\u00a0", "\t", "\r", "\n", "\x00", "\x1b", "\x7f", "\x85", "\u2028",
        "\u2029", "\U000e0041", "\ufffd", "\U0010ffff",
    ]
)  # fmt: skip
INJECTION = st.sampled_from(
    [
        "<b>", "</b>", "<i>", "</i>", "<u>", "</pre>", "<pre>", "<code>", "</code>",
        '<a href="javascript:alert(1)">', "<a href='tg://user?id=1'>", "</a>", "<a>",
        "&amp;", "&lt;", "&gt;", "&quot;", "&", "&#0;", "&#x110000;", "&nbsp;", "&#128512;", "&#xD800;",
        "<script>alert(1)</script>", "<tg-spoiler>", '<span class="tg-spoiler">', "<blockquote>",
        '<tg-emoji emoji-id="1">', "<br>", "<br/>", "<img src=x onerror=alert(1)>", "<!--", "-->",
        "<", ">", "<<>>", "</", "<b", "```", "```python\n", "`", "*", "**", "_", "__", "~~", "||",
        "[", "]", "(", ")", "[链接](http://x.y)", "\\", "{{ 7*7 }}", "{% if %}", "${x}", "%s", "%(x)s",
        "{0}", "'; DROP TABLE cases; --", "\" OR 1=1 --", "../../etc/passwd", "%00", "\\u0000",
    ]
)  # fmt: skip
EMOJI = st.sampled_from(
    [
        "😀",
        "🎉",
        "👍🏽",
        "👨‍👩‍👧‍👦",
        "🏳️‍🌈",
        "🇨🇳",
        "❤️",
        "🔥",
        "🙏",
        "🤔",
        "💯",
        "🧧",
        "🀄",
        "⭐",
        "©️",
        "#️⃣",
        "🫠",
    ]
)
WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\u3000", "\u00a0", "\u2028", "\u200b", "\x0b", "\x0c"])
_WORDS = (
    [it.name for it in _CATALOG.items]
    + [b.name for b in _CATALOG.bundles]
    + [d.name for d in _CATALOG.departments]
    + [a for it in _CATALOG.items for a in it.aliases[:2]]
    + ["要多少钱", "多久能办好", "在哪办", "要带什么", "依据是什么", "流程", "那", "吗", "？", "办", "开饭馆"]
    + ["我的件", "办到哪了", "手机号", "13812345678", "110101199001011234", "投诉", "身份证", "户口"]
    + ["附近哪家饭馆好吃", "今天天气怎么样", "你是谁", "养猫要办证吗"]  # out of scope: the fallback
)
WORDS = st.sampled_from(_WORDS)
COMMANDS = st.sampled_from(
    [
        "/start", "/help", "/departments", "/windows", "/center", "/status", "/mycases", "/complain",
        "/news", "/subscribe_news", "/unsubscribe_news", "/cases", "/tickets", "/announce", "/report",
        "/unanswered", "/complaints", "/unknown", "/help@otherbot", "/start@yichuang_bot",
        "/status@otherbot", "/", "//", "/@", "/start@", "/13812345678", "/<b>", "/&amp;", "/a" * 40,
        "/状态", "/START", "/Start",
    ]
)  # fmt: skip


SEPARATORS = st.sampled_from(["", " ", "  ", "\n", "\u3000"])


def junk(max_size: int = 40) -> st.SearchStrategy[str]:
    piece = st.one_of(
        st.text(ANY_CHAR, max_size=6), INJECTION, EMOJI, INVISIBLE, WORDS, st.text(CONTROL, max_size=3)
    )
    return st.lists(piece, max_size=max_size // 4).map("".join)


def huge() -> st.SearchStrategy[str]:
    """4,097 to 20,000 characters: one repeated chunk, with junk in front (building 20k random
    characters one by one would make hypothesis slow and the suite long)."""
    return st.builds(
        lambda head, chunk, n: (head + chunk * (n // len(chunk) + 1))[:n],
        junk(12),
        st.one_of(st.text(ANY_CHAR, min_size=1, max_size=8), INJECTION, EMOJI, WORDS),
        st.integers(min_value=4097, max_value=20_000),
    )


def near_limits() -> st.SearchStrategy[str]:
    """Around the question limit (500) and Telegram's (4,096): off-by-one territory."""
    return st.builds(
        lambda chunk, n: (chunk * n)[:n],
        st.one_of(WORDS, EMOJI, INJECTION),
        st.sampled_from([199, 200, 201, 255, 256, 257, 499, 500, 501, 4095, 4096, 4097]),
    )


def spliced() -> st.SearchStrategy[str]:
    """A real-looking question with one odd character inside (NUL, RTL override, zero-width…)."""
    return st.builds(
        lambda word, ch, k: word[: k % (len(word) + 1)] + ch + word[k % (len(word) + 1) :],
        WORDS,
        st.one_of(st.just("\x00"), INVISIBLE, CONTROL, INJECTION),  # NUL: PostgreSQL refuses it
        st.integers(0, 40),
    )


# ---------------------------------------------------------------- case numbers


def valid_number(date: str, body: str) -> str:
    return f"YC{date}{body}{_check_char(date + body)}"


BASE32 = st.text(st.sampled_from(ALPHABET), min_size=8, max_size=8)
DATES = st.from_regex(r"\A[0-9]{6}\Z")


def _variant(number: str, how: int, pos: int, ch: str) -> str:
    """Ways people and attackers spell a number: typos, case, separators, O/0 I/1 swaps."""
    k = pos % len(number)
    if how == 0:
        return number[:k] + ch + number[k + 1 :]  # one character changed
    if how == 1:
        return number[:k]  # truncated
    if how == 2:
        return number + ch  # one too many
    if how == 3:
        return number.lower()
    if how == 4:
        return f"{number[:2]}-{number[2:8]}-{number[8:]}"
    if how == 5:
        return number.replace("0", "O").replace("1", "I")
    if how == 6:
        return " ".join(number)
    if how == 7 and k + 1 < len(number):
        return number[:k] + number[k + 1] + number[k] + number[k + 2 :]  # neighbours swapped
    return number


def case_numbers(real: list[str]) -> st.SearchStrategy[str]:
    """Forged numbers: well-formed with a right check character, random base32, and variants of
    real numbers belonging to other people."""
    well_formed = st.builds(valid_number, DATES, BASE32)
    random_ = st.builds(lambda b: "YC" + b, st.text(st.sampled_from(ALPHABET + "ILOUilou-_ "), max_size=20))
    base = st.one_of(well_formed, random_, st.sampled_from(real)) if real else well_formed
    return st.builds(
        _variant, base, st.integers(0, 8), st.integers(0, 30), st.sampled_from(ALPHABET + "O-_ 中\u200b")
    )


def forged_case_messages(real: list[str]) -> st.SearchStrategy[str]:
    code = st.one_of(BASE32.map(lambda s: s + "AB"), st.text(ANY_CHAR, max_size=12))
    return st.one_of(
        case_numbers(real),
        st.builds(lambda n: f"我的件 {n} 办到哪了", case_numbers(real)),
        st.builds(lambda n, j: f"/status {n}{j}", case_numbers(real), junk(8)),
        st.builds(lambda n, c: f"/start c_{n}_{c}", case_numbers(real), code),
        st.builds(lambda j: f"/start c_{j}", junk(20)),
        st.builds(lambda n: f"/start {n}", case_numbers(real)),
    )


def factor_guesses(factors: list[str]) -> st.SearchStrategy[str]:
    """What follows "请输入手机号后四位": digits with noise, never another person's real factor."""
    guess = st.one_of(
        st.from_regex(r"\A[0-9]{4}\Z"),
        st.from_regex(r"\A[0-9 \-*＊]{1,20}\Z"),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6),
    )
    return guess.filter(lambda t: "".join(c for c in t if c.isdigit()) not in factors)


# ---------------------------------------------------------------- whole messages


def evenly(*branches: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """Like st.one_of, but each branch gets its share: with one_of, hypothesis drifts towards the
    branches with the largest input space (forged numbers took a third, rare branches 1%)."""
    return st.sampled_from(range(len(branches))).flatmap(lambda i: branches[i])


def message_texts(real: list[str], factors: list[str]) -> st.SearchStrategy[str]:
    return evenly(
        st.text(ANY_CHAR, max_size=60),
        st.text(st.one_of(ANY_CHAR, CONTROL, INVISIBLE), max_size=30),
        junk(60),
        st.lists(st.one_of(WORDS, INJECTION, INVISIBLE), min_size=1, max_size=6).map("".join),
        st.lists(st.one_of(WORDS, WORDS, WHITESPACE), min_size=1, max_size=4).map("".join),  # questions
        spliced(),
        huge(),
        near_limits(),
        st.lists(EMOJI, min_size=1, max_size=12).map("".join),
        st.lists(WHITESPACE, min_size=1, max_size=20).map("".join),
        st.builds(lambda c, sep, j: c + sep + j, COMMANDS, SEPARATORS, junk(30)),
        forged_case_messages(real),
        factor_guesses(factors),
    )  # fmt: skip


def conversations(real: list[str], factors: list[str]) -> st.SearchStrategy[list[str]]:
    """One to four messages from one user: enough to walk /status -> number -> factor, or a card
    followed by a follow-up question, with junk anywhere."""
    lead = st.sampled_from([[], ["/status"], ["/start"], ["结婚登记"], ["开饭馆要办什么证"], ["/complain"]])
    return st.builds(
        lambda a, b: a + b, lead, st.lists(message_texts(real, factors), min_size=1, max_size=3)
    ).filter(lambda msgs: not _gives_factor(msgs, factors))


def _gives_factor(msgs: list[str], factors: list[str]) -> bool:
    return any("".join(c for c in m if c.isdigit()) in factors for m in msgs)
