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
filter of set-similarity joins instead, one entry length at a time: the posting lists are
keyed by (entry length n, occurrence, token), and F >= t needs LCS >= L_n =
ceil(t·(m+n)/2), hence a token overlap of at least L_n, so an entry of length n must share
one of the candidate's m-L_n+1 rarest keys among the entries of that length (a token the
pool never saw, or no entry of that length holds, is the rarest of all, with none). Only
the lengths that can reach t (m·t/(2-t) <= n <= m·(2-t)/t) are read, and of each only the
lists of those keys (and of any other short ones); entries whose probed keys plus the
unprobed ones fall short of their L_n are dropped; the long lists left, sorted by
construction, are binary-searched for the survivors only (when they are more than a few:
a few are cheaper to score), which gives their exact overlap; then LCS as above. L_n grows
with n (it is the global ceil(t·m/(2-t)) only at the shortest length), so a longer
entry needs a shorter prefix. Every entry scoring t or more is found, so every decision,
and the maximum and the top-k whenever they are above the threshold, are those of the
full scan; below it, they are the best among the entries probed (each score itself exact).
The full bound reads, for each of the candidate's (occurrence, token) keys, its lists of
every length from a second dict (key -> lists), not every length the pool holds.

`add_many` (a build seeding its index with a dataset's whole content) builds the same
index a chunk of texts at a time: tokenized in one pass over bytes, mapped to ids by one
join, and each posting list of the chunk appended at once after one numpy sort of packed
(key, entry) ints.

Tokens are stored as integer ids, and each entry's id sequence as a `str` whose
characters are the ids (one code point per token), because rapidfuzz computes the LCS of
two strings several times faster than that of two lists. A vocabulary larger than the
Unicode code space (about 1.1M distinct tokens) switches every entry to lists of ints.
"""

from __future__ import annotations

import ctypes
import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from app.core.filters.rouge import tokenize

# A bound within this of the k-th best score is still scored: the bound 2·O/(m+n) and
# rouge-score's F expression round differently in the last bits.
_EPS = 1e-9
_COUNT_ALL = 4  # probed entries are counted by a bincount over the pool past a quarter of it, else sorted
_SEARCH_PER_LIST = 8  # entries of one length per list left for them to be binary-searched
_TOKENIZE_SLICE = 16_384  # texts tokenized at once by `add_many`
_FIRST_ROUND = 64  # entries scored in the first round; each later round is 4x larger
_EXTRA_PROBE = 64  # a key beyond the prefix is read while its list (of one length) is at most this long
# `add_many`'s tokenizer: bytes kept ([a-z0-9] and NUL, the texts' separator), all others
# made spaces; then NUL made a space too.
_TOKEN_BYTES = bytes(c if chr(c).isascii() and (chr(c).isdigit() or chr(c).islower()) or c == 0 else 32
                     for c in range(256))
_NUL_TO_SPACE = bytes([32]) + bytes(range(1, 256))
# A posting key packs (length n, occurrence, token id) into one int while n and the id are
# below 2**21 (the occurrence is below n): (id ^ _mix(n)) | occurrence << 21 | n << 42, the
# low bits scrambled by n so that a dict does not pile one token's lengths on one slot; the
# tuple (n, occurrence, id) beyond.
_BITS = 21
_CODE_LIMIT = 1 << _BITS
_LOW = _CODE_LIMIT - 1
_LEN_SHIFT = 2 * _BITS


def _mix(n: int) -> int:
    return (n * 0x9E3779B1) >> 7 & _LOW


def _length_code(n: int) -> int:
    """What a base (id | occurrence << 21) is XORed with to give its key of length n."""
    return _mix(n) | n << _LEN_SHIFT


def _key(n: int, occ: int, tid: int) -> int | tuple[int, int, int]:
    if n < _CODE_LIMIT and tid < _CODE_LIMIT:
        return (tid | occ << _BITS) ^ _length_code(n)
    return (n, occ, tid)


def _release_free_memory() -> None:
    """Hand the chunk's freed temporaries back to the system (glibc keeps freed heap pages
    otherwise, among the posting lists that grew in between: some 170 MB at 1M entries)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def _f_scores(lcs: np.ndarray, m: int, pred: np.ndarray) -> np.ndarray:
    """`f_from_lcs_array(lcs, m, pred)` bit for bit (the same float64 operations on each
    nonzero LCS), for m > 0 and LCS at most each length: a zero LCS, and only it (an empty
    entry included), scores 0, so no division by zero needs numpy's error state (whose
    context costs more than the arithmetic on a check's few hundred entries)."""
    f = np.zeros(len(lcs), dtype=np.float64)
    hit = np.flatnonzero(lcs)
    if len(hit):
        common = lcs[hit].astype(np.float64)
        precision = common / pred[hit]
        recall = common / float(m)
        f[hit] = 2 * precision * recall / (precision + recall)
    return f


