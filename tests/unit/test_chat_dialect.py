"""Dialects, chat prompts and structured replies: what is sent, and how replies are read.

The client's dialect decisions run against `FaultyLLMServer` (a fault injector) answering
`/completions` with a hosted API's chat-model error; the prompts and parsers are checked
on hand-written text.
"""

import asyncio
import json

import pytest

from app.core.config import LLMConfig
from app.core.llm import dialects
from app.core.llm.client import ChatModelOnlyError, LLMClient
from app.core.llm.dialects import Request
from app.core.methods import prompts, structured
from app.core.methods.parsing import parse_input_first, parse_numbered_reply
from app.core.methods.self_instruct import SelfInstruct
from app.core.params import EvolInstructParams, SelfInstructParams
from app.core.seeds import SeedTaskData
from tests.fault_server import CHAT_MODEL_ERROR, FaultyLLMServer


def chat_body(content: str) -> str:
    return json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": content}}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 3}})


def build(dialect):
    if dialect == "chat":
        return Request("chat", messages=prompts.messages("chat_evol_response", instruction="Say hi."),
                       params={"max_tokens": 8})
    return Request("completions", prompt="Say hi.", params={"max_tokens": 8})


def ask(url, **kw):
    async def go():
        async with LLMClient(LLMConfig(base_urls=[url], model="m", stream=False, max_retries=0,
                                       **{"dialect": "completions", **kw})) as c:
            out = await c.ask(build, role="responder")
            return out, c.dialect_in_use, c.role_usage
    return asyncio.run(go())


def test_props_and_known_models_decide_auto():
    assert dialects.from_props({"model_alias": "gemma-3-270m", "chat_template": "{{x}}"}) == "completions"
    assert dialects.from_props({"model_alias": "smollm2-135m-instruct"}) == "chat"
    assert dialects.from_props({"model_alias": "other", "chat_template": "{% for m in messages %}"}) == "chat"
    assert dialects.from_props({"chat_template": "  "}) is None
    assert dialects.from_props("<html>") is None
    with pytest.raises(ValueError, match="auto, completions, chat"):
        dialects.check_dialect("chatty")


def test_the_chat_model_error_is_recognised():
    assert dialects.is_chat_model_error(json.dumps(CHAT_MODEL_ERROR))
    assert not dialects.is_chat_model_error('{"error": "model not found"}')


