"""What every generation kind shares: model servers, the method's build, batched commits.

A generation kind (Self-Instruct, Evol-Instruct) supplies one function that builds its
engine (`Build`); `run_method` does the rest for all of them:

* the model servers: the ones configured (or passed by the caller), else the embedded
  model, started for the job and stopped after it;
* **resume**: the engine is built with the candidates already stored, and rebuilds its
  pool from them;
* **batches**: decided candidates are committed every `jobs.batch_size` records or
  `jobs.flush_s` seconds, in one transaction with the counters and the heartbeat
  (`store.commit_batch`), which refuses a worker that lost its claim; `(job_id, seq)` is
  unique, so nothing is stored twice;
* **roles**: the generator is the job's model servers (in the job's `dialect`); a
  responder of its own (`responder_base_urls`, `responder_model`, an embedded model
  started for the job) answers the classification, instance and response steps. The
  counters hold the tokens and errors of both together and per role (`roles`);
* **cancel**: when the heartbeat sees a cancel request, the engine is stopped, what it
  decided so far is committed, and the job ends `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import Field
from sqlmodel import Session

from app.core import metrics, store
from app.core.budget import Budget
from app.core.config import CoreConfig, LLMConfig
from app.core.datasets import seeding, versions
from app.core.filters.dedup import DedupError, NearDupIndex
from app.core.jobs.decontamination import checked_against, contamination_report
from app.core.jobs.judging import Scoring, judge_endpoints, score_job
from app.core.jobs.lifecycle import JobContext
from app.core.jobs.registry import Progress, params_as
from app.core.jobs.results import Counters, JobResult, step_origin
from app.core.llm.client import LLMClient, Usage
from app.core.llm.embedded import EMBEDDED_MODELS, EmbeddedServer, embedded_alias
from app.core.methods.candidates import CandidateRecord, JobInputError, Method, StoredCandidate
from app.core.params import JudgeStepParams
from app.core.seeds import SeedTaskData
from app.models import Job


@dataclass
class DatasetInputs:
    """What a generation job that is one step of a dataset build starts from: the recipe's
    seed tasks (every seed set), and the dataset's whole current content, which its
    novelty and near-duplicate indexes are seeded with, so a build never adds an example
    too similar to one the dataset already holds."""

    seeds: list[SeedTaskData]
    known: list[str]
    known_examples: list[tuple[str, str]]


def dataset_inputs(session: Session, job: Job) -> DatasetInputs | None:
    """None for a job that is not a dataset build's step (`params.build`, `step_origin`)."""
    build = step_origin(job)
    if build is None:
        return None
    dataset = versions.get_dataset_by_id(session, build.dataset_id)
    seeds = [task for ident in build.seed_set_ids for task in store.seed_tasks(session, ident)]
    return DatasetInputs(seeds, list(seeding.novelty_texts(session, dataset)),
                         list(seeding.dedup_documents(session, dataset)))


class GenerationResult(JobResult):
    """What a generation job's result holds (every generation kind's result model extends it)."""

    curated: int | None = Field(default=None, description="Curated examples the job made.")
    total_tokens: int | None = Field(default=None, description="Prompt and completion tokens, every role.")
    tokens_per_accepted: float | None = Field(default=None, description="Tokens per accepted example.")
    llm_wall_s: float | None = Field(default=None, description="Wall time on the model servers, in seconds.")
    tokens_per_second: float | None = Field(default=None, description="Tokens per second of that wall time.")
    cost: float | None = Field(default=None, description="What the tokens (or the GPU time) cost, when priced.")
    cost_per_accepted: float | None = Field(default=None, description="The cost per accepted example.")
    cost_rate: str | None = Field(default=None, description="How the cost was priced: per_million_tokens or "
                                  "per_gpu_hour.")
    cost_by_role: dict[str, Any] | None = Field(default=None, description="The cost per role.")
    stopped: str | None = Field(default=None, description="Why the job stopped before its target (a budget).")
    judge_scores: dict[str, Any] | None = Field(default=None, description="The judge's summary (score_with_judge).")
    contamination: dict[str, Any] | None = Field(default=None, description="Benchmark items its candidates hit.")


G = TypeVar("G", bound=GenerationResult)

# (session, job, params, client, what was stored, context) -> the engine
Build = Callable[[Session, Job, Any, LLMClient, list[StoredCandidate], JobContext], Method]


@contextlib.contextmanager
def llm_endpoints(config: CoreConfig, base_urls: list[str] | None = None) -> Iterator[list[str]]:
    """The given or configured LLM endpoints, or the embedded model started for the duration."""
    urls = base_urls or list(config.llm.base_urls)
    if urls:
        yield list(urls)
        return
    with EmbeddedServer.from_config(config.embedded, config.data_dir) as url:
        yield [url]


