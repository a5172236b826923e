"""Near-duplicate examples: an exact hash first, then MinHash LSH over word shingles.

A document is one whole example (`example_text`: instruction, input and output). Its
shingles are its word 3-grams: words are `\\w+` runs of the case-folded text, so
punctuation and spacing do not count; three words make a shingle short enough that one
edited word in a 60-word example still leaves a Jaccard similarity of about 0.9, yet long
enough that two examples built from the same common words in another order do not look
alike. A document of fewer than three words is one padded shingle.

Signatures are computed for many documents at once with numpy, and equal bit for bit
those of datasketch's `MinHash` (scheme "affine32") fed with the same shingle hashes, so
they go straight into datasketch's `MinHashLSH` as `LeanMinHash`.

LSH banding is not datasketch's default for the threshold: its optimiser picks 5 bands
of 25 rows at 0.9, which finds a pair at exactly 0.9 only 31% of the time. Here the
bands are chosen so a pair at the threshold becomes a candidate with probability >= 0.99
(12 bands of 10 rows at 0.9 with 128 permutations), and every candidate is then checked
with the exact Jaccard similarity of the two shingle sets, which are stored next to the
index. So every reported pair has Jaccard >= threshold, and a pair at Jaccard J is found
with probability 1 - (1 - J**rows)**bands.

Without Redis the index lives in numpy arrays (`dedup_memory.CompactTables`, a few
hundred bytes to a kilobyte a document instead of datasketch's dicts and sets, about 5 KB).
A batch of at least `_BULK_MIN` documents in memory (a dataset build seeding its index with
the dataset's rows, `sprout filter dedup`) takes the bulk path: every document is hashed
first, only those that share a band hash, digest or key with another (the few that can be
anything but kept) are decided one after another, and the kept ones enter the tables with
one sorted merge; the decisions and the tables are those of adding one at a time
(`tests/unit/test_dedup.py`). A million examples seed in about 15 s of CPU instead of
about 100 s (docs/guides/scale.md).
With a Redis URL the LSH tables (datasketch's Redis storage), the exact-hash table and
the shingle sets live in Redis under one namespace, so every worker process shares one
index; a Redis lock around each check-and-insert makes it atomic, so two workers adding
the same (or nearly the same) document at once keep exactly one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from app.core.errors import Unavailable
from app.core.filters.dedup_memory import CompactTables, key_hash
from app.core.urls import redact

SHINGLE_SIZE = 3
_SEED = 1  # datasketch's default MinHash seed
_WORD_RE = re.compile(r"\w+")
_SEP = "\x00"  # joins a batch's documents before its words are read (not a word character)
_WORD_OR_SEP_RE = re.compile(r"\w+|\x00")
_ASCII_SEP = " \x01 "  # the same for ASCII documents read as bytes (\x01 is kept as a word)
_ASCII_WORDS = bytes(c if chr(c).isalnum() or c in (1, 95) else 32 for c in range(128)).lower() + b" " * 128
_STR_ONLY_SPACE = re.compile(rb"[\x1c-\x1f]")  # whitespace to `str.split`, not to `bytes.split`
_SEP_HASH = 0x5EB0_5EB0_5EB0_5EB0  # the separator's stand-in among word hashes
_PAD = 0x9E3779B97F4A7C15  # the hash of the padding word of short documents
_MULT = np.uint64(0x100000001B3)  # rolling combination of word hashes into a shingle hash
_CHUNK_SHINGLES = 8192  # columns of the (permutations x shingles) matrix built at once (a few MB: in cache)
_HASHED_BATCH = 4096  # documents shingled and signed at once
_LOCKED_BATCH = 256  # documents handled per Redis lock acquisition
_JOINED_MIN = 16  # documents from which a batch's words are read joined (`_joined_word_hashes`)
_BULK_MIN = 1024  # in memory, a batch at least this long is added the bulk way
_BULK_BATCH = 1_000_000  # documents added the bulk way at once (their hashes are held together)
_WORD_CACHE_MAX = 1_000_000


class DedupError(Unavailable):
    """The shared index cannot be used (Redis unreachable, lock not obtained, bad key)."""


@dataclass(frozen=True)
class DupMatch:
    """The earlier document a new one duplicates."""

    key: str
    exact: bool  # the same text up to whitespace
    jaccard: float  # Jaccard similarity of the two shingle sets (1.0 for exact copies)


def example_text(instruction: str, input: str = "", output: str = "") -> str:
    """The text of a whole example, as deduplicated."""
    return "\n".join((instruction, input, output))


def lsh_params(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the longest bands that still make a pair at `threshold` a candidate
    with probability >= `recall` (longer bands mean fewer false candidates to verify)."""
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _exact_digest(text: str) -> bytes:
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()


