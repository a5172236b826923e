"""Persona-driven generation on the real embedded model, stored in PostgreSQL: a job run here
stores every candidate with its persona and fate; a dataset recipe `persona` then
`evol_instruct`, built by a real worker process, lands in a version whose rows keep their
persona through the evolution and the export, and a second build draws only personas the
first did not use (sampling without replacement across builds)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from app.core import jobs, lineage, store
from app.core.datasets import export as ds_export
from app.core.datasets import recipe as recipes
from app.core.datasets import versions
from app.core.handoff import sources
from app.core.handoff.bundle import write_bundle
from app.core.jobs import dataset_build, lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, Job
from app.settings import Settings
from tests.conftest import DEFAULT_SEEDS
from tests.service_fixtures import api_settings, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

PERSONAS = [
    "A nurse working night shifts in a busy emergency department.",
    "A farmer growing organic vegetables on a small family farm.",
    "A high-school chemistry teacher preparing lab sessions.",
    "A travel blogger planning a two-week trip through Japan by train.",
    "A carpenter who builds custom furniture and estimates material costs.",
    "A marathon runner training for a first race.",
    "A librarian teaching older adults how to spot online scams.",
    "A chef running a vegetarian restaurant who writes seasonal menus.",
    "A beekeeper with twenty hives who sells honey at the market.",
    "A data analyst who builds weekly sales reports.",
    "A museum curator preparing an exhibition on trade routes.",
    "A music teacher who gives piano lessons to adult beginners.",
]
# short answers keep the 270M model from rambling on a small shared CPU
PARAMS = {"max_tokens": 80, "response_max_tokens": 160, "seed": 5, "near_duplicate_threshold": 0.8}


def persona_set(url: str, owner: str | None = None) -> int:
    with session_scope(url) as session:
        return store.import_persona_set(session, "people", "jsonl", PERSONAS, owner=owner).id


def test_a_persona_job_stores_every_candidate_with_its_persona(pg_url, llm_base_url):
    settings = Settings(database_url=pg_url, job_flush_s=0.5, job_batch_size=4, llm_concurrency=4)
    set_id = persona_set(pg_url)
    with session_scope(pg_url) as session:
        job_id = jobs.requests.create_job(session, jobs.JobRequest(
            "persona", {**PARAMS, "target": 3, "persona_set_id": set_id, "task_types": ["a short writing task"]})).id
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == "succeeded", job.error
    with session_scope(pg_url) as session:
        rows = session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
        curated = store.curated_examples(session, job_id)
        exported = list(sources.job_rows(session, store.get_job(session, job_id)))
    assert rows and all(r.detail["persona"] in PERSONAS and r.detail["task"] == "a short writing task" for r in rows)
    assert len({r.detail["persona"] for r in rows}) == len(rows), "a persona was asked twice"
    assert all(r.rule for r in rows if r.fate == "rejected"), "a rejection without its rule"
    assert job.counters["accepted"] == len(curated) == 3
    assert all(row["persona"] in PERSONAS and row["output"].strip() for row in curated)
    assert all(row["persona"] == c["persona"] for row, c in zip(exported, curated))


def make_dataset(url: str, name: str, set_id: int) -> int:
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    steps = [{"kind": "persona", "params": {**PARAMS, "persona_set_id": set_id}},
             {"kind": "evol_instruct", "source": "previous",
              "params": {"rounds": 1, "max_tokens": 120, "response_max_tokens": 160, "seed": 3}}]
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": steps, "grow_by": 3},
                                      dataset_build.step_validator())
        return versions.create_dataset(session, None, name, recipe).id


def test_a_persona_then_evol_recipe_builds_versions_with_a_real_worker(api_settings, processes, llm_base_url,
                                                                       pg_url, tmp_path):
    set_id = persona_set(pg_url)
    dataset_id = make_dataset(pg_url, "people-sft", set_id)
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_JOB_FLUSH_S="0.5")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    from workers.celery_app import enqueue, make_celery

    def build() -> Job:
        with session_scope(pg_url) as session:
            build_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build",
                                                                         {"dataset_id": dataset_id})).id
        enqueue(make_celery(api_settings), build_id, "dataset_build")

        def finished():
            with session_scope(pg_url) as session:
                job = session.get(Job, build_id)
                return job if job.status in ("succeeded", "failed", "cancelled") else None

        return wait_for(finished, "the build to finish on the worker", [worker], poll_s=1)

    first = build()
    assert first.status == "succeeded", first.error
    with session_scope(pg_url) as session:
        rows = list(sources.version_rows(session, dataset_id, 1))
        persona_job = session.get(Job, first.result["steps"][0])
        evol_job = session.get(Job, first.result["steps"][1])
        asked_first = {d["persona"] for d in session.exec(
            select(Instruction.detail).where(Instruction.job_id == persona_job.id)).all()}
        evolved = lineage.export_rows(session, evol_job)
        sharegpt = "".join(ds_export.export_chunks(session, dataset_id, 1, "sharegpt"))
    assert persona_job.kind == "persona" and evol_job.kind == "evol_instruct"
    assert rows, "the build added nothing"
    # every row keeps the persona its root was written as, through the evolution
    assert all(r["lineage"][0]["persona"] in PERSONAS for r in rows), rows
    assert all(row["persona"] in PERSONAS for row in evolved)
    assert all(json.loads(line)["lineage"][0]["persona"] in PERSONAS for line in sharegpt.splitlines())
    write_bundle(rows, _meta(pg_url, dataset_id), tmp_path / "bundle")
    card = (tmp_path / "bundle" / "README.md").read_text(encoding="utf-8")
    assert "## Diversity" in card and "| persona |" in card  # the personas show in the card

    second = build()
    assert second.status == "succeeded", second.error
    with session_scope(pg_url) as session:
        persona_job = session.get(Job, second.result["steps"][0])
        asked_second = {d["persona"] for d in session.exec(
            select(Instruction.detail).where(Instruction.job_id == persona_job.id)).all()}
    assert asked_second and not asked_second & asked_first, "a persona of the first build was drawn again"


def _meta(url: str, dataset_id: int):
    with session_scope(url) as session:
        dataset = versions.get_dataset_by_id(session, dataset_id)
        return sources.version_meta(session, dataset, versions.get_version(session, dataset_id, 1))
