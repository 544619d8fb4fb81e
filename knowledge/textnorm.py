"""Chinese text normalisation for the matcher: one spelling for catalog text and questions.

The vocabulary lives in knowledge/synonyms.yaml so a county can extend it without code.
`normalize()` is applied to both sides; `analyze()` additionally weighs each character of a
question (filler 0, light 0.3, content 1) so the matcher can tell how much of the question an
entry actually explains.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

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
        return cls(synonyms, weights, cues, verbs, measures)


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


@dataclass(frozen=True)
class Analysis:
    text: str  # normalised question
    weights: tuple[float, ...]  # one per character of `text`
    bundle_cue: bool  # asks for everything needed for one goal

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
        # "开个体户" is 开 + 个体户, not 开个 + 体户: never drop a 个 that starts 个体.
        self._measure_re = (
            re.compile(f"({_alternation(v.verbs)})(?:{_alternation(v.measure_words)})(?!体)")
            if v.verbs and v.measure_words
            else None
        )

    def normalize(self, text: str) -> str:
        """NFKC, lower case, no punctuation or spaces, everyday words in their canonical form."""
        out = _clean(text)
        if self._synonym_re is not None:
            syn = self.vocabulary.synonyms
            out = self._synonym_re.sub(lambda m: syn[m.group(0)], out)
        if self._measure_re is not None:
            out = self._measure_re.sub(r"\1", out)
        return out

    def content(self, text: str) -> str:
        """Normalised catalog text without question frames: alias "公积金怎么取" -> "住房公积金取"."""
        out = self.normalize(text)
        return self._filler_re.sub("", out) if self._filler_re is not None else out

    def analyze(self, question: str, known: Container[str] = frozenset()) -> Analysis:
        """Weigh each character. `known`: catalog bigrams; a light single character inside one
        of them is part of a catalog word ("份" in "身份证", "有" in "有限公司") and stays content."""
        text = self.normalize(question)
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
        return Analysis(text, tuple(weights), cue)


@lru_cache(maxsize=1)
def default_normalizer() -> Normalizer:
    return Normalizer()
