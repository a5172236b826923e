"""A resumed persona or Magpie job decides as if it had never stopped: both engines seed their
novelty index with the pool and the earlier attempt's pool members, their near-duplicate index
with the earlier attempt's kept examples, count what it curated, and (personas) skip the items
it already asked. No model is asked here: the engines are only built."""

from __future__ import annotations

from app.core.config import LLMConfig
from app.core.filters.dedup import NearDupIndex, example_text
from app.core.llm.client import LLMClient
from app.core.methods.candidates import StoredCandidate
from app.core.methods.magpie import MagpieGeneration, conversation_text
from app.core.methods.persona import PersonaGeneration
from app.core.params import MagpieParams, PersonaParams

KEPT = "Write a short packing list for a two-week trip through Japan by train."
DROPPED = "Explain how a nurse can plan meals around night shifts in an emergency department."
SEED = "Give three tips for keeping basil alive on a windowsill."
ANSWER = "1. Rail pass. 2. Light clothes. 3. An umbrella for the rainy season."


def stored(row_id: int, instruction: str, accepted: bool, in_pool: bool, detail: dict) -> StoredCandidate:
    return StoredCandidate(row_id=row_id, instruction=instruction, accepted=accepted,
                           rule=None if accepted else "near_duplicate", in_pool=in_pool, parent_id=None,
                           operation=None, round=0, is_classification=None,
                           instances=[{"input": "", "output": ANSWER}] if accepted else [], detail=detail)


def client() -> LLMClient:
    return LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], model="m", dialect="chat"))


def test_a_resumed_persona_engine_keeps_its_pool_its_kept_examples_and_its_count():
    personas = ["A travel blogger.", "A nurse."]
    previous = [stored(1, KEPT, True, True, {"persona": "A travel blogger.", "task": "a list"}),
                stored(2, DROPPED, False, False, {"persona": "A nurse.", "task": "a list"})]
    near = NearDupIndex(threshold=0.8)
    engine = PersonaGeneration(PersonaParams(target=5, tasks_per_persona=1, seed=1), client(), personas,
                               ["a list"], previous=previous, near_duplicates=near, pool=[SEED])
    assert engine.curated == 1
    assert not engine.index.check(KEPT).novel and not engine.index.check(SEED).novel
    assert engine.index.check(DROPPED).novel  # rejected before the pool: not in it
    assert engine.plan == []  # both planned items were asked by the earlier attempt
    assert near.check_and_add("again", example_text(KEPT, "", ANSWER)) == "row1:0"


def test_a_resumed_magpie_engine_keeps_its_pool_its_kept_conversations_and_its_count():
    previous = [stored(7, KEPT, True, True, {}), stored(8, DROPPED, False, True, {})]
    near = NearDupIndex(threshold=0.8)
    engine = MagpieGeneration(MagpieParams(target=5, seed=1), client(), previous=previous,
                              near_duplicates=near, pool=[SEED])
    assert engine.curated == 1
    assert not engine.index.check(KEPT).novel and not engine.index.check(DROPPED).novel  # both joined the pool
    assert not engine.index.check(SEED).novel
    assert engine.index.check("Name the planets of the solar system in order from the sun.").novel
    assert near.check_and_add("again", conversation_text(KEPT, ANSWER, [])) == "row7:0"
