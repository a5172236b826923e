"""The Evol-Instruct engine's model-free parts: parameters, operation draws, the novelty
check that skips a lineage's ancestors, and the state a resumed job rebuilds.

The model-facing loop runs for real in tests/integration/test_evol_instruct_job.py.
"""

from collections import Counter

import pytest
from pydantic import ValidationError
from rouge_score import rouge_scorer

from app.core import jobs
from app.core.config import LLMConfig
from app.core.llm.client import LLMClient
from app.core.methods import prompts
from app.core.methods.candidates import CandidateRecord, StoredCandidate
from app.core.methods.evol_instruct import EvolInstruct, root_text
from app.core.params import EVOL_OPERATIONS, EvolInstructParams
from app.core.seeds import SeedTaskData
from app.settings import Settings

POOL = [
    SeedTaskData("Explain why the sky is blue."),
    SeedTaskData("Convert the given distance from miles to kilometers.", [{"input": "26.2 miles", "output": "42.2 km"}]),
    SeedTaskData("Give three tips for staying focused while studying."),
]


def engine(previous=(), pool=POOL, **params) -> EvolInstruct:
    # A client is needed to build the engine; these tests never send a request with it.
    client = LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions"))
    return EvolInstruct(EvolInstructParams(**params), client, pool, previous)


def stored(row_id, text, *, parent=None, round_=0, accepted=True, op=None, instances=()):
    return StoredCandidate(row_id=row_id, instruction=text, accepted=accepted, rule=None if accepted else "empty",
                           in_pool=accepted, parent_id=parent, operation=op, round=round_, is_classification=None,
                           instances=list(instances))


# --- parameters ------------------------------------------------------------------------------
def test_defaults_are_the_papers():
    p = jobs.get("evol_instruct").validate_params({}, Settings().core_config().defaults)
    assert p.rounds == 4
    assert p.operations == {op: 1.0 for op in EVOL_OPERATIONS} and len(EVOL_OPERATIONS) == 6
    assert p.sorry_max_words == 80


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"rounds": 0}, "rounds"),
        ({"operations": {"deepening": 1, "summarize": 1}}, "unknown operation"),
        ({"operations": {"deepening": 0}}, "positive weight"),
        ({"operations": {"deepening": -1, "in_breadth": 1}}, "negative"),
        ({"judge_unparseable": "maybe"}, "judge_unparseable"),
        ({"rondus": 3}, "rondus"),
    ],
)
def test_bad_parameters_are_refused(params, field):
    with pytest.raises(ValidationError, match=field):
        jobs.get("evol_instruct").validate_params(params, Settings().core_config().defaults)


def test_every_operation_has_a_prompt_with_the_paper_limits():
    for op in EVOL_OPERATIONS:
        text = prompts.render(f"evol_{op}", instruction="Name a bird.")
        assert text.rstrip().endswith("Name a bird.\n#Rewritten Prompt#:") or text.rstrip().endswith(
            "Name a bird.\n#Created Prompt#:"
        )
        assert "person" in text  # answerable by a human
        if op != "in_breadth":
            assert "10 to 20 words" in text


# --- operation draws ---------------------------------------------------------------------
def test_operation_draws_follow_the_seed_and_weights():
    a, b = engine(seed=5), engine(seed=5)
    draws = [a.choose_operation(r, i) for r in range(1, 5) for i in range(50)]
    assert draws == [b.choose_operation(r, i) for r in range(1, 5) for i in range(50)]
    assert set(draws) == set(EVOL_OPERATIONS)  # 200 draws of 6 equal weights
    only = engine(seed=5, operations={"deepening": 3, "in_breadth": 1, "concretizing": 0})
    counts = Counter(only.choose_operation(1, i) for i in range(400))
    assert set(counts) == {"deepening", "in_breadth"}
    assert counts["deepening"] > 2 * counts["in_breadth"]


def test_a_root_is_evolved_with_its_input():
    assert root_text("Convert miles to km.", [{"input": "26.2 miles", "output": "42.2 km"}]) == "Convert miles to km.\n26.2 miles"
    assert root_text("Name a bird.", [{"input": " ", "output": "Robin"}]) == "Name a bird."
    assert root_text("Name a bird.", []) == "Name a bird."


