"""Claim, heartbeat, cancel and finish a job: written once, used by every job kind.

The CLI (in-process) and the Celery task (on a worker) both call `run_job`, so a job
behaves the same everywhere. The SQL row is the source of truth:

* **claim** — a conditional UPDATE (`store.claim_job`) takes the job for this worker if
  it is queued, or running with a heartbeat older than `jobs.stale_s` (its worker died);
* **heartbeat** — a thread refreshes the heartbeat every `jobs.flush_s`, with the kind's
  live counters (so a job that has decided nothing yet still shows its LLM requests and
  tokens), and notices a cancel request or a takeover; a long training step or a model
  server that is still loading cannot starve it;
* **commit** — a kind writes its results through `store` calls that check that this
  worker still holds the job (`store.commit_batch`), so a worker that lost its claim
  cannot write;
* **finish** — succeeded (with the kind's result, stored through its result model, and the follow-up jobs its `Outcome`
  asks for, made in the same transaction: `outcome.py`), cancelled, failed with a message
  the user can act on, or paused: a model server that stays away longer than the outage
  budget puts the job back in the queue (`store.pause_job`), and the reaper sends it
  again, so a short outage costs time, not the job.

What follows a job's end (its `job_finished` webhooks, its follow-ups sent to run) is
`dispatch.run_job`'s, around this one; a build's step jobs call this one alone.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from app.core import store
from app.core.config import CoreConfig
from app.core.jobs.outcome import FollowUp, Outcome
from app.core.jobs.registry import get as get_kind
from app.core.llm.client import LLMError, LLMOutageError
from app.core.methods.candidates import JobInputError
from app.db import session_scope
from app.models import Job, JobStatus, utcnow

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]
LostClaim = store.LostClaim


class JobStopped(Exception):
    """Raised inside a kind's run to end it early: cancelled, or taken over."""


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """A thread that refreshes the job's heartbeat (and live counters) every `interval` s
    and records a cancel request or a lost claim for the running kind to act on.

    `lock` is held while the counters are read and written, so a kind that commits its
    counters with its rows (under the same lock) is never overwritten by an older snapshot.
    """

    def __init__(self, url: str, job_id: int, worker: str, interval: float):
        self.url, self.job_id, self.worker, self.interval = url, job_id, worker, interval
        self.counters: Callable[[], dict[str, Any] | None] = lambda: None
        self.lock = threading.Lock()
        self.cancelled = False
        self.lost = False
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-job-{job_id}", daemon=True)

    @property
    def stop_requested(self) -> bool:
        return self.cancelled or self.lost

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        with self.lock, session_scope(self.url) as session:
            try:
                self.cancelled = store.heartbeat(session, self.job_id, self.worker, self.counters()) or self.cancelled
            except store.LostClaim:
                self.lost = True

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("job %s: heartbeat failed", self.job_id)


@dataclass
class JobContext:
    """What a kind's `run` gets: the job as claimed, its validated params, the core's
    configuration, the heartbeat, and (in-process) a progress callback."""

    url: str
    job: Job
    params: BaseModel
    config: CoreConfig
    worker: str
    heartbeat: Heartbeat
    base_urls: list[str] | None = None  # model servers to use instead of the configured ones
    progress: ProgressCallback | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> int:
        return store.id_of(self.job)

    def session(self) -> AbstractContextManager[Session]:
        """A new session on the job's database, committed on a clean exit."""
        return session_scope(self.url)

    def report(self, counters: dict[str, Any]) -> None:
        if self.progress:
            self.progress(counters)

    def check_stop(self) -> None:
        """Raise `JobStopped` when the job was cancelled or taken over."""
        if self.heartbeat.stop_requested:
            raise JobStopped()


_frozen_lock = threading.Lock()
_frozen_depth = 0  # jobs running in this process under `_heap_frozen`


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Leave what the process held before the job (its imports, about 190,000 objects) out
    of the garbage collector's full passes while the job runs, and give it back after.

    Why: a job makes objects fast (events, rows, candidates), so the collector runs often,
    and each full pass walked the whole heap of imported modules, which never becomes
    garbage; one such pass cost about a tenth of a 500-example job's CPU. `gc.freeze` moves
    the objects of the moment to a generation that no pass walks; `gc.unfreeze` puts them back
    when the last running job ends, so anything of them that became garbage is still
    collected then. The job's own objects are collected as before."""
    global _frozen_depth
    with _frozen_lock:
        _frozen_depth += 1
        if _frozen_depth == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0:
                gc.unfreeze()


