"""Benchmark decontamination: hand-written pairs around the threshold, and the index held
equal to the brute-force pairwise definition."""

from __future__ import annotations

import random

import pytest

from app.core.benchmark_sets import BenchmarkFormatError, parse_benchmark
from app.core.filters.decontaminate import (
    BenchmarkItem,
    DecontaminationIndex,
    Indexes,
    merge_reports,
    reference_check,
    report,
    screen,
    tokens,
)
from app.core.methods.candidates import CandidateRecord, InstanceCandidate

# 21 tokens: one shared run of 9 covers 9/21; two disjoint runs of 9 and 8 cover 17/21
ITEM = ("Natalia sold clips to forty eight of her friends in April and then she sold half "
        "as many clips in May")
BENCH = [BenchmarkItem("gsm", "q1", ITEM, "Natalia sold seventy two clips altogether in April and May")]


def index(**kw) -> DecontaminationIndex:
    built = DecontaminationIndex(**kw)
    built.add_many(BENCH)
    return built


def test_tokens_lower_case_words_without_punctuation():
    assert tokens("Hello, WORLD! it's 4-2.") == ["hello", "world", "it", "s", "4", "2"]


def test_exact_copy_with_case_and_punctuation_changes_is_contaminated():
    hit = index().check("NATALIA sold clips, to forty-eight of her friends in April; and then she sold half as many "
                        "clips in May?!")
    assert hit is not None and hit.exact and hit.overlap == 1.0 and (hit.benchmark, hit.item) == ("gsm", "q1")


def test_paraphrase_with_one_shared_8gram_run_is_below_the_threshold():
    text = "Tell me: of her friends in April and then she sold some pens; how many did she sell?"
    # shared run "of her friends in april and then she sold" = 9 tokens -> 2 8-grams covering 9/21
    assert index().check(text) is None
    hit = index(strict=True).check(text)
    assert hit is not None and hit.overlap == pytest.approx(9 / 21)


def test_two_shared_runs_cover_more_than_half():
    text = ("A puzzle. Natalia sold clips to forty eight of her friends yesterday. Later she sold half as many "
            "clips in May, what is the total?")
    # runs: "natalia sold clips to forty eight of her friends" (9) and "she sold half as many clips in may" (8)
    hit = index().check(text)
    assert hit is not None and not hit.exact and hit.overlap == pytest.approx(17 / 21)


def test_exactly_half_is_clean_and_just_above_is_contaminated():
    tok = tokens(ITEM)
    assert index().check(" ".join(tok[:10])) is None  # 10 of 21
    assert index().check(" ".join(tok[:11])).overlap == pytest.approx(11 / 21)
    even = DecontaminationIndex()
    even.add(BenchmarkItem("b", "16", " ".join(tok[:16])))
    assert even.check("so " + " ".join(tok[:8]) + " then") is None  # 8 of 16: exactly 0.5 is not above it
    assert even.check(" ".join(tok[:9])).overlap == pytest.approx(9 / 16)


def test_reordered_words_share_no_8gram():
    tok = tokens(ITEM)
    shuffled = tok[::2] + tok[1::2]
    assert index().check(" ".join(shuffled)) is None
    assert index(strict=True).check(" ".join(shuffled)) is None


def test_output_field_and_field_selection():
    answer = "so Natalia sold seventy two clips altogether in April and May of that year"
    assert index().check("What did she sell?", answer).field == "output"
    assert index(fields=["prompt"]).check("What did she sell?", answer) is None


def test_short_item_only_by_exact_match():
    built = DecontaminationIndex()
    built.add(BenchmarkItem("b", "short", "What is two plus two?"))
    assert built.check("what is two plus TWO") is not None
    assert built.check("Tell me what is two plus two?") is None


def test_short_outputs_can_be_left_out_of_exact_matching():
    item = BenchmarkItem("eval", "tone", "Classify the tone of the email as formal or informal.\nHey Sam", "Informal")
    both, prompts_only = DecontaminationIndex(), DecontaminationIndex(short_exact=("prompt",))
    both.add(item)
    prompts_only.add(item)
    assert both.check("Is this review positive?", "Informal").field == "output"
    assert prompts_only.check("Is this review positive?", "Informal") is None  # a label is no evidence of a copy
    assert prompts_only.check("Classify the tone of the email as formal or informal. Hey Sam", "x").field == "prompt"
    assert reference_check([item], "Is this review positive?", "Informal", short_exact=("prompt",)) is None


