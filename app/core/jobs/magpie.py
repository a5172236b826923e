"""The `magpie` job kind: queries written by an aligned model from its own chat template (`app.core.methods.magpie`).

Magpie needs no seed tasks: a job may name a seed set (or be a dataset build's first step,
which takes the recipe's seed sets), and then its queries must be novel against those tasks
and, in a build, against the dataset's content. Both the query and the answer come from the
model that answers (the responder's, which is the job's model servers unless a responder is
set): the pre-query template is that model's. The job's result names the template used
(`pre_query_template`: its family or origin and the first turn's text).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session

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
from app.core.llm.client import LLMClient
from app.core.methods.candidates import Method, StoredCandidate
from app.core.methods.magpie import MagpieGeneration
from app.core.params import MagpieParams
from app.models import Job, SeedSet

KIND = "magpie"


def check(session: Session, request: JobRequest, params: MagpieParams) -> dict[str, Any]:
    """A seed set, when given, is the caller's; a magpie job starts from no job or export."""
    if request.export_id is not None:
        raise JobRequestError("export_id", f"a {KIND} job takes no export_id")
    if request.source_job_id is not None:
        raise JobRequestError("source_job_id", f"a {KIND} job writes its own queries; it starts from no job")
    args: dict[str, Any] = {}
    if request.seed_set_id is not None:
        args["seed_set_id"] = owned_row(session, SeedSet, request.seed_set_id, request.owner, "seed_set_id",
                                        "seed set").id
    check_benchmark_sets(session, request, params)
    return args


def build(session: Session, job: Job, params: MagpieParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> Method:
    step = dataset_inputs(session, job)
    seeds = step.seeds if step else (store.seed_tasks(session, job.seed_set_id) if job.seed_set_id else [])
    engine = MagpieGeneration(
        params, ctx.extra.get("responder") or client, previous, concurrency=ctx.config.llm.concurrency,
        near_duplicates=near_duplicate_index(params, store.id_of(job), ctx.config), job_key=f"job{job.id}",
        pool=[s.instruction for s in seeds] + (step.known if step else []),
        known_examples=step.known_examples if step else (),
        decontaminate=benchmark_index(session, params, ctx.config, job),
    )
    ctx.extra["magpie"] = engine
    return engine


class PreQueryTemplate(BaseModel):
    name: str = Field(description="The chat template's name.")
    text: str = Field(description="The pre-query text the model continues.")


class MagpieResult(GenerationResult):
    """A Magpie job's result: the generation kinds' figures and the pre-query template used."""

    pre_query_template: PreQueryTemplate | None = Field(default=None, description="The template the queries "
                                                        "were written from.")


def run(ctx: JobContext) -> MagpieResult:
    result = run_method(ctx, build, MagpieResult)
    engine = ctx.extra.pop("magpie", None)
    if engine is not None and engine.template is not None:
        result.pre_query_template = PreQueryTemplate(name=engine.template.name, text=engine.template.prefix)
    return result


MAGPIE = register(JobKind(
    name=KIND,
    params_model=MagpieParams,
    result_model=MagpieResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=curated_progress,
    description="Magpie: an aligned model writes the user's queries from its own chat template (raw completions), "
    "answers them through its chat API (n_turns exchanges), filtered like every method.",
    needs_llm=True,
))
