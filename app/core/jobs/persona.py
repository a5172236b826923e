"""The `persona` job kind: persona-driven generation (`app.core.methods.persona`).

A job draws from a persona set of the caller's (`params.persona_set_id`) or the set shipped
in `seeds/personas.jsonl`, crossed with task types or, with `cross_with_seed_tasks`, with
its seed set's tasks. As a dataset build's step it is novel against the dataset's content,
and (with `fresh_personas_across_builds`) leaves out the personas the dataset's earlier
persona steps were asked with, so successive builds sample personas without replacement.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from app.core import store
from app.core.jobs.decontamination import benchmark_index, check_benchmark_sets
from app.core.jobs.generation import (
    GenerationResult,
    curated_progress,
    dataset_inputs,
    near_duplicate_index,
    run_method,
)
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, JobRequest, JobRequestError, register
from app.core.jobs.requests import owned_row
from app.core.jobs.results import step_origin
from app.core.llm.client import LLMClient
from app.core.methods import personas
from app.core.methods.candidates import JobInputError, Method, StoredCandidate
from app.core.methods.persona import PersonaGeneration, seed_task_kind
from app.core.params import PersonaParams
from app.models import Instruction, Job, PersonaSet, SeedSet

KIND = "persona"


def check(session: Session, request: JobRequest, params: PersonaParams) -> dict[str, Any]:
    """The persona set (when named) and the seed set (when given or needed) are the caller's."""
    if request.export_id is not None:
        raise JobRequestError("export_id", f"a {KIND} job takes no export_id")
    if request.source_job_id is not None:
        raise JobRequestError("source_job_id", f"a {KIND} job starts from personas, not from a job")
    if params.persona_set_id is not None:
        owned_row(session, PersonaSet, params.persona_set_id, request.owner, "params.persona_set_id", "persona set")
    args: dict[str, Any] = {}
    if request.seed_set_id is not None:
        args["seed_set_id"] = owned_row(session, SeedSet, request.seed_set_id, request.owner, "seed_set_id",
                                        "seed set").id
    elif params.cross_with_seed_tasks:
        raise JobRequestError("seed_set_id", "cross_with_seed_tasks needs a seed set", "missing")
    check_benchmark_sets(session, request, params)
    return args


def used_personas(session: Session, job: Job) -> set[str]:
    """The personas the earlier persona steps of this job's dataset were asked with."""
    build = step_origin(job)
    if build is None:
        return set()
    earlier = [j.id for j in session.exec(select(Job).where(Job.kind == KIND, Job.id != job.id)).all()
               if (origin := step_origin(j)) is not None and origin.dataset_id == build.dataset_id]
    if not earlier:
        return set()
    details = session.exec(select(Instruction.detail).where(col(Instruction.job_id).in_(earlier))).all()
    return {d["persona"] for d in details if isinstance(d, dict) and d.get("persona")}


def build(session: Session, job: Job, params: PersonaParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> Method:
    step = dataset_inputs(session, job)
    seeds = step.seeds if step else (store.seed_tasks(session, job.seed_set_id) if job.seed_set_id else [])
    if params.persona_set_id is not None:
        people = store.persona_texts(session, params.persona_set_id)
    else:
        try:
            people = personas.shipped()
        except personas.PersonaFormatError as exc:
            raise JobInputError(f"the shipped persona set cannot be read: {exc}") from None
    if params.cross_with_seed_tasks:
        if not seeds:
            raise JobInputError(f"a {KIND} job crossed with seed tasks needs a seed set with tasks")
        tasks = [seed_task_kind(s.instruction) for s in seeds]
    else:
        tasks = list(params.task_types)
    exclude = used_personas(session, job) if step and params.fresh_personas_across_builds else set()
    if exclude and not set(people) - exclude:
        raise JobInputError(f"every persona of the set was used by this dataset's earlier builds ({len(exclude)}); "
                            "upload more personas or set fresh_personas_across_builds to false")
    try:
        return PersonaGeneration(
            params, client, people, tasks, previous, concurrency=ctx.config.llm.concurrency, job_key=f"job{job.id}",
            near_duplicates=near_duplicate_index(params, store.id_of(job), ctx.config),
            pool=[s.instruction for s in seeds] + (step.known if step else []),
            known_examples=step.known_examples if step else (),
            decontaminate=benchmark_index(session, params, ctx.config, job),
            exclude_personas=exclude, persona_set_id=params.persona_set_id,
            responder=ctx.extra.get("responder"), structured=ctx.config.llm.structured_outputs,
        )
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


class PersonaResult(GenerationResult):
    """A persona job's result: the generation kinds' figures."""


def run(ctx: JobContext) -> PersonaResult:
    return run_method(ctx, build, PersonaResult)


PERSONA = register(JobKind(
    name=KIND,
    params_model=PersonaParams,
    result_model=PersonaResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=curated_progress,
    description="Persona-driven generation (PersonaHub): tasks written as each persona of a set, crossed with "
    "task types or seed tasks, answered, and filtered like every method.",
    needs_llm=True,
))
