"""The `self_instruct` job kind: grow a seed set with Self-Instruct (`app.core.methods.self_instruct`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from sqlmodel import Session

import app.core.jobs.shards as shards
from app.core import store
from app.core.config import CoreConfig
from app.core.filters.decontaminate import Checker
from app.core.jobs.decontamination import benchmark_index, check_benchmark_sets
from app.core.jobs.generation import (
    GenerationResult,
    curated_progress,
    dataset_inputs,
    llm_endpoints,
    near_duplicate_index,
    role_llm,
    run_method,
)
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, JobRequest, JobRequestError, register
from app.core.jobs.requests import owned_row
from app.core.llm.client import LLMClient
from app.core.methods.candidates import JobInputError, Method, NearDuplicates, StoredCandidate
from app.core.methods.self_instruct import SelfInstruct
from app.core.params import SelfInstructParams
from app.db import session_scope
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


class _Common(TypedDict):
    """The arguments a Self-Instruct job gives its method, sharded or not."""

    concurrency: int
    job_key: str
    near_duplicates: NearDuplicates | None
    known: Iterable[str]
    known_examples: Iterable[tuple[str, str]]
    decontaminate: Checker | None
    structured: bool


def build(session: Session, job: Job, params: SelfInstructParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> Method:
    if job.seed_set_id is None:
        raise JobInputError(f"a {KIND} job needs a seed set")
    step = dataset_inputs(session, job)  # a dataset build's step: every seed set, novel against the dataset
    seeds = step.seeds if step else store.seed_tasks(session, job.seed_set_id)
    common: _Common = {"concurrency": ctx.config.llm.concurrency, "job_key": f"job{job.id}",
              "near_duplicates": near_duplicate_index(params, store.id_of(job), ctx.config),
              "known": step.known if step else (), "known_examples": step.known_examples if step else (),
              "decontaminate": benchmark_index(session, params, ctx.config, job),
              "structured": ctx.config.llm.structured_outputs}
    try:
        if params.shards:  # the decider; the shards send the requests
            job_id = store.id_of(job)
            return shards.ShardedSelfInstruct(
                params, client, seeds, previous, **common,
                channel=shards.ShardChannel(ctx.config.redis_url, job_id), shards=params.shards,
                start_shard=lambda shard: start_shard(ctx.url, job_id, shard, ctx.config, ctx.base_urls))
        return SelfInstruct(params, client, seeds, previous, **common,
                            responder=getattr(ctx, "extra", {}).get("responder"))
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


def start_shard(url: str, job_id: int, shard: int, config: CoreConfig, base_urls: list[str] | None) -> None:
    """Start one requester: as the shell says (a Celery task), else a thread of this process."""
    if shards.spawner is not None:
        shards.spawner(url, job_id, shard, config, base_urls)
    else:
        shards.thread_spawner(lambda: run_shard(url, job_id, shard, config, base_urls))


def run_shard(url: str, job_id: int, shard: int, config: CoreConfig, base_urls: list[str] | None = None) -> None:
    """One requester of a sharded job, until the job stops (`shards.run_requester`): the job's
    seeds and filters, its own request seeds, no target and no near-duplicate index (the
    decider's), the job's pool taken in as it grows."""
    with session_scope(url) as session:
        job = store.get_job(session, job_id)
        params = SelfInstructParams.model_validate(job.params)
        step = dataset_inputs(session, job)
        seeds = step.seeds if step else store.seed_tasks(session, int(job.seed_set_id or 0))
        decontaminate = benchmark_index(session, params, config, job)
    mine = params.model_copy(update={"target": 10**9, "shards": 0,
                                     "seed": None if params.seed is None else params.seed * 7919 + shard + 1})
    channel = shards.ShardChannel(config.redis_url, job_id)
    with llm_endpoints(config, base_urls) as urls:
        client = LLMClient(role_llm(config, params, "generator"), base_urls=urls)
        engine = SelfInstruct(mine, client, seeds, (), concurrency=config.llm.concurrency,
                              job_key=f"job{job_id}.shard{shard}", known=step.known if step else (),
                              decontaminate=decontaminate, structured=config.llm.structured_outputs)
        shards.run_requester(engine, channel, shard)


class SelfInstructResult(GenerationResult):
    """A Self-Instruct job's result: the generation kinds' figures."""


def run(ctx: JobContext) -> SelfInstructResult:
    return run_method(ctx, build, SelfInstructResult)  # with the contamination report when anything was checked


SELF_INSTRUCT = register(JobKind(
    name=KIND,
    params_model=SelfInstructParams,
    result_model=SelfInstructResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=curated_progress,
    description="Self-Instruct (Wang et al., 2022): grow a seed set into `target` curated instructions.",
    needs_llm=True,
))
