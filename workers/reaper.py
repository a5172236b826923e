"""The reaper: re-enqueue running jobs whose worker stopped heartbeating.

A worker that dies (SIGKILL, OOM, a lost machine) leaves its job `running` with an old
heartbeat, and with late acks its message sits unacknowledged until the broker's
visibility timeout (an hour with Redis). The reaper sends the job again; the worker that
takes the message calls `lifecycle.run_job`, whose `claim` takes a stale job over and
resumes it from what SQL holds. It runs periodically from `sprout beat` and once when a
worker starts.

A job is sent at most once per `job_stale_s` (a Redis key with that lifetime), so a job
that waits for a free worker does not pile up messages.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

import redis
from celery import Celery
from sqlmodel import select

from app.db import session_scope
from app.models import Job, JobStatus, utcnow
from workers.celery_app import enqueue

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


def reap(celery: Celery, settings: Any) -> list[int]:
    """Re-enqueue every stale running job once per `job_stale_s`; returns their ids."""
    sent = []
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.readiness_timeout_s)
    try:
        for job_id, kind in stale_jobs(settings.resolved_database_url, settings.job_stale_s):
            if not client.set(f"sprout:reaped:{job_id}", 1, nx=True, ex=max(1, math.ceil(settings.job_stale_s))):
                continue
            enqueue(celery, job_id, kind)
            sent.append(job_id)
            log.warning("job %s (%s): its worker stopped heartbeating; re-enqueued", job_id, kind)
    finally:
        client.close()
    return sent
