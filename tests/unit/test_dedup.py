"""Near-duplicate index in memory: exact and near copies found, distinct documents kept, the
compact tables deciding like datasketch's."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from app.core.filters import dedup, dedup_memory
from app.core.filters.dedup import (
    DedupError,
    NearDupIndex,
    ShingleHasher,
    example_text,
    jaccard,
    lsh_params,
)


def document(rng: random.Random, words: int = 80) -> str:
    vocab = [f"word{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(words))


def test_signatures_equal_datasketch_minhash():
    hasher = ShingleHasher(num_perm=128)
    texts = ["The quick brown fox jumps over the lazy dog.", "Hi", "", "!!!", "Ünïcode wörds, ünïcode WÖRDS"]
    sets = hasher.shingle_sets(texts)
    signatures = hasher.signatures(sets)
    for shingles, signature in zip(sets, signatures):
        reference = MinHash(num_perm=128, hashfunc=lambda v: v)
        reference.update_batch([int(s) for s in shingles])
        assert np.array_equal(reference.hashvalues, signature)
    assert [len(s) for s in sets] == [7, 1, 0, 0, 2]  # 9 words; 1 padded shingle; none; none; 4 words
    assert np.isin(hasher.shingle_sets(["ünïcode wörds ünïcode"])[0], sets[4]).all()


def test_shingles_ignore_case_punctuation_and_spacing():
    hasher = ShingleHasher()
    a, b = hasher.shingle_sets(["Name three  primary colours.", "name three primary colours"])
    assert np.array_equal(a, b)


def test_band_choice_finds_pairs_at_the_threshold():
    bands, rows = lsh_params(0.9, 128)
    assert (bands, rows) == (12, 10)
    assert 1 - (1 - 0.9**rows) ** bands >= 0.99
    assert bands * rows <= 128


def test_exact_copies_are_caught_whatever_the_spacing():
    index = NearDupIndex()
    text = example_text("Name three primary colours.", "", "Red, yellow and blue.")
    assert index.check_and_add("a", text) is None
    assert index.check_and_add("b", "  " + text.replace(" ", "   ") + "\n") == "a"
    match = index.match_and_add_many([("c", text)])[0]
    assert match is not None and match.key == "a" and match.exact and match.jaccard == 1.0
    assert len(index) == 1  # duplicates are not indexed


def test_near_duplicates_found_distinct_documents_kept():
    rng = random.Random(0)
    index = NearDupIndex(threshold=0.9)
    hasher = ShingleHasher()
    originals = [document(rng) for _ in range(200)]
    assert index.check_and_add_many([(f"o{i}", t) for i, t in enumerate(originals)]) == [None] * 200
    found = 0
    for i, text in enumerate(originals[:50]):
        words = text.split()
        words[-1] = "changed"  # one edited word at the end: 3 of 78 shingles differ
        near = " ".join(words)
        j = jaccard(*hasher.shingle_sets([text, near]))
        assert j >= 0.9
        match = index.match_and_add_many([(f"n{i}", near)])[0]
        found += match is not None and match.key == f"o{i}" and not match.exact and match.jaccard == pytest.approx(j)
    assert found >= 49  # a pair at J >= 0.9 is a candidate with probability >= 0.99
    fresh = [document(rng) for _ in range(200)]
    assert index.check_and_add_many([(f"f{i}", t) for i, t in enumerate(fresh)]) == [None] * 200


def test_similar_but_not_near_duplicate_documents_are_kept():
    rng = random.Random(1)
    hasher = ShingleHasher()
    index = NearDupIndex(threshold=0.9)
    kept = 0
    for i in range(40):
        text = document(rng, 60)
        words = text.split()
        for k in range(0, 60, 10):  # every tenth word edited: J around 0.5
            words[k] = f"edit{k}"
        other = " ".join(words)
        assert jaccard(*hasher.shingle_sets([text, other])) < 0.9
        assert index.check_and_add(f"a{i}", text) is None
        kept += index.check_and_add(f"b{i}", other) is None
    assert kept == 40  # candidates are verified with the exact Jaccard similarity


def test_first_of_a_cluster_is_kept_and_reported():
    rng = random.Random(2)
    base = document(rng, 100).split()
    texts = []
    for i in range(5):
        words = list(base)
        words[-1 - i] = f"v{i}"
        texts.append(" ".join(words))
    index = NearDupIndex()
    results = index.check_and_add_many([(f"k{i}", t) for i, t in enumerate(texts)])
    assert results[0] is None and all(r == "k0" for r in results[1:])


def test_batch_equals_one_at_a_time():
    rng = random.Random(3)
    texts = [document(rng, 40) for _ in range(30)]
    texts += [t + " extra" for t in texts[:10]] + texts[:5]
    one = NearDupIndex()
    many = NearDupIndex()
    items = [(f"k{i}", t) for i, t in enumerate(texts)]
    assert [one.check_and_add(k, t) for k, t in items] == many.check_and_add_many(items)


def test_keys_are_idempotent_for_the_same_text_only():
    index = NearDupIndex()
    assert index.check_and_add("job-1:7", "Translate this sentence into French.") is None
    assert index.check_and_add("job-1:7", "Translate this sentence into French.") is None  # a retry
    with pytest.raises(DedupError, match="already in the near-duplicate index"):
        index.check_and_add("job-1:7", "Something else entirely, with other words.")


def test_empty_and_wordless_documents():
    index = NearDupIndex()
    assert index.check_and_add("e1", "") is None
    assert index.check_and_add("e2", "") == "e1"
    assert index.check_and_add("p1", "!!!") is None  # no words: only exact copies match
    assert index.check_and_add("p2", "???") is None


def test_bad_parameters():
    with pytest.raises(ValueError):
        NearDupIndex(threshold=0)
    with pytest.raises(ValueError):
        NearDupIndex(num_perm=4)


# --- the in-memory tables against datasketch's ---------------------------------------------
def test_hash_multimap_returns_every_document_across_merges(monkeypatch):
    """Lookups equal a dict of lists's, before and after merges, with repeated hashes."""
    monkeypatch.setattr(dedup_memory, "_MERGE_MIN", 50)
    rng = random.Random(4)
    table = dedup_memory.HashMultimap()
    reference: dict[int, list[int]] = {}
    hashes = [rng.getrandbits(64) for _ in range(300)] + [0, 2**64 - 1]
    for doc in range(2000):
        mine = rng.sample(hashes, 3)
        table.add(mine, doc)
        for h in mine:
            reference.setdefault(h, []).append(doc)
        if doc % 97 == 0:
            probe = rng.sample(hashes, 5) + [12345]
            got = table.get(np.array(probe, dtype=np.uint64))
            assert sorted(got) == sorted(d for h in probe for d in reference.get(h, []))
    assert len(table) == 6000 and len(table._recent) < len(reference)  # merged at least once