def _exact_digests(texts: Sequence[str]) -> list[bytes]:
    """`_exact_digest` of each text.

    The ASCII texts are joined around a separator and their whitespace runs collapsed by
    one `bytes.split` and `join`; each text is then its part of the result, stripped. That
    equals `str.split` on ASCII but for the control characters 0x1C-0x1F, which `str.split`
    takes for whitespace and `bytes.split` does not: where one (or the separator) is among
    them, and for the other texts, each text is digested alone."""
    out: list[bytes] = [b""] * len(texts)
    plain = [i for i, t in enumerate(texts) if t.isascii()]
    if len(plain) > 1:
        data = _ASCII_SEP.join([texts[i] for i in plain]).encode("ascii")
        if data.count(b"\x01") == len(plain) - 1 and not _STR_ONLY_SPACE.search(data):
            parts = b" ".join(data.split()).split(b"\x01")
            for i, part in zip(plain, parts):
                out[i] = hashlib.blake2b(part.strip(), digest_size=16).digest()
    for i, text in enumerate(texts):
        if not out[i]:
            out[i] = _exact_digest(text)
    return out


def _blake64(word: bytes) -> int:
    """A word's hash: 64 bits of BLAKE2b of its UTF-8."""
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little")


def _fmix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    mixed: np.ndarray = x ^ (x >> np.uint32(16))
    return mixed


def _fmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    mixed: np.ndarray = x ^ (x >> np.uint64(33))
    return mixed


