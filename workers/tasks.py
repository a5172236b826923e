"""The Celery tasks: one that runs a job of any kind, the reaper, the schedule tick, and the hand-off retry.

Idempotent by construction: the jobs layer (`app.core.jobs.lifecycle.run_job`) claims the
job in SQL first, so a duplicate message for a job that is finished, or held by a live
worker, ends at once; a message for a job whose worker died resumes it from what SQL holds.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from celery.signals import worker_process_shutdown, worker_ready

from app.core import metrics, store
from app.core.datasets.schedule import DEFAULT_GRACE
from app.core.jobs import dataset_build, dispatch, shards
from app.core.jobs import self_instruct as self_instruct_kind
from app.db import session_scope
from app.models import utcnow
from app.settings import get_settings
from workers import handoff, reaper
from workers.celery_app import (
    GENERATION_QUEUE,
    HANDOFF_RETRY_TASK,
    REAPER_TASK,
    RUN_JOB_TASK,
    SCHEDULE_TASK,
    SHARD_TASK,
    app,
)
from workers.dispatch import CeleryDispatcher

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per LLM request drowns the worker log
dispatcher = CeleryDispatcher(app)


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: int) -> str:
    """Run (or resume) the job `job_id`, whatever its kind (the registry knows how); the jobs
    layer announces its end and this worker's dispatcher enqueues its follow-up jobs."""
    settings = get_settings()
    try:
        job = dispatch.run_job(settings.resolved_database_url, job_id, settings.core_config(), dispatcher)
    except store.NotFound:
        log.warning("job %s no longer exists; nothing to do", job_id)
        return "gone"
    return job.status


@app.task(name=SHARD_TASK)
def run_shard(job_id: int, shard: int, base_urls: list[str] | None = None) -> str:
    """One requester of a sharded job (`app.core.jobs.shards`), until the job stops."""
    settings = get_settings()
    self_instruct_kind.run_shard(settings.resolved_database_url, job_id, shard, settings.core_config(), base_urls)
    return "stopped"


def _send_shard(url: str, job_id: int, shard: int, config: Any, base_urls: list[str] | None) -> None:
    """A sharded job's decider starts its requesters as tasks on the generation queue, so
    they run in other worker processes (on this machine or others)."""
    app.send_task(SHARD_TASK, args=[job_id, shard, base_urls], queue=GENERATION_QUEUE)


shards.spawner = _send_shard


@app.task(name=REAPER_TASK)
def reap_stale_jobs() -> list[int]:
    """Re-enqueue running jobs whose worker stopped heartbeating (sent by `sprout beat`)."""
    return reaper.reap(app, get_settings())


@app.task(name=SCHEDULE_TASK)
def fire_due_builds() -> list[int]:
    """Start the dataset builds whose schedule is due (sent by `sprout beat` every
    `SPROUT_SCHEDULE_TICK_S`); a due time is claimed once however many beats run."""
    settings = get_settings()
    grace = max(DEFAULT_GRACE, timedelta(seconds=2 * settings.schedule_tick_s))
    with session_scope(settings.resolved_database_url) as session:
        started = dataset_build.fire_due_builds(session, utcnow(), settings.core_config().defaults, grace)
    for job_id in started:
        dispatcher.submit(job_id, dataset_build.KIND)
        log.info("scheduled build: job %s", job_id)
    return started


@app.task(name=HANDOFF_RETRY_TASK)
def retry_handoff() -> dict[str, dict[int, str]]:
    """Hand-off: attempt due deliveries and webhooks (sent by `sprout beat`)."""
    return handoff.retry(get_settings())


@worker_process_shutdown.connect
def _metrics_process_exited(pid: int | None = None, **_: Any) -> None:
    """A pool process that ends takes its live gauges (in flight, limits) with it."""
    metrics.process_exited(pid or os.getpid())


@worker_ready.connect
def _reap_at_start(sender: Any = None, **_: Any) -> None:
    """A worker that starts after a crash picks up what the crashed one left behind."""
    try:
        sent = reaper.reap(app, get_settings())
        if sent:
            log.warning("re-enqueued stale jobs at start: %s", sent)
    except Exception:  # never keep a worker from starting
        log.exception("the reaper failed at worker start")