def test_several_indexes_answer_the_worst_hit():
    strict, loose = DecontaminationIndex(strict=True), DecontaminationIndex()
    strict.add(BenchmarkItem("a", "1", ITEM))
    loose.add(BenchmarkItem("b", "1", ITEM))
    both = Indexes([strict, loose, DecontaminationIndex()])
    assert len(both) == 2 and len(both.indexes) == 2  # an empty index is dropped
    text = "Tell me: of her friends in April and then she sold some pens; how many did she sell?"
    assert both.check(text).benchmark == "a"  # only the strict index counts one shared 8-gram run
    copy = both.check(ITEM)
    assert copy.overlap == 1.0 and copy.benchmark == "a"  # a tie goes to the first index


def test_reports_of_several_jobs_add_up():
    one = report([{"contamination": [{"benchmark": "gsm", "item": "q1"}, {"benchmark": "eval", "item": "t1"}]},
                  {"contamination": [{"benchmark": "gsm", "item": "q2"}]}])
    two = report([{"contamination": [{"benchmark": "gsm", "item": "q1"}]}])
    merged = merge_reports([one, None, two])
    assert merged["candidates_hit"] == 3
    assert merged["benchmarks"]["gsm"] == {"items_hit": 2, "hits": 3, "items": {"q1": 2, "q2": 1}}
    assert merged["benchmarks"]["eval"] == {"items_hit": 1, "hits": 1, "items": {"t1": 1}}
    assert merge_reports([]) == {"candidates_hit": 0, "benchmarks": {}}


def test_settings_are_checked():
    for kw in ({"n": 0}, {"threshold": 1.0}, {"fields": ["answer"]}, {"fields": []}):
        with pytest.raises(ValueError):
            DecontaminationIndex(**kw)


def test_index_decisions_equal_the_pairwise_reference():
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(60)]
    items = []
    for i in range(300):
        items.append(BenchmarkItem("b", str(i), " ".join(rng.choices(vocab, k=rng.randint(3, 40))),
                                   " ".join(rng.choices(vocab, k=rng.randint(0, 20)))))
    for kw in ({}, {"strict": True}, {"n": 3, "threshold": 0.3}, {"fields": ["output"], "n": 2},
               {"n": 30, "short_exact": ["prompt"]}):
        built = DecontaminationIndex(**kw)
        built.add_many(items)
        for _ in range(300):
            source = rng.choice(items)
            words = tokens(source.prompt)
            start = rng.randint(0, len(words))
            prompt = " ".join(rng.choices(vocab, k=rng.randint(0, 10)) + words[start:start + rng.randint(0, 30)]
                              + rng.choices(vocab, k=rng.randint(0, 10)))
            got, want = built.check(prompt, source.output), reference_check(items, prompt, source.output, **kw)
            assert (got is None) == (want is None)
            if got is not None:
                assert (got.item, got.field, got.exact) == (want.item, want.field, want.exact)
                assert got.overlap == pytest.approx(want.overlap)


def test_screen_marks_instances_and_rejects_a_task_left_with_none():
    built = index()
    record = CandidateRecord("Solve this word problem.", accepted=True,
                             instances=[InstanceCandidate(ITEM, "72"), InstanceCandidate("Tom has 3 apples.", "3")])
    assert screen(built, record) is None
    assert [i.rule for i in record.instances] == ["contaminated", None]
    assert record.detail["contamination"][0]["instance"] == 0
    only = CandidateRecord("Solve this word problem.", accepted=True, instances=[InstanceCandidate(ITEM, "72")])
    assert screen(built, only) == "contaminated"
    assert screen(built, CandidateRecord(ITEM, accepted=True)) == "contaminated"
    summary = report([record.detail, only.detail, {}])
    assert summary["candidates_hit"] == 2
    assert summary["benchmarks"]["gsm"] == {"items_hit": 1, "hits": 2, "items": {"q1": 2}}


def test_benchmark_files_in_seed_formats_and_named_fields():
    fmt, items = parse_benchmark('{"instruction": "Add the numbers.", "instances": [{"input": "1 2", "output": "3"}, '
                                 '{"input": "2 2", "output": "4"}]}\n{"name": "x", "instruction": "Say hi."}\n', "b")
    assert fmt == "self-instruct"
    assert [(i.item, i.prompt, i.output) for i in items] == [
        ("task1#1", "Add the numbers.\n1 2", "3"), ("task1#2", "Add the numbers.\n2 2", "4"), ("x", "Say hi.", "")]
    fmt, items = parse_benchmark('{"id": 7, "question": "Q?", "answer": "A"}\n', "b",
                                 prompt_fields=["question"], output_field="answer")
    assert fmt == "jsonl" and (items[0].item, items[0].prompt, items[0].output) == ("7", "Q?", "A")
    with pytest.raises(BenchmarkFormatError, match="line 2: missing field 'question'"):
        parse_benchmark('{"question": "Q?"}\n{"q": 1}\n', "b", prompt_fields=["question"])