@contextlib.contextmanager
def responder_endpoints(config: CoreConfig, params: Any, external: bool) -> Iterator[list[str] | None]:
    """The responder's endpoints: the job's, the configured ones (`config.responder`), or an
    embedded model of its own started for the duration (a responder model naming one that
    the generator is not); None: the generator's."""
    urls = list(getattr(params, "responder_base_urls", None) or [])
    if not urls and not getattr(params, "responder_model", None) and config.responder is not None:
        urls = list(config.responder.base_urls)
    name = _responder_model(config, params)
    if urls:
        yield urls
        return
    # `external`: the generator is a model server of the caller's, not the embedded model
    if name and name.strip().lower() in EMBEDDED_MODELS and (
            external or embedded_alias(name) != embedded_alias(config.embedded.model)):
        with EmbeddedServer.from_config(config.embedded.model_copy(update={"model": name, "model_path": None}),
                                    config.data_dir) as url:
            yield [url]
        return
    yield None


def _responder_model(config: CoreConfig, params: Any) -> str | None:
    return getattr(params, "responder_model", None) or (config.responder.model if config.responder else None)


def role_llm(config: CoreConfig, params: Any, role: str) -> LLMConfig:
    """A role's client configuration: the service's (the responder's own when configured),
    with the job's dialect and model."""
    llm = config.llm
    dialect = getattr(params, "dialect", None)
    if dialect:
        llm = llm.model_copy(update=dict(dialect=dialect))
    if role == "responder":
        if config.responder is not None:
            llm = llm.model_copy(update=dict(api_key=config.responder.api_key, dialect=config.responder.dialect))
        name = _responder_model(config, params)
        if name:
            model = embedded_alias(name) if name.strip().lower() in EMBEDDED_MODELS else name
            llm = llm.model_copy(update=dict(model=model))
        if getattr(params, "responder_dialect", None):
            llm = llm.model_copy(update=dict(dialect=params.responder_dialect))
    return llm


def role_counters(clients: list[LLMClient], before: dict[str, Any]) -> dict[str, Any]:
    """Each role's tokens, steps and errors over the job's attempts, with the dialect used."""
    roles: dict[str, Usage] = {}
    dialect: dict[str, str] = {}
    for client in clients:
        for role, usage in client.role_usage.items():
            roles[role] = roles[role].merge(usage) if role in roles else usage
            used = getattr(client, "role_dialects", {}).get(role) or client.dialect_in_use
            if used:
                dialect[role] = used
    out = {role: {k: v for k, v in usage.added_to(before.get(role) or {}).items() if k != "llm_last_errors"}
           for role, usage in roles.items()}
    for role, counted in (before or {}).items():
        out.setdefault(role, counted)
    for role, name in dialect.items():
        out[role]["dialect"] = name
    return out


def near_duplicate_index(params: Any, job_id: int, config: CoreConfig) -> NearDupIndex | None:
    """The job's MinHash index: its own, or a named one shared with other jobs; in Redis
    when `SPROUT_DEDUP_REDIS` is on (every worker sees it), else in this process."""
    if not params.near_duplicate_threshold:
        return None
    namespace = f"sprout:dedup:{params.dedup_namespace or f'job{job_id}'}"
    try:
        return NearDupIndex(
            threshold=params.near_duplicate_threshold,
            num_perm=params.near_duplicate_num_perm,
            redis_url=config.redis_url if config.dedup_redis else None,
            namespace=namespace,
        )
    except DedupError as exc:
        raise JobInputError(str(exc)) from None


def run_method(ctx: JobContext, build: Build, result_model: type[G],
               made: Callable[[dict[str, Any]], int] | None = None) -> G:
    """Run a generation engine for the job to its end (or its cancel); returns the result
    (the kind's `result_model`).

    `made`: the examples the job made, from its counters, when `accepted` is not that
    (Evol-Instruct's `accepted` also counts the roots it was given); the spending per
    accepted example divides by it. With `score_with_judge`, the judge then scores the
    curated examples (`judging`), on the judge's endpoints or on the servers that
    generated them."""
    judged: dict[str, Any] | None = None
    with llm_endpoints(ctx.config, ctx.base_urls) as urls, \
            responder_endpoints(ctx.config, ctx.params, bool(ctx.base_urls or ctx.config.llm.base_urls)) as responder_urls:
        accepted = asyncio.run(_drive(ctx, build, urls, made, responder_urls))
        if getattr(ctx.params, "score_with_judge", False) and not ctx.heartbeat.stop_requested:
            judged = _judge(ctx, urls)
    result = {"curated": accepted, **ctx.extra.get("spending", {})}  # tokens per accepted example; budget stop
    if judged is not None and "cost" in result:  # the judge's tokens (roles.judge) cost too
        final = ctx.heartbeat.counters() or {}
        result.update(Budget.of(ctx.params, ctx.config.prices).spending(final, ctx.extra.get("made")))
    if judged is not None:
        result["judge_scores"] = judged
    with ctx.session() as session:
        job = store.get_job(session, ctx.job_id)
        checked = checked_against(session, job, ctx.params, ctx.config)
        if checked:
            result["contamination"] = contamination_report(session, ctx.job_id, ctx.params, checked)
    return result_model.model_validate(result)