def test_max_pool_takes_the_first_instructions():
    e = engine(max_pool=2)
    assert [lin.tip.instruction for lin in e.lineages] == [t.instruction for t in POOL[:2]]


# --- novelty without ancestors ---------------------------------------------------------------
def test_novelty_skips_the_lineage_ancestors_exactly():
    pool = [SeedTaskData("Write a poem about the sea at night."), SeedTaskData("Describe how ocean tides work."),
            SeedTaskData("Write a short story about a lighthouse keeper.")]
    e = engine(pool=pool, rouge_l_threshold=0.7, similar_top_k=2)
    candidate = "Write a poem about the sea at night in four rhyming stanzas."
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = {p.instruction: scorer.score(p.instruction, candidate)["rougeL"].fmeasure for p in pool}
    assert scores[pool[0].instruction] > 0.7 > max(scores[pool[1].instruction], scores[pool[2].instruction])
    # as an evolution of the first root, it is compared with the other two only: novel
    record = CandidateRecord(candidate, accepted=True)
    assert e._novelty(record, e.lineages[0]) is None
    others = {k: v for k, v in scores.items() if k != pool[0].instruction and v > 0}
    assert record.max_rouge_l == pytest.approx(max(others.values()), abs=1e-9)
    assert [m["instruction"] for m in record.most_similar] == sorted(others, key=others.get, reverse=True)
    # the same text as an evolution of another lineage meets the first root: too similar
    record2 = CandidateRecord(candidate, accepted=True)
    assert e._novelty(record2, e.lineages[1]) == "too_similar"
    assert record2.max_rouge_l == pytest.approx(scores[pool[0].instruction], abs=1e-9)
    assert e.index.top_k == 2  # left as configured


def test_duplicate_pool_texts_are_all_skipped_as_ancestors():
    pool = [SeedTaskData("Name a bird."), SeedTaskData("Name a bird."), SeedTaskData("Describe a river delta.")]
    e = engine(pool=pool, similar_top_k=1)
    record = CandidateRecord("Name a bird that cannot fly.", accepted=True)
    assert e._novelty(record, e.lineages[0]) is None
    assert [m["instruction"] for m in record.most_similar] != ["Name a bird."]


# --- resume ------------------------------------------------------------------------------------
def test_resume_rebuilds_tips_rounds_and_pool():
    previous = [
        stored(1, POOL[0].instruction),
        stored(2, POOL[1].instruction, instances=POOL[1].instances),
        stored(3, POOL[2].instruction),
        # round 1: lineage 0 survives, lineage 1 fails (parent back), lineage 2 survives
        stored(4, "Explain why the sky is blue at noon and red at sunset.", parent=1, round_=1, op="deepening"),
        stored(5, "Convert miles", parent=2, round_=1, accepted=False, op="in_breadth"),
        stored(6, "Give three tips for staying focused while studying for a maths exam.", parent=3, round_=1,
               op="concretizing"),
        # round 2 was cut short: only lineage 1 was evolved (from its root again), and survived
        stored(7, "Convert 26.2 miles to kilometers and show the formula.", parent=2, round_=2, op="complicate_input"),
    ]
    e = engine(previous, rounds=3)
    assert e._new_roots == []  # roots are stored already
    assert [lin.tip.row_id for lin in e.lineages] == [4, 7, 6]
    assert [lin.done_round for lin in e.lineages] == [1, 2, 1]
    assert e.lineages[1].ancestors == ["Convert the given distance from miles to kilometers.\n26.2 miles",
                                       "Convert 26.2 miles to kilometers and show the formula."]
    assert len(e.index) == 3 + 3  # roots and survivors, never the failed evolution
    assert "Convert miles" not in e._pool_counts


def test_resume_stores_roots_a_first_attempt_did_not():
    e = engine([stored(1, POOL[0].instruction)])
    assert [r.instruction for r in e._new_roots] == [POOL[1].instruction, POOL[2].instruction]
    assert e._new_roots[0].instances[0].input == "26.2 miles" and e._new_roots[0].round == 0
    assert e._new_roots[0].operation is None and e._new_roots[0].parent is None


