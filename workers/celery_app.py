"""The Celery app: Redis broker, late acks, one job per worker slot, three queues.

A job's SQL row is the source of truth, not the message: a task only names a job id and
the jobs layer (`app.core.jobs.lifecycle.run_job`) claims the job, so a message delivered
twice (a redelivery after a worker died, a re-enqueue by the reaper) is harmless. Hence:

* `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only when
  its job has ended, so a worker that dies does not lose it;
* `worker_prefetch_multiplier=1`: a worker holds no job it cannot start yet;
* no result backend: results live in SQL (`job.result`, `job.counters`).

Queues come from the job registry (`app.core.jobs`): each kind names its own —
`generation` (Self-Instruct, Evol-Instruct, dataset builds; the LLM does the work) and
`training` (SFT; CPU/GPU heavy) today — so each runs on workers sized for it; one task runs
every kind. `maintenance` carries the reaper, the schedule tick and the hand-off retries,
and every worker consumes it besides its own queues: on the `generation` queue those
messages waited behind a backlog of jobs and expired unread.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from app.core import jobs
from app.core.jobs.registry import GENERATION_QUEUE

MAINTENANCE_QUEUE = "maintenance"
JOB_QUEUES = tuple(jobs.queues())
QUEUES = (*JOB_QUEUES, MAINTENANCE_QUEUE)
RUN_JOB_TASK = "sprout.run_job"
SHARD_TASK = "sprout.run_shard"  # one requester of a sharded job (app/core/jobs/shards.py)
REAPER_TASK = "sprout.reap_stale_jobs"
SCHEDULE_TASK = "sprout.fire_due_builds"
HANDOFF_RETRY_TASK = "sprout.retry_handoff"  # hand-off: due deliveries and webhooks


def queue_for(kind: str) -> str:
    """The queue a job kind runs on (declared with the kind in the registry)."""
    return jobs.get(kind).queue


def task_for(kind: str) -> str:
    """The task that runs a job: one for every kind (`workers.tasks.run_job`)."""
    return RUN_JOB_TASK


def make_celery(settings: Any) -> Celery:
    """A Celery app configured from `settings` (broker = `settings.redis_url`)."""
    app = Celery("sprout", broker=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        task_default_queue=GENERATION_QUEUE,
        task_routes={task: {"queue": MAINTENANCE_QUEUE} for task in (REAPER_TASK, SCHEDULE_TASK, HANDOFF_RETRY_TASK)},
        worker_concurrency=settings.worker_concurrency,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.readiness_timeout_s,
        task_serializer="json",
        accept_content=["json"],
        beat_schedule={
            "reap-stale-jobs": {"task": REAPER_TASK, "schedule": settings.reaper_interval_s,
                                "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.reaper_interval_s}},
            "fire-due-builds": {"task": SCHEDULE_TASK, "schedule": settings.schedule_tick_s,
                                "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.schedule_tick_s}},
            # hand-off: retry due deliveries and webhooks (`app.core.handoff.retry.retry_due`)
            "retry-handoff": {"task": HANDOFF_RETRY_TASK, "schedule": settings.handoff.retry_interval_s,
                              "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.handoff.retry_interval_s}},
        },
    )
    return app


def enqueue(celery: Celery, job_id: int, kind: str) -> None:
    """Send a job to its queue. Raises kombu/redis errors when the broker is unreachable."""
    celery.send_task(task_for(kind), args=[job_id], queue=queue_for(kind),
                     retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})


def _default_app() -> Celery:
    from app.settings import settings_or_exit

    return make_celery(settings_or_exit())


# `celery -A workers.celery_app worker` and `sprout worker` use this app.
app = _default_app()
