"""A topic tree grown by the real embedded model, then tasks per leaf: a dataset recipe with a
`topic_tree` step, built by a real worker process, stores the grown tree (editable), keeps
every candidate's topic path with its fate, and lands in a version whose rows carry their
topic path through export; the diversity report groups them by topic."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from app.core import diversity_sources, jobs, store
from app.core.datasets import export as ds_export
from app.core.datasets import recipe as recipes
from app.core.datasets import versions
from app.core.jobs import dataset_build
from app.core.methods import topic_tree
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, Job, TopicTree
from tests.conftest import DEFAULT_SEEDS
from tests.service_fixtures import api_settings, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = "Home gardening"
STEP = {"kind": "topic_tree", "params": {"root": ROOT, "depth": 1, "breadth": 3, "tasks_per_leaf": 3, "seed": 4,
                                         "max_tokens": 80, "response_max_tokens": 160,
                                         "near_duplicate_threshold": 0.8}}


def test_a_topic_tree_step_grows_a_tree_and_lands_in_a_version(api_settings, processes, llm_base_url, pg_url):
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    with session_scope(pg_url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": [STEP], "grow_by": 3},
                                      dataset_build.step_validator())
        dataset_id = versions.create_dataset(session, None, "garden", recipe).id
        build_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_JOB_FLUSH_S="0.5")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    from workers.celery_app import enqueue, make_celery

    enqueue(make_celery(api_settings), build_id, "dataset_build")

    def finished():
        with session_scope(pg_url) as session:
            job = session.get(Job, build_id)
            return job if job.status in ("succeeded", "failed", "cancelled") else None

    build = wait_for(finished, "the build to finish on the worker", [worker], poll_s=1)
    assert build.status == "succeeded", build.error
    with session_scope(pg_url) as session:
        step = session.get(Job, build.result["steps"][0])
        tree_row = session.get(TopicTree, step.result["topic_tree_id"])
        candidates = session.exec(select(Instruction).where(Instruction.job_id == step.id)).all()
        rows = list(versions.version_rows(session, dataset_id, 1))
        sharegpt = "".join(ds_export.export_chunks(session, dataset_id, 1, "sharegpt"))
        report = diversity_sources.version_report(session, versions.get_dataset_by_id(session, dataset_id), 1)
        # the grown tree is stored like any tree, and editable
        assert tree_row.made_by == "grown" and tree_row.grown_by_job_id == step.id
        tree = topic_tree.check_tree(tree_row.tree)  # as grown (and a valid tree)
        store.replace_topic_tree(session, tree_row, {**tree_row.tree, "topic": "Gardening at home"})
        assert tree_row.made_by == "edited" and tree_row.tree["topic"] == "Gardening at home"
    leaves = topic_tree.leaf_paths(tree)
    assert tree["children"], f"the model grew no subtopic of {ROOT!r}"
    assert all(len(path) == 2 and path[0] == ROOT for path in leaves)
    assert candidates and all(tuple(c.detail["topic_path"]) in {tuple(p) for p in leaves} for c in candidates)
    assert all(c.rule for c in candidates if c.fate == "rejected")
    assert rows and all(tuple(r["lineage"][0]["topic_path"]) in {tuple(p) for p in leaves} for r in rows)
    assert all(json.loads(line)["lineage"][0]["topic_path"][0] == ROOT for line in sharegpt.splitlines())
    assert set(report["by"]["topic"]) <= {" > ".join(p) for p in leaves} and report["by"]["topic"]
