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
DEEP_CANDIDATES = 12  # material text and typo alignment only for the best-ranked few
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
        a = self.norm.analyze(question[: MAX_QUESTION_CHARS * 2], self._known)
        if a.content_weight == 0 or limit <= 0:
            return MatchResult(question, False, [])
        q = _Query.of(a)
        bm25 = self._retrieve(q)
        nonzero = int(np.count_nonzero(bm25))
        if nonzero == 0:
            return MatchResult(question, False, [])
        k = min(CANDIDATES, nonzero)
        top = np.argpartition(-bm25, k - 1)[:k] if k < len(bm25) else np.arange(len(bm25))
        top = top[np.argsort(-bm25[top], kind="stable")]
        top = top[bm25[top] > 0]
        best_bm25 = float(bm25[top[0]])

        scored: list[tuple[float, float, int]] = []
        for rank, idx in enumerate(top.tolist()):
            e = self._entries[idx]
            coverage, recall = self._explain(e, q, deep=rank < DEEP_CANDIDATES)
            score = W_COVERAGE * coverage + W_RECALL * recall + W_BM25 * float(bm25[idx]) / best_bm25
            if e.kind == "bundle":
                score += BUNDLE_CUE_BONUS if q.bundle_cue else -BUNDLE_NO_CUE_PENALTY
            scored.append((score, coverage, idx))
        scored.sort(key=lambda s: -s[0])
        best_score, best_coverage, _ = scored[0]
        confident = best_coverage >= CONFIDENT_COVERAGE and best_score >= CONFIDENT_SCORE
        matches = [
            Match(self._entries[i].name, self._entries[i].kind, round(min(s, 1.0), 4))
            for s, _, i in scored[:limit]
        ]
        return MatchResult(question, confident, matches)

    def _retrieve(self, q: _Query) -> np.ndarray:
        scores = np.zeros(len(self._entries), dtype=np.float32)
        for term, weight in q.terms.items():
            posting = self._postings.get(term)
            if posting is not None:
                ids, vals = posting
                scores[ids] += vals * np.float32(weight)
        return scores

    def _explain(self, e: _Entry, q: _Query, *, deep: bool) -> tuple[float, float]:
        """(share of the question's weight the entry explains, best share of one label found).

        `deep` (the best-ranked few only): also material text and typo-tolerant alignment."""
        chars = e.chars
        cover = [COVER_CHAR if c in chars else 0.0 for c in q.text]
        strong, kw, weak = e.strong_bigrams, e.keyword_bigrams, e.weak_bigrams
        materials = e.material_bigrams if deep else ()
        for i, bg in q.pairs:
            if bg in strong:
                credit = COVER_LABEL
            elif bg in kw:
                credit = COVER_KEYWORD
            elif bg in weak:
                credit = COVER_WEAK
            elif any(bg in m for m in materials):
                credit = COVER_MATERIAL
            else:
                continue
            if cover[i] < credit:
                cover[i] = credit
            if cover[i + 1] < credit:
                cover[i + 1] = credit
        qb = q.bigrams
        recall = max((len(bgs & qb) / len(bgs) for bgs in e.label_bigrams if bgs), default=0.0)
        if e.keyword_sets:
            recall = max(recall, KEYWORD_RECALL * max(len(bgs & qb) / len(bgs) for bgs in e.keyword_sets))
        if deep and recall < 1.0:
            # Typos: align names/aliases against the question's content only, so a filler such
            # as 手续 can never pass for the 延续 of a different item's name.
            for label in e.labels:
                if not FUZZY_MIN_LABEL <= len(label) <= len(q.content):
                    continue
                # At most one mistyped character: a typo, not a different word ("变更注册资本").
                cutoff = 100 * (1 - 1 / len(label)) - 0.01
                al = fuzz.partial_ratio_alignment(label, q.content, processor=None, score_cutoff=cutoff)
                if al is None:
                    continue
                credit = FUZZY_CREDIT * al.score / 100
                recall = max(recall, credit)
                for i in q.content_pos[al.dest_start : al.dest_end]:
                    cover[i] = max(cover[i], credit)
        coverage = sum(c * w for c, w in zip(cover, q.weights, strict=True)) / q.total
        return coverage, recall


@dataclass(frozen=True)
class _Query:
    """A question prepared once for scoring against every candidate."""

    text: str
    weights: tuple[float, ...]
    total: float
    bundle_cue: bool
    pairs: tuple[tuple[int, str], ...]  # bigrams with both characters carrying weight
    bigrams: frozenset[str]
    content: str  # the question without fillers, for typo alignment
    content_pos: tuple[int, ...]  # position in `text` of each character of `content`
    terms: dict[str, float]  # retrieval terms and their weights

    @classmethod
    def of(cls, a: Analysis) -> _Query:
        text, w = a.text[:MAX_QUESTION_CHARS], a.weights[:MAX_QUESTION_CHARS]
        pairs = tuple((i, text[i : i + 2]) for i in range(len(text) - 1) if w[i] > 0 and w[i + 1] > 0)
        pos = tuple(i for i, x in enumerate(w) if x > 0)
        return cls(
            text=text,
            weights=w,
            total=sum(w),
            bundle_cue=a.bundle_cue,
            pairs=pairs,
            bigrams=frozenset(bg for _, bg in pairs),
            content="".join(text[i] for i in pos),
            content_pos=pos,
            terms=_query_terms(text, w),
        )


def _query_terms(t: str, w: tuple[float, ...]) -> dict[str, float]:
    """Unique query terms with their weight; filler characters neither form nor join terms."""
    terms: dict[str, float] = {}
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
    term_ids: dict[str, int] = {}
    col_term: list[int] = []
    col_doc: list[int] = []
    col_tf: list[float] = []
    col_strong: list[bool] = []
    for d_id, doc in enumerate(docs):
        acc: dict[str, float] = defaultdict(float)
        strong: set[str] = set()
        for f, (weight, b) in FIELDS.items():
            norm = 1 - b + b * lengths[f][d_id] / avg[f]
            tfs = _terms_of(doc[f])
            for term, tf in tfs.items():
                acc[term] += weight * tf / norm
            if f in STRONG_FIELDS:
                strong.update(tfs)
        for term, pseudo in acc.items():
            col_term.append(term_ids.setdefault(term, len(term_ids)))
            col_doc.append(d_id)
            col_tf.append(pseudo)
            col_strong.append(term in strong)
    t = np.asarray(col_term, dtype=np.int64)
    tf_arr = np.asarray(col_tf, dtype=np.float64)
    df = np.bincount(t, minlength=len(term_ids))
    df_strong = np.bincount(t[np.asarray(col_strong, dtype=bool)], minlength=len(term_ids))
    # Rarity among names and keywords: "身份证" printed in thousands of material lists must
    # not make the 身份证 item's own name a common word.
    d = np.where(df_strong > 0, df_strong, df)
    idf = np.log(1 + (n - d + 0.5) / (d + 0.5))
    vals = (idf[t] * tf_arr * (K1 + 1) / (tf_arr + K1)).astype(np.float32)
    order = np.argsort(t, kind="stable")
    docs_sorted = np.asarray(col_doc, dtype=np.int32)[order]
    vals_sorted = vals[order]
    ends = np.cumsum(df)
    # Slices are views into two arrays: one allocation instead of one per term.
    return {
        term: (docs_sorted[ends[i] - df[i] : ends[i]], vals_sorted[ends[i] - df[i] : ends[i]])
        for term, i in term_ids.items()
    }
