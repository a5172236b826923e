"""Where a job goes to run: one port (`Dispatcher`), two shells implement it.

What happens after a job ends is written once, in the core: the lifecycle makes a
succeeded job's follow-up jobs in its finishing transaction (`lifecycle.py`,
`outcome.py`); `run_job` here, around it, emits `job_finished` (and `training_finished`)
and submits those follow-ups to a `Dispatcher`. Which
dispatcher is the shell's choice, never its logic:

* `InProcessDispatcher` (the CLI, which has no worker): runs a submitted job here and now,
  then its own follow-ups, one after the other;
* the Celery one (`workers/dispatch.py`, used by the workers and injected into the API):
  sends the job to its kind's queue.

`hand_off_version` is the one place a committed version's `version_handoff` job is made and
submitted outside a build (curation, a review's commit, a hand-off asked for again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlmodel import Session

from app.core import store
from app.core.config import CoreConfig
from app.core.errors import Unavailable
from app.core.handoff import webhooks
from app.core.jobs import lifecycle, version_handoff
from app.core.jobs.results import JobResult, read_result
from app.db import session_scope
from app.models import Dataset, DatasetVersion, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


class DispatchUnavailable(Unavailable):
    """The dispatcher could not take the job (the broker is unreachable); the job is still queued."""


class Dispatcher(Protocol):
    def submit(self, job_id: int, kind: str) -> None:
        """Have the queued job `job_id` (of `kind`) run; raises `DispatchUnavailable`."""


class NoDispatcher:
    """For a shell made without a job queue (an API serving its documents only): refuses every job."""

    def submit(self, job_id: int, kind: str) -> None:
        raise DispatchUnavailable(f"job {job_id}: no job queue is configured here")


def run_job(url: str, job_id: int, config: CoreConfig, dispatcher: Dispatcher, **options: Any) -> Job:
    """Run (or resume) a job to its end (`lifecycle.run_job`, same `options`), announce its
    end, then submit the follow-up jobs it made; returns the job as it ended."""
    job = lifecycle.run_job(url, job_id, config, **options)
    announce(url, job, config)
    submit_followups(url, job, dispatcher)
    return job


def announce(url: str, job: Job, config: CoreConfig) -> None:
    """`job_finished` (and `training_finished`) for a job that ended, queued and sent now."""
    if not JobStatus(job.status).finished:
        return
    try:
        now = utcnow()
        with session_scope(url) as session:
            emitted = webhooks.emit_job_finished(session, job, now)
            webhooks.send_now(session, emitted, config.handoff, now)
    except Exception:  # a webhook must not fail the job that triggered it
        log.exception("job %s: its webhooks could not be queued", job.id)


def submit_followups(url: str, job: Job, dispatcher: Dispatcher) -> list[int]:
    """Submit the follow-ups of a job that succeeded, those still queued; returns their ids.
    A dispatcher that cannot take one is logged: the job stays queued for the reaper."""
    ids = read_result(job, JobResult).followups or []
    if job.status != JobStatus.succeeded.value or not ids:
        return []
    with session_scope(url) as session:
        rows = {int(i): session.get(Job, i) for i in ids}
        waiting = [(i, row.kind) for i, row in rows.items() if row is not None and row.status == JobStatus.queued.value]
    sent = []
    for job_id, kind in waiting:
        try:
            dispatcher.submit(job_id, kind)
        except DispatchUnavailable:
            log.exception("job %s: its follow-up job %s could not be submitted", job.id, job_id)
            continue
        sent.append(job_id)
    return sent


class InProcessDispatcher:
    """Runs each submitted job here, then its follow-ups (depth first), one after the other.

    `run(job)` runs one queued job to its end (the CLI's draws a progress bar; default: the
    lifecycle, quietly); `on_start(job)` and `on_end(job)` let the shell say what runs and
    how it ended. `done` lists the jobs it ran, in order.
    """

    def __init__(self, url: str, config: CoreConfig, *, run: Callable[[Job], Job] | None = None,
                 on_start: Callable[[Job], None] | None = None, on_end: Callable[[Job], None] | None = None):
        self.url, self.config = url, config
        self._run = run or self._run_here
        self._on_start, self._on_end = on_start, on_end
        self.done: list[Job] = []

    def _run_here(self, job: Job) -> Job:
        assert job.id is not None
        return lifecycle.run_job(self.url, job.id, self.config)

    def submit(self, job_id: int, kind: str) -> None:
        with session_scope(self.url) as session:
            job = store.get_job(session, job_id)
        if job.status != JobStatus.queued.value:
            return
        if self._on_start:
            self._on_start(job)
        job = self._run(job)
        announce(self.url, job, self.config)
        if self._on_end:
            self._on_end(job)
        self.done.append(job)
        submit_followups(self.url, job, self)


def hand_off_version(session: Session, dataset: Dataset, version: DatasetVersion,
                     defaults: dict[str, dict[str, Any]], dispatcher: Dispatcher, *, force: bool = False) -> Job | None:
    """The version's `version_handoff` job, made (`version_handoff.queue`), committed and
    submitted; None when the version has nothing to go through. A dispatcher that cannot
    take it marks it failed (retry it later) without undoing the version; with `force` (the
    caller asked for this hand-off) `DispatchUnavailable` is raised after that."""
    job_id = version_handoff.queue(session, dataset, version, defaults, force=force)
    if job_id is None:
        return None
    session.commit()
    job = session.get(Job, job_id)
    if job is not None and job.status == JobStatus.queued.value:
        try:
            dispatcher.submit(job_id, job.kind)
        except DispatchUnavailable as exc:
            job.status, job.error = JobStatus.failed.value, f"could not be enqueued: the broker is unreachable ({exc})"
            session.commit()
            if force:
                raise
    return job
