"""A job's result through its kind's result model: stored through it, read back through it
(old rows too), published at `GET /kinds`, and shown on the dashboard's job page for a kind
the dashboard does not know; a dataset build's step carries its origin as a parameter."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field
from sqlmodel import select

from app.core import jobs
from app.core.config import CoreConfig
from app.core.jobs import dataset_build, lifecycle, sft
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, Progress, params_as
from app.core.jobs.results import Counters, JobResult, read_result, step_origin
from app.core.params import BuildOrigin
from app.db import session_scope
from app.models import Job
from tests.dataset_fixtures import make_dataset
from tests.service_fixtures import api, api_settings, client  # noqa: F401

KIND = "tally_test"


class TallyParams(BaseModel):
    upto: int = Field(3, ge=1, le=100)


class TallyResult(JobResult):
    """What a tally job found."""

    tallied: int = Field(title="Numbers tallied", description="How many numbers the job added up.")
    total: int = Field(title="Their sum", description="1 + 2 + ... + upto.")
    odd: list[int] | None = Field(default=None, title="Odd numbers", description="The odd ones among them.")
    note: str | None = Field(default=None, title="Note", description="Never set by this kind.")


def _tally(ctx: lifecycle.JobContext) -> TallyResult:
    upto = params_as(ctx.params, TallyParams).upto
    return TallyResult(tallied=upto, total=upto * (upto + 1) // 2, odd=[n for n in range(1, upto + 1) if n % 2])


@pytest.fixture
def tally_kind():
    kind = jobs.register(JobKind(
        name=KIND, params_model=TallyParams, result_model=TallyResult, queue=GENERATION_QUEUE, run=_tally,
        check=lambda session, request, params: {}, progress=lambda job: Progress(target=None, done=0),
        description="adds numbers up (a test kind)", produces_examples=False,
    ))
    yield kind
    jobs.registry.unregister(KIND)


def test_a_kind_registered_now_publishes_its_result_schema_and_the_job_page_shows_its_fields(
        tally_kind, api, client, pg_url):
    kinds = {k["name"]: k for k in api.ok("get", "/api/v1/kinds")["items"]}
    schema = kinds[KIND]["result_schema"]
    assert schema["properties"]["tallied"]["title"] == "Numbers tallied"
    assert schema["properties"]["total"]["description"] == "1 + 2 + ... + upto."
    assert set(schema["required"]) == {"tallied", "total"}
    # the built-in kinds publish theirs too
    assert "tokens_per_accepted" in kinds["self_instruct"]["result_schema"]["properties"]
    assert "version" in kinds["dataset_build"]["result_schema"]["properties"]

    made = api.ok("post", "/api/v1/jobs", 201, json={"kind": KIND, "params": {"upto": 5}})
    ended = lifecycle.run_job(pg_url, made["id"], CoreConfig(), worker="test")
    assert ended.status == "succeeded"
    # stored as the model's JSON, with the keys the kind set (the unset `note` is not written)
    assert ended.result == {"tallied": 5, "total": 15, "odd": [1, 3, 5]}
    typed = jobs.registry.result_of(ended)
    assert isinstance(typed, TallyResult) and typed.total == 15 and typed.note is None

    job = api.ok("get", f"/api/v1/jobs/{made['id']}")
    assert [(f["name"], f["title"], f["value"]) for f in job["result_fields"]] == [
        ("tallied", "Numbers tallied", 5), ("total", "Their sum", 15), ("odd", "Odd numbers", [1, 3, 5])]
    assert job["result_fields"][0]["description"] == "How many numbers the job added up."

    # the job page draws `result_fields` as they come: it names no kind's result field
    script = client.get("/dashboard/static/jobs.js").text
    assert "job.result_fields" in script and 'id="result-fields"' in script
    assert KIND not in script and "tallied" not in script

    jobs.registry.unregister(KIND)
    assert KIND not in {k["name"] for k in api.ok("get", "/api/v1/kinds")["items"]}


def test_a_result_that_breaks_its_model_fails_the_job(tally_kind, sqlite_url):
    jobs.registry.register(JobKind(
        name=KIND, params_model=TallyParams, result_model=TallyResult, queue=GENERATION_QUEUE,
        run=lambda ctx: {"tallied": "many"}, check=lambda session, request, params: {},
        progress=lambda job: Progress(target=None, done=0),
    ))
    with session_scope(sqlite_url) as session:
        job_id = jobs.requests.create_job(session, jobs.JobRequest(KIND, {})).id
    with pytest.raises(ValueError):
        lifecycle.run_job(sqlite_url, job_id, CoreConfig(), worker="test")
    with session_scope(sqlite_url) as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "tallied" in job.error and not job.result


def test_old_rows_read_through_the_models():
    build = Job(kind="dataset_build", params={"dataset_id": 1},
                result={"dataset_id": 1, "version": 3, "steps": [4, 5], "kept_from_before": "x"})
    read = jobs.registry.result_of(build)
    assert isinstance(read, dataset_build.DatasetBuildResult)
    assert (read.version, read.steps, read.added, read.handoff_error) == (3, [4, 5], None, None)
    assert read.model_extra == {"kept_from_before": "x"}  # a key no model declares is kept
    assert read_result(Job(kind="sft", result={}), sft.SftResult).source.dataset_id is None
    # an unknown kind reads as the base model
    assert jobs.registry.result_of(Job(kind="gone", result={"followups": [7], "a": 1})).followups == [7]
    counters = Counters.model_validate({"accepted": None, "max_steps": None, "rejected": {"rouge": 2},
                                        "roles": {"judge": {"prompt_tokens": 3, "cost": None}}, "new": 1})
    assert (counters.accepted, counters.max_steps, counters.rejected, counters.roles["judge"].prompt_tokens) == (
        0, None, {"rouge": 2}, 3)


def test_a_build_step_carries_its_origin_as_a_parameter(sqlite_url):
    with session_scope(sqlite_url) as session:
        dataset = make_dataset(session, owner="alice")
        seed_set_id = dataset.recipe["seed_set_ids"][0]
        origin = BuildOrigin(dataset_id=dataset.id, build_job_id=1, step=1, seed_set_ids=[seed_set_id])
        step = jobs.requests.create_job(session, jobs.JobRequest(
            "evol_instruct", {}, seed_set_id=seed_set_id, owner="alice", build=origin))
        assert step.params["build"] == origin.model_dump(mode="json") and "build" not in step.result
        assert step_origin(step) == origin
        # a step stored before the origin was a parameter held it in its result: still read
        old = Job(kind="self_instruct", params={}, result={"build": origin.model_dump(mode="json")})
        assert step_origin(old) == origin and step_origin(Job(kind="self_instruct", params={})) is None
        # a caller cannot make a job a build's step
        with pytest.raises(jobs.JobRequestError) as caught:
            jobs.requests.create_job(session, jobs.JobRequest(
                "evol_instruct", {"build": origin.model_dump(mode="json")}, seed_set_id=seed_set_id, owner="alice"))
        assert caught.value.field == "params.build"
        assert session.exec(select(Job).where(Job.kind == "evol_instruct")).all() == [step]


def test_a_recipe_step_cannot_set_the_build_origin():
    check = dataset_build.step_validator()
    with pytest.raises(jobs.JobRequestError) as caught:
        check("self_instruct", {"build": {"dataset_id": 1, "build_job_id": 1, "step": 1}}, False)
    assert caught.value.field == "params.build"
