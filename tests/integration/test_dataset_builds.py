"""Dataset builds with the real embedded model, PostgreSQL, Redis, and real worker and beat
processes: two builds make versions 1 and 2, and nothing version 2 added is too close to
what version 1 holds; a schedule fires builds by itself, once per due time with two beats
running; a build whose worker is SIGKILLed commits exactly one version."""

from __future__ import annotations

import signal

import pytest
from rouge_score import rouge_scorer
from sqlmodel import select

from app.core import jobs, store
from app.core.datasets import recipe as recipes
from app.core.datasets import versions
from app.core.jobs import build_estimate, dataset_build, lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import DatasetVersion, Job, ScheduleFire
from app.settings import Settings
from tests.conftest import DEFAULT_SEEDS
from tests.service_fixtures import api, api_settings, client, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

THRESHOLD = 0.7
# small builds: a short response limit keeps the 270M base model from rambling
STEP = {"kind": "self_instruct", "params": {"max_tokens": 320, "seed": 11, "near_duplicate_threshold": 0.8}}


def make_dataset(url: str, name: str, grow_by: int, owner: str | None = None, **recipe_extra) -> int:
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "default.jsonl", fmt, tasks, owner=owner)
        recipe = recipes.parse_recipe({"seed_set_ids": [seed_set.id], "steps": [STEP], "grow_by": grow_by,
                                       **recipe_extra}, dataset_build.step_validator())
        return versions.create_dataset(session, owner, name, recipe).id


def build(url: str, dataset_id: int, settings: Settings, base_url: str) -> Job:
    with session_scope(url) as session:
        job_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    return lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[base_url])


def instructions(url: str, dataset_id: int, number: int) -> list[str]:
    with session_scope(url) as session:
        return [r["instruction"] for r in versions.version_rows(session, dataset_id, number)]


def test_two_builds_make_two_versions_and_the_second_is_novel_against_the_first(pg_url, llm_base_url):
    settings = Settings(database_url=pg_url, job_flush_s=0.5)
    dataset_id = make_dataset(pg_url, "support-sft", grow_by=4)
    first = build(pg_url, dataset_id, settings, llm_base_url)
    assert first.status == "succeeded", first.error
    assert first.result["version"] == 1 and first.result["added"] > 0
    second = build(pg_url, dataset_id, settings, llm_base_url)
    assert second.status == "succeeded", second.error
    assert second.result["version"] == 2

    v1 = instructions(pg_url, dataset_id, 1)
    v2 = instructions(pg_url, dataset_id, 2)
    assert v2[: len(v1)] == v1, "version 2 starts with version 1's rows, unchanged"
    added = set(v2) - set(v1)
    assert added, "the second build added nothing"
    # the paper's rule, checked with rouge-score itself, against every instruction of version 1
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for new in added:
        worst = max(scorer.score(old, new)["rougeL"].fmeasure for old in v1)
        assert worst <= THRESHOLD, (new, worst)
    with session_scope(pg_url) as session:
        v = versions.get_version(session, dataset_id, 2)
        assert v.build_job_id == second.id and v.parent_id == versions.get_version(session, dataset_id, 1).id
        assert v.counts["build"]["accepted"] >= len(added) and v.counts["build"]["rejected_by_rule"]
        assert v.content_hash == versions.content_hash(session, dataset_id, 2)
        step_job = session.get(Job, second.result["steps"][0])
        # the step job keeps every candidate with its fate, like any job
        assert step_job.kind == "self_instruct" and step_job.counters["generated"] >= step_job.counters["accepted"]
        # what each step spent, and the steps' contamination report (the trainer's evaluation tasks are
        # always checked), stored with the version; the next build's estimate reads them, sending no request
        (spent,) = v.counts["build"]["steps"]
        assert spent["job_id"] == step_job.id and spent["prompt_tokens"] == step_job.counters["prompt_tokens"] > 0
        assert "candidates_hit" in v.counts["build"]["contamination"]
        est = build_estimate.estimate_build(session, versions.get_dataset_by_id(session, dataset_id),
                                            settings.core_config(), pilot=False)
    print(f"\nnext build's estimate: {est}")
    assert est.basis == "history" and [b["version"] for b in est.history] == [2, 1]
    assert est.low_total_tokens <= est.expected_total_tokens <= est.high_total_tokens and est.target == 4


