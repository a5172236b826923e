"""The `topic_tree` job kind: tasks written for each leaf of a topic tree (`app.core.methods.topic_tree`).

The generator's dialect (`dialect`: auto, chat, completions) picks the prompts of the tree and
of the tasks; the responder answers. With `root`, the job first grows the tree on the model
servers (once: a resumed job finds
the tree it stored, `result.topic_tree_id`) and stores it, editable like any tree; the
tree's tokens count in the job's counters, so its token budget covers them; with
`topic_tree_id`, it uses a stored tree of the caller's. Each candidate stores its
`topic_path`; as a dataset build's step it is novel against the dataset's content.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field
from sqlmodel import Session

from app.core import store
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
from app.core.jobs.registry import GENERATION_QUEUE, JobKind, JobRequest, JobRequestError, params_as, register
from app.core.jobs.requests import owned_row
from app.core.jobs.results import read_result
from app.core.llm.client import LLMClient
from app.core.methods import topic_tree
from app.core.methods.candidates import JobInputError, Method, StoredCandidate
from app.core.methods.planned import PlannedGeneration
from app.core.params import TopicTreeParams
from app.models import Job, SeedSet, TopicTree

KIND = "topic_tree"


class TopicTreeResult(GenerationResult):
    """A topic-tree job's result: the generation kinds' figures and the tree it used."""

    topic_tree_id: int | None = Field(default=None, description="The topic tree the tasks were written from "
                                      "(the one the job grew, or the one it was given).")


def check(session: Session, request: JobRequest, params: TopicTreeParams) -> dict[str, Any]:
    if request.export_id is not None or request.source_job_id is not None:
        raise JobRequestError("source_job_id" if request.source_job_id is not None else "export_id",
                              f"a {KIND} job starts from a topic tree, not from a job or an export")
    if params.topic_tree_id is not None:
        owned_row(session, TopicTree, params.topic_tree_id, request.owner, "params.topic_tree_id", "topic tree")
    check_benchmark_sets(session, request, params)
    if request.seed_set_id is not None:  # a dataset build's step: the seeds join the novelty pool
        return {"seed_set_id": owned_row(session, SeedSet, request.seed_set_id, request.owner, "seed_set_id",
                                         "seed set").id}
    return {}


def tree_of(session: Session, job: Job, params: TopicTreeParams) -> tuple[int, dict[str, Any]]:
    ident = params.topic_tree_id or read_result(job, TopicTreeResult).topic_tree_id
    row = session.get(TopicTree, ident) if ident else None
    if row is None:
        raise JobInputError(f"topic tree {ident} does not exist any more")
    return store.id_of(row), row.tree


def build(session: Session, job: Job, params: TopicTreeParams, client: LLMClient,
          previous: list[StoredCandidate], ctx: JobContext) -> Method:
    tree_id, tree = tree_of(session, job, params)
    step = dataset_inputs(session, job)
    seeds = step.seeds if step else (store.seed_tasks(session, job.seed_set_id) if job.seed_set_id else [])
    items = topic_tree.plan(topic_tree.leaf_paths(tree), params.tasks_per_leaf)
    return PlannedGeneration(
        params, client, items, previous, concurrency=ctx.config.llm.concurrency, job_key=f"job{job.id}",
        near_duplicates=near_duplicate_index(params, store.id_of(job), ctx.config),
        pool=[s.instruction for s in seeds] + (step.known if step else []),
        known_examples=step.known_examples if step else (),
        decontaminate=benchmark_index(session, params, ctx.config, job), extra_detail={"topic_tree_id": tree_id},
        responder=ctx.extra.get("responder"), structured=ctx.config.llm.structured_outputs,
    )


async def _grow(client: LLMClient, params: TopicTreeParams, structured: bool) -> dict[str, Any]:
    try:
        return await topic_tree.grow(client, params.root or "", params.depth, params.breadth,
                                     temperature=params.tree_temperature, seed=params.seed, structured=structured)
    finally:
        await client.aclose()


def grow_once(ctx: JobContext) -> int | None:
    """Grow and store the job's tree from `root` unless an earlier attempt did; its id."""
    params = params_as(ctx.params, TopicTreeParams)
    if params.topic_tree_id is not None:
        return params.topic_tree_id
    with ctx.session() as session:
        job = store.get_job(session, ctx.job_id)
        grown = read_result(job, TopicTreeResult).topic_tree_id
        if grown is not None:
            return grown
    with llm_endpoints(ctx.config, ctx.base_urls) as urls:
        client = LLMClient(role_llm(ctx.config, params, "generator"), base_urls=urls)
        tree = asyncio.run(_grow(client, params, ctx.config.llm.structured_outputs))
    with ctx.session() as session:
        job = store.get_job(session, ctx.job_id)
        row = TopicTree(name=(params.root or "")[:200], owner=job.owner, tree=tree, made_by="grown",
                        grown_by_job_id=job.id)
        session.add(row)
        session.flush()
        job.result = {**(job.result or {}), "topic_tree_id": row.id}
        # the tree's requests are the job's: its tokens count in the counters (and the token budget)
        job.counters = {**(job.counters or {}), **client.usage.added_to(job.counters or {})}
        session.add(job)
        return store.id_of(row)


def run(ctx: JobContext) -> TopicTreeResult:
    tree_id = grow_once(ctx)
    result = run_method(ctx, build, TopicTreeResult)
    result.topic_tree_id = tree_id
    return result


TOPIC_TREE = register(JobKind(
    name=KIND,
    params_model=TopicTreeParams,
    result_model=TopicTreeResult,
    queue=GENERATION_QUEUE,
    run=run,
    check=check,
    progress=curated_progress,
    description="Topic trees: a tree of topics grown from a root description (or a stored, edited one), then "
    "tasks written for each leaf, answered, and filtered like every method.",
    needs_llm=True,
))