class ShingleHasher:
    """Shingle sets and MinHash signatures of many documents at once."""

    def __init__(self, num_perm: int = 128, shingle_size: int = SHINGLE_SIZE, seed: int = _SEED):
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        a, b = MinHash(num_perm=num_perm, seed=seed).permutations  # scheme "affine32"
        self._a = np.asarray(a, dtype=np.uint32)
        self._b = np.asarray(b, dtype=np.uint32)
        self._words: dict[str, int] = {}  # word -> hash
        self._ascii_words: dict[bytes, int] = {}  # the same, for words read as bytes

    def _word_hash(self, word: str) -> int:
        h = self._words.get(word)
        if h is None:
            if len(self._words) >= _WORD_CACHE_MAX:
                self._words.clear()
            h = _blake64(word.encode("utf-8"))
            self._words[word] = h
        return h

    def _token_hashes(self, tokens: list[Any], cache: dict[Any, int], sep: Any) -> np.ndarray:
        """The hash of each token (`sep`, the separator, stands for `_SEP_HASH`), through `cache`."""
        try:
            return np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        except KeyError:
            new = set(tokens).difference(cache)
            if len(cache) + len(new) > _WORD_CACHE_MAX:
                cache.clear()
                new = set(tokens)
            for token in new:
                cache[token] = _blake64(token if isinstance(token, bytes) else token.encode("utf-8"))
            cache[sep] = _SEP_HASH
            return np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))

    def _joined_word_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """`_word_hashes` of a batch read in one pass, or None where that cannot be done exactly.

        The documents are joined around a separator and split once, so a whole batch is
        hashed by C-level maps instead of a Python loop per word. ASCII documents (most) are
        split as bytes: a 256-byte table turns every byte that is not `\\w` into a space and
        folds A-Z (what `casefold` and `\\w` do to ASCII), then `bytes.split`. Other
        documents go through the regular expression on the folded join: the separator is
        not a word character, so no word spans two documents, and case folding maps each
        character alone, so folding the join folds each document. A document holding the
        separator itself, or a word whose hash is the separator's, shows as a wrong count of
        separators: None, and the caller reads the batch one document at a time."""
        if all(t.isascii() for t in texts):
            data = _ASCII_SEP.join(texts).encode("ascii")
            if data.count(b"\x01") != len(texts) - 1:
                return None
            tokens: list[Any] = data.translate(_ASCII_WORDS).split()
            hashes = self._token_hashes(tokens, self._ascii_words, b"\x01")
        else:
            tokens = _WORD_OR_SEP_RE.findall(_SEP.join(texts).casefold())
            hashes = self._token_hashes(tokens, self._words, _SEP)
        seps = np.flatnonzero(hashes == np.uint64(_SEP_HASH))
        if len(seps) != len(texts) - 1:
            return None
        return np.delete(hashes, seps), np.diff(np.concatenate([[-1], seps, [len(hashes)]])) - 1

    def _word_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every word's hash, the documents one after another; each document's word count).

        Words are the `\\w+` runs of the case-folded text, each hashed by `_blake64` of its
        UTF-8 (ASCII and other documents read by `_joined_word_hashes` apart, then put back
        in order)."""
        if len(texts) < _JOINED_MIN:  # a job's check: one document, where joining only costs
            return self._each_word_hashes(texts)
        ascii_docs = np.fromiter((t.isascii() for t in texts), dtype=bool, count=len(texts))
        groups = [np.flatnonzero(ascii_docs), np.flatnonzero(~ascii_docs)]
        parts = []
        for group in groups:
            members = [texts[i] for i in group.tolist()]
            part = self._joined_word_hashes(members) if len(members) > 1 else None
            parts.append(part if part is not None else self._each_word_hashes(members))
        if not len(groups[1]):
            return parts[0]
        if not len(groups[0]):
            return parts[1]
        lengths = np.zeros(len(texts), dtype=np.int64)
        for group, (_, counts) in zip(groups, parts):
            lengths[group] = counts
        starts = np.cumsum(lengths) - lengths
        flat = np.empty(int(lengths.sum()), dtype=np.uint64)
        for group, (hashes, counts) in zip(groups, parts):  # each group's words to its documents' places
            own = np.cumsum(counts) - counts
            flat[np.repeat(starts[group] - own, counts) + np.arange(len(hashes))] = hashes
        return flat, lengths

    def _each_word_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`_word_hashes`, one document at a time."""
        cache = self._words
        flat: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for d, text in enumerate(texts):
            words = _WORD_RE.findall(text.casefold())
            flat.extend(cache.get(w) or self._word_hash(w) for w in words)
            lengths[d] = len(words)
        return np.array(flat, dtype=np.uint64), lengths

    def shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every document's shingle hashes (sorted, unique uint32) in one array, with the
        bounds of each: document d's are `values[bounds[d]:bounds[d + 1]]`."""
        n = self.shingle_size
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        if not len(texts):
            return np.empty(0, dtype=np.uint32), bounds
        if len(texts) == 1:  # a job's check: the same in fewer steps
            w = self._each_word_hashes(texts)[0]
            if 0 < len(w) < n:
                w = np.concatenate([w, np.full(n - len(w), _PAD, dtype=np.uint64)])
            if not len(w):
                return np.empty(0, dtype=np.uint32), bounds
            rolled = w[: len(w) - n + 1].copy()
            for t in range(1, n):
                rolled = rolled * _MULT + w[t : len(w) - n + 1 + t]
            hashed = (_fmix64(rolled) >> np.uint64(32)).tolist()  # a few dozen: a set beats np.unique
            one = np.array(sorted(set(hashed)), dtype=np.uint32)
            bounds[1] = len(one)
            return one, bounds
        w, lengths = self._word_hashes(texts)
        short = (lengths > 0) & (lengths < n)
        if short.any():  # a document of one or two words: padded to one shingle
            ends = np.cumsum(lengths)
            w = np.insert(w, np.repeat(ends[short], n - lengths[short]), np.uint64(_PAD))
            lengths = np.where(short, n, lengths)
        counts = np.maximum(lengths - n + 1, 0)
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.uint32), bounds
        rolled = w[: len(w) - n + 1].copy()
        for t in range(1, n):
            rolled = rolled * _MULT + w[t : len(w) - n + 1 + t]
        doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        starts = np.repeat(doc_start, counts) + (np.arange(total) - np.repeat(first, counts))
        shingles = _fmix64(rolled[starts]) >> np.uint64(32)
        doc = np.repeat(np.arange(len(texts), dtype=np.uint64), counts)
        keyed = np.sort((doc << np.uint64(32)) | shingles)  # by document, then hash
        keyed = keyed[np.concatenate([[True], keyed[1:] != keyed[:-1]])]  # (np.unique is slower)
        bounds[:] = np.searchsorted(keyed >> np.uint64(32), np.arange(len(texts) + 1, dtype=np.uint64))
        return (keyed & np.uint64(0xFFFFFFFF)).astype(np.uint32), bounds

    def shingle_sets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each document's shingle hashes: sorted, unique uint32."""
        values, bounds = self.shingles(texts)
        return [values[bounds[d] : bounds[d + 1]] for d in range(len(texts))]

    def signatures(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """(documents x num_perm) uint32 MinHash values; an empty set gives all 2**32-1.

        Equal to `MinHash(num_perm, seed, hashfunc=identity).update_batch(set)`.
        """
        if len(sets) == 1:  # a job's check: its set as it is
            values, bounds = sets[0], np.array([0, len(sets[0])], dtype=np.int64)
        else:
            bounds = np.zeros(len(sets) + 1, dtype=np.int64)
            bounds[1:] = np.cumsum([len(s) for s in sets])
            values = np.concatenate(list(sets)) if len(sets) else np.empty(0, dtype=np.uint32)
        return self.signatures_of(values.astype(np.uint32, copy=False), bounds)

    def signatures_of(self, values: np.ndarray, bounds: np.ndarray, perms: int | None = None) -> np.ndarray:
        """`signatures` of the sets in `shingles`' form (one array, with bounds); only the
        first `perms` permutations' values if given (banding reads no others)."""
        perms = self.num_perm if perms is None else perms
        a, b = self._a[:perms], self._b[:perms]
        docs = len(bounds) - 1
        if docs == 1 and bounds[1] > bounds[0]:  # a job's check: one document, its shingles at once
            mixed = _fmix32(values[bounds[0] : bounds[1]])
            permuted = a[:, None] * mixed[None, :]
            permuted += b[:, None]
            one: np.ndarray = permuted.min(axis=1)[None, :]
            return one
        out = np.full((docs, perms), np.iinfo(np.uint32).max, dtype=np.uint32)
        nonempty = np.flatnonzero(bounds[1:] > bounds[:-1])
        ends = bounds[nonempty + 1]
        d = 0
        while d < len(nonempty):
            # documents whose shingles make about _CHUNK_SHINGLES rows (a long one alone)
            limit = bounds[nonempty[d]] + _CHUNK_SHINGLES
            end = max(d + 1, int(np.searchsorted(ends, limit, "right")))
            chunk = nonempty[d:end]
            lo, hi = bounds[chunk[0]], bounds[chunk[-1] + 1]
            mixed = _fmix32(values[lo:hi])
            # (permutations x shingles): each document's shingles are contiguous in memory
            permuted = a[:, None] * mixed[None, :]
            permuted += b[:, None]
            out[chunk] = np.minimum.reduceat(permuted, bounds[chunk] - lo, axis=1).T
            d = end
        return out

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique arrays (0.0 when both are empty)."""
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 0.0


# --- where the index lives -----------------------------------------------------------------
class _RedisTables:
    """Exact hashes, shingle sets and the lock, in Redis hashes under `prefix`."""

    def __init__(self, client: Any, prefix: str, lock_timeout: float):
        self.client = client
        self.prefix = prefix
        self._exact = f"{prefix}exact"
        self._shingles = f"{prefix}shingles"
        self._lock_name = f"{prefix}lock"
        self._lock_timeout = lock_timeout

    @contextmanager
    def locked(self) -> Iterator[None]:
        from redis.exceptions import LockError

        lock = self.client.lock(self._lock_name, timeout=self._lock_timeout, blocking_timeout=2 * self._lock_timeout)
        if not lock.acquire():
            raise DedupError(f"could not lock the near-duplicate index {self.prefix!r} within {2 * self._lock_timeout:g}s")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # expired while held: the work is done, nothing to undo
                pass

    def get_exact(self, digest: bytes) -> str | None:
        value = self.client.hget(self._exact, digest)
        return value.decode("utf-8") if value is not None else None

    def add(self, key: str, digest: bytes, shingles: np.ndarray) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(self._exact, digest, key.encode("utf-8"))
        pipe.hset(self._shingles, key.encode("utf-8"), shingles.astype("<u4").tobytes())
        pipe.execute()

    def get_shingles(self, keys: list[str]) -> list[np.ndarray | None]:
        values = self.client.hmget(self._shingles, [k.encode("utf-8") for k in keys])
        return [np.frombuffer(v, dtype="<u4").astype(np.uint32) if v is not None else None for v in values]

    def size(self) -> int:
        return int(self.client.hlen(self._shingles))

    def clear(self) -> None:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
        batch = []
        for name in self.client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)


def redis_connection_kwargs(url: str) -> dict[str, Any]:
    """`redis.Redis(**kwargs)` arguments for a redis://, rediss:// or unix:// URL.

    datasketch builds its own clients from a dict, so the URL is spelled out here.
    """
    from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url

    parsed = parse_url(url)
    kwargs: dict[str, Any] = {}
    connection_class = parsed.pop("connection_class", None)
    if connection_class is UnixDomainSocketConnection:
        kwargs["unix_socket_path"] = parsed.pop("path")
    elif connection_class is SSLConnection:
        kwargs["ssl"] = True
    for name in ("host", "port", "db", "username", "password"):
        if parsed.get(name) is not None:
            kwargs[name] = parsed[name]
    return kwargs


# --- the index -------------------------------------------------------------------------------
class NearDupIndex:
    """Keep-first near-duplicate index over whole examples. See the module docstring.

    `check_and_add(key, text)` returns the key of an earlier document that `text`
    duplicates (exact copy up to whitespace, or shingle Jaccard >= `threshold`), or None
    after adding `text` under `key`. Only kept documents are indexed, so each cluster is
    represented by its first document. Checking the same key again with the same text
    returns None (a retried worker keeps its document); reusing a key for another text
    raises `DedupError`.

    `redis_url` set: the index lives in Redis under `namespace` (shared by every process
    that opens the same namespace with the same parameters); otherwise in memory.
    """

    def __init__(
        self,
        threshold: float = 0.9,
        num_perm: int = 128,
        redis_url: str | None = None,
        namespace: str = "sprout:dedup",
        shingle_size: int = SHINGLE_SIZE,
        lock_timeout: float = 60.0,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < 16:
            raise ValueError(f"num_perm must be at least 16, got {num_perm}")
        if shingle_size < 1:
            raise ValueError(f"shingle_size must be at least 1, got {shingle_size}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.namespace = namespace
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self._hasher = ShingleHasher(num_perm, shingle_size)
        # Parameters are part of the prefix: an index built with others is another index.
        self.prefix = f"{namespace}:j{threshold:g}:p{num_perm}:b{self.bands}x{self.rows}:n{shingle_size}:"
        self._lsh: MinHashLSH | None = None
        if redis_url:
            import redis

            kwargs = redis_connection_kwargs(redis_url)
            client = redis.Redis(**kwargs)
            try:
                client.ping()
            except redis.RedisError as exc:
                raise DedupError(f"cannot reach Redis at {redact(redis_url)}: {exc}") from None
            storage = {"type": "redis", "basename": f"{self.prefix}lsh".encode(), "redis": kwargs}
            self._tables: CompactTables | _RedisTables = _RedisTables(client, self.prefix, lock_timeout)
            self._lsh = MinHashLSH(num_perm=num_perm, params=(self.bands, self.rows), storage_config=storage,
                                   prepickle=False)
        else:
            self._tables = CompactTables(self.bands, self.rows)

    def __len__(self) -> int:
        """How many documents the index holds (the kept ones)."""
        return self._tables.size()

    def check_and_add(self, key: str, text: str) -> str | None:
        match = self.match_and_add_many([(key, text)])[0]
        return match.key if match else None

    def check_and_add_many(self, items: Iterable[tuple[str, str]]) -> list[str | None]:
        """`check_and_add` for each (key, text) in order; later items see earlier ones."""
        return [m.key if m else None for m in self.match_and_add_many(items)]

    def match_and_add_many(self, items: Iterable[tuple[str, str]]) -> list[DupMatch | None]:
        """Like `check_and_add_many`, with how each duplicate matched.

        In memory, a batch of at least `_BULK_MIN` documents (a build seeding its index
        with a dataset's rows) goes the bulk way (`_match_and_add_bulk`), with the same
        decisions. Otherwise shingles and signatures are computed a few thousand documents
        at a time with numpy, outside any lock; the checks and inserts then run in order
        under the shared lock, a few hundred documents per acquisition so that other
        workers are never held up for long.
        """
        items = list(items)
        if isinstance(self._tables, CompactTables) and len(items) >= _BULK_MIN:
            results: list[DupMatch | None] = []
            for start in range(0, len(items), _BULK_BATCH):
                results += self._match_and_add_bulk(items[start : start + _BULK_BATCH])
            return results
        return self._match_and_add_each(items)

    def _match_and_add_each(self, items: list[tuple[str, str]]) -> list[DupMatch | None]:
        """`match_and_add_many` one document after another (small batches, and Redis)."""
        results: list[DupMatch | None] = []
        for start in range(0, len(items), _HASHED_BATCH):
            chunk = items[start : start + _HASHED_BATCH]
            texts = [t for _, t in chunk]
            digests = [_exact_digest(t) for t in texts]
            sets = self._hasher.shingle_sets(texts)
            signatures = self._hasher.signatures(sets)
            if isinstance(self._tables, CompactTables):
                bands = self._tables.band_hashes(signatures)
                with self._tables.locked():
                    for i in range(len(chunk)):
                        results.append(self._match_and_add_compact(chunk[i][0], digests[i], sets[i], bands[i]))
                continue
            for sub in range(0, len(chunk), _LOCKED_BATCH):
                with self._tables.locked():
                    for i in range(sub, min(sub + _LOCKED_BATCH, len(chunk))):
                        results.append(self._match_and_add(chunk[i][0], digests[i], sets[i], signatures[i]))
        return results

    def _match_and_add_bulk(self, items: list[tuple[str, str]]) -> list[DupMatch | None]:
        """`_match_and_add_each` on the in-memory tables, the same decisions at a fraction of the cost.

        Every document is hashed first, `_HASHED_BATCH` at a time (digests, shingle sets,
        band hashes; the signatures are dropped once banded). A document can only be
        decided otherwise than "kept" through another document it shares a band hash, its
        digest or its key with, in the batch or in the tables (`CompactTables.meeting`);
        the few that share one are decided in order exactly as one by one would, against
        the tables and the batch's documents kept before them; every other document is
        kept. The kept ones then go into the tables at once (`CompactTables.add_many`: one
        sorted merge of the band hashes, not a merge every sixteenth of the run). A key
        reused for another text raises as one by one does, after the documents before it
        are added.
        """
        tables = self._tables
        assert isinstance(tables, CompactTables)
        n = len(items)
        keys = [k for k, _ in items]
        digests = np.empty((n, 16), dtype=np.uint8)
        band_parts, shingle_parts, length_parts = [], [], []
        for start in range(0, n, _HASHED_BATCH):
            texts = [t for _, t in items[start : start + _HASHED_BATCH]]
            digests[start : start + len(texts)] = np.frombuffer(b"".join(_exact_digests(texts)), dtype=np.uint8).reshape(-1, 16)
            values, bounds = self._hasher.shingles(texts)
            band_parts.append(tables.band_hashes(self._hasher.signatures_of(values, bounds, tables.bands * tables.rows)))
            shingle_parts.append(values)
            length_parts.append(np.diff(bounds))
        all_bands = np.concatenate(band_parts)
        shingles = np.concatenate(shingle_parts)
        lengths = np.concatenate(length_parts)
        del band_parts, shingle_parts
        ends = np.cumsum(lengths)
        key_hashes = np.fromiter((key_hash(k) for k in keys), dtype=np.uint64, count=n)
        with tables.locked():
            meets, band_hashes, band_docs = tables.meeting(all_bands, digests[:, :8].copy().view("<u8").ravel(), key_hashes)
            meeting = np.flatnonzero(meets)
            bands = dict(zip(meeting.tolist(), all_bands[meeting]))  # only theirs are read again
            del all_bands
            kept = np.ones(n, dtype=bool)
            results: list[DupMatch | None] = [None] * n
            by_band: dict[int, list[int]] = {}  # band hash -> meeting documents kept so far
            by_digest: dict[bytes, int] = {}
            by_key: set[str] = set()
            failed = None
            for i in meeting.tolist():
                key, digest = keys[i], digests[i].tobytes()
                own = shingles[ends[i] - lengths[i] : ends[i]]
                earlier = tables.get_exact(digest)
                if earlier is None and digest in by_digest:
                    earlier = keys[by_digest[digest]]
                if earlier is not None:
                    kept[i] = False
                    results[i] = None if earlier == key else DupMatch(earlier, True, 1.0)
                    continue
                mine = bands[i].tolist()
                batch = sorted({j for h in mine for j in by_band.get(h, ())})
                best = self._best(own, tables.candidates(bands[i]) +
                                  [(keys[j], shingles[ends[j] - lengths[j] : ends[j]]) for j in batch])
                if best is not None:
                    kept[i] = False
                    results[i] = best
                    continue
                if key in by_key or tables.has_key(key):
                    failed = i
                    kept[i:] = False
                    break
                for h in mine:
                    by_band.setdefault(h, []).append(i)
                by_digest[digest] = i
                by_key.add(key)
            tables.add_many(keys, key_hashes, digests, shingles, lengths, band_hashes, band_docs, kept)
        if failed is not None:
            raise DedupError(f"key {keys[failed]!r} is already in the near-duplicate index with another text")
        return results

    def _match_and_add_compact(self, key: str, digest: bytes, shingles: np.ndarray, bands: np.ndarray) -> DupMatch | None:
        """`_match_and_add` on the in-memory tables: the same decisions, other storage."""
        tables = self._tables
        assert isinstance(tables, CompactTables)
        earlier = tables.get_exact(digest)
        if earlier is not None:
            return None if earlier == key else DupMatch(earlier, True, 1.0)
        best = self._best(shingles, tables.candidates(bands))
        if best is not None:
            return best
        if tables.has_key(key):
            raise DedupError(f"key {key!r} is already in the near-duplicate index with another text")
        tables.add(key, digest, shingles, bands)
        return None

    def _best(self, shingles: np.ndarray, candidates: Iterable[tuple[str, np.ndarray | None]]) -> DupMatch | None:
        """The most similar candidate at or above the threshold (ties: the smallest key)."""
        best: DupMatch | None = None
        for cand, cand_set in candidates:
            if cand_set is None:
                continue
            sim = jaccard(shingles, cand_set)
            if sim >= self.threshold and (best is None or sim > best.jaccard or (sim == best.jaccard and cand < best.key)):
                best = DupMatch(cand, False, sim)
        return best

    def _match_and_add(self, key: str, digest: bytes, shingles: np.ndarray, signature: np.ndarray) -> DupMatch | None:
        earlier = self._tables.get_exact(digest)
        if earlier is not None:
            return None if earlier == key else DupMatch(earlier, True, 1.0)
        assert isinstance(self._tables, _RedisTables) and self._lsh is not None
        minhash = self._hasher.lean(signature)
        candidates = [k.decode("utf-8") for k in self._lsh.query(minhash)]
        if candidates:
            best = self._best(shingles, zip(candidates, self._tables.get_shingles(candidates)))
            if best is not None:
                return best
        try:
            self._lsh.insert(key.encode("utf-8"), minhash, check_duplication=True)
        except ValueError:
            raise DedupError(f"key {key!r} is already in the near-duplicate index with another text") from None
        self._tables.add(key, digest, shingles)
        return None

    def clear(self) -> None:
        """Forget every document (in Redis: delete every key under this index's prefix)."""
        self._tables.clear()


__all__ = [
    "SHINGLE_SIZE",
    "DedupError",
    "DupMatch",
    "NearDupIndex",
    "ShingleHasher",
    "example_text",
    "jaccard",
    "lsh_params",
]