@pytest.mark.parametrize("bulk", [False, True])
def test_in_memory_tables_decide_like_datasketchs_lsh(monkeypatch, bulk):
    """A stream of originals, near copies, exact copies and clusters through the compact
    tables (merging every 64 entries; one by one, or as a build's seeding adds a batch) and
    through datasketch's MinHashLSH with the exact Jaccard check: the same match, or none,
    for every document."""
    monkeypatch.setattr(dedup_memory, "_MERGE_MIN", 64)
    monkeypatch.setattr(dedup, "_BULK_MIN", 1 if bulk else 10**9)
    rng = random.Random(5)
    texts: list[str] = []
    for _ in range(400):
        r = rng.random()
        if r < 0.5 or not texts:
            texts.append(document(rng, rng.randint(5, 90)))
        elif r < 0.8:  # a near copy: one or two words edited
            words = rng.choice(texts).split()
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = f"w{rng.randrange(50)}"
            texts.append(" ".join(words))
        else:
            texts.append("  " + rng.choice(texts))
    index = NearDupIndex(threshold=0.8)
    got = index.match_and_add_many([(f"k{i}", t) for i, t in enumerate(texts)])

    hasher = ShingleHasher()
    lsh = MinHashLSH(num_perm=128, params=(index.bands, index.rows))
    stored: dict[str, np.ndarray] = {}
    exact: dict[str, str] = {}
    expected: list[tuple[str, bool, float] | None] = []
    for i, (text, shingles, signature) in enumerate(
            zip(texts, hasher.shingle_sets(texts), hasher.signatures(hasher.shingle_sets(texts)))):
        norm = " ".join(text.split())
        if norm in exact:
            expected.append((exact[norm], True, 1.0))
            continue
        sims = [(jaccard(shingles, stored[k]), k) for k in lsh.query(hasher.lean(signature))]
        sims = [(s, k) for s, k in sims if s >= 0.8]
        if sims:
            s = max(s for s, _ in sims)
            best = min(k for s2, k in sims if s2 == s)
            expected.append((best, False, s))
            continue
        expected.append(None)
        lsh.insert(f"k{i}", hasher.lean(signature))
        stored[f"k{i}"] = shingles
        exact[norm] = f"k{i}"
    assert [(m.key, m.exact, m.jaccard) if m else None for m in got] == expected
    assert sum(m is not None and not m.exact for m in got) > 40 and sum(m is None for m in got) > 100
    assert len(index) == sum(m is None for m in got)


