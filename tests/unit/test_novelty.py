"""The novelty index agrees exactly with rouge-score, and finds the exact top-k.

With `exact_below_threshold` every score is the full scan's; without it (a job's index,
pruned by the prefix filter) every decision is, and the maximum and top-k above the
threshold.

Cases are generated near the 0.7 threshold (word swaps, insertions, deletions and
replacements of real seed instructions), plus the awkward inputs: empty strings,
punctuation only, non-ASCII text and repeated tokens.
"""

from __future__ import annotations

import json
import random

import pytest
from rouge_score import rouge_scorer

from app.core.filters import novelty
from app.core.filters.novelty import NoveltyIndex
from app.core.filters.rouge import rouge_l, tokenize

ODD = [
    "",
    "   ",
    "!!!",
    "?!. ,;:",
    "Ünïcödé tèxt wïth áccents",
    "日本語のテキスト",
    "naïve café résumé",
    "the the the the",
    "the the the the the the the the",
    "a a b a a b a",
    "b a a b",
    "Write Write write WRITE",
    "123 456 123",
    "e-mail, e mail; E.MAIL",
    "Explain the difference between a list and a tuple.",
]


@pytest.fixture(scope="module")
def seeds(reference_seeds) -> list[str]:
    return [json.loads(line)["instruction"] for line in reference_seeds.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scorer():
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def variant(rng: random.Random, text: str, words: list[str]) -> str:
    out = text.split()
    for _ in range(rng.randint(0, max(1, len(out) // 2))):
        op = rng.random()
        if op < 0.25 and len(out) > 1:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
        elif op < 0.5:
            out.insert(rng.randrange(len(out) + 1), rng.choice(words))
        elif op < 0.75 and len(out) > 1:
            del out[rng.randrange(len(out))]
        elif out:
            out[rng.randrange(len(out))] = rng.choice(words)
    return " ".join(out)


def make_cases(seeds: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = " ".join(seeds).split() + ["the", "a", "café", "日本", "!!", "the the"]
    return [variant(rng, rng.choice(seeds), words) for _ in range(n)]


def brute_force(pool: list[str], text: str, scorer) -> list[float]:
    return [scorer.score(text, entry)["rougeL"].fmeasure for entry in pool]


def test_pairwise_scores_equal_rouge_score(seeds, scorer):
    """rouge.py on a few thousand near-threshold pairs: the same float, bit for bit."""
    rng = random.Random(1)
    cases = make_cases(seeds, 3000, seed=2) + ODD
    near = 0
    for text in cases:
        other = rng.choice(seeds + ODD)
        expected = scorer.score(text, other)["rougeL"].fmeasure
        assert rouge_l(tokenize(text), tokenize(other)) == expected, (text, other)
    for text in cases[:1500]:
        base = rng.choice(seeds)
        expected = scorer.score(text, base)["rougeL"].fmeasure
        near += 0.6 <= expected <= 0.8
        assert rouge_l(tokenize(text), tokenize(base)) == expected
    assert near > 0


def test_index_matches_rouge_score_on_near_threshold_cases(seeds, scorer):
    pool = seeds[:120] + make_cases(seeds, 80, seed=3) + ODD
    index = NoveltyIndex(exact_below_threshold=True)
    for text in pool:
        index.add(text)
    candidates = make_cases(seeds, 250, seed=4) + ODD
    decided = {True: 0, False: 0}
    for text in candidates:
        scores = brute_force(pool, text, scorer)
        result = index.check(text)
        assert result.max_rouge_l == max(scores), text
        assert result.novel == (max(scores) <= 0.7)
        expected_top = sorted((s for s in scores if s > 0), reverse=True)[:10]
        assert [s for _, s in result.most_similar] == expected_top, text
        by_text = {entry: s for entry, s in zip(pool, scores)}
        assert all(by_text[t] == s for t, s in result.most_similar)
        decided[result.novel] += 1
    assert decided[True] > 20 and decided[False] > 20  # both sides of the threshold are exercised


def test_scores_exactly_at_the_threshold_decide_like_rouge_score(scorer):
    """LCS/length combinations whose F is 0.7 in exact arithmetic; the float decides."""
    words = [f"w{i}" for i in range(40)]
    cases = []
    for m, n, lcs in [(10, 10, 7), (8, 12, 7), (12, 8, 7), (20, 20, 14), (16, 24, 14), (5, 15, 7), (30, 10, 14)]:
        target = words[:m]
        prediction = words[:lcs] + [f"x{i}" for i in range(n - lcs)]
        cases.append((" ".join(target), " ".join(prediction)))
    for target, prediction in cases:
        for exact in (True, False):
            index = NoveltyIndex(exact_below_threshold=exact)
            index.add(prediction)
            expected = scorer.score(target, prediction)["rougeL"].fmeasure
            result = index.check(target)
            assert result.novel == (expected <= 0.7)
            if exact or not result.novel:
                assert result.max_rouge_l == expected


def test_top_k_is_exact_on_a_larger_pool(seeds):
    """Against a brute force over 3,000 entries (rouge.py, checked above)."""
    pool = make_cases(seeds, 3000, seed=5)
    tokens = [tokenize(t) for t in pool]
    index = NoveltyIndex(top_k=25, exact_below_threshold=True)
    for text in pool:
        index.add(text)
    for text in make_cases(seeds, 150, seed=6) + ["Write a poem", "the"]:
        query = tokenize(text)
        scores = [rouge_l(query, t) for t in tokens]
        result = index.check(text)
        assert result.max_rouge_l == max(scores)
        assert [s for _, s in result.most_similar] == sorted((s for s in scores if s > 0), reverse=True)[:25]


@pytest.fixture(scope="module")
def scanned(seeds, scorer) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """A pool, and candidates each with rouge-score's F against every pool entry: edited
    seeds, pool entries themselves, odd inputs, and words shuffled or reversed (token
    overlap without a long common subsequence, what the overlap bound cannot tell)."""
    rng = random.Random(12)
    pool = seeds[:100] + make_cases(seeds, 400, seed=10) + ODD
    pool += [" ".join(rng.choice(pool).split()[::-1]) for _ in range(50)]
    candidates = make_cases(seeds, 120, seed=11) + rng.sample(pool, 30) + ODD
    candidates += [" ".join(rng.sample(words, len(words))) for words in (c.split() for c in candidates[:40])]
    return pool, [(text, brute_force(pool, text, scorer)) for text in candidates]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9, 1.0])
@pytest.mark.parametrize("extra_probe", [0, 64, 4096])
@pytest.mark.parametrize("search_per_list", [0, 8])
def test_the_pruned_index_decides_like_a_full_scan(scanned, threshold, extra_probe, search_per_list, monkeypatch):
    """The prefix filter (a job's index) against rouge-score over every pool entry: the same
    decision, the same maximum and top-k above the threshold, and every score it gives exact.

    Each entry length is its own prefix filter; `extra_probe` 0 reads only the prefix's
    lists and finds the other overlaps by binary search; 64 is the default; 4096 reads
    every list of this small pool; `search_per_list` 0 binary-searches every list left,
    8 (the default) leaves a length's few entries to the LCS with a looser bound."""
    monkeypatch.setattr(novelty, "_EXTRA_PROBE", extra_probe)
    monkeypatch.setattr(novelty, "_SEARCH_PER_LIST", search_per_list)
    pool, cases = scanned
    index = NoveltyIndex(threshold=threshold, top_k=5, exact_below_threshold=False)
    index.add_many(pool)
    decided = {True: 0, False: 0}
    for text, scores in cases:
        best = max(scores)
        result = index.check(text)
        assert result.novel == (best <= threshold), text
        by_text: dict[str, set[float]] = {}
        for entry, score in zip(pool, scores):
            by_text.setdefault(entry, set()).add(score)
        assert all(score in by_text[entry] for entry, score in result.most_similar)
        above = sorted((s for s in scores if s > threshold), reverse=True)[:5]
        assert [s for _, s in result.most_similar if s > threshold] == above, text
        if not result.novel:
            assert result.max_rouge_l == best
        else:
            assert result.max_rouge_l <= best
        decided[result.novel] += 1
    assert decided[True] > 10
    assert decided[False] > 10 or threshold == 1.0  # nothing scores above 1.0


def test_a_job_index_scores_below_the_threshold_exactly_until_its_pool_is_large(scanned):
    """The default: the full bound up to `exact_pool_limit` entries, the prefix filter past it."""
    pool, cases = scanned
    index = NoveltyIndex(top_k=3)
    index.exact_pool_limit = len(pool)
    index.add_many(pool)
    pruned = NoveltyIndex(top_k=3, exact_below_threshold=False)
    pruned.add_many(pool)
    below = [(text, max(scores)) for text, scores in cases if 0 < max(scores) <= 0.7]
    assert all(index.check(text).max_rouge_l == best for text, best in below)
    assert any(pruned.check(text).max_rouge_l < best for text, best in below)
    index.add("one more entry")  # past the limit: pruned like `pruned`
    pruned.add("one more entry")
    assert [index.check(t).max_rouge_l for t, _ in below] == [pruned.check(t).max_rouge_l for t, _ in below]


def test_unknown_tokens_alone_can_rule_out_every_entry():
    """A candidate with more unseen tokens than it may miss is novel without reading a list."""
    index = NoveltyIndex(mean_sample=0, exact_below_threshold=False)
    index.add_many(["write a poem about the sea", "write a story about the sea"])
    result = index.check("write zzz yyy xxx www vvv")
    assert result.novel and result.max_rouge_l == 0.0 and result.most_similar == []
    assert not index.check("write a poem about the sea now").novel


def test_accepted_candidates_join_the_pool():
    index = NoveltyIndex()
    assert index.add("Write a haiku about the sea.") == 0
    first = index.check("Tell me one joke on cats and dogs.")
    assert first.novel and first.max_rouge_l == 0.0 and first.most_similar == []
    assert index.add("Tell me one joke on cats and dogs.") == 1
    again = index.check("Tell me one joke on cats and dogs!")
    assert not again.novel and again.max_rouge_l == 1.0
    assert again.most_similar == [("Tell me one joke on cats and dogs.", 1.0)]
    assert len(index) == 2


def test_empty_pool_and_empty_candidate():
    index = NoveltyIndex()
    assert index.check("anything") == index.check("") and index.check("").novel
    assert index.check("").mean_rouge_l is None
    index.add("Some text here.")
    index.add("")
    result = index.check("")
    assert (result.max_rouge_l, result.most_similar, result.novel) == (0.0, [], True)
    assert result.mean_rouge_l == 0.0
    assert index.check("!!! ???").max_rouge_l == 0.0


def test_top_k_zero_still_gives_the_maximum():
    index = NoveltyIndex(top_k=0, mean_sample=0)
    for text in ["a b c d", "a b c e", "x y z"]:
        index.add(text)
    result = index.check("a b c d")
    assert result.max_rouge_l == 1.0 and result.most_similar == [] and not result.novel
    assert result.mean_rouge_l is None


def test_mean_is_exact_on_small_pools_and_a_close_estimate_on_large_ones(seeds):
    pool = make_cases(seeds, 2500, seed=7)
    tokens = [tokenize(t) for t in pool]
    small = NoveltyIndex(mean_sample=1000)
    for text in pool[:800]:
        small.add(text)
    big = NoveltyIndex(mean_sample=1000, seed=3)
    for text in pool:
        big.add(text)
    for text in make_cases(seeds, 20, seed=8):
        query = tokenize(text)
        scores = [rouge_l(query, t) for t in tokens]
        assert small.check(text).mean_rouge_l == pytest.approx(sum(scores[:800]) / 800, abs=1e-12)
        assert big.check(text).mean_rouge_l == pytest.approx(sum(scores) / len(scores), abs=0.03)


def test_vocabularies_beyond_the_code_space_fall_back_to_lists(seeds, scorer):
    """Token ids past `_char_limit` switch the index to int lists; results are unchanged."""
    pool = seeds[:60] + ODD
    narrow = NoveltyIndex(exact_below_threshold=True)
    narrow._char_limit = 50  # the real limit is 0x110000 tokens; this crosses it early
    wide = NoveltyIndex(exact_below_threshold=True)
    for text in pool:
        narrow.add(text)
        wide.add(text)
    assert narrow._as_lists and not wide._as_lists
    for text in make_cases(seeds[:60], 60, seed=9) + ODD:
        a, b = narrow.check(text), wide.check(text)
        assert a.max_rouge_l == b.max_rouge_l == max(brute_force(pool, text, scorer))
        assert [s for _, s in a.most_similar] == [s for _, s in b.most_similar]


def test_the_tokenizer_gives_rouge_scores_tokens_exactly():
    """Our one-regex tokenizer against rouge-score's own on random text with punctuation,
    case, non-ASCII letters, combining marks and unusual spaces."""
    import random

    from rouge_score.tokenize import tokenize as reference

    rng = random.Random(5)
    alphabet = "abcXYZ019 \t\n.,;:!?-_'\"()[]{}éÉßİıĲ中文😀\u00a0\u2028\u0301"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert tokenize(text) == reference(text, None), text


def _state(index: NoveltyIndex) -> tuple:
    return (index._texts, index._seqs, index._lengths.view().tolist(), index._vocab, index._length_values,
            {k: list(v) for k, v in index._postings.items()},
            {k: sorted(map(list, v)) for k, v in index._by_base.items()},
            sum(map(len, index._by_base.values())) == len(index._postings))


@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_add_many_builds_the_index_add_builds(seeds, chunk):
    """The bulk path (a chunk at a time, tokenized on bytes, postings grouped by a sort) gives
    the same vocabulary, sequences and postings as `add` one text at a time, mixed with `add`;
    a chunk holding the NUL separator goes one text at a time."""
    texts = seeds[:80] + make_cases(seeds, 200, seed=13) + ODD + ["nul \x00 inside", "a a a b a a", "ÀÉÎ K İ ß"]
    one = NoveltyIndex()
    for text in texts + ["one more", "the the"]:
        one.add(text)
    many = NoveltyIndex()
    assert many.add_many(iter(texts[:150]), chunk=chunk) == 150
    many.add(texts[150])
    assert many.add_many(texts[151:], chunk=chunk) == len(texts) - 151
    many.add_many(["one more", "the the"], chunk=chunk)
    assert _state(many) == _state(one)


def test_add_many_past_the_code_space_matches_add(seeds):
    """A vocabulary outgrowing the code points mid-chunk: the rest is added one at a time, as lists."""
    texts = seeds[:60] + ODD
    one, many = NoveltyIndex(), NoveltyIndex()
    one._char_limit = many._char_limit = 50
    for text in texts:
        one.add(text)
    many.add_many(texts[:5])
    many.add_many(texts[5:])
    assert many._as_lists and _state(many) == _state(one)


@pytest.mark.parametrize("exact", [True, False])
def test_tuple_keys_past_the_packed_range_decide_alike(scanned, exact, monkeypatch):
    """Entries and token ids past 2**21 are keyed by tuples (forced here by a limit of 6): the
    same decisions and maxima as rouge-score, whether built by `add_many` or `add`."""
    monkeypatch.setattr(novelty, "_CODE_LIMIT", 6)
    pool, cases = scanned
    bulk = NoveltyIndex(top_k=3, exact_below_threshold=exact)
    bulk.add_many(pool)
    single = NoveltyIndex(top_k=3, exact_below_threshold=exact)
    for text in pool:
        single.add(text)
    assert any(isinstance(k, tuple) for k in bulk._postings) and any(isinstance(k, int) for k in bulk._postings)
    for text, scores in cases:
        best = max(scores)
        for index in (bulk, single):
            result = index.check(text)
            assert result.novel == (best <= 0.7), text
            if exact or not result.novel:
                assert result.max_rouge_l == best, text
