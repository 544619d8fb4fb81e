"""Chinese text normalisation for the matcher: one spelling for catalog text and questions.

The vocabulary lives in knowledge/synonyms.yaml so a county can extend it without code.
`normalize()` is applied to both sides; `analyze()` additionally weighs each character of a
question (filler 0, light 0.3, content 1) so the matcher can tell how much of the question an
entry actually explains, and (given a `Speller` built from the catalog's words) first mends the
one-character slips a pinyin input method makes ("低宝", "公基金", "身分证").
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Container, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pypinyin.pinyin_dict import pinyin_dict

VOCABULARY_FILE = Path(__file__).resolve().parent / "synonyms.yaml"

FILLER = 0.0
LIGHT = 0.3
CONTENT = 1.0

# Keep CJK ideographs, ASCII letters and digits; punctuation and spaces only split words.
_KEEP = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")


@dataclass(frozen=True)
class Vocabulary:
    synonyms: dict[str, str]  # variant -> canonical
    weights: dict[str, float]  # filler / light phrase -> weight
    bundle_cues: frozenset[str]
    verbs: tuple[str, ...] = ()
    measure_words: tuple[str, ...] = ()
    off_topic: frozenset[str] = frozenset()
    other_words: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()  # in canonical spelling

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Vocabulary:
        synonyms: dict[str, str] = {}
        for canonical, variants in (raw.get("synonyms") or {}).items():
            canon = _clean(str(canonical))
            # The canonical form maps to itself so a longer canonical word ("住房公积金") is
            # matched whole before its shorter variant ("公积金") could rewrite part of it.
            synonyms.setdefault(canon, canon)
            for v in variants or []:
                synonyms[_clean(str(v))] = canon
        weights: dict[str, float] = {}
        for group in raw.get("light") or []:
            for w in group if isinstance(group, list) else [group]:
                weights[_clean(str(w))] = LIGHT
        for phrase in raw.get("fillers") or []:
            weights[_clean(str(phrase))] = FILLER  # fillers win over light words
        cues = frozenset(c for c in (_clean(str(c)) for c in raw.get("bundle_cues") or []) if c)
        vm = raw.get("verb_measure") or {}
        verbs = tuple(v for v in (_clean(str(v)) for v in vm.get("verbs") or []) if v)
        measures = tuple(w for w in (_clean(str(w)) for w in vm.get("words") or []) if w)
        synonyms.pop("", None)
        weights.pop("", None)
        off_topic = frozenset(c for c in (_clean(str(c)) for c in raw.get("off_topic") or []) if c)
        others = frozenset(c for c in (_clean(str(c)) for c in raw.get("other_words") or []) if c)
        # Looked for in rewritten questions, so spelled as the synonyms spell them ("补办" -> 补领).
        stages = frozenset(synonyms.get(c, c) for c in (_clean(str(c)) for c in raw.get("stages") or []) if c)
        return cls(synonyms, weights, cues, verbs, measures, off_topic, others, stages)


@lru_cache(maxsize=4)
def load_vocabulary(path: Path = VOCABULARY_FILE) -> Vocabulary:
    with path.open(encoding="utf-8") as f:
        return Vocabulary.from_mapping(yaml.safe_load(f) or {})


def _clean(text: str) -> str:
    return _KEEP.sub("", unicodedata.normalize("NFKC", text).lower())


def _alternation(words: list[str] | tuple[str, ...]) -> str:
    # Longest first: Python's alternation takes the first alternative that matches, so this
    # makes every scan leftmost-longest.
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


def _compile(words: list[str] | tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile(_alternation(words)) if words else None


# Fuzzy pinyin (模糊音), as input methods offer it: many speakers do not tell these apart.
_FUZZY_SOUNDS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ang", "an"), ("eng", "en"), ("ing", "in"))


@lru_cache(maxsize=8192)
def _readings(c: str) -> tuple[str, ...]:
    """Toneless, fuzzy pinyin readings of one character, the most common first: an input method
    offers every character with the same letters, whatever the tone, so "宅基底" is as likely a
    slip for 宅基地 as "低宝" for 低保."""
    raw = pinyin_dict.get(ord(c))
    if raw is None:
        return (c,)  # letters, digits, rare characters: only themselves
    out: list[str] = []
    for r in raw.split(","):
        plain = "".join(x for x in unicodedata.normalize("NFKD", r) if not unicodedata.combining(x))
        for a, b in _FUZZY_SOUNDS:
            plain = plain.replace(a, b)
        if plain not in out:
            out.append(plain)
    return tuple(out)


def _sound_key(span: str) -> tuple[str, ...]:
    # The common reading only, on both sides: the typist meant 给 as "gei", not the rare "ji", and
    # a catalog word's rare readings ("地" as "de") would only invite false mends ("公司的").
    return tuple(_readings(c)[0] for c in span)


SHORT_QUESTION = 6  # characters


class Speller:
    """Mends one mistyped character inside a word the catalog knows, by its sound.

    `words`: the catalog's names, aliases and keywords and the vocabulary's everyday words, as
    typed (cleaned, before synonyms). A two-character word is only replaced whole ("离昏" ->
    离婚); longer ones also by any three or four characters of them ("公基金" -> 公积金, part of
    住房公积金). `known` holds every bigram the catalog's text contains: a character that forms
    one with a neighbour is spelled as the catalog spells it and is never "corrected"; so is a
    character the caller marks as settled (the vocabulary's own words, "事业" that is no 失业)."""

    def __init__(
        self,
        words: Iterable[str],
        known: Container[str],
        light: Container[str] = (),
    ):
        self._known = known
        self._light_chars = light
        index: dict[tuple[str, ...], set[str]] = defaultdict(set)
        spans: set[str] = set()
        for w in {w for w in words if len(w) >= 2}:
            if len(w) == 2:
                spans.add(w)
            for n in (3, 4):
                spans.update(w[i : i + n] for i in range(len(w) - n + 1))
        for span in spans:
            index[_sound_key(span)].add(span)
        self._index = dict(index)

    def correct(self, text: str, settled: list[bool] | None = None) -> tuple[str, int]:
        """The text mended, and how many two-character words were mended: those are guesses
        ("水费" sounds like the catalog's 税费 too), so the matcher never trusts them fully.
        `settled`: characters known to be right already (function words, vocabulary words)."""
        if len(text) < 2:
            return text, 0
        known = self._known
        # Characters already spelled as in the catalog (part of a known bigram) stay as they are.
        settled = list(settled) if settled is not None else [False] * len(text)
        for i in range(len(text) - 1):
            if text[i : i + 2] in known:
                settled[i] = settled[i + 1] = True
        if all(settled):
            return text, 0
        out = list(text)
        short = 0
        # A two-character slip is mended only in a short question: in a longer one the other
        # words usually name the entry anyway, and "火车" or "卖饭" are words, not slips.
        sizes = (4, 3, 2) if len(text) <= SHORT_QUESTION else (4, 3)
        for n in sizes:  # longest first: the most context decides
            for i in range(len(out) - n + 1):
                span = "".join(out[i : i + n])
                if all(settled[i : i + n]):
                    continue
                if n == 2 and any(self._light(c) for c in span):
                    continue
                fix = self._fix(span, settled[i : i + n])
                if fix is not None:
                    out[i : i + n] = fix
                    settled[i : i + n] = [True] * n
                    short += n == 2
        return "".join(out), short

    def _light(self, c: str) -> bool:
        # "的", "给", "要": a two-character "word" made with one is no word at all.
        return c in self._light_chars

    def _fix(self, span: str, settled: list[bool]) -> str | None:
        targets = self._index.get(_sound_key(span), ())
        fixes = {
            t
            for t in targets
            if sum(a != b for a, b in zip(t, span, strict=True)) == 1
            and all(not s for a, b, s in zip(t, span, settled, strict=True) if a != b)
        }
        # Two words the slip could be: guessing would be worse than leaving it.
        return fixes.pop() if len(fixes) == 1 else None


@dataclass(frozen=True)
class Analysis:
    text: str  # normalised question
    weights: tuple[float, ...]  # one per character of `text`
    bundle_cue: bool  # asks for everything needed for one goal
    off_topic: bool = False  # asks about a law, a dispute, a price or a rate, not a procedure
    guessed: bool = False  # a two-character word was mended by its sound: a guess, not a reading
    # Per character: 0, or the number of the other word it is part of ("公租房" holds 租房 but
    # is not it); the matcher reads no catalog word inside one.
    foreign: tuple[int, ...] = ()
    stages: frozenset[str] = frozenset()  # stages of a procedure it asks for ("注销", "延续")

    @property
    def content_weight(self) -> float:
        return sum(self.weights)


class Normalizer:
    def __init__(self, vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary or load_vocabulary()
        v = self.vocabulary
        self._synonym_re = _compile(list(v.synonyms))
        self._weight_re = _compile(list(v.weights))
        self._filler_re = _compile([p for p, w in v.weights.items() if w == FILLER])
        self._cue_re = _compile(list(v.bundle_cues))
        self._off_topic_re = _compile(list(v.off_topic))
        self._stage_re = _compile(list(v.stages))
        self._other_re = _compile(list(v.other_words))
        # "开个体户" is 开 + 个体户, not 开个 + 体户: never drop a 个 that starts 个体.
        self._measure_re = (
            re.compile(f"({_alternation(v.verbs)})(?:{_alternation(v.measure_words)})(?!体)")
            if v.verbs and v.measure_words
            else None
        )

    @staticmethod
    def clean(text: str) -> str:
        """NFKC, lower case, no punctuation or spaces: text as typed, before any rewriting."""
        return _clean(text)

    def normalize(self, text: str) -> str:
        """NFKC, lower case, no punctuation or spaces, everyday words in their canonical form."""
        return self._rewrite(_clean(text))

    def _rewrite(self, out: str) -> str:
        if self._synonym_re is not None:
            syn = self.vocabulary.synonyms
            out = self._synonym_re.sub(lambda m: syn[m.group(0)], out)
        if self._measure_re is not None:
            out = self._measure_re.sub(r"\1", out)
        return out

    def _spelled(self, text: str) -> list[bool]:
        """Characters of the vocabulary's own words (fillers, light words, everyday variants):
        spelled right by definition, never mended ("需要" is no slip for 需药). A single light
        character is left to the speller, which mends it only inside a longer word ("新农和")."""
        mask = [False] * len(text)
        for rx in (self._weight_re, self._synonym_re, self._other_re):
            if rx is not None:
                for m in rx.finditer(text):
                    if m.end() - m.start() > 1:
                        mask[m.start() : m.end()] = [True] * (m.end() - m.start())
        return mask

    def typed(self, text: str) -> str:
        """Catalog text as people type it (cleaned, no question frames, no synonyms yet): the
        words a `Speller` mends towards."""
        out = _clean(text)
        return self._filler_re.sub("", out) if self._filler_re is not None else out

    def content(self, text: str) -> str:
        """Normalised catalog text without question frames: alias "公积金怎么取" -> "住房公积金取"."""
        out = self.normalize(text)
        return self._filler_re.sub("", out) if self._filler_re is not None else out

    def analyze(
        self, question: str, known: Container[str] = frozenset(), speller: Speller | None = None
    ) -> Analysis:
        """Weigh each character. `known`: catalog bigrams; a light single character inside one
        of them is part of a catalog word ("份" in "身份证", "有" in "有限公司") and stays content."""
        text, guessed = _clean(question), 0
        if speller is not None:
            text, guessed = speller.correct(text, self._spelled(text))
        text = self._rewrite(text)
        weights = [CONTENT] * len(text)
        if self._weight_re is not None:
            for m in self._weight_re.finditer(text):
                i = m.start()
                if m.end() - i == 1 and (text[max(i - 1, 0) : i + 1] in known or text[i : i + 2] in known):
                    continue
                w = self.vocabulary.weights[m.group(0)]
                for j in range(i, m.end()):
                    weights[j] = w
        cue = self._cue_re is not None and self._cue_re.search(text) is not None
        off = self._off_topic_re is not None and self._off_topic_re.search(text) is not None
        foreign = [0] * len(text)
        if self._other_re is not None:
            for n, m in enumerate(self._other_re.finditer(text), start=1):
                word = m.group(0)
                # A catalog that knows the word itself (a county's 公租房 item) reads it as usual.
                if not all(word[k : k + 2] in known for k in range(len(word) - 1)):
                    foreign[m.start() : m.end()] = [n] * len(word)
        stages = (
            frozenset(m.group(0) for m in self._stage_re.finditer(text)) if self._stage_re else frozenset()
        )
        return Analysis(text, tuple(weights), cue, off, guessed > 0, tuple(foreign), stages)

    def words(self) -> list[str]:
        """Everyday words of the vocabulary as people type them, for a catalog's `Speller`."""
        return [w for w in self.vocabulary.synonyms if len(w) >= 2]


@lru_cache(maxsize=1)
def default_normalizer() -> Normalizer:
    return Normalizer()
