"""Chat models as generators, on real processes: the embedded chat model (SmolLM2 135M
Instruct) spoken to through the chat API by jobs on a real worker process, two models in
two roles of a dataset build with a price each, a hosted API's
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
from tests.service_fixtures import api_settings, processes  # noqa: F401

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


def on_worker(api_settings, processes, job_id, kind, **env):
    """Run the job on a real worker process (Celery, PostgreSQL, Redis) with `env`'s settings;
    the job as it ended."""
    from app.models import Job
    from tests.service_fixtures import service_env, wait_for
    from workers.celery_app import enqueue, make_celery

    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"],
                       service_env(api_settings, **env), f"worker-{job_id}")
    enqueue(make_celery(api_settings), job_id, kind)

    def finished():
        with session_scope(api_settings.resolved_database_url) as session:
            job = session.get(Job, job_id)
            return job if job.status in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, f"job {job_id} to finish on the worker", [worker], poll_s=1)


def role_cost(used, price):
    return pytest.approx((used["prompt_tokens"] + used["completion_tokens"]) * price / 1e6, abs=1e-6)


def test_self_instruct_through_the_chat_api_on_a_worker(pg_url, api_settings, processes, chat_llm_base_url,
                                                        reference_seeds):
    _, job_id = make_job(pg_url, reference_seeds, target=3, seed=3, max_tokens=256)
    job = on_worker(api_settings, processes, job_id, "self_instruct", SPROUT_LLM_BASE_URLS=chat_llm_base_url,
                    SPROUT_LLM_PRICE_PER_MILLION_TOKENS="2")
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
    # one price (the service's, SPROUT_LLM_PRICE_...): every role at it, the job's cost their sum
    for role in ("generator", "responder"):
        assert roles[role]["cost"] == role_cost(roles[role], 2.0)
    assert job.result["cost"] == pytest.approx(roles["generator"]["cost"] + roles["responder"]["cost"], abs=1e-5)
    assert job.result["cost_rate"] == "per_million_tokens"
    for r in ins:
        if r.rule == "unparseable":
            assert r.detail["reply"]  # the reply that broke the schema is kept


def test_evol_instruct_through_the_chat_api_on_a_worker(pg_url, api_settings, processes, chat_llm_base_url,
                                                        reference_seeds):
    """The elimination judge's tokens are the judge role's, at the judge's price."""
    _, job_id = make_job(pg_url, reference_seeds, kind="evol_instruct", rounds=1, max_pool=4, seed=5,
                         chat_max_tokens=256)
    job = on_worker(api_settings, processes, job_id, "evol_instruct", SPROUT_LLM_BASE_URLS=chat_llm_base_url,
                    SPROUT_LLM_PRICE_PER_MILLION_TOKENS="1", SPROUT_JUDGE_PRICE_PER_MILLION_TOKENS="3")
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
    # every evolution the judge answered is a judge step, none is the generator's
    # (the 135M model's rewrites often fail a rule before the judge: copied scaffolding, cut at
    # the token limit; the dataset build below scores with the judge in every run)
    judged = [r for r in evolutions if "judge_answer" in r.detail]
    asked = roles.get("judge", {"llm_requests": 0, "llm_errors": 0})
    assert asked["llm_requests"] - asked["llm_errors"] == len(judged)
    assert roles["generator"]["llm_requests"] == len(evolutions)  # the rewrites alone
    assert sum(roles[r]["prompt_tokens"] for r in roles) == job.counters["prompt_tokens"]
    assert roles["generator"]["cost"] == role_cost(roles["generator"], 1.0)
    if judged:
        assert roles["judge"]["dialect"] == "chat" and roles["judge"]["prompt_tokens"] > 0
        assert roles["judge"]["cost"] == role_cost(roles["judge"], 3.0)
        assert job.result["cost_by_role"]["judge"] == roles["judge"]["cost"]


def test_a_dataset_build_generates_with_one_model_and_answers_with_another(pg_url, api_settings, processes,
                                                                           llm_base_url, chat_llm_base_url):
    """On a real worker: the recipe's step generates with Gemma (the service's server, through
    completions) and answers with SmolLM2 (the step's responder, through chat), then the
    judge scores its rows; each role's tokens and cost at the step's prices, apart."""
    from app.core.datasets import recipe as recipes
    from app.core.datasets import versions
    from app.core.jobs import dataset_build
    from app.models import Job

    step = {"kind": "self_instruct", "params": {
        "max_tokens": 320, "seed": 11, "responder_base_urls": [chat_llm_base_url],
        "responder_model": "smollm2-135m-instruct", "price_per_million_tokens": 2.0,
        "responder_price_per_million_tokens": 0.5, "score_with_judge": True, "judge_price_per_million_tokens": 4.0}}
    fmt, tasks = load_seed_file(SEEDS)
    with session_scope(pg_url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": [step], "grow_by": 2},
                                      dataset_build.step_validator())
        dataset_id = versions.create_dataset(session, None, "two-roles", recipe).id
        job_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    built = on_worker(api_settings, processes, job_id, "dataset_build", SPROUT_LLM_BASE_URLS=llm_base_url)
    assert built.status == "succeeded", built.error
    assert built.result["version"] == 1 and built.result["added"] > 0
    with session_scope(pg_url) as session:
        step_job = session.get(Job, built.result["steps"][0])
    roles, result = step_job.counters["roles"], step_job.result
    assert roles["generator"]["dialect"] == "completions" and roles["responder"]["dialect"] == "chat"
    for role in ("generator", "responder", "judge"):
        assert roles[role]["prompt_tokens"] > 0 and roles[role]["completion_tokens"] > 0, role
    assert (roles["generator"]["completion_tokens"] + roles["responder"]["completion_tokens"]
            == step_job.counters["completion_tokens"])  # the judge's are its own, not the generator's
    assert roles["judge"]["prompt_tokens"] == step_job.counters["judge_prompt_tokens"]
    for role, price in (("generator", 2.0), ("responder", 0.5), ("judge", 4.0)):
        assert roles[role]["cost"] == role_cost(roles[role], price), role
        assert result["cost_by_role"][role] == roles[role]["cost"]
    assert result["cost"] == pytest.approx(sum(roles[r]["cost"] for r in roles), abs=1e-5)


def test_auto_switches_to_chat_on_a_chat_only_endpoint(pg_url, chat_llm_base_url, reference_seeds):
    with ChatOnlyProxy(chat_llm_base_url) as proxy:
        settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=13)
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[proxy.url])
        assert job.status == JobStatus.succeeded.value, job.error
        assert job.counters["roles"]["generator"]["dialect"] == "chat"
        # the switch is remembered: only the first requests, sent together, met the chat-model answer
        refused = sum(p.endswith("/v1/completions") for p in proxy.paths)
        assert 1 <= refused <= settings.llm.concurrency
        assert any(p.endswith("/chat/completions") for p in proxy.paths)


def test_forced_completions_fails_at_once_naming_the_endpoint(pg_url, chat_llm_base_url, reference_seeds):
    with ChatOnlyProxy(chat_llm_base_url) as proxy:
        settings, job_id = make_job(pg_url, reference_seeds, target=2, seed=13, dialect="completions")
        job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[proxy.url])
        assert job.status == JobStatus.failed.value
        assert proxy.url in job.error and "serves a chat model only" in job.error
        assert "`chat` or `auto`" in job.error
        # at once: no retries, no request beyond the first few in flight together
        assert sum(p.endswith("/completions") for p in proxy.paths) <= settings.llm.concurrency
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
