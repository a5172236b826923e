"""Turn a `JobCreate` body into a stored job through the core's one request path, and
submit a stored job to the app's dispatcher (`submit`: every route that starts a job).

The kinds, their parameter validation and the checks of what a request references all
live in the job registry (`app.core.jobs`); this shell adds only what HTTP needs: the
caller's owner, the data directory that confines file paths in parameters, and the 422
shape of a bad parameter. A `JobRequestError` becomes a 422 on its field
(`app.api.errors`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import HTTPException
from pydantic import ValidationError
from sqlmodel import Session

from app.api.errors import field_error, request_error
from app.api.schemas.jobs import JobCreate
from app.core import jobs
from app.core.jobs import requests
from app.core.jobs.dispatch import Dispatcher, DispatchUnavailable
from app.core.llm.client import LLMError
from app.models import Export, Job, JobStatus
from app.settings import Settings

log = logging.getLogger("sprout.api")


def create(session: Session, body: JobCreate, owner: str, settings: Settings) -> Job:
    if body.export_id is not None:  # the trainer reads JSON exports; a Parquet zip is for other trainers
        export = session.get(Export, body.export_id)
        if export is not None and export.owner == owner and export.format == "parquet":
            raise field_error(("body", "export_id"), f"export {export.id} is a parquet zip, which the built-in "
                              "trainer does not read; export alpaca, messages, prompt-completion or sharegpt")
    request = jobs.JobRequest(kind=body.kind, params=body.params, seed_set_id=body.seed_set_id,
                              source_job_id=body.source_job_id, export_id=body.export_id, owner=owner,
                              data_root=Path(settings.data_dir))
    try:
        return requests.create_job(session, request, settings.core_config().defaults)
    except ValidationError as exc:
        raise request_error(exc, "body", "params") from None


def estimate(session: Session, body: JobCreate, owner: str, settings: Settings) -> dict:
    """A dry run: the request judged as `create` judges it, then a pilot (`app.core.jobs.estimate`)."""
    from app.core import store
    from app.core.jobs.estimate import estimate_evol_instruct, estimate_self_instruct
    from app.core.jobs.evol_instruct import source_pool

    if body.kind not in ("self_instruct", "evol_instruct"):
        raise field_error(("body", "dry_run"), f"a dry run estimates self_instruct and evol_instruct jobs, not {body.kind}")
    request = jobs.JobRequest(kind=body.kind, params=body.params, seed_set_id=body.seed_set_id,
                              source_job_id=body.source_job_id, export_id=body.export_id, owner=owner,
                              data_root=Path(settings.data_dir))
    try:
        args = requests.validate(session, request, settings.core_config().defaults)
    except ValidationError as exc:
        raise request_error(exc, "body", "params") from None
    params = jobs.get(body.kind).params_model.model_validate(args["params"])
    config = settings.core_config()
    try:
        if body.kind == "self_instruct":
            result = estimate_self_instruct(params, store.seed_tasks(session, args["seed_set_id"]), config)
        else:  # the pool the job would evolve, read as its run reads it (a job that is never stored)
            pool = source_pool(session, Job(kind=body.kind, seed_set_id=args.get("seed_set_id"),
                                            source_job_id=args.get("source_job_id")))
            result = estimate_evol_instruct(params, pool, config)
    except LLMError as exc:
        raise HTTPException(503, f"the model servers did not answer the pilot: {exc}",
                            headers={"Retry-After": "30"}) from None
    return {"dry_run": True, "kind": body.kind, "estimate": result.as_dict()}


def submit(session: Session, dispatcher: Dispatcher, job: Job, undo: str) -> None:
    """Submit `job`; if the broker is down, undo (delete, or mark failed) and answer 503."""
    try:
        dispatcher.submit(int(job.id), job.kind)
    except DispatchUnavailable as exc:
        log.error("cannot enqueue job %s: %s", job.id, exc)
        if undo == "delete":
            session.delete(job)
        else:
            job.status, job.error = JobStatus.failed.value, "could not be enqueued: the broker is unreachable"
        session.commit()
        raise HTTPException(503, "the job queue (Redis) is unreachable; try again shortly",
                            headers={"Retry-After": "5"}) from None
