"""Chat models as generators, on real processes: the embedded chat model (SmolLM2 135M
Instruct) spoken to through the chat API, two models in two roles, a hosted API's
chat-only answer (a fault injector in front of the real chat model), and structured
replies that break their schema (a scripted fault server: the one way to make a reply
break the schema on demand).
"""

import json
from pathlib import Path

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.jobs import lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instance, Instruction, JobStatus
from app.settings import Settings
from tests.fault_server import ChatOnlyProxy, FaultyLLMServer

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "default.jsonl"


@pytest.fixture
def reference_seeds() -> Path:
    """Sprout's own seed tasks (the quick start's)."""
    return SEEDS


def make_job(url, seeds_path, kind="self_instruct", settings=None, **params):
    settings = settings or Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(seeds_path)
    p = jobs.get(kind).validate_params(params, settings.core_config().defaults)
    with session_scope(url) as s:
        seed_set = store.import_seed_set(s, seeds_path.name, fmt, tasks)
        job = store.create_job(s, kind, p.model_dump(), seed_set_id=seed_set.id)
    return settings, job.id


def rows(url, job_id):
    with session_scope(url) as s:
        ins = s.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
        inst = s.exec(select(Instance).where(Instance.job_id == job_id)).all()
        job = store.get_job(s, job_id)
    return job, ins, inst


def test_self_instruct_through_the_chat_api(pg_url, chat_llm_base_url, reference_seeds):
    settings, job_id = make_job(pg_url, reference_seeds, target=3, seed=3, max_tokens=256)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[chat_llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    job, ins, inst = rows(pg_url, job_id)
    accepted = [r for r in ins if r.fate == "accepted"]
    assert len(accepted) == 3
    kept = {i.instruction_id for i in inst if i.fate == "accepted"}
    assert all(r.id in kept for r in accepted)
    roles = job.counters["roles"]
    assert roles["generator"]["dialect"] == "chat" and roles["responder"]["dialect"] == "chat"
    assert roles["generator"]["completion_tokens"] > 0 and roles["responder"]["completion_tokens"] > 0
    total = job.counters["completion_tokens"]
    assert roles["generator"]["completion_tokens"] + roles["responder"]["completion_tokens"] == total
    for r in ins:
        if r.rule == "unparseable":
            assert r.detail["reply"]  # the reply that broke the schema is kept


def test_evol_instruct_through_the_chat_api(pg_url, chat_llm_base_url, reference_seeds):
    settings, job_id = make_job(pg_url, reference_seeds, kind="evol_instruct", rounds=1, max_pool=4, seed=5,
                                chat_max_tokens=256)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[chat_llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    job, ins, inst = rows(pg_url, job_id)
    evolutions = [r for r in ins if r.round == 1]
    assert len(evolutions) == 4
    assert all(r.operation for r in evolutions)
    roles = job.counters["roles"]
    assert roles["generator"]["dialect"] == "chat"
    assert roles["generator"]["llm_requests"] >= 4
    for r in evolutions:
        assert r.fate in ("accepted", "rejected")
        assert not r.instruction.lower().startswith(("#rewritten prompt", "#created prompt"))
    answered = [r for r in evolutions if r.fate == "accepted"]
    for r in answered:
        assert [i.output for i in inst if i.instruction_id == r.id][0].strip()
    if answered:
        assert roles["responder"]["dialect"] == "chat" and roles["responder"]["completion_tokens"] > 0


def test_two_models_in_two_roles(pg_url, llm_base_url, chat_llm_base_url, reference_seeds):
    """Gemma (base, completions) generates; SmolLM2 (instruct, chat) answers."""
    settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=11,
                                responder_base_urls=[chat_llm_base_url], responder_model="smollm2-135m-instruct")
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    roles = job.counters["roles"]
    assert roles["generator"]["dialect"] == "completions"
    assert roles["responder"]["dialect"] == "chat"
    for role in ("generator", "responder"):
        assert roles[role]["prompt_tokens"] > 0 and roles[role]["completion_tokens"] > 0
    assert (roles["generator"]["prompt_tokens"] + roles["responder"]["prompt_tokens"]
            == job.counters["prompt_tokens"])


def test_auto_switches_to_chat_on_a_chat_only_endpoint(pg_url, chat_llm_base_url, reference_seeds):
    with ChatOnlyProxy(chat_llm_base_url) as proxy:
        settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=13)
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[proxy.url])
        assert job.status == JobStatus.succeeded.value, job.error
        assert job.counters["roles"]["generator"]["dialect"] == "chat"
        # the switch is remembered: only the first requests, sent together, met the chat-model answer
        refused = sum(p.endswith("/v1/completions") for p in proxy.paths)
        assert 1 <= refused <= settings.llm_concurrency
        assert any(p.endswith("/chat/completions") for p in proxy.paths)