def test_resume_refuses_a_changed_source():
    with pytest.raises(ValueError, match="source"):
        engine([stored(1, "Something else entirely.")])


def test_an_empty_pool_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        engine(pool=[])


# --- decontamination at the decision point ------------------------------------------------------
def test_an_evolution_that_reproduces_a_benchmark_item_is_rejected_before_the_pool_checks():
    from app.core.filters.decontaminate import BenchmarkItem, DecontaminationIndex
    from app.core.methods.candidates import InstanceCandidate
    from app.core.methods.evol_instruct import _Outcome

    index = DecontaminationIndex()
    index.add(BenchmarkItem("eval", "q7", "Natalia sold clips to forty eight of her friends in April and then "
                                          "she sold half as many clips in May", "seventy two"))
    built = EvolInstruct(EvolInstructParams(), LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions")), POOL, decontaminate=index)
    lineage = built.lineages[0]

    def evolved(text: str, output: str) -> CandidateRecord:
        return CandidateRecord(text, accepted=True, instances=[InstanceCandidate("", output)], parent=lineage.tip,
                               operation="deepening", round=1)

    copied = built._decide(_Outcome(lineage, evolved(
        "How many clips did Natalia sell? Natalia sold clips to forty-eight of her friends in April, and then she "
        "sold half as many clips in May.", "She sold 72.")))
    assert (copied.accepted, copied.rule) == (False, "contaminated") and not copied.in_pool
    assert copied.detail["contamination"][0]["item"] == "q7" and lineage.tip_text == root_text(POOL[0].instruction, [])
    clean = built._decide(_Outcome(lineage, evolved("Explain, step by step, why the sky looks blue at noon "
                                                    "and red at sunset.", "Rayleigh scattering...")))
    assert clean.accepted and clean.in_pool and "contamination" not in clean.detail


# --- a dataset build's step: novel against what the dataset holds ---------------------------
def test_an_evolution_too_close_to_the_datasets_content_is_too_similar():
    held = "Write a poem about the sea at night in four rhyming stanzas."
    pool = [SeedTaskData("Name three rivers in Europe."), SeedTaskData("Describe how ocean tides work.")]
    client = LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions"))
    params = EvolInstructParams(rouge_l_threshold=0.7)
    alone = EvolInstruct(params, client, pool)
    seeded = EvolInstruct(params, client, pool, known=[held])
    # an evolution of the tides root that is nearly the dataset's example: novel without the
    # dataset's content, too similar with it
    candidate = "Write a poem about the sea at night in four rhyming stanzas, please."
    assert alone._novelty(CandidateRecord(candidate, accepted=True), alone.lineages[1]) is None
    record = CandidateRecord(candidate, accepted=True)
    assert seeded._novelty(record, seeded.lineages[1]) == "too_similar"
    assert record.most_similar[0]["instruction"] == held
    assert [lin.tip.instruction for lin in seeded.lineages] == [t.instruction for t in pool]  # never evolved


def test_a_known_text_that_is_also_a_lineages_ancestor_is_left_out_of_its_check():
    root = "Write a poem about the sea at night."
    e = EvolInstruct(EvolInstructParams(rouge_l_threshold=0.7), LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions")),
                     [SeedTaskData(root), SeedTaskData("Describe how ocean tides work.")], known=[root])
    record = CandidateRecord("Write a poem about the sea at night in four rhyming stanzas.", accepted=True)
    assert e._novelty(record, e.lineages[0]) is None  # its own root, though the dataset holds it too


def test_the_datasets_examples_seed_the_near_duplicate_index():
    from app.core.filters.dedup import NearDupIndex

    index = NearDupIndex(threshold=0.7)
    EvolInstruct(EvolInstructParams(), LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions")), POOL, near_duplicates=index,
                 known_examples=[("ds1", "Name three rivers in Europe and the seas they flow into. Danube, Rhine")])
    assert len(index) == 1
    assert index.check_and_add("new", "Name three rivers in Europe and the seas they flow into. Danube, Rhine") == "ds1"
