"""The dataset_build kind without a model: the recipe's steps checked by the registry,
a build request checked like any job request, and the scheduler tick creating builds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from app.core import jobs
from app.core.datasets import recipe as recipes
from app.core.datasets import schedule, versions
from app.core.datasets.errors import RecipeError
from app.core.jobs import dataset_build
from app.db import session_scope
from app.models import Job, ScheduleFire, utcnow
from tests.dataset_fixtures import make_dataset, make_seed_set, recipe_data


def errors_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(RecipeError) as caught:
        recipes.parse_recipe(data, dataset_build.step_validator())
    return caught.value.errors


def test_recipe_steps_are_checked_by_the_registry():
    good = recipe_data([1], steps=[{"kind": "self_instruct", "params": {"temperature": 0.5}},
                                   {"kind": "evol_instruct", "params": {"rounds": 1}, "source": "previous"}])
    assert [s.kind for s in recipes.parse_recipe(good, dataset_build.step_validator()).steps] == [
        "self_instruct", "evol_instruct"]
    cases = [
        ([{"kind": "nope"}], "steps[0].kind", "unknown job kind 'nope'"),
        ([{"kind": "sft"}], "steps[0].kind", "makes no examples"),
        ([{"kind": "dataset_build"}], "steps[0].kind", "cannot be a step of one"),
        ([{"kind": "self_instruct"}, {"kind": "self_instruct", "source": "previous"}], "steps[1].source",
         "cannot take the previous step's output"),
        ([{"kind": "self_instruct", "params": {"temperature": 9}}], "steps[0].params.temperature", "less than or equal"),
    ]
    for steps, path, fragment in cases:
        errors = errors_of(recipe_data([1], steps=steps))
        assert any(p == path and fragment in m for p, m in errors), (steps, errors)


def test_a_build_request_names_an_owned_dataset(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner="alice")
        job = jobs.requests.create_job(session, jobs.JobRequest("dataset_build", {"dataset_id": dataset.id},
                                                                owner="alice"))
        assert job.result["dataset"] == dataset.name and job.counters["steps"] == 1
        for request, field in (
            (jobs.JobRequest("dataset_build", {"dataset_id": dataset.id}, owner="bob"), "params.dataset_id"),
            (jobs.JobRequest("dataset_build", {"dataset_id": 9999}, owner="alice"), "params.dataset_id"),
            (jobs.JobRequest("dataset_build", {"dataset_id": dataset.id}, seed_set_id=1, owner="alice"), "seed_set_id"),
        ):
            with pytest.raises(jobs.JobRequestError) as caught:
                jobs.requests.create_job(session, request)
            assert caught.value.field == field


def test_the_scheduler_tick_creates_one_build_per_due_time_and_skips_a_busy_dataset(sqlite_url):
    now = utcnow().replace(second=30, microsecond=0)  # one minutely due time (hh:mm:00) since the anchor
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner="alice")
        schedule.set_schedule(session, dataset, "* * * * *", "UTC", now=now - timedelta(seconds=40))
        dataset_id = dataset.id
    with session_scope(sqlite_url) as session:
        started = dataset_build.fire_due_builds(session, now)
    with session_scope(sqlite_url) as session:  # a second scheduler, same moment: nothing more
        assert dataset_build.fire_due_builds(session, now) == []
    assert len(started) == 1
    with session_scope(sqlite_url) as session:
        build = session.get(Job, started[0])
        assert build.kind == "dataset_build" and build.params["dataset_id"] == dataset_id and build.owner == "alice"
        # the next due time, while that build is still queued: recorded as skipped
        later = dataset_build.fire_due_builds(session, now + timedelta(minutes=1))
        assert later == []
        fires = session.exec(select(ScheduleFire).order_by(ScheduleFire.due_at)).all()
    assert [f.status for f in fires] == ["started", "skipped"]
    assert "still running" in fires[1].reason


def test_a_dataset_of_another_owner_cannot_use_my_seed_set(sqlite_url):
    with session_scope(sqlite_url) as session:
        mine = make_seed_set(session, owner="alice")
        recipe = recipes.parse_recipe(recipe_data([mine]), dataset_build.step_validator())
        with pytest.raises(ValueError, match="no seed set"):
            versions.create_dataset(session, "bob", "theirs", recipe)


def test_an_evol_instruct_step_is_seeded_with_the_datasets_content(sqlite_url):
    """Like a Self-Instruct step, an Evol-Instruct step of a build checks its evolutions
    against every instruction and example the dataset already holds."""
    from types import SimpleNamespace

    from app.core.config import CoreConfig, LLMConfig
    from app.core.jobs import evol_instruct
    from app.core.llm.client import LLMClient
    from app.core.params import EvolInstructParams
    from tests.dataset_fixtures import examples

    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session)
        versions.commit_version(session, dataset, examples(3))
        seed_set_id = dataset.recipe["seed_set_ids"][0]
        plain = Job(kind="evol_instruct", seed_set_id=seed_set_id, params={})
        origin = {"dataset_id": dataset.id, "build_job_id": 1, "step": 1, "seed_set_ids": [seed_set_id]}
        step = Job(kind="evol_instruct", seed_set_id=seed_set_id, params={"build": origin})
        old_step = Job(kind="evol_instruct", seed_set_id=seed_set_id, params={}, result={"build": origin})
        session.add_all([plain, step, old_step])
        session.flush()
        ctx = SimpleNamespace(config=CoreConfig())
        params = EvolInstructParams(near_duplicate_threshold=0.0)
        client = LLMClient(LLMConfig(base_urls=["http://127.0.0.1:9/v1"], dialect="completions"))
        alone = evol_instruct.build(session, plain, params, client, [], ctx)
        seeded = evol_instruct.build(session, step, params, client, [], ctx)
        seeded_before = evol_instruct.build(session, old_step, params, client, [], ctx)  # origin in its result
        held = [row["instruction"] for row in versions.version_rows(session, dataset.id, 1)]
        assert len(held) == 3
        assert all(seeded._pool_counts[text] == 1 and alone._pool_counts[text] == 0 for text in held)
        assert all(seeded_before._pool_counts[text] == 1 for text in held)
        assert len(seeded.lineages) == len(alone.lineages)  # the dataset's rows are checked against, never evolved
