"""One small task per job kind; each names a job id and hands it to the runner.

Idempotent by construction: `runner.run_job` (and `run_sft_job`) claim the job in SQL
first, so a duplicate message for a job that is finished, or held by a live worker, ends
at once; a message for a job whose worker died resumes it from what SQL holds.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from app.core import runner, store
from app.settings import get_settings
from workers import reaper
from workers.celery_app import REAPER_TASK, app, task_for
from workers.training_job import run_sft_job

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per LLM request drowns the worker log


def _generate(job_id: int) -> str:
    settings = get_settings()
    try:
        job = runner.run_job(settings.resolved_database_url, job_id, settings)
    except store.NotFound:
        log.warning("job %s no longer exists; nothing to do", job_id)
        return "gone"
    return job.status


@app.task(name=task_for("self_instruct"))
def self_instruct(job_id: int) -> str:
    """Run (or resume) a Self-Instruct job."""
    return _generate(job_id)


@app.task(name=task_for("evol_instruct"))
def evol_instruct(job_id: int) -> str:
    """Run (or resume) an Evol-Instruct job (its method is registered in `runner.METHODS`)."""
    return _generate(job_id)


@app.task(name=task_for("sft"))
def sft(job_id: int) -> str:
    """Run (or resume) a fine-tuning job on the training queue."""
    settings = get_settings()
    try:
        job = run_sft_job(settings.resolved_database_url, job_id, settings)
    except store.NotFound:
        log.warning("job %s no longer exists; nothing to do", job_id)
        return "gone"
    return job.status


@app.task(name=REAPER_TASK)
def reap_stale_jobs() -> list[int]:
    """Re-enqueue running jobs whose worker stopped heartbeating (sent by `sprout beat`)."""
    return reaper.reap(app, get_settings())


@worker_ready.connect
def _reap_at_start(sender: Any = None, **_: Any) -> None:
    """A worker that starts after a crash picks up what the crashed one left behind."""
    try:
        sent = reaper.reap(app, get_settings())
        if sent:
            log.warning("re-enqueued stale jobs at start: %s", sent)
    except Exception:  # never keep a worker from starting
        log.exception("the reaper failed at worker start")
