"""Drive a generation method for one job: claim it, persist it in batches, resume, cancel.

The CLI (in-process) and the Celery task (on a worker) both call `run_job`, so a job
behaves the same everywhere. The SQL row is the source of truth:

* **claim** — a conditional UPDATE takes the job for this worker if it is queued, or if
  it is running with a heartbeat older than `job_stale_s` (its worker died);
* **batches** — decided candidates are committed every `job_batch_size` records or
  `job_flush_s` seconds, in one transaction with the job's counters and heartbeat; the
  transaction checks that this worker still holds the job, so a worker that lost its
  claim cannot write; `(job_id, seq)` is unique, so nothing is stored twice;
* **resume** — a method is built with the candidates already stored, and rebuilds its
  pool from them;
* **cancel** — `cancel_requested` is read at each heartbeat; the running method is
  stopped, what it decided so far is committed, and the job ends `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, or_, update
from sqlmodel import Session

from app.core import store
from app.core.candidates import CandidateRecord, Method, StoredCandidate
from app.core.evol_job import build_evol_instruct
from app.core.filters.dedup import DedupError, NearDupIndex
from app.core.llm.client import LLMClient, LLMError, LLMOutageError
from app.core.llm.embedded import EmbeddedServer
from app.core.params import EvolInstructParams, SelfInstructParams
from app.core.self_instruct import SelfInstruct
from app.db import get_engine, session_scope
from app.models import Job, JobStatus, utcnow

Progress = Callable[[dict[str, Any]], None]


class LostClaim(RuntimeError):
    """Another worker took this job over (this one was presumed dead)."""


class JobInputError(ValueError):
    """The job cannot run as specified (no seed set, too few seeds, ...)."""


@dataclass
class MethodSpec:
    """How to validate a job kind's parameters and build its method."""

    params_model: type[BaseModel]
    build: Callable[..., Method]  # (session, job, params, client, previous, settings) -> Method


def _build_self_instruct(session: Session, job: Job, params: SelfInstructParams, client: LLMClient,
                         previous: list[StoredCandidate], settings: Any) -> Method:
    if job.seed_set_id is None:
        raise JobInputError("a self_instruct job needs a seed set")
    try:
        return SelfInstruct(params, client, store.seed_tasks(session, job.seed_set_id), previous,
                            concurrency=settings.llm_concurrency, job_key=f"job{job.id}",
                            near_duplicates=near_duplicate_index(params, job.id, settings))
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


def near_duplicate_index(params: Any, job_id: int, settings: Any) -> NearDupIndex | None:
    """The job's MinHash index: its own, or a named one shared with other jobs; in Redis
    when `SPROUT_DEDUP_REDIS` is on (every worker sees it), else in this process."""
    if not params.near_duplicate_threshold:
        return None
    namespace = f"sprout:dedup:{params.dedup_namespace or f'job{job_id}'}"
    try:
        return NearDupIndex(
            threshold=params.near_duplicate_threshold,
            num_perm=params.near_duplicate_num_perm,
            redis_url=settings.redis_url if settings.dedup_redis else None,
            namespace=namespace,
        )
    except DedupError as exc:
        raise JobInputError(str(exc)) from None


METHODS: dict[str, MethodSpec] = {
    "self_instruct": MethodSpec(SelfInstructParams, _build_self_instruct),
    "evol_instruct": MethodSpec(EvolInstructParams, build_evol_instruct),
}


def register_method(kind: str, spec: MethodSpec) -> None:
    METHODS[kind] = spec


def validate_params(kind: str, overrides: dict[str, Any], settings: Any) -> BaseModel:
    """A job's parameters: the service defaults (settings) overridden by the caller's.

    Raises pydantic's ValidationError naming the bad field."""
    spec = METHODS.get(kind)
    if spec is None:
        raise JobInputError(f"unknown job kind {kind!r}; known: {', '.join(sorted(METHODS))}")
    defaults = getattr(settings, kind, None)
    base = defaults.model_dump() if isinstance(defaults, BaseModel) else {}
    return spec.params_model.model_validate({**base, **overrides})


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- claiming -------------------------------------------------------------------------------
def claim(url: str, job_id: int, worker: str, stale_after_s: float) -> bool:
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    with session_scope(url) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id)
            .where(Job.cancel_requested.is_(False))
            .where(
                or_(
                    Job.status == JobStatus.queued.value,
                    (Job.status == JobStatus.running.value)
                    & (or_(Job.worker == worker, Job.heartbeat_at.is_(None), Job.heartbeat_at < stale)),
                )
            )
            .values(status=JobStatus.running.value, worker=worker, attempts=Job.attempts + 1,
                    heartbeat_at=now, started_at=func.coalesce(Job.started_at, now))
        )
        return result.rowcount == 1


def request_cancel(session: Session, job: Job) -> None:
    """Queued: cancelled at once. Running: the runner stops it within `job_flush_s`."""
    if JobStatus(job.status).finished:
        return
    job.cancel_requested = True
    if job.status == JobStatus.queued.value:
        job.status = JobStatus.cancelled.value
        job.finished_at = utcnow()