def _judge(ctx: JobContext, generator_urls: list[str]) -> dict[str, Any]:
    """The job's curated examples scored by the judge; its counters join the job's."""
    base = ctx.heartbeat.counters() or {}
    scoring = Scoring(ctx.job_id, list(params_as(ctx.params, JudgeStepParams).score_aspects))
    with judge_endpoints(ctx.config, generator_urls=generator_urls) as urls:
        return score_job(ctx, scoring, urls, base)


async def _drive(ctx: JobContext, build: Build, urls: list[str],
                 made: Callable[[dict[str, Any]], int] | None = None, responder_urls: list[str] | None = None) -> int:
    with ctx.session() as session:
        job = store.get_job(session, ctx.job_id)
        previous = store.stored_candidates(session, ctx.job_id)
        counters = {**store.empty_counters(), **job.counters}
        seq = store.next_seq(session, ctx.job_id)
        client = LLMClient(role_llm(ctx.config, ctx.params, "generator"), base_urls=urls)
        responder_llm = role_llm(ctx.config, ctx.params, "responder")
        responder = None
        if responder_urls or responder_llm != role_llm(ctx.config, ctx.params, "generator"):
            responder = LLMClient(responder_llm, base_urls=responder_urls or urls)
        ctx.extra["responder"] = responder
        method = build(session, job, ctx.params, client, previous, ctx)
        job_kind = job.kind
    before = copy.deepcopy(counters)  # what earlier attempts of the job recorded
    base_wall, started = Counters.model_validate(counters).llm_wall_s or 0.0, time.monotonic()
    state: dict[str, Any] = {"seq": seq, "last": time.monotonic(), "committed": copy.deepcopy(counters)}
    batch: list[CandidateRecord] = []
    jobs = ctx.config.jobs
    budget = Budget.of(ctx.params, ctx.config.prices)
    for each in (client, responder):
        if each is not None:
            each.role_prices = budget.token_prices()

    def usage() -> dict[str, Any]:
        # token and request counts and the wall time on the model servers (what a price per
        # GPU-hour bills) add up over a job's attempts, and the last errors carry over; the
        # concurrency limit per endpoint and the utilisation are this attempt's (they
        # describe the run as it is)
        clients = [client, responder] if responder is not None else [client]
        total = client.usage if responder is None else client.usage.merge(responder.usage)
        return {**total.added_to(before), "llm_wall_s": round(base_wall + time.monotonic() - started, 3),
                **client.gauges(), "roles": budget.with_role_costs(role_counters(clients, before.get("roles") or {}))}

    # the heartbeat persists what is committed plus the live LLM usage
    ctx.heartbeat.counters = lambda: {**state["committed"], **usage()}

    def flush() -> None:
        with ctx.heartbeat.lock, ctx.session() as session:
            counters.update(usage())
            state["seq"] = store.commit_batch(session, ctx.job_id, ctx.worker, batch, state["seq"], dict(counters))
            state["committed"] = copy.deepcopy(counters)
        batch.clear()
        state["last"] = time.monotonic()

    async def consume() -> None:
        gen = method.run()
        try:
            async for record in gen:
                batch.append(record)
                store.count_record(counters, record)
                metrics.CANDIDATES.labels(job_kind, record.fate, "" if record.accepted else record.rule or "unknown").inc()
                ctx.report(counters)
                if len(batch) >= jobs.batch_size or time.monotonic() - state["last"] >= jobs.flush_s:
                    flush()
                # token budget (max_total_tokens / max_cost): a decided candidate is a safe point to stop at
                if budget.capped and (why := budget.reached(usage())):
                    ctx.extra["stopped"] = why
                    return
        finally:
            await gen.aclose()

    async def watch(task: asyncio.Task[None]) -> None:
        while not task.done():
            await asyncio.sleep(min(0.25, jobs.flush_s))
            if ctx.heartbeat.stop_requested:
                task.cancel()
                return

    try:
        task = asyncio.create_task(consume())
        watcher = asyncio.create_task(watch(task))
        try:
            await task
        except asyncio.CancelledError:
            if not ctx.heartbeat.stop_requested:
                raise
        except store.LostClaim:
            batch.clear()
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if ctx.heartbeat.lost:
                batch.clear()
                raise store.LostClaim(f"job {ctx.job_id} was taken over by another worker")
            if batch:
                flush()  # what was decided before a stop is kept
    finally:
        await client.aclose()
        if responder is not None:
            await responder.aclose()
        ctx.extra.pop("responder", None)
    stopped = {"stopped": ctx.extra["stopped"]} if "stopped" in ctx.extra else {}
    final = {**counters, **usage()}
    ctx.extra["made"] = made(final) if made else None
    ctx.extra["spending"] = {**budget.spending(final, ctx.extra["made"]), **stopped}
    return Counters.model_validate(counters).accepted


def curated_progress(job: Job) -> Progress:
    """Self-Instruct's measure: curated instructions of the target."""
    return Progress(target=(job.params or {}).get("target"), done=Counters.of(job).accepted)
