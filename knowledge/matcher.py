"""Question -> ranked catalog entries, with an honest `confident` flag.

INTERFACE (fixed; other modules depend on it): `Matcher(catalog)`, `Matcher.search(question, limit)`
returning `MatchResult`. The ranking implementation below is a placeholder to be replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from knowledge.schema import Catalog

Kind = Literal["item", "bundle"]


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


class Matcher:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._names = [(i.name, "item") for i in catalog.items] + [(b.name, "bundle") for b in catalog.bundles]

    def search(self, question: str, limit: int = 5) -> MatchResult:
        hits = process.extract(
            question, [n for n, _ in self._names], scorer=fuzz.partial_ratio, limit=limit, score_cutoff=50
        )
        matches = [Match(self._names[i][0], self._names[i][1], s / 100) for _, s, i in hits]  # type: ignore[arg-type]
        return MatchResult(question, bool(matches) and matches[0].score >= 0.8, matches)
