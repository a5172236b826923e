"""The ROUGE-L novelty rule: reject a candidate too similar to anything in the pool.

`NoveltyIndex` holds the pool (human seeds and accepted machine instructions), answers
"what is the highest ROUGE-L F of this text against the pool, and which entries are
closest", and grows one entry at a time. Scores and decisions are exactly those of
`rouge_score.rouge_scorer` without stemmer (see `rouge.py`), but a check does not scan
the pool.

Why a scan is avoidable: with m and n the token counts of the candidate and an entry,
F = 2·LCS/(m+n), and LCS can be no larger than the multiset token overlap of the two
(the number of tokens they share, counting repeats). An inverted index from
(token, occurrence) to entries gives that overlap for every entry sharing a token with
one bincount, hence an upper bound on each entry's F. Entries are then scored (LCS by
rapidfuzz) in descending order of bound, in growing rounds, and the search stops as soon
as no unscored entry's bound can reach the current k-th best score. Entries sharing no
token score 0. The maximum and the top-k are therefore exact over the whole pool, for
accepted and rejected candidates alike, while only a few LCS are computed.

At a large pool the common words' posting lists hold most of the pool, so that bincount
alone costs tens of milliseconds at a million entries. Past `exact_pool_limit` entries
(unless `exact_below_threshold` says otherwise), a check therefore applies the prefix
filter of set-similarity joins instead: F >= t needs LCS >= L = ceil(t·m/(2-t)), hence a
token overlap of at least L, so an entry must share one of the candidate's m-L+1 rarest
(token, occurrence) keys (those the pool has fewest entries for; a token the pool never
saw is the rarest of all, with none). Only the lists of those keys (and of any other
short ones) are read; entries whose length cannot reach t (m·t/(2-t) <= n <= m·(2-t)/t)
or whose probed keys plus the unprobed ones fall short of L are dropped; the long lists
left, sorted by construction, are binary-searched for the survivors only, which gives
their exact overlap; then LCS as above. Every entry scoring t or more is found, so every
decision, and the maximum and the top-k whenever they are above the threshold, are those
of the full scan; below it, they are the best among the entries probed (each score
itself exact).

Tokens are stored as integer ids, and each entry's id sequence as a `str` whose
characters are the ids (one code point per token), because rapidfuzz computes the LCS of
two strings several times faster than that of two lists. A vocabulary larger than the
Unicode code space (about 1.1M distinct tokens) switches every entry to lists of ints.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from app.core.filters.rouge import f_from_lcs_array, tokenize

# A bound within this of the k-th best score is still scored: the bound 2·O/(m+n) and
# rouge-score's F expression round differently in the last bits.
_EPS = 1e-9
_OCC_SHIFT = 32  # posting key = occurrence << 32 | token id
_FIRST_ROUND = 64  # entries scored in the first round; each later round is 4x larger
_EXTRA_PROBE = 4096  # a key beyond the prefix is read while its list is at most this long


@dataclass
class NoveltyResult:
    max_rouge_l: float
    most_similar: list[tuple[str, float]] = field(default_factory=list)
    mean_rouge_l: float | None = None  # estimated from a sample of the pool
    novel: bool = True


class _IntColumn:
    """An int32 column with amortised O(1) append and a zero-copy numpy view."""

    def __init__(self) -> None:
        self._data = np.zeros(1024, dtype=np.int32)
        self._size = 0

    def append(self, value: int) -> None:
        if self._size == len(self._data):
            grown = np.zeros(2 * len(self._data), dtype=np.int32)
            grown[: self._size] = self._data
            self._data = grown
        self._data[self._size] = value
        self._size += 1

    def view(self) -> np.ndarray:
        return self._data[: self._size]


class NoveltyIndex:
    """Pool of instructions with exact ROUGE-L lookups (rouge-score semantics, no stemmer).

    `check(text)` returns `novel = max <= threshold`, exactly as a scan of the whole
    pool decides it, the maximum ROUGE-L F of `text` against the pool and the top `top_k`
    entries by score (ties in any order; entries scoring 0 are left out). With
    `exact_below_threshold=True` the maximum and the top-k are exact over the whole pool
    (a diversity report's nearest neighbours); with False, they are exact above the
    threshold, and below it the best among the entries sharing enough of the candidate's
    rarest tokens (see the module docstring). None (the default, a job's index) is True
    while the pool holds at most `exact_pool_limit` entries, where the full bound costs
    about a millisecond, and False beyond, where it would cost tens. `mean_rouge_l` is an *estimate*: the mean
    score over a uniform random sample of `mean_sample` entries drawn afresh on each
    check (exact when the pool has no more entries than that; None when `mean_sample`
    is 0 or the pool is empty), because an exact mean would need the full scan the index
    exists to avoid. `add(text)` costs O(tokens of text), amortised.

    Not thread-safe: one index belongs to one job's event loop.
    """

    #: Token ids below this are stored as code points; tests lower it to cover lists.
    _char_limit = 0x110000
    #: Pool size up to which `exact_below_threshold=None` scores below the threshold exactly.
    exact_pool_limit = 50_000

    def __init__(self, threshold: float = 0.7, top_k: int = 10, mean_sample: int = 1000, seed: int = 0,
                 exact_below_threshold: bool | None = None):
        self.threshold = threshold
        self.exact_below_threshold = exact_below_threshold
        self.top_k = top_k
        self.mean_sample = mean_sample
        self._rng = np.random.default_rng(seed)
        self._texts: list[str] = []
        self._seqs: list[str | list[int]] = []  # token ids, one code point (or int) each
        self._lengths = _IntColumn()
        self._vocab: dict[str, int] = {}
        self._postings: dict[int, array[int]] = {}  # (occurrence, token id) -> entry ids
        self._as_lists = False

    def __len__(self) -> int:
        return len(self._texts)

    # --- building ------------------------------------------------------------------------
    def add(self, text: str) -> int:
        """Add `text` to the pool and return its entry id."""
        entry = len(self._texts)
        vocab, postings = self._vocab, self._postings
        ids = []
        occurrences: dict[int, int] = {}
        for tok in tokenize(text):
            tid = vocab.get(tok)
            if tid is None:
                tid = self._token_id(tok)
            ids.append(tid)
            occ = occurrences.get(tid, 0)
            occurrences[tid] = occ + 1
            key = occ << _OCC_SHIFT | tid
            posting = postings.get(key)
            if posting is None:
                posting = postings[key] = array("i")
            posting.append(entry)
        self._texts.append(text)
        self._seqs.append(self._encode(ids))
        self._lengths.append(len(ids))
        return entry

    def add_many(self, texts: Iterable[str]) -> int:
        """Add every text (a dataset's whole content, when a build seeds its index); returns how many."""
        n = 0
        for text in texts:
            self.add(text)
            n += 1
        return n

    def _token_id(self, token: str) -> int:
        tid = self._vocab.get(token)
        if tid is None:
            tid = self._vocab[token] = len(self._vocab)
            if tid >= self._char_limit and not self._as_lists:
                self._as_lists = True
                self._seqs = [[ord(c) for c in s] if isinstance(s, str) else s for s in self._seqs]
        return tid

    def _encode(self, ids: list[int]) -> str | list[int]:
        return ids if self._as_lists else "".join(map(chr, ids))

    # --- lookups -------------------------------------------------------------------------
    def check(self, text: str) -> NoveltyResult:
        """Score `text` against the pool; see the class docstring for what is exact."""
        size = len(self._texts)
        if size == 0:
            return NoveltyResult(0.0, [], None, True)
        tokens = tokenize(text)
        m = len(tokens)
        # Tokens unknown to the pool match nothing: they count in m, not in the LCS.
        known: list[int] = []
        keys: list[int] = []
        occurrences: dict[int, int] = {}
        for tok in tokens:
            tid = self._vocab.get(tok)
            if tid is None:
                continue
            known.append(tid)
            occ = occurrences.get(tid, 0)
            occurrences[tid] = occ + 1
            keys.append(occ << _OCC_SHIFT | tid)
        postings = [p for p in map(self._postings.get, keys) if p is not None]
        lengths = self._lengths.view()
        if not postings:  # shares no token with any entry: every score is 0
            return NoveltyResult(0.0, [], self._mean(None, m), True)
        query = self._encode(known)
        t = self.threshold
        exact = self.exact_below_threshold
        if exact is None:
            exact = size <= self.exact_pool_limit
        if exact or not 0 < t <= 1:
            overlap = np.bincount(np.concatenate(postings), minlength=size)
            remaining = np.flatnonzero(overlap)
            bound = 2.0 * overlap[remaining] / (m + lengths[remaining])
        else:
            remaining, bound = self._prefix_candidates(postings, m, t, lengths)
        top_idx, top_f = self._top(query, m, remaining, bound, lengths, max(self.top_k, 1))
        best = float(top_f[0]) if len(top_f) else 0.0
        shown = min(self.top_k, int(np.count_nonzero(top_f > 0)))
        return NoveltyResult(
            max_rouge_l=best,
            most_similar=[(self._texts[i], float(f)) for i, f in zip(top_idx[:shown].tolist(), top_f[:shown])],
            mean_rouge_l=self._mean(query, m),
            novel=best <= t,
        )

    def _prefix_candidates(
        self, postings: list[array[int]], m: int, t: float, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every entry that could score `t` or more, with an upper bound on its F.

        `postings` holds one list per known (token, occurrence) key of the candidate; the
        m - len(postings) unknown tokens are keys with empty lists, the rarest of all."""
        need = max(1, math.ceil(t * m / (2 - t) - _EPS))  # the least LCS (and overlap) for F >= t
        longest = math.floor(m * (2 - t) / t + _EPS)  # the longest entry that can reach t
        probe = m - need + 1  # keys an entry reaching `need` must share one of
        unknown = m - len(postings)
        if probe <= unknown:  # more unknown tokens than can be missed: nothing reaches t
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        postings = sorted(postings, key=len)
        take = probe - unknown
        # Further short lists are cheap to read and tighten every probed entry's bound.
        while take < len(postings) and len(postings[take]) <= _EXTRA_PROBE:
            take += 1
        probed = np.concatenate(postings[:take]) if take > 1 else np.frombuffer(postings[0], dtype=np.int32)
        if len(probed) > len(lengths) // 16:  # a count per pool entry beats sorting this many
            counts = np.bincount(probed, minlength=len(lengths))
            entries = np.flatnonzero(counts)
            held = counts[entries]
        else:
            entries, held = np.unique(probed, return_counts=True)
        n = lengths[entries]
        unprobed = len(postings) - take  # known keys not read: an entry may hold all of them
        keep = (held + unprobed >= need) & (n >= need) & (n <= longest)
        entries, held = entries[keep], held[keep]
        # The long lists left are sorted (entries are appended in id order): a binary search
        # per entry left gives its exact overlap, dropping those that cannot reach `need`.
        for left, posting in zip(range(unprobed - 1, -1, -1), postings[take:]):
            if not entries.size:
                break
            ids = np.frombuffer(posting, dtype=np.int32)
            at = np.minimum(np.searchsorted(ids, entries), len(ids) - 1)
            held = held + (ids[at] == entries)
            keep = held + left >= need
            entries, held = entries[keep], held[keep]
        n = lengths[entries]
        bound = 2.0 * np.minimum(np.minimum(held, m), n) / (m + n)
        keep = bound >= t - _EPS
        return entries[keep].astype(np.int64), bound[keep]

    def _top(
        self, query: str | list[int], m: int, remaining: np.ndarray, bound: np.ndarray, lengths: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (entry ids, scores, best first) among `remaining`, given each one's
        upper bound on its score: entries are scored best bound first, in growing rounds,
        until no bound left can reach the k-th best score."""
        top_idx = np.empty(0, dtype=np.int64)
        top_f = np.empty(0, dtype=np.float64)
        batch = _FIRST_ROUND
        while remaining.size:
            if top_f.size >= k:  # nothing whose bound is below the k-th best can enter
                keep = bound >= top_f[k - 1] - _EPS
                remaining, bound = remaining[keep], bound[keep]
                if not remaining.size:
                    break
            if remaining.size > batch:
                pick = np.argpartition(-bound, batch - 1)[:batch]
                chosen = remaining[pick]
                rest = np.ones(remaining.size, dtype=bool)
                rest[pick] = False
                remaining, bound = remaining[rest], bound[rest]
            else:
                chosen, remaining, bound = remaining, remaining[:0], bound[:0]
            scores = self._scores(query, m, chosen, lengths)
            top_idx = np.concatenate([top_idx, chosen])
            top_f = np.concatenate([top_f, scores])
            order = np.argsort(-top_f, kind="stable")[:k]
            top_idx, top_f = top_idx[order], top_f[order]
            batch *= 4
        return top_idx, top_f

    def _scores(self, query: str | list[int], m: int, entries: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """rouge-score's F of the candidate (target) against each entry (prediction)."""
        seqs = self._seqs
        choices = [seqs[i] for i in entries.tolist()]
        lcs = process.cdist([query], choices, scorer=LCSseq.similarity, dtype=np.int32)[0]
        return f_from_lcs_array(lcs, m, lengths[entries])

    def _mean(self, query: str | list[int] | None, m: int) -> float | None:
        """Mean score over a random sample of `mean_sample` entries (all when fewer)."""
        size = len(self._texts)
        if not self.mean_sample or size == 0:
            return None
        if query is None or m == 0 or not len(query):
            return 0.0
        if size <= self.mean_sample:
            sample = np.arange(size)
        else:
            sample = self._rng.choice(size, self.mean_sample, replace=False, shuffle=False)
        return float(self._scores(query, m, sample, self._lengths.view()).sum() / sample.size)
