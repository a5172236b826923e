"""Run an `sft` job: claim it, train on its source data, keep its counters and heartbeat.

Framework-free (no Celery here): the training task calls `run_sft_job`, as the generation
tasks call `runner.run_job`, and it follows the same rules — the SQL row is the truth, a
conditional `claim` takes the job (or takes over a stale one), every write checks that
this worker still holds it, and a job taken over resumes from the run folder's latest
checkpoint.

The data is the source job's curated rows (`store.curated_examples`) or, when the job was
created from an export, that export's file (`job.result["source"]["export_id"]`). The run
folder is `<data_dir>/runs/job-<id>/`; the metrics land in `job.result["metrics"]`.
Progress (stage, step, max_steps, loss, eta) is written to `job.counters` by a heartbeat
thread every `job_flush_s`; the same thread notices a cancel, and the next training step
stops the run.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import update

from app.core import runner, store
from app.core.seeds import SeedFormatError
from app.db import session_scope
from app.models import Export, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised from the progress callback to end a run that was cancelled or taken over."""


def run_dir(settings: Any, job_id: int) -> Path:
    return Path(settings.data_dir) / "runs" / f"job-{job_id}"


def run_sft_job(url: str, job_id: int, settings: Any, *, worker: str | None = None) -> Job:
    """Run (or resume) a training job to its end; returns the job row as it ended."""
    from app.core.training import TrainingError, TrainParams, run_training

    worker = worker or runner.default_worker_name()
    if not runner.claim(url, job_id, worker, settings.job_stale_s):
        return _unclaimed(url, job_id)
    beat = _Heartbeat(url, job_id, worker, settings.job_flush_s)
    try:
        with session_scope(url) as session:
            job = store.get_job(session, job_id)
            params = TrainParams.model_validate(job.params)
            data = _training_data(session, job)
        out = run_dir(settings, job_id)
        updates: dict[str, Any] = {}
        if params.model_cache_dir is None:
            updates["model_cache_dir"] = Path(settings.data_dir) / "hf-models"
        if any((out / "checkpoints").glob("checkpoint-*")):
            updates["resume"] = True  # a worker died mid-run: continue from its checkpoint
        params = params.model_copy(update=updates)
        beat.start()
        metrics = run_training(params, data, out, progress=beat.progress)
        beat.stop()
        _finish(url, job_id, worker, JobStatus.succeeded, result={"run_dir": str(out), "metrics": metrics},
                counters=beat.counters)
    except _Stop:
        beat.stop()
        if beat.cancelled:
            _finish(url, job_id, worker, JobStatus.cancelled, counters=beat.counters)
    except (TrainingError, SeedFormatError, runner.JobInputError, store.NotFound) as exc:
        beat.stop()
        _finish(url, job_id, worker, JobStatus.failed, error=str(exc), counters=beat.counters)
    except SystemExit:  # the worker is being shut down: leave the job running for the reaper to resume
        beat.stop()
        raise
    except BaseException as exc:  # a bug or an interrupt: keep the job's record honest, then surface it
        beat.stop()
        error = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"internal error: {type(exc).__name__}: {exc}"
        status = JobStatus.cancelled if isinstance(exc, KeyboardInterrupt) else JobStatus.failed
        _finish(url, job_id, worker, status, error=error, counters=beat.counters)
        raise
    with session_scope(url) as session:
        return store.get_job(session, job_id)


def _unclaimed(url: str, job_id: int) -> Job:
    """A job this worker could not claim: finished, or held by a live worker."""
    with session_scope(url) as session:
        job = store.get_job(session, job_id)
        if job.cancel_requested and not JobStatus(job.status).finished:
            job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
        return job


def _training_data(session: Any, job: Job) -> Any:
    source = (job.result or {}).get("source") or {}
    export_id = source.get("export_id")
    if export_id is not None:
        export = session.get(Export, export_id)
        if export is None or not Path(export.path).is_file():
            raise runner.JobInputError(f"export {export_id} (the training data) no longer exists")
        return Path(export.path)
    if job.source_job_id is None:
        raise runner.JobInputError("an sft job needs a source job or an export")
    rows = store.curated_examples(session, job.source_job_id)
    if not rows:
        raise runner.JobInputError(f"job {job.source_job_id} has no curated examples to train on")
    return rows


def _finish(url: str, job_id: int, worker: str, status: JobStatus, *, error: str | None = None,
            result: dict[str, Any] | None = None, counters: dict[str, Any] | None = None) -> None:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        if job is None or job.worker != worker:
            return  # taken over by another worker: its record, not ours
        job.status, job.error = status.value, error
        job.finished_at = job.heartbeat_at = utcnow()
        if result:
            job.result = {**job.result, **result}
        if counters:
            job.counters = {**job.counters, **counters}


class _Heartbeat:
    """Writes progress and heartbeat every `interval` s; notices cancel and lost claims.

    Runs in a thread because one training step (or loading a model) can outlast
    `job_stale_s`; the progress callback only records and, when told to, stops the run.
    """

    def __init__(self, url: str, job_id: int, worker: str, interval: float):
        self.url, self.job_id, self.worker, self.interval = url, job_id, worker, interval
        self.counters: dict[str, Any] = {}
        self.cancelled = False
        self.lost = False
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-job-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def progress(self, info: dict[str, Any]) -> None:
        self.counters = {k: info.get(k) for k in ("stage", "step", "max_steps", "epoch", "loss", "tokens_per_s", "eta_s")
                         if k in info}
        if self.cancelled or self.lost:
            raise _Stop()

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self._beat()
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("job %s: heartbeat failed", self.job_id)

    def _beat(self) -> None:
        with session_scope(self.url) as session:
            job = session.get(Job, self.job_id)
            if job is None or job.worker != self.worker:
                self.lost = True
                return
            self.cancelled = bool(job.cancel_requested)
            session.execute(
                update(Job).where(Job.id == self.job_id, Job.worker == self.worker)
                .values(heartbeat_at=utcnow(), counters={**job.counters, **self.counters})
            )