# --- the bulk path (a build seeding its index) against one by one ---------------------------
TRICKY = ["", "!!!", "a", "a b", "ΑΣ ΟΔΟΣ σ", "x\x00y z w", "x\x01y z w", "İstanbul ǅ ß straße Straße",
          "don’t stop — now", "tab\tand\nnew  lines", "under_score snake_case 42 4 2"]


def stream(rng: random.Random, n: int) -> list[str]:
    """Originals, near copies, exact copies up to spacing, and odd documents, in a random order."""
    texts: list[str] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45 or not texts:
            texts.append(document(rng, rng.randint(3, 60)))
        elif r < 0.7:
            words = rng.choice(texts).split() or ["w"]
            words[rng.randrange(len(words))] = f"w{rng.randrange(30)}"
            texts.append(" ".join(words))
        elif r < 0.85:
            texts.append(" " + rng.choice(texts).replace(" ", "  ") + "\n")
        else:
            texts.append(rng.choice(TRICKY) + rng.choice(["", " " + document(rng, 5)]))
    return texts


def state(index: NearDupIndex) -> tuple:
    """Everything the in-memory tables hold, whatever the order inside a hash's documents."""
    tables = index._tables
    assert isinstance(tables, dedup_memory.CompactTables)

    def pairs(table: dedup_memory.HashMultimap) -> list[tuple[int, int]]:
        out = list(zip(table._hashes.tolist(), table._docs.tolist()))
        return sorted(out + [(h, d) for h, docs in table._recent.items() for d in docs])

    return (list(tables._keys), tables._digests.view().tobytes(), tables._shingles.view().tolist(),
            tables._ends.view().tolist(), pairs(tables._by_band), pairs(tables._by_digest), pairs(tables._by_key))


def test_word_hashes_of_a_batch_equal_each_documents():
    """The joined reading (bytes for ASCII, one regular expression for the rest) gives each
    document's words' hashes, in order, as reading it alone does; a document holding a
    separator sends its batch one document at a time."""
    rng = random.Random(7)
    texts = [rng.choice(TRICKY) + " " + document(rng, rng.randint(0, 12)) for _ in range(300)]
    for batch in (texts, [t for t in texts if t.isascii() and "\x01" not in t],
                  [t for t in texts if not t.isascii() and "\x00" not in t], TRICKY, TRICKY[:1]):
        hasher = ShingleHasher()
        flat, lengths = hasher._word_hashes(batch)
        alone, alone_lengths = ShingleHasher()._each_word_hashes(batch)
        assert flat.tolist() == alone.tolist() and lengths.tolist() == alone_lengths.tolist()
        assert [s.tolist() for s in hasher.shingle_sets(batch)] == [ShingleHasher().shingle_sets([t])[0].tolist() for t in batch]