def test_a_schedule_fires_by_itself_once_per_due_time_with_two_beats(api_settings, processes, llm_base_url, pg_url):
    dataset_id = make_dataset(pg_url, "nightly", grow_by=2)
    from app.core.datasets import schedule

    with session_scope(pg_url) as session:
        schedule.set_schedule(session, versions.get_dataset_by_id(session, dataset_id), "* * * * *", "UTC")
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_SCHEDULE_TICK_S="1",
                      SPROUT_REAPER_INTERVAL_S="5")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    beats = [processes(["beat", "--schedule", str(api_settings.data_dir / f"beat-{i}")], env, f"beat-{i}")
             for i in range(2)]

    def built():
        with session_scope(pg_url) as session:
            return session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)).first()

    version = wait_for(built, "a scheduled build to commit a version", [worker, *beats], poll_s=1)
    assert version.number == 1 and version.build_job_id is not None
    for beat in beats:
        beat.stop()
    with session_scope(pg_url) as session:
        fires = session.exec(select(ScheduleFire).where(ScheduleFire.dataset_id == dataset_id)).all()
        builds = session.exec(select(Job).where(Job.kind == "dataset_build")).all()
    due = [f.due_at for f in fires]
    assert len(due) == len(set(due)), "a due time fired twice"
    started = [f for f in fires if f.job_id is not None]
    assert len({f.job_id for f in started}) == len(started) == len(builds), (fires, builds)
    assert any(f.status == "built" and f.job_id == version.build_job_id for f in fires)


def test_a_build_whose_worker_is_killed_commits_exactly_one_version(api_settings, processes, llm_base_url, pg_url):
    dataset_id = make_dataset(pg_url, "crashy", grow_by=4)
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_JOB_STALE_S="5",
                      SPROUT_REAPER_INTERVAL_S="1")
    args = ["worker", "--queues", "generation", "--concurrency", "1"]
    first = processes(args, env, "worker-1")
    from workers.celery_app import enqueue, make_celery

    with session_scope(pg_url) as session:
        build_id = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset_id})).id
    enqueue(make_celery(api_settings), build_id, "dataset_build")

    def step_accepted():
        with session_scope(pg_url) as session:
            steps = (session.get(Job, build_id).result or {}).get("steps") or []
            return steps and (session.get(Job, steps[0]).counters or {}).get("accepted", 0) >= 1

    wait_for(step_accepted, "the build's step to accept an instruction", [first], poll_s=0.2)
    first.kill(signal.SIGKILL)
    with session_scope(pg_url) as session:
        assert session.get(Job, build_id).status == "running", "the build ended before the kill: nothing was tested"
    second = processes(args, env, "worker-2")
    beat = processes(["beat", "--schedule", str(api_settings.data_dir / "beat")], env, "beat")

    def finished():
        with session_scope(pg_url) as session:
            job = session.get(Job, build_id)
            return job if job.status in ("succeeded", "failed", "cancelled") else None

    done = wait_for(finished, "the build to finish on the new worker", [second, beat], poll_s=1)
    assert done.status == "succeeded", done.error
    with session_scope(pg_url) as session:
        made = session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)).all()
        step_jobs = session.exec(select(Job).where(Job.kind == "self_instruct")).all()
    assert [v.number for v in made] == [1] and made[0].build_job_id == build_id
    assert len(step_jobs) == 1, "the resumed build made a second step job"
    assert done.attempts == 2
