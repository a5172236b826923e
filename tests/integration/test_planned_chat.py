"""The planned methods on an instruct model through the chat API, on real processes: the
embedded chat model (SmolLM2 135M Instruct) grows a topic tree and writes tasks for its
leaves, then Evol-Instruct evolves them, in a dataset recipe built by a real Celery worker;
a persona recipe is built by the same worker; both land in dataset versions whose rows keep
their topic path or persona through every export format and show them in the version's
card. A job run here with `dialect: completions` and `responder_dialect: chat` on the same
server sends each role through the API it names."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.datasets import export as ds_export
from app.core.datasets import recipe as recipes
from app.core.datasets import versions
from app.core.jobs import dataset_build, lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, Job, TopicTree
from app.settings import Settings
from tests.conftest import DEFAULT_SEEDS
from tests.service_fixtures import api_settings, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = "Home gardening"
PERSONAS = [
    "A nurse working night shifts in a busy emergency department.",
    "A farmer growing organic vegetables on a small family farm.",
    "A high-school chemistry teacher preparing lab sessions.",
    "A travel blogger planning a two-week trip through Japan by train.",
    "A carpenter who builds custom furniture and estimates material costs.",
    "A librarian teaching older adults how to spot online scams.",
    "A beekeeper with twenty hives who sells honey at the market.",
    "A data analyst who builds weekly sales reports.",
    "A marathon runner training for a first race.",
    "A chef running a vegetarian restaurant who writes seasonal menus.",
    "A museum curator preparing an exhibition on trade routes.",
    "A music teacher who gives piano lessons to adult beginners.",
]
# short answers keep the 135M model quick on a small shared CPU
ANSWERS = {"max_tokens": 200, "response_max_tokens": 200, "near_duplicate_threshold": 0.8}
# The 135M model keeps about one task in ten at 200 tokens (its tasks and answers run long and
# are dropped as truncated), and a shared server's batching makes a seed no guarantee: room
# for longer replies and up to 8 tasks per leaf make a tree step with nothing kept unlikely
# (the step still stops at the build's target of 3).
TOPIC_STEPS = [{"kind": "topic_tree", "params": {**ANSWERS, "max_tokens": 300, "response_max_tokens": 400,
                                                 "root": ROOT, "depth": 1, "breadth": 3,
                                                 "tasks_per_leaf": 8, "seed": 4}},
               {"kind": "evol_instruct", "source": "previous",
                "params": {"rounds": 1, "chat_max_tokens": 200, "response_max_tokens": 200, "seed": 3}}]


def make_dataset(url: str, name: str, steps: list[dict], grow_by: int) -> int:
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": steps, "grow_by": grow_by},
                                      dataset_build.step_validator())
        return versions.create_dataset(session, None, name, recipe).id


def exported(url: str, dataset_id: int) -> dict[str, list[dict]]:
    with session_scope(url) as session:
        out = {fmt: "".join(ds_export.export_chunks(session, dataset_id, 1, fmt))
               for fmt in ("sharegpt", "messages", "alpaca")}
    return {"alpaca": json.loads(out.pop("alpaca")),
            **{fmt: [json.loads(line) for line in text.splitlines()] for fmt, text in out.items()}}


def test_topic_tree_and_persona_recipes_on_the_chat_model_with_a_real_worker(api_settings, processes,
                                                                              chat_llm_base_url, pg_url):
    topics_id = make_dataset(pg_url, "garden-chat", TOPIC_STEPS, 3)
    with session_scope(pg_url) as session:
        set_id = store.import_persona_set(session, "people", "jsonl", PERSONAS).id
    people_id = make_dataset(pg_url, "people-chat", [{"kind": "persona", "params": {
        **ANSWERS, "persona_set_id": set_id, "seed": 5,
        "task_types": ["a request for practical advice", "a short writing task", "a question about their work"]}}], 2)
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=chat_llm_base_url, SPROUT_JOB_FLUSH_S="0.5")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    from workers.celery_app import enqueue, make_celery

    def build(dataset_id: int) -> Job:
        with session_scope(pg_url) as session:
            build_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build",
                                                                         {"dataset_id": dataset_id})).id
        enqueue(make_celery(api_settings), build_id, "dataset_build")

        def finished():
            with session_scope(pg_url) as session:
                job = session.get(Job, build_id)
                return job if job.status in ("succeeded", "failed", "cancelled") else None

        return wait_for(finished, "the build to finish on the worker", [worker], poll_s=1)

    topics_build, people_build = build(topics_id), build(people_id)
    assert topics_build.status == "succeeded", topics_build.error
    assert people_build.status == "succeeded", people_build.error

    with session_scope(pg_url) as session:
        tree_job = session.get(Job, topics_build.result["steps"][0])
        evol_job = session.get(Job, topics_build.result["steps"][1])
        persona_job = session.get(Job, people_build.result["steps"][0])
        tree = session.get(TopicTree, tree_job.result["topic_tree_id"])
        topic_rows = session.exec(select(Instruction).where(Instruction.job_id == tree_job.id)).all()
        persona_rows = session.exec(select(Instruction).where(Instruction.job_id == persona_job.id)).all()
        topic_version = versions.get_version(session, topics_id, 1)
        topic_card = topic_version.card
        people_card = versions.get_version(session, people_id, 1).card
    # every role of the planned steps spoke the chat API (the embedded server says it is a chat model)
    for job in (tree_job, persona_job):
        roles = job.counters["roles"]
        assert roles["generator"]["dialect"] == "chat" and roles["responder"]["dialect"] == "chat", job.kind
        assert roles["generator"]["completion_tokens"] > 0 and roles["responder"]["completion_tokens"] > 0
    assert evol_job.counters["roles"]["generator"]["dialect"] == "chat"
    # the tree grown through the chat API (structured subtopics) is stored, editable, and its leaves were asked
    assert tree.made_by == "grown" and tree.tree["topic"] == ROOT and tree.tree["children"], tree.tree
    leaves = {(ROOT, c["topic"]) for c in tree.tree["children"]}
    assert topic_rows and all(tuple(r.detail["topic_path"]) in leaves for r in topic_rows)
    assert persona_rows and all(r.detail["persona"] in PERSONAS for r in persona_rows)
    for r in [*topic_rows, *persona_rows]:
        assert r.fate == "accepted" or r.rule, "a rejection without its rule"
        if r.rule == "unparseable":
            assert r.detail["reply"] is not None
        if r.fate == "accepted":
            assert not r.instruction.lstrip().startswith("{"), "a JSON reply stored as the task"

    # topic paths and personas survive every export format (the lineage's root carries them)
    for fmt, records in exported(pg_url, topics_id).items():
        assert records, fmt
        assert all(tuple(rec["lineage"][0]["topic_path"]) in leaves for rec in records), fmt
        assert {rec["method"] for rec in records} <= {"topic_tree", "evol_instruct"}, fmt
    for fmt, records in exported(pg_url, people_id).items():
        assert records, fmt
        assert all(rec["lineage"][0]["persona"] in PERSONAS for rec in records), fmt
    # and show in the version's card, in its diversity section
    assert "## Diversity" in topic_card and any(f"| topic | {' > '.join(leaf)} |" in topic_card for leaf in leaves)
    methods = topic_version.counts["diversity"]["by"]["method"]  # the roots the evolution kept, and its own
    assert methods and set(methods) <= {"topic_tree", "evol_instruct"}
    assert all(f"| method | {m} | {g['rows']} |" in topic_card for m, g in methods.items()), topic_card
    assert "## Diversity" in people_card and "| persona | " in people_card


def test_each_role_goes_through_the_dialect_it_names(pg_url, chat_llm_base_url):
    """The chat model's server answers both APIs: `dialect: completions` sends the generator's
    few-shot prompts to /v1/completions, `responder_dialect: chat` the answers to the chat API."""
    with session_scope(pg_url) as session:
        set_id = store.import_persona_set(session, "few", "jsonl", PERSONAS).id
        job_id = jobs.requests.create_job(session, jobs.JobRequest("persona", {
            **ANSWERS, "target": 1, "persona_set_id": set_id, "seed": 2, "dialect": "completions",
            "responder_dialect": "chat", "task_types": ["a short writing task"]})).id
    settings = Settings(database_url=pg_url, job_flush_s=0.5, job_batch_size=4, llm_concurrency=2)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[chat_llm_base_url])
    assert job.status == "succeeded", job.error
    assert job.counters["accepted"] == 1  # so a task was written and answered
    roles = job.counters["roles"]
    assert roles["generator"]["dialect"] == "completions" and roles["responder"]["dialect"] == "chat"
    assert roles["generator"]["completion_tokens"] > 0 and roles["responder"]["completion_tokens"] > 0
