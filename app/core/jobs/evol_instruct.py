"""The `evol_instruct` job kind: evolve a pool with Evol-Instruct (`app.core.methods.evol_instruct`).

The pool is a seed set (an uploaded file is imported as one) or another job's accepted
instructions (`job.source_job_id`, typically a Self-Instruct job); a job that cannot run
is refused with a message naming why, before it exists when it comes through a shell.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core import store
from app.core.jobs.decontamination import benchmark_index, check_benchmark_sets
from app.core.jobs.generation import GenerationResult, dataset_inputs, near_duplicate_index, run_method
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import (
    GENERATION_QUEUE,
    JobKind,
    JobRequest,
    JobRequestError,
    Progress,
    produces_examples,
    register,
)
from app.core.jobs.requests import owned_row
from app.core.jobs.results import Counters
from app.core.llm.client import LLMClient
from app.core.methods.candidates import JobInputError, StoredCandidate
from app.core.methods.evol_instruct import EvolInstruct
from app.core.params import EvolInstructParams
from app.core.seeds import SeedTaskData
from app.models import Job, JobStatus, SeedSet

KIND = "evol_instruct"


def source_problem(source: Job, job_id: int | None = None) -> str | None:
    """Why `source` cannot be evolved (or trained on), or None: it must be a finished
    generation job with accepted instructions."""
    if source.id == job_id or not produces_examples(source.kind):
        return f"job {source.id} is a {source.kind} job; start from a seed set or a generation job"
    if not JobStatus(source.status).finished:
        # its accepted set is still growing; a resumed evolution must see the same pool
        return f"job {source.id} is still {source.status}; start from it once it has finished"
    return None


def source_pool(session: Session, job: Job) -> list[SeedTaskData]:
    """The instructions an Evol-Instruct job evolves, in their stored order.

    Raises JobInputError (with a message for the user) when the job names no usable source.
    """
    if job.seed_set_id is not None and job.source_job_id is not None:
        raise JobInputError(f"an {KIND} job evolves a seed set or a source job, not both")
    if job.seed_set_id is not None:
        return store.seed_tasks(session, job.seed_set_id)
    if job.source_job_id is None:
        raise JobInputError(f"an {KIND} job needs a seed set or a source job")
    try:
        source = store.get_job(session, job.source_job_id)
    except store.NotFound:
        raise JobInputError(f"source job {job.source_job_id} does not exist") from None
    problem = source_problem(source, job.id)
    if problem:
        raise JobInputError(problem)
    pool = [
        SeedTaskData(c.instruction, list(c.instances), bool(c.is_classification), origin=store.origin(c.detail))
        for c in store.stored_candidates(session, store.id_of(source))
        if c.accepted
    ]
    if not pool:
        raise JobInputError(f"source job {source.id} has no accepted instructions to evolve")
    return pool


def check(session: Session, request: JobRequest, params: EvolInstructParams) -> dict[str, Any]:
    if request.export_id is not None:
        raise JobRequestError("export_id", f"an {KIND} job takes no export_id")
    if request.seed_set_id is None and request.source_job_id is None:
        raise JobRequestError("seed_set_id", f"an {KIND} job needs seed_set_id or source_job_id", "missing")
    if request.seed_set_id is not None and request.source_job_id is not None:
        raise JobRequestError("source_job_id", f"an {KIND} job starts from a seed set or a source job, not both")
    check_benchmark_sets(session, request, params)
    if request.seed_set_id is not None:
        owned_row(session, SeedSet, request.seed_set_id, request.owner, "seed_set_id", "seed set")
        return {"seed_set_id": request.seed_set_id}
    source = owned_row(session, Job, request.source_job_id, request.owner, "source_job_id", "job")
    problem = source_problem(source) or (None if Counters.of(source).accepted
                                         else f"job {source.id} has no accepted instructions")
    if problem:
        raise JobRequestError("source_job_id", problem)
    return {"source_job_id": source.id}


def build(session: Session, job: Job, params: EvolInstructParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> EvolInstruct:
    step = dataset_inputs(session, job)  # a dataset build's step: novel against the dataset
    try:
        return EvolInstruct(params, client, source_pool(session, job), previous,
                            concurrency=ctx.config.llm.concurrency, job_key=f"job{job.id}",
                            near_duplicates=near_duplicate_index(params, store.id_of(job), ctx.config),
                            decontaminate=benchmark_index(session, params, ctx.config, job),
                            known=step.known if step else (), known_examples=step.known_examples if step else (),
                            responder=getattr(ctx, "extra", {}).get("responder"))
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


class EvolInstructResult(GenerationResult):
    """An Evol-Instruct job's result: the generation kinds' figures (spending per accepted
    evolution: the roots are stored as accepted but cost nothing)."""


def run(ctx: JobContext) -> EvolInstructResult:
    # spending per accepted evolution: the roots are stored as accepted but cost nothing
    return run_method(ctx, build, EvolInstructResult, made=accepted_evolutions)  # with the contamination report


def accepted_evolutions(counters: dict[str, Any]) -> int:
    """Evolutions kept (the roots are not evolutions: they have no operation)."""
    return sum(f.accepted for f in Counters.model_validate(counters).operations.values())


def evolutions_done(counters: dict[str, Any]) -> int:
    """Evolutions decided so far, kept or failed (every one has an operation)."""
    return sum(f.accepted + f.rejected for f in Counters.model_validate(counters).operations.values())


def progress(job: Job) -> Progress:
    """Evolutions decided, of roots x rounds: the roots (round 0) are stored first, so the
    target is known from the job's first commit on."""
    done = evolutions_done(job.counters or {})
    roots = Counters.of(job).generated - done
    rounds = (job.params or {}).get("rounds")
    return Progress(target=roots * rounds if roots > 0 and rounds else None, done=done)


EVOL_INSTRUCT = register(JobKind(
    name=KIND,
    params_model=EvolInstructParams,
    result_model=EvolInstructResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=progress,
    takes_source_job=True,
    description="Evol-Instruct (Xu et al., 2023): rewrite a pool into harder and broader instructions over rounds.",
    needs_llm=True,
))
