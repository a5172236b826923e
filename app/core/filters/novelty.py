"""The ROUGE-L novelty rule: reject a candidate too similar to anything in the pool.

`NoveltyIndex` holds the pool (human seeds and accepted machine instructions), answers
"what is the highest ROUGE-L F of this text against the pool, and which entries are
closest", and grows one entry at a time. Decisions are exact (see `rouge.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from app.core.filters.rouge import rouge_l, tokenize


@dataclass
class NoveltyResult:
    max_rouge_l: float
    most_similar: list[tuple[str, float]] = field(default_factory=list)
    mean_rouge_l: float | None = None  # estimated from a sample of the pool
    novel: bool = True


class NoveltyIndex:
    """Pool of instructions with exact ROUGE-L lookups."""

    def __init__(self, threshold: float = 0.7, top_k: int = 10, mean_sample: int = 1000, seed: int = 0):
        self.threshold = threshold
        self.top_k = top_k
        self.mean_sample = mean_sample
        self._rng = random.Random(seed)
        self._texts: list[str] = []
        self._tokens: list[list[str]] = []

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> int:
        self._texts.append(text)
        self._tokens.append(tokenize(text))
        return len(self._texts) - 1

    def check(self, text: str) -> NoveltyResult:
        tokens = tokenize(text)
        scores = [rouge_l(t, tokens) for t in self._tokens]
        if not scores:
            return NoveltyResult(0.0, [], None, True)
        best = max(scores)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: self.top_k]
        mean = None
        if self.mean_sample:
            idx = range(len(scores))
            if len(scores) > self.mean_sample:
                idx = self._rng.sample(range(len(scores)), self.mean_sample)
            mean = sum(scores[i] for i in idx) / len(idx)
        return NoveltyResult(
            max_rouge_l=best,
            most_similar=[(self._texts[i], scores[i]) for i in order],
            mean_rouge_l=mean,
            novel=best <= self.threshold,
        )
