"""The `dataset_build` job kind: run a dataset's recipe and commit its next version.

A build runs the recipe's steps in order, each as a job of its own kind (a *step job*,
stored and resumable like any job, with every candidate and why it was kept or
rejected): the first step starts from the recipe's seed sets, a later one from the step
before it (e.g. Self-Instruct, then Evol-Instruct on what it kept). Each step's novelty
and near-duplicate indexes are seeded with the dataset's whole current content
(`generation.dataset_inputs`), so a build never adds an example too similar to one the
dataset already holds. The last step's curated rows then become the next version, in one
transaction with the schedule's fire record (`datasets.versions.commit_version`).

Crash and cancel: the step jobs' ids are saved on the build as they are made, so a build
taken over after its worker died resumes its step job where it was and makes no new one;
the commit is keyed by the build's job id, so it happens once. A build that fails or is
cancelled commits nothing (its step jobs keep their rows, for the record).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from app.core import lineage, store
from app.core.datasets import fires, versions
from app.core.datasets.deletion import BUILD_KIND, builds_in_progress
from app.core.datasets.errors import DatasetError, EmptyChange
from app.core.datasets.recipe import Recipe, RecipeStep, StepValidator, parse_recipe
from app.core.datasets.schedule import DEFAULT_GRACE
from app.core.filters.decontaminate import merge_reports
from app.core.jobs.generation import GenerationResult
from app.core.jobs.lifecycle import JobContext, JobStopped, run_job
from app.core.jobs.outcome import FollowUp, Outcome
from app.core.jobs.registry import (
    GENERATION_QUEUE,
    JobKind,
    JobRequest,
    JobRequestError,
    Progress,
    get,
    params_as,
    register,
)
from app.core.jobs.requests import create_job
from app.core.jobs.results import Counters, JobResult, dump_result, read_result
from app.core.llm.client import LLMOutageError
from app.core.methods.candidates import JobInputError
from app.core.params import BuildOrigin
from app.core.scoring import storage as scoring_storage
from app.models import Dataset, FireStatus, Job, JobStatus

KIND = BUILD_KIND  # named in the datasets core too, which finds a dataset's running builds


class DatasetBuildParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int = Field(ge=1, le=2**31 - 1, description="The dataset to build.")
    fire_id: int | None = Field(default=None, ge=1, description="The schedule fire that started it, if any.")


class DatasetBuildResult(JobResult):
    """What a build records: its dataset, its step jobs (saved as they are made) and the
    version it committed."""

    dataset_id: int | None = Field(default=None, description="The dataset built.")
    dataset: str | None = Field(default=None, description="The dataset's name.")
    version: int | None = Field(default=None, description="The version it committed (none: nothing added).")
    steps: list[int] = Field(default_factory=list, description="Its step jobs, one per recipe step.")
    added: int | None = Field(default=None, description="Examples the version added.")
    curated: int | None = Field(default=None, description="The same: examples the build added.")
    content_hash: str | None = Field(default=None, description="The version's content hash.")
    paused: str | None = Field(default=None, description="Why the schedule paused, or why nothing was built.")
    handoff_error: str | None = Field(default=None, description="Why the version's hand-off job was not made.")


def step_validator(defaults: Mapping[str, dict[str, Any]] | None = None) -> StepValidator:
    """The registry's check of one recipe step, for `datasets.recipe.parse_recipe`: a
    registered kind that makes examples, valid parameters, and a source it can take."""

    def check(kind: str, params: dict[str, Any], takes_previous: bool) -> None:
        if kind == KIND:
            raise JobRequestError("kind", f"{kind} builds a dataset; it cannot be a step of one")
        spec = get(kind)  # JobRequestError(field="kind") for an unknown kind
        if not spec.produces_examples:
            raise JobRequestError("kind", f"{kind} makes no examples; a recipe step must be a generation kind")
        if takes_previous and not spec.takes_source_job:
            raise JobRequestError("source", f"{kind} cannot take the previous step's output; it starts from seeds")
        if params.get("build") is not None:
            raise JobRequestError("params.build", "a step's build is set by the build itself, not by its recipe")
        spec.validate_params(step_params(spec.name, params, target=1), dict(defaults or {}))

    return check


def recipe_for(data: Any, defaults: Mapping[str, dict[str, Any]] | None = None) -> Recipe:
    """A recipe judged by the datasets core (shape) and the job registry (each step), the
    same way through every door; `RecipeError` lists each (field path, message)."""
    return parse_recipe(data, step_validator(defaults))


def step_params(kind: str, params: dict[str, Any], target: int) -> dict[str, Any]:
    """A step's parameters for one build: the recipe's, with Self-Instruct's target set to
    what the build should add (the recipe's `grow_by`, less near the size cap)."""
    spec = get(kind)
    if "target" in spec.params_model.model_fields:
        return {**params, "target": target}
    return dict(params)


def check(session: Session, request: JobRequest, params: DatasetBuildParams) -> dict[str, Any]:
    for name in ("seed_set_id", "source_job_id", "export_id"):
        if getattr(request, name) is not None:
            raise JobRequestError(name, f"a {KIND} job starts from its dataset's recipe; give params.dataset_id only")
    dataset = _dataset(session, params.dataset_id, request.owner)
    return {"result": dump_result(DatasetBuildResult(dataset_id=dataset.id, dataset=dataset.name, version=None,
                                                     steps=[])),
            "counters": {"step": 0, "steps": len(versions.recipe_of(dataset).steps), "accepted": 0}}


def _dataset(session: Session, dataset_id: int, owner: str | None) -> Any:
    try:
        dataset = versions.get_dataset_by_id(session, dataset_id)
    except DatasetError:
        dataset = None
    if dataset is None or (owner is not None and dataset.owner != versions.owner_key(owner)):
        raise JobRequestError("params.dataset_id", f"no dataset with id {dataset_id}")
    return dataset


def run(ctx: JobContext) -> DatasetBuildResult | Outcome:
    params = params_as(ctx.params, DatasetBuildParams)
    live: dict[str, Any] = ctx.extra.setdefault("live", {"step": 0, "steps": 0, "accepted": 0, "target": None})
    ctx.heartbeat.counters = lambda: dict(live)
    try:
        with ctx.session() as session:
            dataset = versions.get_dataset_by_id(session, params.dataset_id)
            recipe = versions.recipe_of(dataset)
            base = versions.latest_number(session, store.id_of(dataset))
            row_count = _row_count(session, dataset) if base else 0
            target = fires.build_target(dataset, row_count)
        live.update(steps=len(recipe.steps), target=target)
        if target <= 0:
            return _finish_empty(ctx, f"the dataset holds {row_count} examples, its size cap; nothing to build")
        last = None
        for i, step in enumerate(recipe.steps):
            live.update(step=i + 1, accepted=0)
            last = _run_step(ctx, recipe, i, step, target, previous=last)
        result = _commit(ctx, recipe, base, target, last)
        return _hand_off(ctx, params.dataset_id, result)
    except JobStopped:
        if not ctx.heartbeat.lost:
            _fire_done(ctx, built=False, reason="the build was cancelled")
        raise
    except (store.LostClaim, LLMOutageError):  # another worker goes on, or the build waits: not over
        raise
    except Exception as exc:
        _fire_done(ctx, built=False, reason=str(exc) or type(exc).__name__)
        raise


def _run_step(ctx: JobContext, recipe: Recipe, index: int, step: RecipeStep, target: int, previous: Job | None) -> Job:
    """Run (or resume) the step job of `step`; returns it, finished."""
    with ctx.session() as session:
        build = store.get_job(session, ctx.job_id)
        made = read_result(build, DatasetBuildResult).steps
        if index < len(made):
            step_job_id = made[index]
        else:
            step_job_id = _make_step_job(session, ctx, recipe, index, step, target, previous)
            build.result = {**build.result, "steps": [*made, step_job_id]}
            store.heartbeat(session, ctx.job_id, ctx.worker)  # commit only while this worker holds the build
    asked = {"cancel": False}

    def follow(counters: dict[str, Any]) -> None:
        ctx.extra["live"]["accepted"] = Counters.model_validate(counters).accepted
        ctx.report({**counters, "step": index + 1})
        if ctx.heartbeat.stop_requested and not asked["cancel"]:  # the build was cancelled: so is its step
            asked["cancel"] = True
            with ctx.session() as session:
                store.request_cancel(store.get_job(session, step_job_id))

    job = _run_claimed(ctx, step_job_id, follow)
    if job.status == JobStatus.cancelled.value or ctx.heartbeat.stop_requested:
        raise JobStopped()
    if job.status == JobStatus.queued.value:  # paused: its model servers are away; the build waits with it
        raise LLMOutageError(f"step {index + 1} ({step.kind}, job {job.id}) is waiting: {job.error}")
    if job.status != JobStatus.succeeded.value:
        raise JobInputError(f"step {index + 1} ({step.kind}, job {job.id}) {job.status}: {job.error}")
    return job


def _run_claimed(ctx: JobContext, job_id: int, follow: Any) -> Job:
    """Run the step job here; a step job left `running` by a dead worker is taken over
    once its heartbeat is stale (its build was, a moment before), and one that another
    live worker runs is waited for."""
    worker = f"{ctx.worker}/build-{ctx.job_id}"
    while True:
        job = run_job(ctx.url, job_id, ctx.config, worker=worker, base_urls=ctx.base_urls, progress=follow)
        if JobStatus(job.status).finished or (job.status == JobStatus.queued.value and job.error):
            return job  # ended, or paused by an outage
        ctx.check_stop()  # held by a live worker (the reaper sent it while this build was down): wait
        time.sleep(ctx.config.jobs.flush_s)


def _make_step_job(session: Session, ctx: JobContext, recipe: Recipe, index: int, step: RecipeStep, target: int,
                   previous: Job | None) -> int:
    build = store.get_job(session, ctx.job_id)
    request = JobRequest(
        kind=step.kind,
        params=step_params(step.kind, step.params, target),
        seed_set_id=recipe.seed_set_ids[0] if step.source == "seeds" else None,
        source_job_id=previous.id if step.source == "previous" and previous is not None else None,
        owner=build.owner,
        build=BuildOrigin(dataset_id=params_as(ctx.params, DatasetBuildParams).dataset_id, build_job_id=ctx.job_id,
                          step=index + 1,
                          seed_set_ids=list(recipe.seed_set_ids)),
    )
    try:
        job = create_job(session, request, ctx.config.defaults)
    except (ValidationError, ValueError) as exc:
        raise JobInputError(f"recipe step {index + 1} ({step.kind}) cannot run: {exc}") from None
    job.status = JobStatus.queued.value
    session.flush()
    return store.id_of(job)


def _commit(ctx: JobContext, recipe: Recipe, base: int, target: int, last: Job | None) -> DatasetBuildResult:
    """The last step's curated rows (at most `target`) become the next version, at once
    with the fire's record and the schedule's auto-pause; only while this worker holds
    the build."""
    assert last is not None
    step = recipe.steps[-1]
    steps = _result(ctx).steps
    evolves = get(last.kind).takes_source_job  # its rows carry lineage, roots first
    root_kind = recipe.steps[-2].kind if len(recipe.steps) > 1 else None
    with ctx.heartbeat.lock, ctx.session() as session:
        # a step that evolves the step before it keeps that step's output (the roots);
        # one that evolves the seeds does not add the seeds to the dataset
        rows = lineage.export_rows(session, last, include_roots=step.source == "previous" or not evolves)
        # the judge's scores (`score_with_judge`) go with each example: a removal query can use them
        rows = list(scoring_storage.with_scores(rows, scoring_storage.job_example_scores(session, store.id_of(last))))
        examples = [versions.NewExample.from_row(r, method=_method(r, last.kind, evolves, root_kind),
                                                 source_job_id=last.id)
                    for r in rows[:target]]
        counts = _build_counts(session, steps)
        dataset = versions.get_dataset_by_id(session, params_as(ctx.params, DatasetBuildParams).dataset_id)
        store.heartbeat(session, ctx.job_id, ctx.worker)  # raises LostClaim: nothing is committed
        try:
            version = versions.commit_version(session, dataset, examples, build_job_id=ctx.job_id,
                                              build_counts=counts, expected_latest=base)
        except EmptyChange:
            version = None
        added = version.counts.get("added", 0) if version is not None else 0
        row_count = version.row_count if version is not None else (
            _row_count(session, dataset) if base else 0)
        paused = fires.auto_pause(session, dataset, added, row_count)
        fires.finish_build_fire(session, ctx.job_id, built=version is not None,
                                reason=paused if version is not None else "the build added no example")
    return DatasetBuildResult(version=version.number if version is not None else None, added=added,
                              content_hash=version.content_hash if version is not None else None, paused=paused,
                              curated=added)


# --- hand-off: after the version's transaction, never inside it (app.core.jobs.version_handoff) ----
def _hand_off(ctx: JobContext, dataset_id: int, result: DatasetBuildResult) -> Outcome:
    """The build's result, and its follow-up: the `version_handoff` job of the version it
    committed, made by the lifecycle as the build succeeds (once: a resumed build finds it).
    A failure there is recorded (`handoff_error`), and the build (whose version is committed)
    still succeeds."""
    from app.core.jobs.version_handoff import queue

    if result.version is None:
        return Outcome(result)
    number, defaults = result.version, ctx.config.defaults

    def make(session: Session, _: dict[str, Any]) -> int | None:
        dataset = versions.get_dataset_by_id(session, dataset_id)
        return queue(session, dataset, versions.get_version(session, store.id_of(dataset), number), defaults)

    return Outcome(result, [FollowUp(make, recorded_as="handoff_error")])


def _row_count(session: Session, dataset: Dataset) -> int:
    """The rows of the dataset's latest version; 0 before its first."""
    latest = versions.latest_version(session, store.id_of(dataset))
    return latest.row_count if latest is not None else 0


def _finish_empty(ctx: JobContext, reason: str) -> DatasetBuildResult:
    with ctx.session() as session:
        dataset = versions.get_dataset_by_id(session, params_as(ctx.params, DatasetBuildParams).dataset_id)
        row_count = _row_count(session, dataset)
        paused = fires.auto_pause(session, dataset, 0, row_count)
        fires.finish_build_fire(session, ctx.job_id, built=False, reason=reason)
    return DatasetBuildResult(version=None, added=0, paused=paused or reason, curated=0)


def _fire_done(ctx: JobContext, built: bool, reason: str) -> None:
    try:
        with ctx.session() as session:
            fires.finish_build_fire(session, ctx.job_id, built=built, reason=reason)
    except Exception:  # the fire record is bookkeeping; the job's own end is what counts
        pass


def _result(ctx: JobContext) -> DatasetBuildResult:
    with ctx.session() as session:
        return read_result(store.get_job(session, ctx.job_id), DatasetBuildResult)


def _method(row: dict[str, Any], kind: str, evolves: bool, root_kind: str | None) -> str:
    """Which method made a row: an evolved row the evolving kind, a root the step before."""
    if evolves and root_kind and len(row.get("lineage") or []) <= 1:
        return root_kind
    return kind


def _build_counts(session: Session, step_ids: list[int]) -> dict[str, Any]:
    """Candidates, accepted and rejections by rule over every step job of the build; what each
    step spent (tokens and time on the model servers: the next build's estimate reads it); and
    the contamination report summed over the steps (items hit, by benchmark)."""
    rejected: dict[str, int] = {}
    candidates = accepted = 0
    spent, reports = [], []
    for ident in step_ids:
        job = store.get_job(session, ident)
        counters = Counters.of(job)
        candidates += counters.generated
        accepted += counters.accepted
        for rule, n in counters.rejected.items():
            rejected[rule] = rejected.get(rule, 0) + n
        spent.append(step_spending(job))
        reports.append(read_result(job, GenerationResult).contamination)
    counts = {"step_jobs": step_ids, "candidates": candidates, "accepted": accepted,
              "rejected_by_rule": dict(sorted(rejected.items())), "steps": spent,
              "prompt_tokens": sum(s["prompt_tokens"] for s in spent),
              "completion_tokens": sum(s["completion_tokens"] for s in spent)}
    if any(reports):
        counts["contamination"] = merge_reports(reports)
    return counts


def step_spending(job: Job) -> dict[str, Any]:
    """What one step job spent: its tokens (in all and per role, so a later estimate prices
    each role at its own), and its wall time on the model servers (a job made before that
    counter: from its start to its end)."""
    counters = Counters.of(job)
    seconds = counters.llm_wall_s
    if seconds is None and job.started_at is not None and job.finished_at is not None:
        seconds = round((job.finished_at - job.started_at).total_seconds(), 3)
    return {"job_id": job.id, "kind": job.kind, "prompt_tokens": counters.prompt_tokens,
            "completion_tokens": counters.completion_tokens, "seconds": seconds,
            "roles": {role: {"prompt_tokens": used.prompt_tokens, "completion_tokens": used.completion_tokens}
                      for role, used in counters.roles.items()}}


def progress(job: Job) -> Progress:
    counters = Counters.of(job)
    return Progress(target=counters.target, done=counters.accepted)


DATASET_BUILD = register(JobKind(
    name=KIND,
    params_model=DatasetBuildParams,
    result_model=DatasetBuildResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=progress,
    description="Run a dataset's recipe and commit its next version (novel against everything it holds).",
    produces_examples=False,
))


# --- schedules: what `sprout beat` fires -------------------------------------------------------
def running_build(session: Session, dataset: Any) -> int | None:
    """The id of a build of `dataset` that is queued or running, if any."""
    busy = builds_in_progress(session, dataset.id)
    return busy[0] if busy else None


def fire_due_builds(session: Session, now: datetime, defaults: Mapping[str, dict[str, Any]] | None = None,
                    grace: timedelta = DEFAULT_GRACE) -> list[int]:
    """One scheduler tick: claim every due fire (once, however many schedulers run), skip
    one whose dataset is still building, and create a build job for the others; returns the
    ids of the jobs created, committed, for the shell to enqueue."""

    def start(session: Session, dataset: Any, fire: Any) -> int:
        owner = None if dataset.owner == versions.owner_key(None) else dataset.owner
        job = create_job(session, JobRequest(KIND, {"dataset_id": dataset.id, "fire_id": fire.id}, owner=owner),
                         dict(defaults or {}))
        return store.id_of(job)

    claimed = fires.tick(session, now, running_build, start, grace=grace)
    return [f.job_id for f in claimed if f.job_id is not None and f.status == FireStatus.started.value]