def test_auto_switches_to_chat_on_the_chat_model_error_and_remembers():
    def respond(path, body):
        if path.endswith("/props"):
            return None  # no /props: a hosted API
        if path.endswith("/v1/completions"):
            return 404, json.dumps(CHAT_MODEL_ERROR)
        return 200, chat_body("Hi!")

    with FaultyLLMServer(respond=respond) as srv:
        out, dialect, roles = ask(srv.url, dialect="auto")
    assert srv.probes == ["/props"]
    assert (out.text, out.dialect, dialect) == ("Hi!", "chat", "chat")
    paths = [p for p, _ in srv.requests]
    assert paths == ["/v1/completions", "/v1/chat/completions"]
    sent = srv.requests[1][1]
    assert sent["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert sent["messages"][1] == {"role": "user", "content": "Say hi."}
    assert roles["responder"].completion_tokens == 3 and roles["responder"].requests == 1


def test_forced_completions_fails_at_once_naming_the_endpoint():
    with FaultyLLMServer(default=(404, json.dumps(CHAT_MODEL_ERROR))) as srv, \
            pytest.raises(ChatModelOnlyError) as err:
        ask(srv.url, dialect="completions")
    assert len(srv.requests) == 1  # no retry
    assert srv.url + "/completions serves a chat model only" in str(err.value)
    assert "set it to `chat` or `auto`" in str(err.value)


def test_auto_asks_props_once_and_a_base_model_stays_on_completions():
    def respond(path, body):
        if path.endswith("/props"):
            return 200, json.dumps({"model_alias": "gemma-3-270m", "chat_template": "{{ messages }}"})
        return None

    with FaultyLLMServer(respond=respond) as srv:
        out, dialect, _ = ask(srv.url, dialect="auto")
    assert dialect == "completions" and out.dialect == "completions"
    assert [p for p, _ in srv.requests] == ["/props", "/v1/completions"]


def test_chat_prompt_files_carry_the_step_and_wizardlm_prompts():
    msgs = prompts.messages("chat_evol_add_constraints", instruction="Write a poem about the sea.")
    assert msgs[0]["content"] == "You are a helpful assistant."
    user = msgs[1]["content"]
    assert user.startswith("I want you act as a Prompt Rewriter.")
    assert "Please add one more constraints/requirements into #The Given Prompt#'" in user
    assert user.endswith("#The Given Prompt#:\nWrite a poem about the sea.\n#Rewritten Prompt#:")
    breadth = prompts.messages("chat_evol_in_breadth", instruction="X")[1]["content"]
    assert breadth.startswith("I want you act as a Prompt Creator.")
    judge = prompts.messages("chat_evol_judge", parent="A", child="B")[1]["content"]
    assert "The First Prompt: A\nThe Second Prompt: B" in judge


def _engine(**kw):
    seeds = [SeedTaskData(f"Seed task number {i} about topic {i}.") for i in range(8)]
    return SelfInstruct(SelfInstructParams(target=1, seed=1), None, seeds, **kw)  # type: ignore[arg-type]


def test_instances_request_per_dialect():
    engine = _engine()
    chat = engine._instances_request("Name a fruit.", False, 7)("chat")
    assert chat.schema == structured.instances_schema(False, engine.p.max_instances)
    assert chat.chat_params()["response_format"]["json_schema"]["schema"] is chat.schema
    assert "Task: Name a fruit." in chat.messages[1]["content"] and '"input"' in chat.messages[1]["content"]
    clf = engine._instances_request("Is it spam?", True, 7)("chat")
    assert list(clf.schema["properties"]["instances"]["items"]["properties"]) == ["output", "input"]
    base = engine._instances_request("Name a fruit.", False, 7)("completions")
    assert base.prompt == prompts.render("self_instruct_instances_input_first", instruction="Name a fruit.")
    assert base.schema is None and base.params["stop"][0] == "\n\n"
    plain = _engine(structured=False)._instances_request("Name a fruit.", False, 7)("chat")
    assert plain.schema is None and "Example 1\nInput:" in plain.messages[1]["content"]


def test_structured_parsers_are_strict():
    good = '{"instances": [{"input": "none", "output": "Apple"}, {"input": "red", "output": "Cherry"}]}'
    parsed = structured.parse_instances(good)
    assert [(i.input, i.output) for i in parsed] == [("", "Apple"), ("red", "Cherry")]
    assert structured.parse_instances("```json\n" + good + "\n```") is not None
    for bad in ('{"instances": []}', '{"instances": [{"input": 1, "output": "x"}]}', "Example 1\nInput: x", '{"inst'):
        assert structured.parse_instances(bad) is None, bad
    assert structured.parse_score('{"score": 5}') == 5
    for bad in ('{"score": 7}', '{"score": true}', '{"score": "5"}', "5"):
        assert structured.parse_score(bad) is None, bad


def test_a_chat_list_reply_is_read_line_by_line():
    reply = "Sure! Here are new tasks:\n\n9. Write a haiku about rain.\n10) Explain  photosynthesis.\n- Name a river.\nHope this helps."
    assert parse_numbered_reply(reply) == ["Write a haiku about rain.", "Explain photosynthesis.", "Name a river."]
    assert parse_input_first("Example 1\nInput: none\nOutput: Paris")[0].output == "Paris"


def test_evol_chat_sampling_defaults_are_wizardlms():
    p = EvolInstructParams()
    assert (p.temperature, p.top_p, p.chat_max_tokens) == (1.0, 0.95, 2048)


def _judge(content):
    from app.core.scoring.judge import Judge

    body = json.dumps({"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}})

    async def go(srv):
        async with LLMClient(LLMConfig(base_urls=[srv.url], model="judge-m", max_retries=0, outage_budget_s=0, dialect="completions")) as client:
            return await Judge(client, api="chat", structured=True, logprobs=False).score_many(
                [{"instruction": "Name a colour.", "input": "", "output": "Blue."}])

    with FaultyLLMServer(default=(200, body)) as srv:
        [scores] = asyncio.run(go(srv))
    return scores, srv.requests[-1][1]


def test_the_chat_judge_asks_for_json_and_keeps_a_reply_that_breaks_it():
    scores, sent = _judge('{"score": 5}')
    assert scores["quality"].parsed == 5 and scores["quality"].status == "ok"
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5, 6]
    assert sent["messages"][0]["content"].startswith("Rate ")
    scores, _ = _judge("Score: 5")  # not the JSON asked for: refused, never guessed
    assert scores["quality"].status == "unparseable" and scores["quality"].raw == "Score: 5"


def test_roles_default_to_the_generators_settings_and_take_their_own():
    from app.core.jobs.generation import role_llm
    from app.settings import Settings

    plain = Settings(llm_model="gen", llm_api_key="k").core_config()
    assert plain.responder is None
    params = SelfInstructParams()
    assert role_llm(plain, params, "responder") == role_llm(plain, params, "generator") == plain.llm
    own = Settings(llm_model="gen", llm_api_key="k", responder_model="resp", responder_dialect="chat",
                   responder_base_urls="http://a:1/v1, http://b:2/v1").core_config()
    assert own.responder.base_urls == ("http://a:1/v1", "http://b:2/v1") and own.responder.api_key == "k"
    responder = role_llm(own, params, "responder")
    assert (responder.model, responder.dialect) == ("resp", "chat")
    job = SelfInstructParams(dialect="completions", responder_model="smollm2", responder_dialect="auto")
    assert role_llm(own, job, "generator").dialect == "completions"
    assert (role_llm(own, job, "responder").model, role_llm(own, job, "responder").dialect) == (
        "smollm2-135m-instruct", "auto")


def test_generate_names_an_unknown_embedded_model_in_one_line(sqlite_url, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.cli.common import CliError

    monkeypatch.setenv("SPROUT_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(cli, ["generate", "--model", "llama-70b", "--target", "1"])
    assert result.exit_code != 0 and isinstance(result.exception, CliError)
    assert str(result.exception).startswith("--model: unknown embedded model 'llama-70b'; known: gemma-3-270m")


def test_the_summary_shows_a_line_per_role():
    from types import SimpleNamespace

    from rich.console import Console

    from app.cli.generate import summary_table

    job = SimpleNamespace(id=1, kind="self_instruct", status="succeeded", result={}, started_at=None, finished_at=None, counters={
        "generated": 3, "accepted": 1, "roles": {
            "generator": {"dialect": "completions", "llm_requests": 2, "llm_errors": 0, "prompt_tokens": 90,
                          "completion_tokens": 40},
            "responder": {"dialect": "chat", "llm_requests": 2, "llm_errors": 1, "prompt_tokens": 50,
                          "completion_tokens": 30}}})
    console = Console(width=200, record=True)
    console.print(summary_table(job))
    text = console.export_text()
    assert "generator (completions): steps (errors), tokens" in text and "2 (0), 90 / 40" in text
    assert "responder (chat): steps (errors), tokens" in text and "2 (1), 50 / 30" in text


def test_the_summary_shows_each_priced_roles_cost():
    from types import SimpleNamespace

    from rich.console import Console

    from app.cli.generate import summary_table

    job = SimpleNamespace(id=1, kind="self_instruct", status="succeeded", result={}, started_at=None, finished_at=None, counters={
        "roles": {"generator": {"dialect": "chat", "llm_requests": 2, "llm_errors": 0, "prompt_tokens": 90,
                                "completion_tokens": 40, "cost": 0.0013},
                  "judge": {"dialect": "chat", "llm_requests": 1, "llm_errors": 0, "prompt_tokens": 10,
                            "completion_tokens": 2}}})
    console = Console(width=200, record=True)
    console.print(summary_table(job))
    text = console.export_text()
    assert "generator (chat): steps (errors), tokens, cost" in text and "2 (0), 90 / 40, 0.0013" in text
    assert "judge (chat): steps (errors), tokens " in text and "1 (0), 10 / 2 " in text  # unpriced: no cost


def test_role_prices_come_from_the_settings():
    from app.settings import Settings

    config = Settings(llm_price_per_million_tokens=0.5, judge_price_per_million_tokens=3.0).core_config()
    assert config.prices == {"generator": 0.5, "responder": None, "judge": 3.0}
