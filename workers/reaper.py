"""The reaper: send again the jobs that no message and no live worker will run.

Two ways a job is left behind, both found from SQL (the job's row is the truth):

* **a running job whose worker stopped heartbeating** — a worker that dies (SIGKILL, OOM,
  a lost machine) leaves its job `running` with an old heartbeat, and with late acks its
  message sits unacknowledged until the broker's visibility timeout (an hour with Redis).
  It is sent at most once per `SPROUT_JOB_STALE_S` (a Redis key with that lifetime), so a job
  that waits for a free worker does not pile up messages;
* **a queued job whose message is gone** — the broker lost its data (Redis restarted
  without persistence, flushed), or the job was put back to the queue without a message
  (a job paused by a model-server outage). A job queued for longer than one reaper
  interval whose id is in no message of its queue nor of the broker's unacknowledged set
  is sent again.

The worker that takes the message calls `lifecycle.run_job`, whose claim takes the job (or a
stale one over) and resumes it from what SQL holds, so a message sent twice is harmless.
The reaper runs from `sprout beat` every `reaper_interval_s` on its own `maintenance` queue
(which every worker consumes), and once when a worker starts.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from datetime import timedelta
from typing import Any

import redis
from celery import Celery
from sqlalchemy import func
from sqlmodel import select

from app.db import session_scope
from app.models import Job, JobStatus, utcnow
from workers.celery_app import JOB_QUEUES, RUN_JOB_TASK, enqueue, queue_for

log = logging.getLogger(__name__)


def stale_jobs(url: str, stale_after_s: float) -> list[tuple[int, str]]:
    """(id, kind) of running jobs whose heartbeat is older than `stale_after_s`."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    with session_scope(url) as session:
        rows = session.exec(
            select(Job.id, Job.kind)
            .where(Job.status == JobStatus.running.value)
            .where((Job.heartbeat_at.is_(None)) | (Job.heartbeat_at < cutoff))
            .order_by(Job.id)
        ).all()
    return [(int(job_id), kind) for job_id, kind in rows]


def waiting_jobs(url: str, queued_for_s: float) -> list[tuple[int, str]]:
    """(id, kind) of jobs queued since longer than `queued_for_s`: since they were created,
    or since their last run ended (a retried or paused job). One whose cancel was asked
    meanwhile is sent too: the worker that takes it marks it cancelled."""
    cutoff = utcnow() - timedelta(seconds=queued_for_s)
    with session_scope(url) as session:
        rows = session.exec(
            select(Job.id, Job.kind)
            .where(Job.status == JobStatus.queued.value)
            .where(func.coalesce(Job.heartbeat_at, Job.created_at) < cutoff)
            .order_by(Job.id)
        ).all()
    return [(int(job_id), kind) for job_id, kind in rows]


def _job_id(envelope: Any) -> int | None:
    """The job id a Celery message carries (None for any other message)."""
    try:
        if str(envelope["headers"]["task"]) != RUN_JOB_TASK:
            return None
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        return int(args[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def jobs_in_broker(client: redis.Redis, unacked_key: str = "unacked") -> set[int]:
    """Ids of the jobs that have a message in a job queue or delivered but not yet acknowledged
    (kombu's Redis transport keeps a queue as a list, and unacknowledged messages in a hash)."""
    ids = set()
    envelopes = [json.loads(raw) for queue in JOB_QUEUES for raw in client.lrange(queue, 0, -1)]
    envelopes += [json.loads(raw)[0] for raw in client.hvals(unacked_key)]
    for envelope in envelopes:
        job_id = _job_id(envelope)
        if job_id is not None:
            ids.add(job_id)
    return ids


def reap(celery: Celery, settings: Any) -> list[int]:
    """Send again every job left behind (see the module docstring); returns their ids."""
    sent = []
    url = settings.resolved_database_url
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.readiness_timeout_s)
    try:
        for job_id, kind in stale_jobs(url, settings.jobs.stale_s):
            if not client.set(f"sprout:reaped:{job_id}", 1, nx=True, ex=max(1, math.ceil(settings.jobs.stale_s))):
                continue
            enqueue(celery, job_id, kind)
            sent.append(job_id)
            log.warning("job %s (%s): its worker stopped heartbeating; re-enqueued", job_id, kind)
        waiting = waiting_jobs(url, settings.reaper_interval_s)
        if waiting:
            unacked_key = (celery.conf.broker_transport_options or {}).get("unacked_key", "unacked")
            present = jobs_in_broker(client, unacked_key)
            for job_id, kind in waiting:
                if job_id in present:
                    continue
                enqueue(celery, job_id, kind)
                sent.append(job_id)
                log.warning("job %s (%s): queued, but no message in %r holds it (the broker lost it, or the job "
                            "was paused); re-enqueued", job_id, kind, queue_for(kind))
    finally:
        client.close()
    return sent
