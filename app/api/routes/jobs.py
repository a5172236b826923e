"""Jobs: create (and enqueue), list, get with live counters, cancel, retry, delete.

A job is committed first and then sent to its queue; if the broker cannot take it, the
job is removed again and the answer is a 503, so no job waits for a message that never
left.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func
from sqlmodel import select

from app.api import job_requests
from app.api.deps import DispatcherDep, IdPath, Owner, SessionDep, SettingsDep, in_session, owned
from app.api.errors import LimitedJsonRoute
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.jobs import JobCreate, JobOut
from app.core import store
from app.models import Export, Job, JobStatus

log = logging.getLogger("sprout.api")
router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=LimitedJsonRoute)


@router.post("", status_code=201, summary="Create a job and enqueue it (or, with dry_run, estimate its tokens)",
             response_model=JobOut, responses={200: {"description": "dry_run: the estimate; nothing is stored."}})
def create_job(body: JobCreate, session: SessionDep, owner: Owner, settings: SettingsDep,
               dispatcher: DispatcherDep) -> Any:
    if body.dry_run:  # a pilot of a few real requests; nothing is stored or enqueued
        return JSONResponse(job_requests.estimate(session, body, owner, settings))
    job = job_requests.create(session, body, owner, settings)
    session.commit()
    job_requests.submit(session, dispatcher, job, undo="delete")
    return JobOut.of(job)


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    session: SessionDep,
    owner: Owner,
    status: JobStatus | None = Query(None, description="Only jobs in this status."),
    kind: str | None = Query(None, max_length=32, description="Only jobs of this kind."),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    offset: int = Query(0, ge=0, le=2**31),
) -> Page[JobOut]:
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status.value)
    if kind is not None:
        query = query.where(Job.kind == kind)

    def page() -> Page[JobOut]:
        # the page and the total in one round trip (a page past the end needs a count of its own)
        counted = query.add_columns(func.count().over().label("total"))
        rows = session.execute(counted.order_by(Job.id.desc()).offset(offset).limit(limit)).all()
        total = rows[0][1] if rows else session.exec(select(func.count()).select_from(query.subquery())).one()
        return Page(items=[JobOut.of(job) for job, _ in rows], total=total, limit=limit, offset=offset)

    return await in_session(session, page)


@router.get("/{job_id}", summary="A job with its live counters, rate and ETA")
async def get_job(job_id: IdPath, session: SessionDep, owner: Owner) -> JobOut:
    return await in_session(session, lambda: JobOut.of(owned(session, Job, job_id, owner, "job")))


@router.post("/{job_id}/cancel", status_code=202, summary="Stop a job, keeping what it accepted")
def cancel_job(job_id: IdPath, session: SessionDep, owner: Owner) -> JobOut:
    job = owned(session, Job, job_id, owner, "job")
    store.request_cancel(job)
    session.commit()
    return JobOut.of(job)


@router.post("/{job_id}/retry", status_code=202, summary="Re-run a failed or cancelled job from where it stopped",
             responses={409: {"description": "The job is not failed or cancelled."}})
def retry_job(job_id: IdPath, session: SessionDep, owner: Owner, dispatcher: DispatcherDep) -> JobOut:
    job = owned(session, Job, job_id, owner, "job")
    if job.status not in (JobStatus.failed.value, JobStatus.cancelled.value):
        raise HTTPException(409, f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried")
    store.reset_for_retry(job)
    session.commit()
    job_requests.submit(session, dispatcher, job, undo="fail")
    return JobOut.of(job)


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job with its data and exports",
               responses={409: {"description": "The job is queued or running, or another job uses it."}})
def delete_job(job_id: IdPath, session: SessionDep, owner: Owner, settings: SettingsDep) -> Response:
    job = owned(session, Job, job_id, owner, "job")
    if not JobStatus(job.status).finished:
        raise HTTPException(409, f"job {job_id} is {job.status}; cancel it first")
    users = session.exec(select(Job.id).where(Job.source_job_id == job_id).order_by(Job.id).limit(10)).all()
    if users:
        raise HTTPException(409, f"job {job_id} is the source of job(s) {', '.join(map(str, users))}; delete them first")
    files = [Path(p) for p in session.exec(select(Export.path).where(Export.job_id == job_id)).all()]
    session.delete(job)
    session.commit()
    for path in files:
        path.unlink(missing_ok=True)
    shutil.rmtree(Path(settings.data_dir) / "runs" / f"job-{job_id}", ignore_errors=True)
    return Response(status_code=204)
