"""Near-duplicate index in memory: exact and near copies found, distinct documents kept."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash

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
