"""Question -> ranked catalog entries, with an honest `confident` flag.

INTERFACE (fixed; other modules depend on it): `Matcher(catalog)`, `Matcher.search(question, limit)`
returning `MatchResult`.

How it ranks, in two stages:
1. Retrieval: BM25F over character unigrams and bigrams of each entry's fields (name and
   aliases weigh most, then keywords, then department and material text), summed with numpy
   over per-term posting arrays, so the cost grows with the question, not the catalog.
2. Re-ranking of the best dozen: how much of the question the entry explains (coverage,
   typo-tolerant through rapidfuzz alignment of names/aliases), how much of one of the entry's
   names the question contains, the BM25 score, and a preference for 一件事 bundles when the
   question asks for everything needed for one goal ("开饭店要办哪些证").

Words split by other words ("砍自家山上的树") still meet the catalog's "砍树" through skip pairs:
two content characters with only light words, or one other content character, between them.
A bundle explains what its member items explain when the question names two of them or asks for
everything at once ("营业执照和食品许可证能一起办吗").

Question text is first mended where a pinyin input method slipped inside a catalog word
("公基金", "宅基底", "结昏证"; textnorm.Speller), and only a part of a name that the question
contradicts ("农业补贴" against the alias 失业补贴) earns nothing.

`confident` is a calibrated rule (bench/calibrate_matcher.py fits it on the question sets): a
logistic model of the best score, the share of the question's content the entry explains (a name
or alias found whole counts fully, part of one or a keyword less), the share it explains that
the runner-up does not, and unexplained characters glued to an explained word ("公租房" is not
租房). "附近有什么好吃的饭馆" shares "饭馆" with the restaurant entries but leaves most of the
question unexplained. Three rules come first: a question about a law, a price, a rate or one's
own record ("离婚了孩子抚养权归谁", "公积金余额查询") is never confident unless it names an entry
outright, nor is one whose only match is a two-character sound-alike guess ("低宝"), nor one
asking for a stage of a procedure the best entry does not offer ("食品许可证注销", "结婚证补办").
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rapidfuzz import fuzz

from knowledge.schema import Bundle, Catalog, Item
from knowledge.textnorm import CONTENT, Analysis, Normalizer, Speller, default_normalizer

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
FUZZY_MIN_LABEL = 5  # shorter labels: one wrong character is a different word ("农业补贴"/"失业补贴");
# slips in short words are mended by sound instead (textnorm.Speller)
FUZZY_CREDIT = 0.9
KEYWORD_RECALL = 0.5  # a whole keyword in the question says less than a whole name or alias

# Re-ranked by BM25 rank (plus the bundles of the best). 20 scored the same on every question set
# with 52 and 1,000 entries and slightly worse with 10,000 (more near-duplicates to be fooled by),
# for 10 % more CPU per question.
CANDIDATES = 12
DEEP_CANDIDATES = 12  # material text and typo alignment only for the best-ranked few
MAX_QUESTION_CHARS = 200
# Distinct questions whose answers Matcher.search remembers (a few MB at most).
MEMO_SIZE = 4096

W_COVERAGE, W_RECALL, W_BM25 = 0.45, 0.35, 0.2
BUNDLE_CUE_BONUS = 0.12
# Without such wording a bundle must explain clearly more than its member item to win:
# "公司怎么领发票" is the 发票 item, even though 企业开办一件事 also mentions 公司.
BUNDLE_NO_CUE_PENALTY = 0.06
BUNDLE_MEMBER_CREDIT = 0.9  # a bundle explains what its named members explain, a little less
# A member is named by one of its names/aliases found whole, this long at least ("食品许可证",
# "营业执照"; not "公司" in "新公司怎么领发票", which asks for the 发票 item).
MEMBER_NAMED_CHARS = 3

# Skip pairs: "砍自家山上的树" still contains the catalog's 砍树.
SKIP_MAX_DISTANCE = 6
SKIP_QUERY_WEIGHT = 0.5
SKIP_CREDIT = 0.8

# `confident`: logistic model fitted by bench/calibrate_matcher.py on dev + held-out + blind
# questions (see its report for the reliability table). Features are listed in `_features`.
CONFIDENCE_WEIGHTS: dict[str, float] = {
    "bias": -8.391,
    "score": 9.471,
    "coverage": 7.924,
    "distinct": 3.401,
    "attached": -1.709,
}
# The lowest threshold that keeps out-of-scope rejection at 0.99 on every fitted set: the bar is
# 0.90, and a threshold fitted on easier sets lets through more of a harder set's near misses
# (fitted without the blind set, the rule still rejects 0.98 of its out-of-scope questions).
CONFIDENCE_THRESHOLD = 0.846
# An entry that does not offer a stage the question asks for ranks lower: "驾驶证注销" is the 注销
# item where a catalog has one (and, per the rule in `_confident`, never a confident 换证 answer).
STAGE_PENALTY = 0.3
NAMED_OUTRIGHT = 4  # characters of a name/alias found whole: "食品经营许可证", not "离婚"


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
    members: tuple[int, ...] = ()  # a bundle's member items (entry indices)


class Matcher:
    def __init__(self, catalog: Catalog, normalizer: Normalizer | None = None, memo: int = MEMO_SIZE):
        self.catalog = catalog
        self.norm = normalizer or default_normalizer()
        self._memo: OrderedDict[tuple[str, int], MatchResult] = OrderedDict()
        self._memo_size = memo  # 0: match every question afresh (benchmarks of the matching itself)
        self._entries: list[_Entry] = []
        self._set_pool: dict[frozenset[str], frozenset[str]] = {}
        field_texts: list[dict[str, list[str]]] = []
        typed: list[str] = []  # names, aliases and keywords as people type them, for the speller
        for it in catalog.items:
            field_texts.append(self._add_item(it))
            typed += [it.name, *it.aliases, *it.keywords]
        index = {it.name: n for n, it in enumerate(catalog.items)}
        for b in catalog.bundles:
            field_texts.append(self._add_bundle(b, index))
            typed += [b.name, *b.aliases, *b.keywords]
        self._postings = _build_postings(field_texts)
        self._bundles_of: dict[int, list[int]] = defaultdict(list)  # member item -> its bundles
        for n, e in enumerate(self._entries):
            for m in e.members:
                self._bundles_of[m].append(n)
        # Words the catalog knows; a question's light characters inside them stay content.
        self._known = frozenset().union(*(e.strong_bigrams | e.keyword_bigrams for e in self._entries))
        words = {w for w in (self.norm.typed(t) for t in [*typed, *self.norm.words()]) if w}
        spelled = set(self._postings).union(*(_bigrams(w) for w in words))
        v = self.norm.vocabulary
        light = {w for w, x in v.weights.items() if len(w) == 1}
        self._speller = Speller(words, spelled, light)

    # -- index -----------------------------------------------------------------------------

    def _set(self, items: set[str]) -> frozenset[str]:
        # Near-duplicate entries share whole sets (same department, same words): keep one copy.
        fs = frozenset(items)
        return self._set_pool.setdefault(fs, fs)

    def _add(
        self, name: str, kind: Kind, fields: dict[str, list[str]], members: tuple[int, ...] = ()
    ) -> dict[str, list[str]]:
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
                members=members,
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

    def _add_bundle(self, b: Bundle, index: dict[str, int]) -> dict[str, list[str]]:
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
            tuple(index[m.name] for m in members if m.name in index),
        )

    # -- search ----------------------------------------------------------------------------

    def search(self, question: str, limit: int = 5) -> MatchResult:
        """Answers are remembered per exact question (bounded, oldest first out): after a policy
        announcement many people send the same few questions, and matching was the largest
        single cost of answering one (bench/bench_load.py). A reloaded catalog gets a new Matcher,
        so nothing stale is remembered."""
        key = (question, limit)
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit
        result = self.explain(question, limit).result
        if self._memo_size > 0:
            self._memo[key] = result
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return result

    def explain(self, question: str, limit: int = 5) -> Ranking:
        """`search` with the evidence behind `confident` (for calibration and debugging)."""
        a = self.norm.analyze(question[: MAX_QUESTION_CHARS * 2], self._known, self._speller)
        if a.content_weight == 0 or limit <= 0:
            return Ranking(MatchResult(question, False, []), {})
        q = _Query.of(a)
        bm25 = self._retrieve(q)
        nonzero = int(np.count_nonzero(bm25))
        if nonzero == 0:
            return Ranking(MatchResult(question, False, []), {})
        k = min(CANDIDATES, nonzero)
        top = np.argpartition(-bm25, k - 1)[:k] if k < len(bm25) else np.arange(len(bm25))
        top = top[np.argsort(-bm25[top], kind="stable")]
        top = top[bm25[top] > 0]
        best_bm25 = float(bm25[top[0]])
        ranked = top.tolist()
        # A bundle whose members lead is a candidate too, however its own words score: a
        # question may name two of its permits and nothing of the bundle itself.
        seen = set(ranked)
        for idx in ranked[:DEEP_CANDIDATES]:
            for b in self._bundles_of.get(idx, ()):
                if b not in seen:
                    seen.add(b)
                    ranked.append(b)

        explained: dict[int, _Explanation] = {}

        def explain(idx: int, deep: bool) -> _Explanation:
            if idx not in explained:
                explained[idx] = self._explain(self._entries[idx], q, deep=deep)
            return explained[idx]

        scored: list[tuple[float, int, _Explanation]] = []
        for rank, idx in enumerate(ranked):
            e = self._entries[idx]
            x = explain(idx, rank < DEEP_CANDIDATES)
            bundle_wanted = q.bundle_cue
            retrieval = float(bm25[idx])
            if e.kind == "bundle":
                x, named = self._with_members(x, [explain(m, True) for m in e.members], q)
                bundle_wanted = bundle_wanted or named >= 2
                if bundle_wanted and e.members:
                    best_member = max(float(bm25[m]) for m in e.members)
                    retrieval = max(retrieval, BUNDLE_MEMBER_CREDIT * best_member)
            score = W_COVERAGE * x.coverage + W_RECALL * x.recall + W_BM25 * retrieval / best_bm25
            if e.kind == "bundle":
                score += BUNDLE_CUE_BONUS if bundle_wanted else -BUNDLE_NO_CUE_PENALTY
            if q.stages and not _offers_stages(e, q.stages):
                score -= STAGE_PENALTY
            scored.append((score, idx, x))
        scored.sort(key=lambda s: -s[0])
        features = _features(scored, q)
        features["unmet_stage"] = float(not _offers_stages(self._entries[scored[0][1]], q.stages))
        confident = _confident(features, q, scored[0][2])
        matches = [
            Match(self._entries[i].name, self._entries[i].kind, round(min(s, 1.0), 4))
            for s, i, _ in scored[:limit]
        ]
        return Ranking(MatchResult(question, confident, matches), features)

    def _retrieve(self, q: _Query) -> np.ndarray:
        scores = np.zeros(len(self._entries), dtype=np.float32)
        for term, weight in q.terms.items():
            posting = self._postings.get(term)
            if posting is not None:
                ids, vals = posting
                scores[ids] += vals * np.float32(weight)
        return scores

    def _explain(self, e: _Entry, q: _Query, *, deep: bool) -> _Explanation:
        """How much of the question the entry explains, and by what.

        `deep` (the best-ranked few only): also material text and typo-tolerant alignment."""
        chars = e.chars
        cover = [COVER_CHAR if c in chars else 0.0 for c in q.text]
        qb = q.bigrams
        # A name or alias found whole names the entry; part of one ("租房" of 租房提取公积金, in
        # "公租房") is no more than a keyword.
        recall, full = 0.0, 0
        named: set[str] = set()
        partial: list[tuple[str, frozenset[str]]] = []
        for label, bgs in zip(e.labels, e.label_bigrams, strict=True):
            if not bgs or bgs.isdisjoint(qb):
                continue
            hit = bgs & qb
            recall = max(recall, len(hit) / len(bgs))
            if len(hit) == len(bgs):
                named |= bgs
                full = max(full, len(label))
            else:
                partial.append((label, hit))
        for bgs in e.keyword_sets:
            if not bgs.isdisjoint(qb):
                recall = max(recall, KEYWORD_RECALL * len(bgs & qb) / len(bgs))
        strong, kw, weak = e.strong_bigrams, e.keyword_bigrams, e.weak_bigrams
        if deep and partial:
            contradicted = _contradicted(partial, q, named)
            if contradicted:
                strong = strong - contradicted
        materials = frozenset().union(*e.material_bigrams) if deep else frozenset()
        for i, j, bg, factor in q.pairs:
            if bg in named:
                credit = COVER_LABEL
            elif bg in strong or bg in kw:
                credit = COVER_KEYWORD
            elif bg in weak:
                credit = COVER_WEAK
            elif bg in materials:
                credit = COVER_MATERIAL
            else:
                continue
            credit *= factor
            for p in (i, j):
                cover[p] = max(cover[p], credit)
        if deep and recall < 1.0:
            # Typos: align names/aliases against the question's content only, so a filler such
            # as 手续 can never pass for the 延续 of a different item's name.
            for label, bgs in zip(e.labels, e.label_bigrams, strict=True):
                if not FUZZY_MIN_LABEL <= len(label) <= len(q.content):
                    continue
                # One deleted and one inserted character (the most the cutoff allows) break at
                # most three of the name's bigrams: with fewer in the question, no alignment can pass.
                if len(bgs & q.content_bigrams) < len(bgs) - 3:
                    continue
                # At most one mistyped character: a typo, not a different word ("变更注册资本").
                cutoff = 100 * (1 - 1 / len(label)) - 0.01
                al = fuzz.partial_ratio_alignment(label, q.content, processor=None, score_cutoff=cutoff)
                if al is None:
                    continue
                credit = FUZZY_CREDIT * al.score / 100
                recall = max(recall, credit)
                for p in q.content_pos[al.dest_start : al.dest_end]:
                    cover[p] = max(cover[p], credit)
        return _Explanation.of(q, tuple(cover), recall, full)

    def _with_members(
        self, x: _Explanation, members: list[_Explanation], q: _Query
    ) -> tuple[_Explanation, int]:
        """A bundle also explains what its members explain, when the question names two of them
        or asks for everything at once; returns the result and how many members are named."""
        hits = [
            frozenset(i for i, c in enumerate(m.cover) if c >= COVER_KEYWORD)
            for m in members
            if m.full_label >= MEMBER_NAMED_CHARS
        ]
        named = sorted((h for h in hits if len(h) >= MEMBER_NAMED_CHARS), key=len, reverse=True)
        # Two members count only when each explains a part the other does not ("营业执照和食品许可证").
        distinct = 1 + sum(1 for h in named[1:] if len(h - named[0]) >= MEMBER_NAMED_CHARS) if named else 0
        if distinct < 2 and not q.bundle_cue:
            return x, distinct
        cover = list(x.cover)
        recall, full = x.recall, x.full_label
        for m in members:
            for i, c in enumerate(m.cover):
                cover[i] = max(cover[i], BUNDLE_MEMBER_CREDIT * c)
            if distinct >= 2:
                recall = max(recall, BUNDLE_MEMBER_CREDIT * m.recall)
                full = max(full, m.full_label)
        return _Explanation.of(q, tuple(cover), recall, full), distinct


@dataclass(frozen=True)
class Ranking:
    result: MatchResult
    features: dict[str, float]  # evidence behind `confident` (empty when nothing matched)


@dataclass(frozen=True)
class _Explanation:
    cover: tuple[float, ...]  # credit per question character
    coverage: float  # share of the question's weight explained
    recall: float  # best share of one name/alias (or, halved, keyword) found in the question
    full_label: int  # length of the longest name/alias found whole in the question

    @classmethod
    def of(cls, q: _Query, cover: tuple[float, ...], recall: float, full: int) -> _Explanation:
        coverage = sum(c * x for c, x in zip(cover, q.weights, strict=True)) / q.total
        return cls(cover, coverage, recall, full)


def _contradicted(partial: list[tuple[str, frozenset[str]]], q: _Query, named: set[str]) -> set[str]:
    """Bigrams of a name/alias found only in part, where the question has another content
    character right where the name goes on: "农业补贴" is not 失业补贴, "离婚登记" is not
    结婚登记. Light characters beside the part ("营业执照上的地址") contradict nothing."""
    out: set[str] = set()
    text, w = q.text, q.weights
    for label, found in partial:
        hit = found - named
        i = 0
        while hit and i < len(text) - 1:
            if text[i : i + 2] not in hit:
                i += 1
                continue
            j = i + 1
            while j + 1 < len(text) and text[j : j + 2] in hit:
                j += 1
            part = text[i : j + 1]
            k = label.find(part)
            end = k + len(part)
            left = k > 0 and i > 0 and w[i - 1] == CONTENT and text[i - 1] != label[k - 1]
            right = (
                0 <= end < len(label)
                and j + 1 < len(text)
                and w[j + 1] == CONTENT
                and text[j + 1] != label[end]
            )
            if k >= 0 and (left or right):
                out.update(text[p : p + 2] for p in range(i, j))
            i = j + 1
    return out


def _features(scored: list[tuple[float, int, _Explanation]], q: _Query) -> dict[str, float]:
    s1, _, x = scored[0]
    s2, _, y = scored[1] if len(scored) > 1 else (0.0, -1, None)
    # What the best entry explains that the runner-up does not: "公租房" shares 租房 with two
    # entries, "失业金" belongs to one.
    own = x.cover if y is None else tuple(max(0.0, a - b) for a, b in zip(x.cover, y.cover, strict=True))
    return {
        "score": min(s1, 1.0),
        "margin": max(0.0, min(s1, 1.0) - min(s2, 1.0)),
        "coverage": x.coverage,
        "distinct": sum(c * w for c, w in zip(own, q.weights, strict=True)) / q.total,
        "attached": _attached(x.cover, q),
        "recall": x.recall,
        "full_label": x.full_label,
        "off_topic": float(q.off_topic),
        "guessed": float(q.guessed),
    }


def _attached(cover: tuple[float, ...], q: _Query) -> float:
    """Unexplained content characters glued to an explained word: a longer word the catalog
    does not know ("公租房", "身份证号码"), 0 to 1."""
    w = q.weights
    loose = [x == CONTENT and c <= COVER_CHAR for c, x in zip(cover, w, strict=True)]
    solid = [c >= COVER_MATERIAL for c in cover]
    n = sum(
        1
        for i, lo in enumerate(loose)
        if lo and ((i > 0 and solid[i - 1]) or (i + 1 < len(solid) and solid[i + 1]))
    )
    return min(n, 2) / 2


def _confidence(features: dict[str, float]) -> float:
    z = CONFIDENCE_WEIGHTS["bias"] + sum(
        w * features[f] for f, w in CONFIDENCE_WEIGHTS.items() if f != "bias"
    )
    return 1.0 / (1.0 + math.exp(-z))


def _confident(features: dict[str, float], q: _Query, best: _Explanation) -> bool:
    # A question about a law, a price or a rate is only ours when it names the entry outright
    # ("公积金贷款利率" names 住房公积金贷款; "离婚了孩子抚养权归谁" names no procedure).
    if q.off_topic and best.full_label < NAMED_OUTRIGHT:
        return False
    # A word mended by its sound alone may be another word ("水费" is no slip for 税费): offer it.
    if q.guessed:
        return False
    # "食品许可证注销" asks for a stage the 核发 item does not offer: a near miss, not an answer.
    if features["unmet_stage"]:
        return False
    return _confidence(features) >= CONFIDENCE_THRESHOLD


def _offers_stages(e: _Entry, stages: frozenset[str]) -> bool:
    """Whether the entry's names or keywords mention every stage of a procedure the question asks
    for (注销, 延续, 补领 …)."""
    known = (e.strong_bigrams, e.keyword_bigrams)
    return all(any(_bigrams(s) <= k for k in known) for s in stages)


@dataclass(frozen=True)
class _Query:
    """A question prepared once for scoring against every candidate."""

    text: str
    weights: tuple[float, ...]
    total: float
    bundle_cue: bool
    off_topic: bool
    guessed: bool
    stages: frozenset[str]
    # (i, j, bigram, credit factor): adjacent characters, and skip pairs of content characters
    pairs: tuple[tuple[int, int, str, float], ...]
    bigrams: frozenset[str]  # of all pairs: "离了婚" still holds the word 离婚
    content: str  # the question without fillers, for typo alignment
    content_pos: tuple[int, ...]  # position in `text` of each character of `content`
    content_bigrams: frozenset[str]  # adjacent pairs of `content`
    terms: dict[str, float]  # retrieval terms and their weights

    @classmethod
    def of(cls, a: Analysis) -> _Query:
        text, w = a.text[:MAX_QUESTION_CHARS], a.weights[:MAX_QUESTION_CHARS]
        foreign = a.foreign[:MAX_QUESTION_CHARS] or (0,) * len(text)

        def apart(i: int, j: int) -> bool:  # not both inside one word the catalog does not know
            return foreign[i] == 0 or foreign[i] != foreign[j]

        pairs = [
            (i, i + 1, text[i : i + 2], 1.0)
            for i in range(len(text) - 1)
            if w[i] > 0 and w[i + 1] > 0 and apart(i, i + 1)
        ]
        core = [i for i, x in enumerate(w) if x == CONTENT]
        for k, i in enumerate(core):
            # The next content character across light words, or the one after it.
            for j in core[k + 1 : k + 3]:
                if 1 < j - i <= SKIP_MAX_DISTANCE and apart(i, j):
                    pairs.append((i, j, sys.intern(text[i] + text[j]), SKIP_CREDIT))
        pos = tuple(i for i, x in enumerate(w) if x > 0)
        content = "".join(text[i] for i in pos)
        terms = _query_terms(text, w)
        for bg in {text[i : i + 2] for i in range(len(text) - 1) if not apart(i, i + 1)}:
            terms.pop(bg, None)
        for _, _, bg, f in pairs:
            if f < 1.0 and bg not in terms:
                terms[bg] = SKIP_QUERY_WEIGHT
        return cls(
            text=text,
            weights=w,
            total=sum(w),
            bundle_cue=a.bundle_cue,
            off_topic=a.off_topic,
            guessed=a.guessed,
            stages=a.stages,
            pairs=tuple(pairs),
            bigrams=frozenset(bg for _, _, bg, _ in pairs),
            content=content,
            content_pos=pos,
            content_bigrams=frozenset(_bigrams(content)),
            terms=terms,
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
    # Average over the entries that have the field: imported items carry no keywords, and ten
    # thousand empty fields must not make every real keyword list look absurdly long.
    avg = {f: (sum(v) / (sum(1 for x in v if x) or 1)) or 1.0 for f, v in lengths.items()}
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