def _joined(postings: list[array[int]]) -> np.ndarray:
    """The posting lists' entry ids end to end, as int32: joined as bytes, because
    `np.concatenate` converts each `array` one at a time (some 0.5 us a list)."""
    return np.frombuffer(b"".join(postings), dtype=np.int32)


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

    def extend(self, values: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.zeros(max(end, 2 * len(self._data)), dtype=np.int32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end

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
    exists to avoid. `add(text)` costs O(tokens of text), amortised; `add_many(texts)`
    gives the same index faster (see docs/guides/scale.md).

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
        self._chars: dict[str, str] = {}  # token -> its id as a code point (ids below `_char_limit`)
        # (length, occurrence, token id) -> ids of the entries of that length holding the token
        # that many times or more, ascending
        self._postings: dict[int | tuple[int, int, int], array[int]] = {}
        # (occurrence, token) key (id | occurrence << 21, or (occurrence, id)) -> its posting
        # lists, one per length that has one: the exact path reads these instead of probing
        # every length for every key
        self._by_base: dict[int | tuple[int, int], list[array[int]]] = {}
        self._length_set: set[int] = set()
        self._length_values: list[int] = []  # the distinct entry lengths, ascending
        self._as_lists = False

    def __len__(self) -> int:
        return len(self._texts)

    # --- building ------------------------------------------------------------------------
    def add(self, text: str) -> int:
        """Add `text` to the pool and return its entry id."""
        vocab = self._vocab
        ids = []
        for tok in tokenize(text):
            tid = vocab.get(tok)
            if tid is None:
                tid = self._token_id(tok)
            ids.append(tid)
        return self._append(text, ids, self._encode(ids))

    def _append(self, text: str, ids: list[int], seq: str | list[int]) -> int:
        """Store one entry and its postings, one per (length, occurrence, token) key."""
        entry = len(self._texts)
        postings, by_base = self._postings, self._by_base
        n = len(ids)
        code = _length_code(n)
        narrow = n < _CODE_LIMIT
        occurrences: dict[int, int] = {}
        for tid in ids:
            occ = occurrences.get(tid, 0)
            occurrences[tid] = occ + 1
            key = (tid | occ << _BITS) ^ code if narrow and tid < _CODE_LIMIT else (n, occ, tid)
            posting = postings.get(key)
            if posting is None:
                posting = postings[key] = array("i")
                base = tid | occ << _BITS if tid < _CODE_LIMIT else (occ, tid)
                lists = by_base.get(base)
                if lists is None:
                    by_base[base] = [posting]
                else:
                    lists.append(posting)
            posting.append(entry)
        self._texts.append(text)
        self._seqs.append(seq)
        self._lengths.append(n)
        if n not in self._length_set:
            self._length_set.add(n)
            self._length_values = sorted(self._length_set)
        return entry

    def _list_of_base(self, key: int | tuple[int, int, int], posting: array[int]) -> None:
        """Record a new posting list under its (occurrence, token) key."""
        if isinstance(key, tuple):
            n, occ, tid = key
            base: int | tuple[int, int] = tid | occ << _BITS if tid < _CODE_LIMIT else (occ, tid)
        else:
            base = key ^ _length_code(key >> _LEN_SHIFT)
        lists = self._by_base.get(base)
        if lists is None:
            self._by_base[base] = [posting]
        else:
            lists.append(posting)

    def add_many(self, texts: Iterable[str], chunk: int = 200_000) -> int:
        """Add every text (a dataset's whole content, when a build seeds its index); returns how many.

        The same index as `add` one text at a time, built `chunk` texts at a time: each text
        is tokenized and encoded in one pass, and the chunk's postings are grouped by numpy
        (a sort by key) and appended one list at a time instead of one entry at a time.
        `texts` is consumed as a stream: no more than a chunk is held beyond the index."""
        n = 0
        it = iter(texts)
        while True:
            batch = list(islice(it, chunk))
            if not batch:
                return n
            self._add_chunk(batch)
            n += len(batch)
            if len(batch) >= 10_000:  # about 2 ms, against the chunk's slack
                _release_free_memory()

    def _add_chunk(self, texts: list[str]) -> None:
        # Tokenized a slice at a time: a token is a small object, and few alive at once leave
        # little allocator slack behind them.
        pieces = [self._encode_chunk(texts[i : i + _TOKENIZE_SLICE]) for i in range(0, len(texts), _TOKENIZE_SLICE)]
        if (
            any(piece is None for piece in pieces)
            or len(self._vocab) > _CODE_LIMIT
            or any(len(p[1]) and p[1].max() >= _CODE_LIMIT for p in pieces if p is not None)
        ):  # a text holding the separator, or past the code space or the packed keys: one at a time
            for text in texts:
                self.add(text)
            return
        done = [p for p in pieces if p is not None]
        flat = "".join(p[0] for p in done)
        lens = np.concatenate([p[1] for p in done]) if done else np.zeros(0, dtype=np.int64)
        del pieces, done
        ends = np.cumsum(lens).tolist()
        seqs = [flat[a:b] for a, b in zip([0] + ends[:-1], ends)]
        self._bulk_postings(texts, seqs, flat, lens)

    def _encode_chunk(self, texts: list[str]) -> tuple[str, np.ndarray] | None:
        """The texts' token ids as code points, joined, and each text's token count; None
        when they need `add` one at a time (a text holding NUL, a vocabulary past the code space)."""
        joined = "\x00".join(texts)
        if self._as_lists or joined.count("\x00") != len(texts) - 1:  # a text holding the separator
            return None
        # `tokenize` over the whole slice at once, on bytes: lowered, every non-ASCII character
        # (never one of [a-z0-9]) made "?", then every byte but [a-z0-9] and the separator a space.
        raw = joined.lower().encode("ascii", "replace").translate(_TOKEN_BYTES)
        codes = np.frombuffer(raw, dtype=np.uint8)
        word = (codes != 32) & (codes != 0)
        starts = word & ~np.r_[False, word[:-1]]  # the first byte of each token
        text_of = np.searchsorted(np.flatnonzero(codes == 0), np.flatnonzero(starts))  # each token's text
        lens = np.bincount(text_of, minlength=len(texts)).astype(np.int64)
        tokens = raw.translate(_NUL_TO_SPACE).decode("ascii").split()
        chars = self._chars
        try:
            return "".join(map(chars.__getitem__, tokens)), lens
        except KeyError:  # tokens new to the vocabulary, numbered in order of appearance
            for tok in tokens:
                if tok not in chars:
                    self._token_id(tok)
                    if self._as_lists:
                        return None
            return "".join(map(chars.__getitem__, tokens)), lens

    def _bulk_postings(self, texts: list[str], seqs: list[str], flat_seq: str, lens: np.ndarray) -> None:
        """Append entries whose id sequences are `seqs` (one code point per token, joined in
        `flat_seq`), their postings grouped by a sort on the key."""
        base = len(self._texts)
        flat = np.frombuffer(flat_seq.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        # One sort of (key without the occurrence, entry) packed in an int64: (id ^ _mix(n)) |
        # n << 21 takes 42 bits, the entry's place in the chunk the low ones.
        shift = max(1, (len(seqs) - 1).bit_length())
        mixed = ((lens * 0x9E3779B1) >> 7 & _LOW) | lens << _BITS
        packed = np.sort((flat ^ np.repeat(mixed, lens)) << shift | np.repeat(np.arange(len(seqs)), lens))
        code, local = packed >> shift, packed & ((1 << shift) - 1)
        # An entry's k-th repeat of a token (equal neighbours once sorted) has occurrence k.
        repeat = np.r_[False, packed[1:] == packed[:-1]] if len(packed) else np.zeros(0, dtype=bool)
        groups = []
        if repeat.any():
            at = np.arange(len(packed))
            occ = at - np.maximum.accumulate(np.where(repeat, 0, at))
            moved = np.flatnonzero(repeat)
            keys = (code[moved] & _LOW) | occ[moved] << _BITS | (code[moved] >> _BITS) << _LEN_SHIFT
            again = np.lexsort((local[moved], keys))
            groups.append((keys[again], local[moved][again]))
            stay = ~repeat
            code, local = code[stay], local[stay]
        groups.append(((code & _LOW) | (code >> _BITS) << _LEN_SHIFT, local))
        postings = self._postings
        for keys, local in groups:  # each key's entries ascending
            if not len(keys):
                continue
            entries = memoryview((local + base).astype(np.int32).tobytes())
            cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
            first = np.r_[0, cut]
            for key, a, b in zip(keys[first].tolist(), (4 * first).tolist(), (4 * np.r_[cut, len(keys)]).tolist()):
                posting = postings.get(key)
                if posting is None:
                    posting = postings[key] = array("i")
                    self._list_of_base(key, posting)
                posting.frombytes(entries[a:b])
        self._texts.extend(texts)
        self._seqs.extend(seqs)
        self._lengths.extend(lens)
        new = set(lens.tolist()) - self._length_set
        if new:
            self._length_set |= new
            self._length_values = sorted(self._length_set)

    def _token_id(self, token: str) -> int:
        tid = self._vocab.get(token)
        if tid is None:
            tid = self._vocab[token] = len(self._vocab)
            if tid < self._char_limit:
                self._chars[token] = chr(tid)
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
        keys: list[int | tuple[int, int]] = []  # (occurrence, token) of each known token
        occurrences: dict[int, int] = {}
        for tok in tokens:
            tid = self._vocab.get(tok)
            if tid is None:
                continue
            known.append(tid)
            occ = occurrences.get(tid, 0)
            occurrences[tid] = occ + 1
            keys.append(tid | occ << _BITS if tid < _CODE_LIMIT else (occ, tid))
        lengths = self._lengths.view()
        if not keys:  # shares no token with any entry: every score is 0
            return NoveltyResult(0.0, [], self._mean(None, m), True)
        query = self._encode(known)
        t = self.threshold
        exact = self.exact_below_threshold
        if exact is None:
            exact = size <= self.exact_pool_limit
        if exact or not 0 < t <= 1:
            get = self._by_base.get
            postings = [p for lists in map(get, keys) if lists is not None for p in lists]
            if not postings:
                return NoveltyResult(0.0, [], self._mean(None, m), True)
            overlap = np.bincount(_joined(postings), minlength=size)
            remaining = np.flatnonzero(overlap)
            bound = 2.0 * overlap[remaining] / (m + lengths[remaining])
        else:
            remaining, bound = self._prefix_candidates(keys, m, t, lengths)
        top_idx, top_f = self._top(query, m, remaining, bound, lengths, max(self.top_k, 1))
        best = float(top_f[0]) if len(top_f) else 0.0
        shown = min(self.top_k, int(np.count_nonzero(top_f > 0)))
        return NoveltyResult(
            max_rouge_l=best,
            most_similar=[(self._texts[i], float(f)) for i, f in zip(top_idx[:shown].tolist(), top_f[:shown])],
            mean_rouge_l=self._mean(query, m),
            novel=best <= t,
        )

    @staticmethod
    def _keys_at(n: int, keys: list[int | tuple[int, int]]) -> list[int | tuple[int, int, int]]:
        """The posting keys of length `n` for a candidate's `keys` (id | occurrence << 21, or
        (occurrence, id) for an id past 2**21)."""
        if n < _CODE_LIMIT and all(isinstance(k, int) for k in keys):
            code = _length_code(n)
            return [k ^ code for k in keys]  # type: ignore[operator]
        out: list[int | tuple[int, int, int]] = []
        for k in keys:
            occ, tid = k if isinstance(k, tuple) else (k >> _BITS, k & _LOW)
            out.append(_key(n, occ, tid))
        return out

    def _prefix_candidates(
        self, keys: list[int | tuple[int, int]], m: int, t: float, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every entry that could score `t` or more, with an upper bound on its F.

        `keys` are the candidate's known (occurrence, token) keys; its m - len(keys)
        unknown tokens are keys with empty lists, the rarest of all. Each entry length n
        that can reach t is its own prefix filter, over the lists of that length only, with
        the overlap that length needs: LCS >= t·(m+n)/2."""
        need_min = max(1, math.ceil(t * m / (2 - t) - _EPS))  # the shortest entry that can reach t
        longest = math.floor(m * (2 - t) / t + _EPS)  # the longest one
        values = self._length_values
        first, last = bisect_left(values, need_min), bisect_right(values, longest)
        if first >= last:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        get = self._postings.get
        packed = [k for k in keys if isinstance(k, int)] if values[last - 1] < _CODE_LIMIT else None
        if packed is not None and len(packed) < len(keys):  # an id past 2**21: tuple keys
            packed = None
        need_of = np.full(longest - need_min + 1, m + 1, dtype=np.int64)  # per length n - need_min
        unprobed_of = np.zeros(longest - need_min + 1, dtype=np.int64)
        probed: list[array[int]] = []
        rest: dict[int, list[array[int]]] = {}  # length -> its lists not read, shortest first
        for n in values[first:last]:
            need = max(1, math.ceil(t * (m + n) / 2 - _EPS))  # the least LCS (and overlap) for F >= t
            if need > min(m, n):
                continue
            if packed is not None:
                code = _length_code(n)
                at_n: list[int | tuple[int, int, int]] = [k ^ code for k in packed]
            else:
                at_n = self._keys_at(n, keys)
            lists = [p for p in map(get, at_n) if p is not None]
            missing = m - len(lists)  # keys no entry of length n holds
            probe = m - need + 1  # keys an entry reaching `need` must share one of
            if probe <= missing:  # more empty keys than can be missed: no entry of length n reaches t
                continue
            lists.sort(key=len)
            take = probe - missing
            # Further short lists are cheap to read and tighten every probed entry's bound.
            while take < len(lists) and len(lists[take]) <= _EXTRA_PROBE:
                take += 1
            probed.extend(lists[:take])
            need_of[n - need_min] = need
            if take < len(lists):
                unprobed_of[n - need_min] = len(lists) - take
                rest[n] = lists[take:]
        if not probed:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        read = _joined(probed)
        if len(read) > len(lengths) // _COUNT_ALL:  # a count per pool entry beats sorting this many
            counts = np.bincount(read, minlength=len(lengths))
            entries = np.flatnonzero(counts)
            held = counts[entries]
        else:
            entries, held = np.unique(read, return_counts=True)
        n_of = lengths[entries].astype(np.int64)
        slot = n_of - need_min
        need_e, unprobed_e = need_of[slot], unprobed_of[slot]
        keep = held + unprobed_e >= need_e
        entries, held, n_of, need_e, unprobed_e = entries[keep], held[keep], n_of[keep], need_e[keep], unprobed_e[keep]
        if rest and entries.size:
            # The lists left, one length at a time, are sorted (entries are appended in id
            # order): a binary search per entry left gives its exact overlap, dropping those
            # that cannot reach their length's `need`.
            groups = np.argsort(n_of, kind="stable")
            n_sorted = n_of[groups]
            bounds = np.flatnonzero(np.r_[True, n_sorted[1:] != n_sorted[:-1], True])
            kept_e, kept_h = [], []
            for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                pick = groups[start:end]
                ents, hld = entries[pick], held[pick]
                unread = rest.get(int(n_sorted[start]))
                # A few entries are cheaper to score by LCS than to search for in every list
                # left: theirs keep the bound that counts every unread key as held.
                if unread and len(pick) > _SEARCH_PER_LIST * len(unread):
                    need = int(need_e[pick[0]])
                    for left, posting in zip(range(len(unread) - 1, -1, -1), unread):
                        ids = np.frombuffer(posting, dtype=np.int32)
                        at = np.minimum(np.searchsorted(ids, ents), len(ids) - 1)
                        hld = hld + (ids[at] == ents)
                        keep = hld + left >= need
                        ents, hld = ents[keep], hld[keep]
                        if not ents.size:
                            break
                else:
                    hld = hld + unprobed_e[pick]
                kept_e.append(ents)
                kept_h.append(hld)
            entries, held = np.concatenate(kept_e), np.concatenate(kept_h)
        n_left = lengths[entries]
        bound = 2.0 * np.minimum(np.minimum(held, m), n_left) / (m + n_left)
        keep = bound >= t - _EPS
        return entries[keep].astype(np.int64), bound[keep]

    def _top(
        self, query: str | list[int], m: int, remaining: np.ndarray, bound: np.ndarray, lengths: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (entry ids, scores, best first) among `remaining`, given each one's
        upper bound on its score: entries are scored best bound first, in growing rounds,
        until no bound left can reach the k-th best score."""
        if 0 < remaining.size <= _FIRST_ROUND:  # one round (a small pool's usual case)
            scores = self._scores(query, m, remaining, lengths)
            order = np.argsort(-scores, kind="stable")[:k]
            return remaining[order], scores[order]
        top_idx = np.empty(0, dtype=np.int64)
        top_f = np.empty(0, dtype=np.float64)
        batch = _FIRST_ROUND
        while remaining.size:
            if len(top_f) >= k:  # nothing whose bound is below the k-th best can enter
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
            if len(top_f):
                top_idx = np.concatenate([top_idx, chosen])
                top_f = np.concatenate([top_f, scores])
            else:  # the first round
                top_idx, top_f = chosen.astype(np.int64, copy=False), scores
            order = np.argsort(-top_f, kind="stable")[:k]
            top_idx, top_f = top_idx[order], top_f[order]
            batch *= 4
        return top_idx, top_f

    def _scores(
        self, query: str | list[int], m: int, entries: np.ndarray | None, lengths: np.ndarray
    ) -> np.ndarray:
        """rouge-score's F of the candidate (target) against each entry (prediction); every
        entry of the pool when `entries` is None."""
        seqs = self._seqs
        if entries is None:
            lcs = process.cdist([query], seqs, scorer=LCSseq.similarity, dtype=np.int32)[0]
            return _f_scores(lcs, m, lengths)
        choices = [seqs[i] for i in entries.tolist()]
        lcs = process.cdist([query], choices, scorer=LCSseq.similarity, dtype=np.int32)[0]
        return _f_scores(lcs, m, lengths[entries])

    def _mean(self, query: str | list[int] | None, m: int) -> float | None:
        """Mean score over a random sample of `mean_sample` entries (all when fewer)."""
        size = len(self._texts)
        if not self.mean_sample or size == 0:
            return None
        if query is None or m == 0 or not len(query):
            return 0.0
        if size <= self.mean_sample:  # the whole pool, in entry order
            return float(self._scores(query, m, None, self._lengths.view()).sum() / size)
        sample = self._rng.choice(size, self.mean_sample, replace=False, shuffle=False)
        return float(self._scores(query, m, sample, self._lengths.view()).sum() / sample.size)
