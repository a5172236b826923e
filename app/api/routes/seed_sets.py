"""Seed sets: upload (a file, its text, or a task list), list, get with tasks, delete.

The whole upload is read, parsed and checked before anything is stored, and stored in one
transaction, so a bad line refuses the upload and leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.errors import LimitedJsonRoute, field_error, parse_json_body, request_error
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.seed_sets import SeedSetCreate, SeedSetDetail, SeedSetOut, SeedTaskOut
from app.api.uploads import decode_text, read_limited
from app.core import store
from app.core.seeds import FORMATS, MAX_SEED_BYTES, SeedFormatError, SeedTaskData, parse_seeds, tasks_from_objects
from app.models import Job, SeedSet, SeedTask

router = APIRouter(prefix="/seed-sets", tags=["seed sets"], route_class=LimitedJsonRoute)

_EXAMPLES = SeedSetCreate.model_config.get("json_schema_extra", {}).get("examples", [])  # type: ignore[union-attr]
UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A seed file as multipart (`file`, optional `name` and `format`), or JSON: "
        "`{name, format?, content}` or `{name, tasks: [...]}`.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": "Self-Instruct JSONL, Alpaca JSON or CSV (UTF-8)."},
                        "name": {"type": "string", "description": "Default: the file's name."},
                        "format": {"type": "string", "enum": list(FORMATS),
                                   "description": "Default: detected from the name and the content."},
                    },
                }
            },
            "application/json": {
                "schema": {"$ref": "#/components/schemas/SeedSetCreate"},
                "examples": {("text" if "content" in v else "tasks"): {"value": v} for v in _EXAMPLES},
            },
        },
    }
}


def _out(seed_set: SeedSet) -> SeedSetOut:
    return SeedSetOut.model_validate(seed_set.model_dump())


async def _from_multipart(request: Request) -> tuple[str, str | None, str, str | None]:
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_SEED_BYTES + 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise field_error(("body", "file"), "a seed file is required (multipart field 'file')", "missing")
    text = decode_text(await upload.read(MAX_SEED_BYTES + 1), ("body", "file"), MAX_SEED_BYTES)
    name, fmt = form.get("name") or upload.filename or "seeds", form.get("format") or None
    if not isinstance(name, str) or not isinstance(fmt, (str, type(None))):
        raise field_error(("body",), "'name' and 'format' must be text fields")
    if fmt is not None and fmt not in FORMATS:
        raise field_error(("body", "format"), f"unknown seed format {fmt!r}; use one of {', '.join(FORMATS)}")
    body = {"name": name[:200], "format": fmt, "content": text}
    try:
        data = SeedSetCreate.model_validate(body)
    except ValidationError as exc:
        raise request_error(exc, "body") from None
    return data.name, data.format, text, upload.filename


async def _from_json(request: Request) -> SeedSetCreate:
    limit = 2 * MAX_SEED_BYTES  # JSON escapes make a file's text longer
    payload = parse_json_body(await read_limited(request, limit))  # within the JSON limits, or a 422
    try:
        return SeedSetCreate.model_validate(payload)
    except ValidationError as exc:
        raise request_error(exc, "body") from None


def _tasks_of(body: SeedSetCreate) -> list[SeedTaskData]:
    """The body's task list, under the same rules as a seed file's tasks (lengths, unique ids, text)."""
    try:
        return tasks_from_objects((f"tasks[{i}]", task.model_dump()) for i, task in enumerate(body.tasks or []))
    except SeedFormatError as exc:
        raise field_error(("body", "tasks"), str(exc)) from None


def _store(session: Session, name: str, fmt: str, tasks: list[SeedTaskData], owner: str) -> SeedSetDetail:
    seed_set = store.import_seed_set(session, name, fmt, tasks, owner=owner)
    session.commit()
    return _detail(session, seed_set)


def _detail(session: Session, seed_set: SeedSet) -> SeedSetDetail:
    rows = session.exec(select(SeedTask).where(SeedTask.seed_set_id == seed_set.id).order_by(SeedTask.position)).all()
    tasks = [SeedTaskOut.model_validate(r.model_dump()) for r in rows]
    return SeedSetDetail(**_out(seed_set).model_dump(), tasks=tasks)


@router.post("", status_code=201, response_model=SeedSetDetail, summary="Upload a seed set",
             openapi_extra=UPLOAD_DOC)
async def create_seed_set(request: Request, session: SessionDep, owner: Owner) -> SeedSetDetail:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        name, fmt, text, filename = await _from_multipart(request)
    elif content_type in ("application/json", ""):
        body = await _from_json(request)
        if body.tasks is not None:
            tasks = await run_in_threadpool(_tasks_of, body)
            return await run_in_threadpool(_store, session, body.name, "tasks", tasks, owner)
        name, fmt, text, filename = body.name, body.format, body.content or "", None
    else:
        raise HTTPException(415, f"unsupported content type {content_type!r}: send multipart/form-data or JSON")
    try:
        fmt_name, tasks = await run_in_threadpool(parse_seeds, text, fmt, filename)
    except SeedFormatError as exc:
        exc.field = "file" if filename is not None or content_type == "multipart/form-data" else "content"
        raise
    return await run_in_threadpool(_store, session, name, fmt_name, tasks, owner)


@router.get("", summary="List seed sets")
def list_seed_sets(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                   offset: int = Query(0, ge=0, le=2**31)) -> Page[SeedSetOut]:
    where = SeedSet.owner == owner
    total = session.exec(select(func.count()).select_from(SeedSet).where(where)).one()
    rows = session.exec(select(SeedSet).where(where).order_by(SeedSet.id.desc()).offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{seed_set_id}", summary="A seed set with its tasks")
def get_seed_set(seed_set_id: IdPath, session: SessionDep, owner: Owner) -> SeedSetDetail:
    return _detail(session, owned(session, SeedSet, seed_set_id, owner, "seed set"))


@router.delete("/{seed_set_id}", status_code=204, summary="Delete a seed set no job uses",
               responses={409: {"description": "A job uses it."}})
def delete_seed_set(seed_set_id: IdPath, session: SessionDep, owner: Owner) -> Response:
    seed_set = owned(session, SeedSet, seed_set_id, owner, "seed set")
    users = session.exec(select(Job.id).where(Job.seed_set_id == seed_set_id).order_by(Job.id).limit(10)).all()
    if users:
        raise HTTPException(409, f"seed set {seed_set_id} is used by job(s) {', '.join(map(str, users))}; delete them first")
    session.delete(seed_set)
    session.commit()
    return Response(status_code=204)
