"""The planned methods' chat requests and the replies that break their schema, against a fault
injector (a scripted chat server: the one way to make a reply break the schema on demand;
what the model writes is tested on the embedded chat model in
tests/integration/test_planned_chat.py)."""

import asyncio
import json

from app.core.config import LLMConfig
from app.core.llm.client import LLMClient
from app.core.methods import topic_tree
from app.core.methods.persona import PersonaGeneration
from app.core.methods.planned import clean_chat_task
from app.core.params import PersonaParams
from tests.fault_server import FaultyLLMServer

PERSONA = "A beekeeper with twenty hives who sells honey at the market."


def chat_reply(content: str, finish_reason: str = "stop") -> str:
    return json.dumps({"choices": [{"index": 0, "finish_reason": finish_reason,
                                    "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 10}})


def run_persona(respond, structured=True):
    with FaultyLLMServer(respond=respond) as server:
        async def go():
            async with LLMClient(LLMConfig(base_urls=[server.url], model="m", dialect="chat")) as client:
                engine = PersonaGeneration(PersonaParams(target=2, seed=1, task_types=["a short writing task."]),
                                           client, [PERSONA, "A night-shift nurse."], ["a short writing task."],
                                           structured=structured)
                return [r async for r in engine.run()]
        records = asyncio.run(go())
    return records, [body for path, body in server.requests if path.endswith("/chat/completions")]


def test_a_persona_task_is_asked_as_json_and_a_reply_that_breaks_the_schema_is_kept_unparseable():
    def respond(path, body):
        if not path.endswith("/chat/completions"):
            return None
        if body.get("response_format"):  # the task request
            if PERSONA in body["messages"][-1]["content"]:
                return 200, chat_reply('{"task": "Write a label for my wildflower honey jars, under twenty words."}')
            return 200, chat_reply('Sure! {"task": ')  # broken JSON
        return 200, chat_reply("Golden wildflower honey from twenty local hives, raw and unfiltered.")

    records, sent = run_persona(respond)
    by_persona = {r.detail["persona"]: r for r in records}
    good, bad = by_persona[PERSONA], by_persona["A night-shift nurse."]
    assert good.accepted and good.instruction == "Write a label for my wildflower honey jars, under twenty words."
    assert good.instances[0].output.startswith("Golden wildflower honey")
    assert not bad.accepted and bad.rule == "unparseable" and bad.detail["reply"] == 'Sure! {"task": '
    asks = [b for b in sent if b.get("response_format")]
    assert len(asks) == 2
    schema = asks[0]["response_format"]["json_schema"]
    assert schema["name"] == "task" and schema["schema"]["required"] == ["task"]
    system, user = asks[0]["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert "The kind of task: a short writing task." in user["content"] and "JSON" in user["content"]
    answers = [b for b in sent if not b.get("response_format")]
    assert [b["messages"][-1]["content"] for b in answers] == [good.instruction]  # the answer: the task alone


def test_without_structured_outputs_a_chat_task_loses_its_label_and_quotes():
    assert clean_chat_task('**Task:** "Plan a week of meals for a family of four."') == \
        "Plan a week of meals for a family of four."
    assert clean_chat_task("Task: Sort these words.") == "Sort these words."
    assert clean_chat_task("Explain why bread rises.") == "Explain why bread rises."

    def respond(path, body):
        if not path.endswith("/chat/completions"):
            return None
        if "Write only the task" in body["messages"][-1]["content"]:
            return 200, chat_reply('Task: "Write a thank-you note to my regular honey customers for the season."')
        return 200, chat_reply("Dear friends, thank you for a wonderful season of honey.")

    records, sent = run_persona(respond, structured=False)
    assert not any(b.get("response_format") for b in sent)
    # the first task is kept; the second persona's task is the same text, so the novelty filter rejects it
    assert sorted(((r.instruction, r.accepted, r.rule) for r in records), key=lambda t: not t[1]) == [
        ("Write a thank-you note to my regular honey customers for the season.", True, None),
        ("Write a thank-you note to my regular honey customers for the season.", False, "too_similar")]


def test_a_tree_grows_through_the_chat_api_with_structured_subtopics():
    def respond(path, body):
        if not path.endswith("/chat/completions"):
            return None
        user = body["messages"][-1]["content"]
        assert body["response_format"]["json_schema"]["schema"]["properties"]["subtopics"]["maxItems"] == 2
        if user.startswith("Topic: Garden >"):
            return 200, chat_reply("not json")  # this node stays a leaf
        return 200, chat_reply('{"subtopics": ["Roses", "garden", "Compost", "Lawns"]}')

    with FaultyLLMServer(respond=respond) as server:
        async def go():
            async with LLMClient(LLMConfig(base_urls=[server.url], model="m", dialect="chat")) as client:
                return await topic_tree.grow(client, "Garden", depth=2, breadth=2, seed=1)
        tree = asyncio.run(go())
    # a repeat of the root is dropped; at most `breadth` subtopics; an unparseable reply grows nothing
    assert topic_tree.leaf_paths(tree) == [["Garden", "Roses"], ["Garden", "Compost"]]


def test_the_subtopic_schema_asks_for_every_child_the_tree_wants():
    from app.core.methods.structured import subtopics_schema

    subtopics = subtopics_schema(3)["properties"]["subtopics"]
    assert subtopics["minItems"] == subtopics["maxItems"] == 3
