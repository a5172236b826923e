"""Exports: a job's curated data written in a trainer's format, listed, downloaded.

The rows come from `handoff.sources.rows_for_format` (`lineage.export_rows` plus provenance
for sharegpt and parquet), the function `sprout export` calls, so an
Evol-Instruct job exported over HTTP carries the same `lineage` column and honours the
same options (final-only, no-roots) as on the command line.

Files live under `<data_dir>/exports/` (shared by the API and the workers in a
deployment). `parquet` is a folder in the Hugging Face Hub layout, so it is served as a
zip of that folder (entries `data/train-0000K-of-0000N.parquet`, stored uncompressed:
Parquet is compressed already); the rows of `parquet` and `sharegpt` carry provenance
(`method`, `job_id`, `scores`) as bundles do. The file is written atomically before its
row is committed; if the commit fails the file is removed, so a listed export always has
its file.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy import func
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import IdPath, Owner, SessionDep, SettingsDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_ID, MAX_PAGE, Page
from app.api.schemas.exports import ExportCreate, ExportOut
from app.core import export as exporter
from app.core.handoff import formats, sources
from app.models import Export, Job

router = APIRouter(prefix="/exports", tags=["exports"], route_class=LimitedJsonRoute)

SUFFIX = {"alpaca": ".json", "messages": ".jsonl", "prompt-completion": ".jsonl", "sharegpt": ".jsonl",
          "parquet": ".parquet.zip"}
MEDIA = {".json": "application/json", ".jsonl": "application/x-ndjson", ".zip": "application/zip"}


def _out(row: Export) -> ExportOut:
    return ExportOut(id=row.id, job_id=row.job_id, format=row.format, options=row.options or {}, rows=row.rows,
                     bytes=row.bytes,
                     filename=Path(row.path).name, download_url=f"/api/v1/exports/{row.id}/download",
                     created_at=row.created_at)


@router.post("", status_code=201, summary="Export a job's curated data (a snapshot if it still runs)")
async def create_export(body: ExportCreate, session: SessionDep, owner: Owner, settings: SettingsDep) -> ExportOut:
    return await run_in_threadpool(_create, body, session, owner, settings)


def _create(body: ExportCreate, session, owner: str, settings) -> ExportOut:
    job = session.get(Job, body.job_id)
    if job is None or job.owner != owner:
        raise field_error(("body", "job_id"), f"no job with id {body.job_id}")
    # the same rows as `sprout export` for the same options (lineage, final-only, no-roots)
    rows = sources.rows_for_format(session, job, body.format, final_only=body.final_only, include_roots=body.include_roots)
    options = {"final_only": body.final_only, "include_roots": body.include_roots}
    row = Export(job_id=job.id, owner=owner, format=body.format, path="", options=options)
    session.add(row)
    session.flush()
    path = Path(settings.data_dir) / "exports" / f"job-{job.id}-export-{row.id}{SUFFIX[body.format]}"
    try:
        if body.format == "parquet":
            row.rows = formats.write_parquet_zip(rows, path, settings.handoff.rows_per_shard).rows
        else:
            row.rows = exporter.write(rows, body.format, path)
        row.path, row.bytes = str(path), path.stat().st_size
        session.commit()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return _out(row)


@router.get("", summary="List exports, newest first")
def list_exports(session: SessionDep, owner: Owner,
                 job_id: int | None = Query(None, ge=1, le=MAX_ID, description="Only this job's exports."),
                 limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=2**31)) -> Page[ExportOut]:
    query = select(Export).where(Export.owner == owner)
    if job_id is not None:
        query = query.where(Export.job_id == job_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Export.id.desc()).offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{export_id}", summary="One export")
def get_export(export_id: IdPath, session: SessionDep, owner: Owner) -> ExportOut:
    return _out(owned(session, Export, export_id, owner, "export"))


@router.get("/{export_id}/download", summary="Download an export's file", response_class=FileResponse,
            responses={200: {"content": {"application/json": {}, "application/x-ndjson": {}, "application/zip": {}}}})
def download_export(export_id: IdPath, session: SessionDep, owner: Owner) -> FileResponse:
    row = owned(session, Export, export_id, owner, "export")
    path = Path(row.path)
    if not path.is_file():
        raise HTTPException(410, f"export {export_id}'s file is gone from the server; create a new export")
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"), filename=path.name)
