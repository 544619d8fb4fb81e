"""Question -> ranked catalog entries, with an honest `confident` flag.

INTERFACE (fixed; other modules depend on it): `Matcher(catalog)`, `Matcher.search(question, limit)`
returning `MatchResult`.

How it ranks, in two stages:
1. Retrieval: BM25F over character unigrams and bigrams of each entry's fields (name and
   aliases weigh most, then keywords, then department and material text), summed with numpy
   over per-term posting arrays, so the cost grows with the question, not the catalog.
2. Re-ranking of the best few dozen: how much of the question the entry explains (coverage,
   typo-tolerant through rapidfuzz alignment of names/aliases), how much of one of the entry's
   names the question contains, the BM25 score, and a preference for 一件事 bundles when the
   question asks for everything needed for one goal ("开饭店要办哪些证").

`confident` is decided on coverage, not on any single shared word: "附近有什么好吃的饭馆" shares
"饭馆" with the restaurant entries but leaves most of the question unexplained.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rapidfuzz import fuzz

from knowledge.schema import Bundle, Catalog, Item
from knowledge.textnorm import Analysis, Normalizer, default_normalizer

Kind = Literal["item", "bundle"]

# BM25F: per-field weight and length normalisation (b). Names and aliases are short and
# decisive; material text is long and shared by many items, so it only breaks ties.
FIELDS: dict[str, tuple[float, float]] = {
    "label": (3.0, 0.3),
    "keyword": (1.5, 0.3),
    "member": (0.8, 0.5),  # a bundle's member names
    "department": (0.5, 0.5),
    "material": (0.2, 0.75),
}
STRONG_FIELDS = frozenset({"label", "keyword", "member", "department"})
K1 = 1.2
UNIGRAM_QUERY_WEIGHT = 0.3  # single characters are ambiguous in Chinese; bigrams carry meaning

# Coverage credit per question character, by what explains it.
COVER_LABEL = 1.0
COVER_KEYWORD = 0.85
COVER_WEAK = 0.6  # department name, a bundle's member names
COVER_MATERIAL = 0.5  # "领结婚证要户口本吗": the 户口簿 is explained by the item's materials
COVER_CHAR = 0.35  # the character alone occurs in a name/alias/keyword
FUZZY_MIN_LABEL = 4  # shorter labels: one wrong character is a different word ("天然气"/"天天气")
FUZZY_CREDIT = 0.9
KEYWORD_RECALL = 0.5  # a whole keyword in the question says less than a whole name or alias

CANDIDATES = 30
FUZZY_CANDIDATES = 12
MAX_QUESTION_CHARS = 200

W_COVERAGE, W_RECALL, W_BM25 = 0.45, 0.35, 0.2
BUNDLE_CUE_BONUS = 0.12
# Without such wording a bundle must explain clearly more than its member item to win:
# "公司怎么领发票" is the 发票 item, even though 企业开办一件事 also mentions 公司.
BUNDLE_NO_CUE_PENALTY = 0.06
CONFIDENT_COVERAGE = 0.6
CONFIDENT_SCORE = 0.5


@dataclass(frozen=True)
class Match:
    name: str
    kind: Kind
    score: float


@dataclass(frozen=True)
class MatchResult:
    question: str
    confident: bool
    matches: list[Match]

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


def _bigrams(s: str) -> set[str]:
    # Interned: ten thousand entries share a few tens of thousands of distinct bigrams.
    return {sys.intern(s[i : i + 2]) for i in range(len(s) - 1)}


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: Kind
    labels: tuple[str, ...]  # normalised name and aliases
    label_bigrams: tuple[frozenset[str], ...]  # per label, for recall
    keyword_sets: tuple[frozenset[str], ...]  # per keyword, for recall
    strong_bigrams: frozenset[str]  # name + aliases
    keyword_bigrams: frozenset[str]
    weak_bigrams: frozenset[str]
    material_bigrams: tuple[frozenset[str], ...]  # one pooled set per material name
    chars: frozenset[str]  # characters of name, aliases and keywords


class Matcher:
    def __init__(self, catalog: Catalog, normalizer: Normalizer | None = None):
        self.catalog = catalog
        self.norm = normalizer or default_normalizer()
        self._entries: list[_Entry] = []
        self._set_pool: dict[frozenset[str], frozenset[str]] = {}
        field_texts: list[dict[str, list[str]]] = []
        for it in catalog.items:
            field_texts.append(self._add_item(it))
        for b in catalog.bundles:
            field_texts.append(self._add_bundle(b))
        self._postings = _build_postings(field_texts)
        # Words the catalog knows; a question's light characters inside them stay content.
        self._known = frozenset().union(*(e.strong_bigrams | e.keyword_bigrams for e in self._entries))

    # -- index -----------------------------------------------------------------------------

    def _set(self, items: set[str]) -> frozenset[str]:
        # Near-duplicate entries share whole sets (same department, same words): keep one copy.
        fs = frozenset(items)
        return self._set_pool.setdefault(fs, fs)

    def _add(self, name: str, kind: Kind, fields: dict[str, list[str]]) -> dict[str, list[str]]:
        n = self.norm.content
        fields = {f: [t for s in texts if (t := n(s))] for f, texts in fields.items()}
        labels = tuple(dict.fromkeys(fields["label"]))
        keywords = fields["keyword"]
        self._entries.append(
            _Entry(
                name=name,
                kind=kind,
                labels=labels,
                label_bigrams=tuple(self._set(_bigrams(s)) for s in labels),
                keyword_sets=tuple(self._set(_bigrams(s)) for s in keywords if len(s) > 1),
                strong_bigrams=self._set(set().union(*(_bigrams(s) for s in labels))),
                keyword_bigrams=self._set(set().union(*(_bigrams(s) for s in keywords))),
                weak_bigrams=self._set(
                    set().union(*(_bigrams(s) for s in fields["department"] + fields["member"]))
                ),
                material_bigrams=tuple(dict.fromkeys(self._set(_bigrams(s)) for s in fields["material"])),
                chars=self._set({sys.intern(c) for c in "".join(labels) + "".join(keywords)}),
            )
        )
        return fields

    def _add_item(self, it: Item) -> dict[str, list[str]]:
        return self._add(
            it.name,
            "item",
            {
                "label": [it.name, *it.aliases],
                "keyword": list(it.keywords),
                "member": [],
                "department": [it.department],
                "material": [m.name for m in it.materials],
            },
        )

    def _add_bundle(self, b: Bundle) -> dict[str, list[str]]:
        members = self.catalog.members(b)
        return self._add(
            b.name,
            "bundle",
            {
                "label": [b.name, *b.aliases],
                "keyword": list(b.keywords),
                "member": [m.name for m in members],
                "department": [b.lead_department],
                "material": [],
            },
        )

    # -- search ----------------------------------------------------------------------------

    def search(self, question: str, limit: int = 5) -> MatchResult:
        q = self.norm.analyze(question[: MAX_QUESTION_CHARS * 2], self._known)
        if len(q.text) > MAX_QUESTION_CHARS:
            q = Analysis(q.text[:MAX_QUESTION_CHARS], q.weights[:MAX_QUESTION_CHARS], q.bundle_cue)
        if q.content_weight == 0 or limit <= 0:
            return MatchResult(question, False, [])
        bm25 = self._retrieve(q)
        nonzero = int(np.count_nonzero(bm25))
        if nonzero == 0:
            return MatchResult(question, False, [])
        k = min(CANDIDATES, nonzero)
        top = np.argpartition(-bm25, k - 1)[:k] if k < len(bm25) else np.arange(len(bm25))
        top = top[np.argsort(-bm25[top], kind="stable")]
        top = top[bm25[top] > 0]
        best_bm25 = float(bm25[top[0]])
        qbigrams = _query_bigrams(q)

        scored: list[tuple[float, float, int]] = []
        for rank, idx in enumerate(top):
            e = self._entries[int(idx)]
            coverage, recall = self._explain(e, q, qbigrams, fuzzy=rank < FUZZY_CANDIDATES)
            score = W_COVERAGE * coverage + W_RECALL * recall + W_BM25 * float(bm25[idx]) / best_bm25
            if e.kind == "bundle":
                score += BUNDLE_CUE_BONUS if q.bundle_cue else -BUNDLE_NO_CUE_PENALTY
            scored.append((score, coverage, int(idx)))
        scored.sort(key=lambda s: -s[0])
        best_score, best_coverage, _ = scored[0]
        confident = best_coverage >= CONFIDENT_COVERAGE and best_score >= CONFIDENT_SCORE
        matches = [
            Match(self._entries[i].name, self._entries[i].kind, round(min(s, 1.0), 4))
            for s, _, i in scored[:limit]
        ]
        return MatchResult(question, confident, matches)

    def _retrieve(self, q: Analysis) -> np.ndarray:
        scores = np.zeros(len(self._entries), dtype=np.float32)
        for term, weight in _query_terms(q).items():
            posting = self._postings.get(term)
            if posting is not None:
                ids, vals = posting
                scores[ids] += vals * np.float32(weight)
        return scores

    def _explain(self, e: _Entry, q: Analysis, qbigrams: set[str], *, fuzzy: bool) -> tuple[float, float]:
        """(share of the question's weight the entry explains, best share of one label found)."""
        text, weights = q.text, q.weights
        cover = [COVER_CHAR if c in e.chars else 0.0 for c in text]
        for i in range(len(text) - 1):
            bg = text[i : i + 2]
            if bg in e.strong_bigrams:
                credit = COVER_LABEL
            elif bg in e.keyword_bigrams:
                credit = COVER_KEYWORD
            elif bg in e.weak_bigrams:
                credit = COVER_WEAK
            elif any(bg in m for m in e.material_bigrams):
                credit = COVER_MATERIAL
            else:
                continue
            cover[i] = max(cover[i], credit)
            cover[i + 1] = max(cover[i + 1], credit)
        recall = max(
            max((len(bgs & qbigrams) / len(bgs) for bgs in e.label_bigrams if bgs), default=0.0),
            KEYWORD_RECALL * max((len(bgs & qbigrams) / len(bgs) for bgs in e.keyword_sets), default=0.0),
        )
        if fuzzy and recall < 1.0:
            # Typos: align names/aliases against the question's content only, so a filler such
            # as 手续 can never pass for the 延续 of a different item's name.
            pos = [i for i, w in enumerate(weights) if w > 0]
            content = "".join(text[i] for i in pos)
            for label in e.labels:
                if not FUZZY_MIN_LABEL <= len(label) <= len(content):
                    continue
                # At most one mistyped character: a typo, not a different word ("变更注册资本").
                cutoff = 100 * (1 - 1 / len(label)) - 0.01
                al = fuzz.partial_ratio_alignment(label, content, processor=None, score_cutoff=cutoff)
                if al is None:
                    continue
                credit = FUZZY_CREDIT * al.score / 100
                recall = max(recall, credit)
                for i in pos[al.dest_start : al.dest_end]:
                    cover[i] = max(cover[i], credit)
        total = sum(weights)
        coverage = sum(c * w for c, w in zip(cover, weights, strict=True)) / total
        return coverage, recall


def _query_bigrams(q: Analysis) -> set[str]:
    t, w = q.text, q.weights
    return {t[i : i + 2] for i in range(len(t) - 1) if w[i] > 0 and w[i + 1] > 0}


def _query_terms(q: Analysis) -> dict[str, float]:
    """Unique query terms with their weight; filler characters neither form nor join terms."""
    terms: dict[str, float] = {}
    t, w = q.text, q.weights
    for i, c in enumerate(t):
        if w[i] > 0:
            terms[c] = max(terms.get(c, 0.0), UNIGRAM_QUERY_WEIGHT * w[i])
        if i + 1 < len(t) and w[i] > 0 and w[i + 1] > 0:
            bg = t[i : i + 2]
            terms[bg] = max(terms.get(bg, 0.0), min(w[i], w[i + 1]))
    return terms


def _terms_of(texts: Iterable[str]) -> dict[str, int]:
    tf: dict[str, int] = defaultdict(int)
    for s in texts:
        for c in s:
            tf[c] += 1
        for i in range(len(s) - 1):
            tf[s[i : i + 2]] += 1
    return tf


def _build_postings(docs: list[dict[str, list[str]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """term -> (entry ids, BM25F contribution), precomputed so a query is a few array adds."""
    n = len(docs)
    if n == 0:
        return {}
    lengths = {f: [sum(len(s) for s in d[f]) for d in docs] for f in FIELDS}
    avg = {f: (sum(v) / n) or 1.0 for f, v in lengths.items()}
    pseudo_tf: list[dict[str, float]] = []
    df: dict[str, int] = defaultdict(int)
    df_strong: dict[str, int] = defaultdict(int)
    for d_id, doc in enumerate(docs):
        acc: dict[str, float] = defaultdict(float)
        strong: set[str] = set()
        for f, (weight, b) in FIELDS.items():
            norm = 1 - b + b * lengths[f][d_id] / avg[f]
            for term, tf in _terms_of(doc[f]).items():
                acc[term] += weight * tf / norm
                if f in STRONG_FIELDS:
                    strong.add(term)
        for term in acc:
            df[term] += 1
        for term in strong:
            df_strong[term] += 1
        pseudo_tf.append(acc)
    ids: dict[str, list[int]] = defaultdict(list)
    vals: dict[str, list[float]] = defaultdict(list)
    for d_id, acc in enumerate(pseudo_tf):
        for term, tf in acc.items():
            # Rarity among names and keywords: "身份证" printed in thousands of material lists
            # must not make the 身份证 item's own name a common word.
            d = df_strong.get(term) or df[term]
            idf = math.log(1 + (n - d + 0.5) / (d + 0.5))
            ids[term].append(d_id)
            vals[term].append(idf * tf * (K1 + 1) / (tf + K1))
    return {t: (np.asarray(ids[t], dtype=np.int32), np.asarray(vals[t], dtype=np.float32)) for t in ids}
