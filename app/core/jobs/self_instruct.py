"""The `self_instruct` job kind: grow a seed set with Self-Instruct (`app.core.self_instruct`)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core import store
from app.core.candidates import JobInputError, Method, StoredCandidate
from app.core.jobs.decontamination import benchmark_index, check_benchmark_sets
from app.core.jobs.generation import curated_progress, dataset_inputs, near_duplicate_index, run_method
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, JobRequest, JobRequestError, register
from app.core.jobs.requests import owned_row
from app.core.llm.client import LLMClient
from app.core.params import SelfInstructParams
from app.core.self_instruct import SelfInstruct
from app.models import Job, SeedSet

KIND = "self_instruct"


def check(session: Session, request: JobRequest, params: SelfInstructParams) -> dict[str, Any]:
    """A seed set of the caller's with enough human seeds for one prompt."""
    if request.export_id is not None:
        raise JobRequestError("export_id", f"a {KIND} job takes no export_id")
    if request.source_job_id is not None:
        raise JobRequestError("source_job_id", f"a {KIND} job starts from a seed set, not a job")
    if request.seed_set_id is None:
        raise JobRequestError("seed_set_id", f"a {KIND} job needs seed_set_id", "missing")
    seed_set = owned_row(session, SeedSet, request.seed_set_id, request.owner, "seed_set_id", "seed set")
    check_benchmark_sets(session, request, params)
    needed = params.prompt_instructions - params.prompt_machine_instructions
    if seed_set.task_count < needed:
        raise JobRequestError(
            "seed_set_id",
            f"seed set {seed_set.id} has {seed_set.task_count} task(s); a prompt needs {needed} human seeds "
            "(lower params.prompt_instructions or upload more seeds)",
        )
    return {"seed_set_id": seed_set.id}


def build(session: Session, job: Job, params: SelfInstructParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> Method:
    if job.seed_set_id is None:
        raise JobInputError(f"a {KIND} job needs a seed set")
    step = dataset_inputs(session, job)  # a dataset build's step: every seed set, novel against the dataset
    seeds = step.seeds if step else store.seed_tasks(session, job.seed_set_id)
    try:
        return SelfInstruct(params, client, seeds, previous,
                            concurrency=ctx.config.llm.concurrency, job_key=f"job{job.id}",
                            near_duplicates=near_duplicate_index(params, job.id, ctx.config),
                            known=step.known if step else (), known_examples=step.known_examples if step else (),
                            decontaminate=benchmark_index(session, params, ctx.config, job),
                            responder=getattr(ctx, "extra", {}).get("responder"), structured=ctx.config.llm.structured_outputs)
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


def run(ctx: JobContext) -> dict[str, Any]:
    return run_method(ctx, build)  # with the contamination report when anything was checked


SELF_INSTRUCT = register(JobKind(
    name=KIND,
    params_model=SelfInstructParams,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=curated_progress,
    description="Self-Instruct (Wang et al., 2022): grow a seed set into `target` curated instructions.",
    needs_llm=True,
))
