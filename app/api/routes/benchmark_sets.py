"""Benchmark sets (upload, list, get, items, delete) and a job's contamination report.

A benchmark set holds the evaluation items that generated data must not reproduce; jobs
name them in `params.decontaminate_against`. The upload is parsed and checked whole
before anything is stored, like a seed set's.
"""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.deps import IdPath, Owner, SessionDep, SettingsDep, owned
from app.api.errors import LimitedJsonRoute, field_error, parse_json_body, request_error
from app.api.schemas.benchmark_sets import BenchmarkItemOut, BenchmarkSetCreate, BenchmarkSetOut, ContaminationReport
from app.api.schemas.common import MAX_PAGE, Page
from app.api.uploads import decode_text, read_limited
from app.core import store
from app.core.benchmark_sets import BenchmarkFormatError, parse_benchmark
from app.core.filters.decontaminate import report
from app.core.jobs.decontamination import checked_against
from app.core.seeds import MAX_SEED_BYTES
from app.models import BenchmarkItemRow, BenchmarkSet, Job, JobStatus

router = APIRouter(tags=["benchmark sets"], route_class=LimitedJsonRoute)


def _out(row: BenchmarkSet) -> BenchmarkSetOut:
    return BenchmarkSetOut.model_validate(row.model_dump())


async def _from_multipart(request: Request) -> tuple[BenchmarkSetCreate, str | None]:
    form = await request.form(max_files=1, max_fields=20, max_part_size=MAX_SEED_BYTES + 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise field_error(("body", "file"), "a benchmark file is required (multipart field 'file')", "missing")
    text = decode_text(await upload.read(MAX_SEED_BYTES + 1), ("body", "file"), MAX_SEED_BYTES)
    body = {"name": (form.get("name") or upload.filename or "benchmark"), "content": text,
            "format": form.get("format") or None, "prompt_fields": form.getlist("prompt_field"),
            "output_field": form.get("output_field") or None}
    if isinstance(body["name"], str):
        body["name"] = body["name"][:200]
    try:
        return BenchmarkSetCreate.model_validate(body), upload.filename
    except ValidationError as exc:
        raise request_error(exc, "body") from None


def _parse_and_store(session: Session, body: BenchmarkSetCreate, filename: str | None, owner: str) -> BenchmarkSetOut:
    try:
        fmt, items = parse_benchmark(body.content, body.name, fmt=body.format, filename=filename,
                                     prompt_fields=body.prompt_fields, output_field=body.output_field)
    except BenchmarkFormatError as exc:
        raise field_error(("body", "file" if filename else "content"), f"benchmark file: {exc}") from None
    row = store.import_benchmark_set(session, body.name, fmt, items, owner=owner)
    session.commit()
    return _out(row)


@router.post("/benchmark-sets", status_code=201, summary="Upload a benchmark set")
async def create_benchmark_set(request: Request, session: SessionDep, owner: Owner) -> BenchmarkSetOut:
    """Multipart (`file`, optional `name`, `format`, `prompt_field` (repeatable), `output_field`) or JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        body, filename = await _from_multipart(request)
    elif content_type in ("application/json", ""):
        payload = parse_json_body(await read_limited(request, 2 * MAX_SEED_BYTES))
        try:
            body, filename = BenchmarkSetCreate.model_validate(payload), None
        except ValidationError as exc:
            raise request_error(exc, "body") from None
    else:
        raise HTTPException(415, f"unsupported content type {content_type!r}: send multipart/form-data or JSON")
    return await run_in_threadpool(_parse_and_store, session, body, filename, owner)


@router.get("/benchmark-sets", summary="List benchmark sets")
def list_benchmark_sets(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                        offset: int = Query(0, ge=0, le=2**31)) -> Page[BenchmarkSetOut]:
    where = BenchmarkSet.owner == owner
    total = session.exec(select(func.count()).select_from(BenchmarkSet).where(where)).one()
    rows = session.exec(select(BenchmarkSet).where(where).order_by(BenchmarkSet.id.desc())
                        .offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/benchmark-sets/{benchmark_set_id}", summary="A benchmark set")
def get_benchmark_set(benchmark_set_id: IdPath, session: SessionDep, owner: Owner) -> BenchmarkSetOut:
    return _out(owned(session, BenchmarkSet, benchmark_set_id, owner, "benchmark set"))


@router.get("/benchmark-sets/{benchmark_set_id}/items", summary="A benchmark set's items, paged")
def list_benchmark_items(benchmark_set_id: IdPath, session: SessionDep, owner: Owner,
                         limit: int = Query(50, ge=1, le=MAX_PAGE),
                         offset: int = Query(0, ge=0, le=2**31)) -> Page[BenchmarkItemOut]:
    row = owned(session, BenchmarkSet, benchmark_set_id, owner, "benchmark set")
    items = session.exec(select(BenchmarkItemRow).where(BenchmarkItemRow.benchmark_set_id == row.id)
                         .order_by(BenchmarkItemRow.position).offset(offset).limit(limit)).all()
    return Page(items=[BenchmarkItemOut.model_validate(i.model_dump()) for i in items], total=row.item_count,
                limit=limit, offset=offset)


@router.delete("/benchmark-sets/{benchmark_set_id}", status_code=204,
               summary="Delete a benchmark set no queued or running job uses",
               responses={409: {"description": "A queued or running job uses it."}})
def delete_benchmark_set(benchmark_set_id: IdPath, session: SessionDep, owner: Owner) -> Response:
    row = owned(session, BenchmarkSet, benchmark_set_id, owner, "benchmark set")
    active = session.exec(select(Job.id, Job.params).where(
        Job.owner == owner, Job.status.in_([JobStatus.queued.value, JobStatus.running.value]))).all()
    users = [ident for ident, params in active if benchmark_set_id in ((params or {}).get("decontaminate_against") or [])]
    if users:
        raise HTTPException(409, f"benchmark set {benchmark_set_id} is used by queued or running job(s) "
                                 f"{', '.join(map(str, users[:10]))}")
    session.delete(row)
    session.commit()
    return Response(status_code=204)


@router.get("/jobs/{job_id}/contamination", tags=["results"], summary="A job's contamination report")
def job_contamination(job_id: IdPath, session: SessionDep, owner: Owner, settings: SettingsDep) -> ContaminationReport:
    """Items hit, by benchmark (the evaluation tasks the trainer scores included), over every
    candidate the job stored so far (live while it runs)."""
    job = owned(session, Job, job_id, owner, "job")
    # the parameters the job was made with (an older job's lack decontaminate_eval_tasks: it was not checked)
    checked = checked_against(session, job, SimpleNamespace(**(job.params or {})), settings.core_config())
    return ContaminationReport(job_id=job.id, benchmark_sets=list((job.params or {}).get("decontaminate_against") or []),
                               eval_tasks=checked.get("eval_tasks", []),
                               **report(store.contamination_details(session, job.id)))