@pytest.mark.parametrize("merge_min", [64, 65536])
def test_bulk_path_builds_the_same_index_as_one_by_one(monkeypatch, merge_min):
    """A batch seeded the bulk way, on top of documents added before, decides every document
    as one by one does and leaves the same tables: the same later decisions."""
    monkeypatch.setattr(dedup_memory, "_MERGE_MIN", merge_min)
    monkeypatch.setattr(dedup, "_BULK_MIN", 200)
    rng = random.Random(6)
    texts = stream(rng, 2400)
    items = [(f"k{i}", t) for i, t in enumerate(texts)]
    items[900:900] = [items[10], items[400], items[899]]  # a key added again with its text: kept once
    before, batch, later = items[:300], items[300:2000], items[2000:]
    one, bulk = NearDupIndex(threshold=0.8), NearDupIndex(threshold=0.8)
    assert one._match_and_add_each(before) == bulk._match_and_add_each(before)
    expected = one._match_and_add_each(batch)
    assert bulk.match_and_add_many(batch) == expected
    assert sum(m is None for m in expected) > 500 and sum(m is not None and not m.exact for m in expected) > 100
    assert sum(m is not None and m.exact for m in expected) > 100
    assert state(bulk) == state(one)
    assert [bulk.match_and_add_many([item]) for item in later] == [one.match_and_add_many([item]) for item in later]
    assert state(bulk) == state(one)


def test_bulk_path_reused_key_raises_after_adding_the_documents_before_it(monkeypatch):
    monkeypatch.setattr(dedup, "_BULK_MIN", 2)
    rng = random.Random(8)
    items = [(f"k{i}", document(rng, 20)) for i in range(50)]
    items[30] = ("k3", document(rng, 20))  # k3 again, another text
    one, bulk = NearDupIndex(), NearDupIndex()
    with pytest.raises(DedupError, match="'k3' is already"):
        one._match_and_add_each(items)
    with pytest.raises(DedupError, match="'k3' is already"):
        bulk.match_and_add_many(items)
    assert len(bulk) == 30 and state(bulk) == state(one)


def test_digests_of_a_batch_equal_each_texts():
    texts = TRICKY + ["  a \t b\n\nc  ", "x\x1cy", "x\x1fy z", " lead", "trail ", "\x0b\x0cform feed\r"]
    for batch in (texts, [t for t in texts if t.isascii()], [t for t in texts if t.isascii() and "\x1c" not in t
                                                              and "\x1f" not in t and "\x01" not in t]):
        assert dedup._exact_digests(batch) == [dedup._exact_digest(t) for t in batch]


def test_one_documents_signature_and_band_hashes_equal_a_batchs():
    """A job's check hashes one document by shorter paths (no chunking loop, one band chunk):
    its signature and band hashes are those the same document gets in a batch, across the
    band hashes' chunks of 256 documents; documents whose rows agree in a band share that
    band's hash."""
    rng = random.Random(11)
    texts = [document(rng, rng.randint(0, 40)) for _ in range(600)] + ["", "Hi", "Ünïcode wörds"]
    hasher = ShingleHasher(num_perm=128)
    bands, rows = lsh_params(0.9, 128)
    values, bounds = hasher.shingles(texts)
    batch = hasher.signatures_of(values, bounds, bands * rows)
    batch_bands = dedup_memory.band_hashes(batch, bands, rows)
    for i, text in enumerate(texts):
        one = hasher.signatures(hasher.shingle_sets([text]))
        assert one.shape == (1, 128) and np.array_equal(one[0, : bands * rows], batch[i])
        assert np.array_equal(dedup_memory.band_hashes(one, bands, rows)[0], batch_bands[i])
    twin = batch[:1].copy()
    twin[0, rows:] += np.uint32(1)  # the first band's rows kept, every other changed
    hashes = dedup_memory.band_hashes(np.concatenate([batch[:1], twin]), bands, rows)
    assert hashes[0, 0] == hashes[1, 0] and (hashes[0, 1:] != hashes[1, 1:]).all()