def run_job(url: str, job_id: int, config: CoreConfig, *, worker: str | None = None,
            base_urls: list[str] | None = None, progress: ProgressCallback | None = None) -> Job:
    """Run (or resume) a job of any registered kind to its end; returns its row as it ended.

    A job that another live worker holds, or that is already finished, is returned as is.
    The heap the process held before the job is left out of the collector's passes while it
    runs (`_heap_frozen`).
    """
    with _heap_frozen():
        return _run_job(url, job_id, config, worker=worker, base_urls=base_urls, progress=progress)


def _run_job(url: str, job_id: int, config: CoreConfig, *, worker: str | None,
             base_urls: list[str] | None, progress: ProgressCallback | None) -> Job:
    worker = worker or default_worker_name()
    with session_scope(url) as session:
        claimed = store.claim_job(session, job_id, worker, config.jobs.stale_s)
    if not claimed:
        return _unclaimed(url, job_id)
    beat = Heartbeat(url, job_id, worker, config.jobs.flush_s)
    try:
        with session_scope(url) as session:
            job = store.get_job(session, job_id)
            kind = get_kind(job.kind)
            params = kind.params_model.model_validate(job.params)
        ctx = JobContext(url, job, params, config, worker, beat, base_urls=base_urls, progress=progress)
        beat.start()
        outcome = kind.run(ctx)
        beat.stop()
        if not isinstance(outcome, Outcome):
            outcome = Outcome(outcome or {})
        result = kind.store_result(outcome.result)  # through the kind's result model
        if beat.cancelled:
            _end(url, job_id, worker, beat, JobStatus.cancelled, result=result)
        else:  # a follow-up that fails the job raises JobInputError: failed below, nothing made
            _succeed(url, job_id, worker, beat, result, outcome.followups)
    except JobStopped:
        beat.stop()
        if beat.cancelled and not beat.lost:
            _end(url, job_id, worker, beat, JobStatus.cancelled)
    except LostClaim:
        beat.stop()
    except LLMOutageError as exc:
        beat.stop()
        with beat.lock, session_scope(url) as session:  # with its counters: the errors that paused it
            store.pause_job(session, job_id, worker, f"waiting for the model server: {exc}", counters=beat.counters())
        log.warning("job %s paused: %s", job_id, exc)
    except (LLMError, JobInputError, store.NotFound) as exc:
        beat.stop()
        _end(url, job_id, worker, beat, JobStatus.failed, error=str(exc))
    except KeyboardInterrupt:
        beat.stop()
        _end(url, job_id, worker, beat, JobStatus.cancelled, error="interrupted")
        raise
    except SystemExit:  # the worker is shutting down: leave the job running for the reaper to resume
        beat.stop()
        raise
    except Exception as exc:  # a bug: keep the job's record honest, then surface it
        beat.stop()
        _end(url, job_id, worker, beat, JobStatus.failed, error=f"internal error: {type(exc).__name__}: {exc}")
        raise
    with session_scope(url) as session:
        return store.get_job(session, job_id)


def _succeed(url: str, job_id: int, worker: str, beat: Heartbeat, result: dict[str, Any],
             followups: list[FollowUp]) -> None:
    """Succeeded, with the follow-up jobs made in the same transaction (none if the claim was lost)."""
    result = dict(result)
    with beat.lock, session_scope(url) as session:
        if not store.finish_job(session, job_id, worker, JobStatus.succeeded, result=result,
                                counters=beat.counters()):
            return
        made = []
        for followup in followups:
            try:
                with session.begin_nested():
                    job_id_made = followup.create(session, result)
            except Exception as exc:
                if followup.recorded_as is None:
                    raise
                result[followup.recorded_as] = f"{type(exc).__name__}: {exc}"
                continue
            if job_id_made is not None:
                made.append(job_id_made)
        if made:
            result["followups"] = made
        job = store.get_row(session, Job, job_id)
        job.result = {**(job.result or {}), **result}


def _end(url: str, job_id: int, worker: str, beat: Heartbeat, status: JobStatus, *, error: str | None = None,
         result: dict[str, Any] | None = None) -> None:
    with beat.lock, session_scope(url) as session:
        store.finish_job(session, job_id, worker, status, error=error, result=result, counters=beat.counters())


def _unclaimed(url: str, job_id: int) -> Job:
    """A job this worker could not claim: finished, or held by a live worker; a cancelled
    one that no worker holds is marked so."""
    with session_scope(url) as session:
        job = store.get_job(session, job_id)
        if job.cancel_requested and not JobStatus(job.status).finished:
            job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
        return job
