"""Prompts laid out for prefix reuse: what two requests of a job share is the whole fixed
part (instructions and demonstrations), byte for byte; only the instruction differs."""

import asyncio
import os

import pytest

from app.core.config import LLMConfig
from app.core.llm.client import LLMClient
from app.core.methods import prompts
from app.core.methods.candidates import CandidateRecord
from app.core.methods.self_instruct import SelfInstruct
from app.core.params import SelfInstructParams
from app.core.seeds import SeedTaskData
from tests.fault_server import FaultyLLMServer, completion_body

FIXED = ["self_instruct_classify", "self_instruct_instances_input_first", "self_instruct_instances_output_first",
         "evol_add_constraints", "evol_complicate_input", "evol_concretizing", "evol_deepening", "evol_in_breadth",
         "evol_increased_reasoning_steps", "evol_judge", "evol_response"]


@pytest.mark.parametrize("name", FIXED)
def test_fixed_part_first_and_byte_identical(name):
    values = [{"instruction": "Write a haiku about rain.", "parent": "Name a colour.", "child": "Name a warm colour."},
              {"instruction": "Sort these numbers: 3, 1, 2.", "parent": "List two fruits.", "child": "List fruits."}]
    a, b = (prompts.render(name, **v) for v in values)
    fixed = prompts.fixed_prefix(name)
    assert os.path.commonprefix([a, b]) == fixed
    # the fixed part holds the instructions and every demonstration: after the first
    # placeholder comes only the tail of the last item (a label, another placeholder)
    assert len(prompts.load(name)) - len(fixed) < 60
    assert "{{" not in fixed


def test_self_instruct_requests_share_the_whole_fixed_part():
    """The prompts the engine sends for two tasks: classification, then instances."""
    def respond(path, body):
        if body and body["prompt"].endswith("Is it classification?"):
            return 200, completion_body(" No")
        return 200, completion_body("Example 1\nInput: none\nOutput: fine")

    seeds = [SeedTaskData(f"Seed task number {i}.") for i in range(8)]
    with FaultyLLMServer(respond=respond) as srv:
        async def go():
            async with LLMClient(LLMConfig(base_urls=[srv.url], model="m", dialect="completions")) as client:
                engine = SelfInstruct(SelfInstructParams(target=2, seed=1), client, seeds)
                for text in ("Write a haiku about rain.", "Sort these numbers from small to large."):
                    await engine._complete_task(CandidateRecord(text, accepted=True))
        asyncio.run(go())
    sent = [body["prompt"] for path, body in srv.requests if path.endswith("/completions")]
    classify = [p for p in sent if p.endswith("Is it classification?")]
    instances = [p for p in sent if not p.endswith("Is it classification?")]
    assert len(classify) == 2 and len(instances) == 2
    assert os.path.commonprefix(classify) == prompts.fixed_prefix("self_instruct_classify")
    assert os.path.commonprefix(instances) == prompts.fixed_prefix("self_instruct_instances_input_first")
