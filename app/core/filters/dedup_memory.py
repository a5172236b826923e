"""The near-duplicate index of one process in numpy arrays: under a kilobyte a document.

datasketch's in-memory `MinHashLSH` keeps, for every document and band, a bytes key, a set
and two dict entries, and the exact check needs every document's shingle set beside it:
about 5 KB a document, 5 GB at a million. Here every lookup table is a `HashMultimap`
(64-bit hash -> document numbers: a sorted numpy run and a small dict of recent inserts,
merged into the run when the dict grows; a large batch, `CompactTables.add_many`, is merged
in at once), and the shingle sets, digests and keys are flat arrays and one list. A document costs about 12 bytes per band, 4 per shingle, its
16-byte digest and its key.

Band hashes are 64-bit hashes of a band's rows (the band's number mixed in), so two
documents whose rows agree in a band always meet, as in datasketch; a hash collision
only adds a candidate, which the exact Jaccard check then turns away. Decisions are
therefore those of the datasketch tables (`tests/unit/test_dedup.py` compares them).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_MERGE_MIN = 65536  # recent entries held in the dict before the first merge
_BAND_CHUNK = 256  # documents banded at once (their salted signatures: a few hundred KB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a 64-bit hash of each uint64."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def _mix_in_place(x: np.ndarray) -> None:
    """`_mix`, overwriting `x` (no temporary arrays but one)."""
    t = x >> np.uint64(30)
    x ^= t
    x *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(x, np.uint64(27), out=t)
    x ^= t
    x *= np.uint64(0x94D049BB133111EB)
    np.right_shift(x, np.uint64(31), out=t)
    x ^= t


@functools.cache
def _band_numbers(bands: int) -> np.ndarray:
    """Each band's number, hashed: where a band's hash starts (made once per band count)."""
    return _mix(np.arange(1, bands + 1, dtype=np.uint64))


@functools.cache
def _salts(n: int) -> np.ndarray:
    """One hashed salt per signature position (made once per band shape)."""
    return _mix(np.arange(1, n + 1, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents x bands) uint64: each band's rows hashed, with the band's number.

    Every value is salted by its position and mixed, a band's rows summed (mod 2**64) and
    the sum mixed with the band's number: the same few numpy steps whatever the number of
    documents (a job's check is one document: about 15 us, where a mix per row cost five
    times that), taken `_BAND_CHUNK` documents at a time so that the wide array stays in
    cache (a million-document seeding is faster so too). The values are those of every
    chunking, so one document and a batch get the same hashes. They live only in memory,
    rebuilt at each seeding (the Redis mode uses datasketch's tables), and two documents
    whose rows agree in a band always get the same hash; a collision only adds a candidate
    that the exact Jaccard check turns away, so the index's decisions do not depend on them."""
    docs, width = len(signatures), bands * rows
    out = np.empty((docs, bands), dtype=np.uint64)
    salts = _salts(width)
    with np.errstate(over="ignore"):
        for lo in range(0, docs, _BAND_CHUNK):
            x = signatures[lo : lo + _BAND_CHUNK, :width].astype(np.uint64)
            x += salts
            _mix_in_place(x)
            np.add.reduce(x.reshape(len(x), bands, rows), axis=2, dtype=np.uint64, out=out[lo : lo + _BAND_CHUNK])
        out ^= _band_numbers(bands)
        _mix_in_place(out)
    return out


def digest_hash(digest: bytes) -> int:
    """A uint64 of a digest (its first 8 bytes: the digest is a hash already)."""
    return int.from_bytes(digest[:8], "little")


def key_hash(key: str) -> int:
    """A uint64 of a key (Python's string hash: the tables live in one process)."""
    return hash(key) & 0xFFFFFFFFFFFFFFFF


