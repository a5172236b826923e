"""The hand-off's part of the Celery shell: webhooks for jobs that end, the jobs a finished job
queued after it (a build's `version_handoff` job, a hand-off's training run: its
`result["followups"]`), and the beat's retry of due deliveries and webhooks
(`app.core.handoff`). Failures are logged, never raised: a webhook or a retry pass must not
fail the job that triggered it."""

from __future__ import annotations

import logging
from typing import Any

from app.core.handoff import retry as handoff_retry
from app.core.handoff import webhooks
from app.db import session_scope
from app.models import Job, JobStatus, utcnow

log = logging.getLogger(__name__)


def job_events(settings: Any, job: Any) -> None:
    """Emit and send `job_finished` (and `training_finished`) for a job that ended."""
    try:
        now = utcnow()
        with session_scope(settings.resolved_database_url) as session:
            emitted = webhooks.emit_job_finished(session, job, now)
            webhooks.send_now(session, emitted, settings.handoff_config(), now)
    except Exception:
        log.exception("job %s: its webhooks could not be queued", job.id)


def retry(settings: Any) -> dict[str, dict[int, str]]:
    with session_scope(settings.resolved_database_url) as session:
        summary = handoff_retry.retry_due(session, utcnow(), settings.handoff_config())
    if summary:
        log.info("hand-off retries: deliveries %s, webhooks %s", summary.deliveries, summary.webhooks)
    return {"deliveries": summary.deliveries, "webhooks": summary.webhooks}


def enqueue_followups(celery: Any, settings: Any, job: Any) -> list[int]:
    """Send the follow-up jobs of a job that succeeded to their queues (those still queued)."""
    from workers.celery_app import enqueue

    ids = (job.result or {}).get("followups") or []
    if job.status != JobStatus.succeeded.value or not ids:
        return []
    sent = []
    try:
        with session_scope(settings.resolved_database_url) as session:
            waiting = [(row.id, row.kind) for row in (session.get(Job, i) for i in ids)
                       if row is not None and row.status == JobStatus.queued.value]
        for job_id, kind in waiting:
            enqueue(celery, job_id, kind)
            sent.append(job_id)
            log.info("job %s: follow-up job %s (%s) enqueued", job.id, job_id, kind)
    except Exception:
        log.exception("job %s: its follow-up jobs %s could not be enqueued", job.id, ids)
    return sent