def test_forced_completions_fails_at_once_naming_the_endpoint(pg_url, chat_llm_base_url, reference_seeds):
    with ChatOnlyProxy(chat_llm_base_url) as proxy:
        settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=13, dialect="completions")
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[proxy.url])
        assert job.status == JobStatus.failed.value
        assert proxy.url in job.error and "serves a chat model only" in job.error
        assert "`chat` or `auto`" in job.error
        # at once: no retries, no request beyond the first few in flight together
        assert sum(p.endswith("/completions") for p in proxy.paths) <= settings.llm_concurrency
        assert not any(p.endswith("/chat/completions") for p in proxy.paths)


def _chat_reply(content: str) -> str:
    return json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 10}})


def test_structured_replies_that_break_the_schema_are_kept_as_unparseable(pg_url, reference_seeds):
    """Fault injector: a chat server whose instance replies are not the JSON asked for."""
    counter = {"n": 0}

    def respond(path, body):
        if path.endswith("/models"):
            return None
        if path.endswith("/props"):
            return 200, json.dumps({"chat_template": "{{ messages }}", "model_alias": "fault-chat"})
        assert path.endswith("/chat/completions"), path
        if body.get("response_format"):
            assert body["response_format"]["json_schema"]["schema"]["required"] == ["instances"]
            return 200, _chat_reply('{"instances": [{"input": "x", "output": ')  # cut JSON
        user = body["messages"][-1]["content"]
        if "Answer with one word" in user:
            return 200, _chat_reply("No")
        counter["n"] += 1
        return 200, _chat_reply(f"9. Describe the weather of city number {counter['n']} in late autumn.\n"
                                f"10. List {counter['n'] + 2} ways to keep a kitchen garden healthy in dry summers.")

    with FaultyLLMServer(respond=respond) as server:
        settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=1)
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[server.url])
        job, ins, _ = rows(pg_url, job_id)
    unparseable = [r for r in ins if r.rule == "unparseable"]
    assert unparseable and all(r.fate == "rejected" for r in unparseable)
    assert all(r.detail["reply"] == '{"instances": [{"input": "x", "output": ' for r in unparseable)
    assert job.counters["rejected"].get("unparseable") == len(unparseable)


def test_a_dataset_build_generates_with_one_model_and_answers_with_another(pg_url, llm_base_url):
    """The recipe's step names the embedded chat model as its responder: the build starts it
    for the step, next to the Gemma base model that generates; each role's tokens apart."""
    from app.core.datasets import recipe as recipes
    from app.core.datasets import versions
    from app.core.jobs import dataset_build
    from app.models import Job

    step = {"kind": "self_instruct", "params": {"max_tokens": 320, "seed": 11,
                                                "responder_model": "smollm2-135m-instruct"}}
    fmt, tasks = load_seed_file(SEEDS)
    with session_scope(pg_url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": [step], "grow_by": 2},
                                      dataset_build.step_validator())
        dataset_id = versions.create_dataset(session, None, "two-roles", recipe).id
        job_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    settings = Settings(database_url=pg_url, job_flush_s=0.5, embedded_threads=1, embedded_parallel=4)
    built = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert built.status == "succeeded", built.error
    assert built.result["version"] == 1 and built.result["added"] > 0
    with session_scope(pg_url) as session:
        step_job = session.get(Job, built.result["steps"][0])
        roles = step_job.counters["roles"]
    assert roles["generator"]["dialect"] == "completions" and roles["responder"]["dialect"] == "chat"
    for role in ("generator", "responder"):
        assert roles[role]["prompt_tokens"] > 0 and roles[role]["completion_tokens"] > 0, role
    assert (roles["generator"]["completion_tokens"] + roles["responder"]["completion_tokens"]
            == step_job.counters["completion_tokens"])