def _finish(url: str, job_id: int, worker: str, status: JobStatus, error: str | None = None) -> None:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None or job.worker != worker:
            return
        job.status = status.value
        job.error = error
        job.finished_at = utcnow()
        job.heartbeat_at = job.finished_at
        if status is JobStatus.succeeded:
            job.result = {**job.result, "curated": job.counters.get("accepted", 0)}


# --- running --------------------------------------------------------------------------------
@contextlib.contextmanager
def llm_endpoints(settings: Any, base_urls: list[str] | None = None) -> Iterator[list[str]]:
    """The configured LLM endpoints, or the embedded model started for the duration."""
    urls = base_urls or settings.llm_base_urls
    if urls:
        yield list(urls)
        return
    with EmbeddedServer.from_settings(settings) as url:
        yield [url]


def run_job(url: str, job_id: int, settings: Any, *, worker: str | None = None,
            base_urls: list[str] | None = None, progress: Progress | None = None) -> Job:
    """Run (or resume) a generation job to its end; returns the job row as it ended.

    A job that another live worker holds, or that is already finished, is returned as is.
    """
    worker = worker or default_worker_name()
    if not claim(url, job_id, worker, settings.job_stale_s):
        with session_scope(url) as session:
            job = store.get_job(session, job_id)
            if job.cancel_requested and not JobStatus(job.status).finished:
                job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
            return job
    try:
        with llm_endpoints(settings, base_urls) as urls:
            status = asyncio.run(_drive(url, job_id, worker, settings, urls, progress))
        _finish(url, job_id, worker, status)
    except LostClaim:
        pass
    except KeyboardInterrupt:
        _finish(url, job_id, worker, JobStatus.cancelled, "interrupted")
        raise
    except LLMOutageError as exc:  # paused, not failed: the reaper sends a queued job without a message again
        with session_scope(url) as session:
            session.execute(update(Job).where(Job.id == job_id, Job.worker == worker).values(
                status=JobStatus.queued.value, worker=None, heartbeat_at=utcnow(),
                error=f"waiting for the model server: {exc}"))
    except (LLMError, JobInputError) as exc:
        _finish(url, job_id, worker, JobStatus.failed, str(exc))
    except Exception as exc:  # a bug: keep the job's record honest, then surface it
        _finish(url, job_id, worker, JobStatus.failed, f"internal error: {type(exc).__name__}: {exc}")
        raise
    with session_scope(url) as session:
        return store.get_job(session, job_id)


async def _drive(url: str, job_id: int, worker: str, settings: Any, urls: list[str], progress: Progress | None) -> JobStatus:
    with session_scope(url) as session:
        job = store.get_job(session, job_id)
        spec = METHODS[job.kind]
        params = spec.params_model.model_validate(job.params)
        previous = store.stored_candidates(session, job_id)
        counters = {**store.empty_counters(), **job.counters}
        seq = store.next_seq(session, job_id)
        client = LLMClient.from_settings(settings, base_urls=urls)
        method = spec.build(session, job, params, client, previous, settings)
    base_usage = {k: counters.get(k, 0) for k in client.usage.as_dict()}
    batch: list[CandidateRecord] = []
    cancelled = asyncio.Event()
    state = {"seq": seq, "last": time.monotonic()}

    def flush() -> None:
        with session_scope(url) as session:
            counters.update({k: base_usage[k] + v for k, v in client.usage.as_dict().items()})
            state["seq"] = store.write_records(session, job_id, batch, state["seq"])
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.worker == worker)
                .values(counters=dict(counters), heartbeat_at=utcnow())
            )
            if result.rowcount != 1:
                raise LostClaim(f"job {job_id} was taken over by another worker")
        batch.clear()
        state["last"] = time.monotonic()

    async def consume() -> None:
        gen = method.run()
        try:
            async for record in gen:
                batch.append(record)
                store.count_record(counters, record)
                if progress:
                    progress(counters)
                if len(batch) >= settings.job_batch_size or time.monotonic() - state["last"] >= settings.job_flush_s:
                    flush()
        finally:
            await gen.aclose()

    async def watch(task: asyncio.Task) -> None:
        while not task.done():
            await asyncio.sleep(settings.job_flush_s)
            if await asyncio.to_thread(_heartbeat, url, job_id, worker):
                cancelled.set()
                task.cancel()
                return

    try:
        task = asyncio.create_task(consume())
        watcher = asyncio.create_task(watch(task))
        try:
            await task
        except asyncio.CancelledError:
            if not cancelled.is_set():
                raise
        except LostClaim:
            batch.clear()
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if batch:
                flush()  # what was decided before a stop is kept
    finally:
        await client.aclose()
    return JobStatus.cancelled if cancelled.is_set() else JobStatus.succeeded


def _heartbeat(url: str, job_id: int, worker: str) -> bool:
    """Refresh the heartbeat; True when a cancel was requested."""
    with session_scope(url) as session:
        session.execute(update(Job).where(Job.id == job_id, Job.worker == worker).values(heartbeat_at=utcnow()))
        job = session.get(Job, job_id)
        return bool(job and job.cancel_requested)