class _Growing:
    """A numpy array with amortised O(1) appends at its end."""

    def __init__(self, dtype: type) -> None:
        self._data: np.ndarray = np.zeros(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        if self.size == 0 and len(values) > len(self._data) and values.flags.owndata:  # a first large batch: kept, not copied
            self._data = values.astype(self._data.dtype, copy=False)
            self.size = len(values)
            return
        end = self.size + len(values)
        if end > len(self._data):
            grown = np.zeros(max(end, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = values
        self.size = end

    def view(self) -> np.ndarray:
        return self._data[: self.size]


class HashMultimap:
    """uint64 hash -> document numbers (int32), many per hash, appended one document at a time.

    Lookups binary-search a sorted run and read a dict of the entries added since its last
    merge; the dict is merged in (one linear pass) once it holds a sixteenth of the run."""

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)
        self._docs = np.empty(0, dtype=np.int32)
        self._recent: dict[int, list[int]] = {}
        self._recent_n = 0

    def __len__(self) -> int:
        return len(self._hashes) + self._recent_n

    def add(self, hashes: list[int], doc: int) -> None:
        recent = self._recent
        for h in hashes:
            docs = recent.get(h)
            if docs is None:
                recent[h] = [doc]
            else:
                docs.append(doc)
        self._recent_n += len(hashes)
        if self._recent_n >= max(_MERGE_MIN, len(self._hashes) // 16):
            self._merge()

    def get(self, hashes: np.ndarray) -> list[int]:
        """Every document stored under any of `hashes` (a document once per hash it holds)."""
        out: list[int] = []
        stored = self._hashes
        if len(stored):
            lo = np.searchsorted(stored, hashes, "left")
            found = stored[np.minimum(lo, len(stored) - 1)] == hashes
            if found.any():  # most lookups find nothing: the end of a run only where one starts
                hit = hashes[found]
                for a, b in zip(lo[found].tolist(), np.searchsorted(stored, hit, "right").tolist()):
                    out.extend(self._docs[a:b].tolist())
        recent = self._recent
        for h in hashes.tolist():
            docs = recent.get(h)
            if docs:
                out.extend(docs)
        return out

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each of `hashes` is stored (a bool per hash)."""
        if self._recent:
            self._merge()
        stored = self._hashes
        if not len(stored):
            return np.zeros(len(hashes), dtype=bool)
        at = np.minimum(np.searchsorted(stored, hashes), len(stored) - 1)
        found: np.ndarray = stored[at] == hashes
        return found

    def extend(self, hashes: np.ndarray, docs: np.ndarray) -> None:
        """Add many (hash, document) pairs at once, `hashes` sorted: one merge into the run."""
        if self._recent:
            self._merge()
        if not len(self._hashes):
            self._hashes, self._docs = hashes.astype(np.uint64, copy=False), docs.astype(np.int32, copy=False)
            return
        at = np.searchsorted(self._hashes, hashes, "right")
        self._hashes = np.insert(self._hashes, at, hashes)
        self._docs = np.insert(self._docs, at, docs.astype(np.int32))

    def _merge(self) -> None:
        keys = np.fromiter(self._recent.keys(), dtype=np.uint64, count=len(self._recent))
        counts = np.fromiter(map(len, self._recent.values()), dtype=np.int64, count=len(self._recent))
        docs = np.fromiter((d for ds in self._recent.values() for d in ds), dtype=np.int32, count=self._recent_n)
        keys = np.repeat(keys, counts)
        order = np.argsort(keys, kind="stable")
        keys, docs = keys[order], docs[order]
        at = np.searchsorted(self._hashes, keys, "right")
        self._hashes = np.insert(self._hashes, at, keys)
        self._docs = np.insert(self._docs, at, docs)
        self._recent = {}
        self._recent_n = 0


class CompactTables:
    """Everything the in-memory near-duplicate index keeps, as arrays (see the module docstring)."""

    def __init__(self, bands: int, rows: int) -> None:
        self.bands, self.rows = bands, rows
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        self._keys: list[str] = []
        self._by_band = HashMultimap()
        self._by_digest = HashMultimap()
        self._by_key = HashMultimap()
        self._digests = _Growing(np.uint8)
        self._shingles = _Growing(np.uint32)
        self._ends = _Growing(np.int64)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def size(self) -> int:
        return len(self._keys)

    def band_hashes(self, signatures: np.ndarray) -> np.ndarray:
        return band_hashes(signatures, self.bands, self.rows)

    def get_exact(self, digest: bytes) -> str | None:
        """The first document with this digest."""
        stored = self._digests.view()
        for doc in sorted(self._by_digest.get(np.array([digest_hash(digest)], dtype=np.uint64))):
            if stored[16 * doc : 16 * doc + 16].tobytes() == digest:
                return self._keys[doc]
        return None

    def has_key(self, key: str) -> bool:
        probe = np.array([key_hash(key)], dtype=np.uint64)
        return any(self._keys[doc] == key for doc in self._by_key.get(probe))

    def candidates(self, bands: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(key, shingle set) of every document sharing a band with `bands`."""
        docs = sorted(set(self._by_band.get(bands)))
        shingles, ends = self._shingles.view(), self._ends.view()
        return [(self._keys[d], shingles[(ends[d - 1] if d else 0) : ends[d]]) for d in docs]

    def meeting(self, bands: np.ndarray, digests: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """Which documents of a batch may meet another document, of the batch or of the tables.

        `bands` (documents x bands), `digests` (`digest_hash`es) and `keys` (`key_hash`es)
        are the batch's. A document meets another only through a band hash, a digest or a
        key they share (a candidate, an exact copy, a reused key), so a document that shares
        none of its hashes with anything is kept whatever the others are. Returns a bool per
        document, and the batch's band hashes sorted with each one's document (int32), which
        `add_many` takes: one sort serves both."""
        meets = np.zeros(len(keys), dtype=bool)
        flat = bands.ravel()
        order = np.argsort(flat)
        band_hashes = flat[order]
        order //= bands.shape[1]
        band_docs: np.ndarray = order.astype(np.int32)
        del order
        for hashes, docs, table in ((band_hashes, band_docs, self._by_band), (digests, None, self._by_digest),
                                    (keys, None, self._by_key)):
            if docs is None:
                docs = np.argsort(hashes)
                hashes = hashes[docs]
            same = np.flatnonzero(hashes[1:] == hashes[:-1])
            meets[docs[same]] = True
            meets[docs[same + 1]] = True
            if len(table):
                meets[docs[table.contains(hashes)]] = True
        return meets, band_hashes, band_docs

    def add_many(self, keys: list[str], key_hashes: np.ndarray, digests: np.ndarray, shingles: np.ndarray, lengths: np.ndarray,
                 band_hashes: np.ndarray, band_docs: np.ndarray, kept: np.ndarray) -> None:
        """`add` the documents of a batch marked in `kept`, in their order, at once.

        The batch's `keys` (a list, and their `key_hash`es), `digests` (documents x 16 uint8) and shingle sets (all in
        one array, `lengths` each) are all of its documents, kept or not, and `band_hashes`
        and `band_docs` its band hashes as `meeting` sorted them: the band table then takes
        one merge, not one every sixteenth of its size."""
        first = len(self._keys)
        numbers = (np.cumsum(kept, dtype=np.int64) - 1 + first).astype(np.int32)  # a kept document's number
        where = np.flatnonzero(kept)
        self._keys.extend(keys[i] for i in where.tolist())
        if kept.all():
            self._by_band.extend(band_hashes, band_docs + np.int32(first))
        else:
            take = kept[band_docs]
            self._by_band.extend(band_hashes[take], numbers[band_docs[take]])
        for table, hashes in ((self._by_digest, digests[where, :8].copy().view("<u8").ravel()),
                              (self._by_key, key_hashes[where])):
            sort = np.argsort(hashes)
            table.extend(hashes[sort], numbers[where][sort])
        self._digests.extend(digests[where].ravel())
        self._shingles.extend(shingles if kept.all() else shingles[np.repeat(kept, lengths)])
        self._ends.extend(self._shingles.size - int(lengths[where].sum()) + np.cumsum(lengths[where]))

    def add(self, key: str, digest: bytes, shingles: np.ndarray, bands: np.ndarray) -> None:
        doc = len(self._keys)
        self._keys.append(key)
        self._by_band.add(bands.tolist(), doc)
        self._by_digest.add([digest_hash(digest)], doc)
        self._by_key.add([key_hash(key)], doc)
        self._digests.extend(np.frombuffer(digest, dtype=np.uint8))
        self._shingles.extend(shingles)
        self._ends.extend(np.array([self._shingles.size], dtype=np.int64))
