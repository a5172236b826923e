"""Datasets: named, versioned, growing collections of curated examples, owned by the caller.

A thin shell over `app.core.datasets`: create, list, read, change and delete datasets;
read versions (with their gated training run), their rows and diffs; tags (moving `prod` back is the rollback); curation
(a new version without some examples, or with some corrected; handed off like a build's,
`datasets_shared.queue_handoff`); the build schedule; a build now; and the download of any version in any export format, streamed, with the
version's content hash as its ETag (a poller gets 304 while nothing changed).

Another owner's dataset answers 404, as if it did not exist. The core's errors map to
4xx in `app.api.errors`; every write happens in the request's transaction, committed
only when the whole change succeeded, so a refused request leaves nothing behind. The
download stream opens a session of its own: the request's session closes when the route
returns, before the body is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from sqlmodel import Session

from app.api.datasets_shared import (
    CONFLICT,
    NamePath,
    RefPath,
    dataset_of,
    defaults_of,
    queue_handoff,
    version_out,
)
from app.api.deps import DispatcherDep, Owner, SessionDep, SettingsDep
from app.api.errors import LimitedJsonRoute, field_error
from app.api.job_requests import submit
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.datasets import (
    BuildCreate,
    CurationCreate,
    DatasetCreate,
    DatasetDetail,
    DatasetOut,
    DatasetUpdate,
    DiffOut,
    DiffRowOut,
    ExampleOut,
    ExportFormat,
    FireOut,
    ScheduleOut,
    SchedulePause,
    ScheduleSet,
    ScheduleSummary,
    TagOut,
    TagSet,
    VersionOut,
    VersionSummary,
)
from app.api.schemas.jobs import JobOut
from app.api.schemas.reviews import review_out
from app.core import jobs, lineage
from app.core.datasets import deletion, diff, fires, pages, review, schedule, tags
from app.core.datasets import export as ds_export
from app.core.datasets import versions as v
from app.core.datasets.curation import Correction, correct_examples, remove_examples
from app.core.datasets.errors import DatasetError
from app.core.handoff import training_gate
from app.core.jobs import build_estimate, dataset_build, requests
from app.core.llm.client import LLMError
from app.core.scoring import storage as scoring_storage
from app.db import session_scope
from app.models import Dataset, Job, JobStatus, utcnow

router = APIRouter(prefix="/datasets", tags=["datasets"], route_class=LimitedJsonRoute)
FINISHED = (JobStatus.succeeded.value, JobStatus.cancelled.value, JobStatus.failed.value)

TagPath = Annotated[str, PathParam(max_length=64, description="A tag name (not `latest`, not a number).",
                                   examples=["prod"])]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=2**31)]
DOWNLOAD_EXAMPLE = (
    '{"messages": [{"role": "user", "content": "Summarise the complaint.\\n\\nMy order arrived late."}, '
    '{"role": "assistant", "content": "The order was late."}], "method": "self_instruct", "lineage": []}\n'
)


def _detail(session: Session, dataset: Dataset) -> DatasetDetail:
    latest = v.latest_version(session, dataset.id)
    summary = None
    if dataset.schedule_cron is not None:
        summary = ScheduleSummary.of(dataset, schedule.upcoming(dataset, utcnow()))
    return DatasetDetail(**DatasetOut.fields_of(dataset, latest), recipe=dataset.recipe,
                         tags=tags.list_tags(session, dataset.id), schedule=summary,
                         builds_in_progress=deletion.builds_in_progress(session, dataset.id))


# --- datasets -------------------------------------------------------------------------------------
@router.post("", status_code=201, summary="Create a dataset (no version until its first build)",
             responses={409: {"description": "You already have a dataset of that name."}})
def create_dataset(body: DatasetCreate, session: SessionDep, owner: Owner, settings: SettingsDep) -> DatasetDetail:
    recipe = dataset_build.recipe_for(body.recipe, defaults_of(settings))
    dataset = v.create_dataset(session, owner, body.name, recipe, description=body.description,
                               license=body.license)
    if body.from_job_id is not None:
        v.commit_version(session, dataset, _job_examples(session, owner, body.from_job_id),
                         build_counts={"from_job": body.from_job_id})
    session.commit()
    return _detail(session, dataset)


def _job_examples(session: Session, owner: str, job_id: int) -> list[v.NewExample]:
    """A finished generation job's curated rows (with the judge's scores) as examples, for
    version 1 of a dataset made to review them; a 422 on `from_job_id` otherwise."""
    job = requests.owned_row(session, Job, job_id, owner, "from_job_id", "job")
    if job.status not in FINISHED:
        raise field_error(("body", "from_job_id"), f"job {job_id} is {job.status}: wait until it has finished")
    try:
        rows = lineage.export_rows(session, job)
    except ValueError as exc:
        raise field_error(("body", "from_job_id"), str(exc)) from None
    rows = list(scoring_storage.with_scores(rows, scoring_storage.job_example_scores(session, job.id)))
    if not rows:
        raise field_error(("body", "from_job_id"), f"job {job_id} has no curated row to review")
    return [v.NewExample.from_row(r, method=job.kind, source_job_id=job.id) for r in rows]


@router.get("", summary="List your datasets, by name")
def list_datasets(session: SessionDep, owner: Owner, limit: Limit = 50, offset: Offset = 0) -> Page[DatasetOut]:
    total, rows = pages.datasets_page(session, owner, offset, limit)
    latest = pages.latest_versions(session, [d.id for d in rows])
    items = [DatasetOut(**DatasetOut.fields_of(d, latest.get(d.id))) for d in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{name}", summary="A dataset with its latest version, tags and schedule")
def get_dataset(name: NamePath, session: SessionDep, owner: Owner) -> DatasetDetail:
    return _detail(session, dataset_of(session, owner, name))


@router.patch("/{name}", summary="Change a dataset's description, license or recipe")
def update_dataset(name: NamePath, body: DatasetUpdate, session: SessionDep, owner: Owner,
                   settings: SettingsDep) -> DatasetDetail:
    dataset = dataset_of(session, owner, name)
    given = body.model_fields_set
    changes: dict[str, Any] = {k: getattr(body, k) for k in ("description", "license") if k in given}
    if "recipe" in given:
        changes["recipe"] = dataset_build.recipe_for(body.recipe, defaults_of(settings))
    v.update_dataset(session, dataset, **changes)
    session.commit()
    return _detail(session, dataset)


@router.delete("/{name}", status_code=204, responses=CONFLICT,
               summary="Delete a dataset with all its versions (refused if a training run used one)")
def delete_dataset(name: NamePath, session: SessionDep, owner: Owner) -> Response:
    deletion.delete_dataset(session, dataset_of(session, owner, name))
    session.commit()
    return Response(status_code=204)


# --- versions ------------------------------------------------------------------------------------
@router.get("/{name}/versions", summary="A dataset's versions, newest first")
def list_versions(name: NamePath, session: SessionDep, owner: Owner, limit: Limit = 50,
                  offset: Offset = 0) -> Page[VersionSummary]:
    dataset = dataset_of(session, owner, name)
    total, rows = pages.versions_page(session, dataset.id, offset, limit)
    tagged = pages.tags_by_version(session, dataset.id)
    trained = training_gate.latest_runs(session, [r.id for r in rows])
    return Page(items=[VersionSummary.of(r, tagged.get(r.number, []), trained.get(r.id)) for r in rows], total=total,
                limit=limit, offset=offset)


@router.post("/{name}/versions", status_code=201, responses=CONFLICT,
             summary="Curate: a new version without some examples, or with some corrected (then handed off)")
def curate(name: NamePath, body: CurationCreate, session: SessionDep, owner: Owner, settings: SettingsDep,
           dispatcher: DispatcherDep) -> VersionOut:
    dataset = dataset_of(session, owner, name)
    if body.remove is not None:
        version = remove_examples(session, dataset, example_ids=body.remove.ids, query=body.remove.query,
                                  expected_latest=body.expected_latest)
    else:
        corrections = [Correction(c.id, output=c.output, instruction=c.instruction, input=c.input)
                       for c in body.correct or []]
        try:
            version = correct_examples(session, dataset, corrections, expected_latest=body.expected_latest)
        except DatasetError as exc:  # the core counts `corrections[i]`; the body calls them `correct[i]`
            raise type(exc)(str(exc).replace("corrections[", "correct[", 1)) from None
    session.commit()
    queue_handoff(session, dispatcher, dataset, version, defaults_of(settings))
    return version_out(session, version)


@router.get("/{name}/versions/{ref}", summary="One version (a number, `latest` or a tag) with its card")
def get_version(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner) -> VersionOut:
    dataset = dataset_of(session, owner, name)
    return version_out(session, tags.resolve(session, dataset.id, ref))


@router.delete("/{name}/versions/{ref}", status_code=204, responses=CONFLICT,
               summary="Delete the latest version (refused if a training run used it or a tag points at it)")
def delete_version(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner) -> Response:
    dataset = dataset_of(session, owner, name)
    deletion.delete_version(session, dataset, tags.resolve(session, dataset.id, ref).number)
    session.commit()
    return Response(status_code=204)


@router.get("/{name}/versions/{ref}/rows", summary="A version's rows, a page at a time, in their stable order")
def version_rows(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner, limit: Limit = 50,
                 offset: Offset = 0) -> Page[ExampleOut]:
    dataset = dataset_of(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    rows = pages.rows_page(session, version, offset, limit)
    decided = review.pending_for(session, dataset.id, [r["id"] for r in rows])
    return Page(items=[ExampleOut(**r, review=review_out(decided.get(r["id"]))) for r in rows],
                total=version.row_count, limit=limit, offset=offset)


def _etag_matches(header: str | None, content_hash: str) -> bool:
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == content_hash:
            return True
    return False


def _chunks(url: str, dataset_id: int, number: int, fmt: str) -> Iterator[bytes]:
    """The export, read in a session of its own that lives as long as the stream."""
    with session_scope(url) as session:
        for chunk in ds_export.export_chunks(session, dataset_id, number, fmt):
            yield chunk.encode("utf-8")


@router.get(
    "/{name}/versions/{ref}/download",
    summary="Download a version in an export format, streamed; ETag = its content hash",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The version's rows in `format` (JSON Lines, or a JSON list for alpaca).",
              "content": {"application/x-ndjson": {"example": DOWNLOAD_EXAMPLE},
                          "application/json": {"example": [{"instruction": "Summarise the complaint.",
                                                            "input": "My order arrived late.",
                                                            "output": "The order was late."}]}}},
        304: {"description": "`If-None-Match` names the version's content hash: nothing changed."},
    },
)
def download(
    name: NamePath,
    ref: RefPath,
    session: SessionDep,
    owner: Owner,
    settings: SettingsDep,
    format: ExportFormat | None = Query(None, description="Default: the recipe's first export format."),
    if_none_match: str | None = Header(None, description="An ETag you have: 304 when it is still current."),
) -> Response:
    dataset = dataset_of(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    fmt = format or v.recipe_of(dataset).export_formats[0]
    headers = {"ETag": f'"{version.content_hash}"', "X-Dataset-Version": str(version.number)}
    if _etag_matches(if_none_match, version.content_hash):
        return Response(status_code=304, headers=headers)
    filename = ds_export.file_name(dataset.name, version.number, fmt)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    stream = _chunks(settings.resolved_database_url, dataset.id, version.number, fmt)
    session.close()  # done with it: its connection goes back to the pool while the stream reads in its own
    return StreamingResponse(stream, media_type=ds_export.MEDIA_TYPES[fmt], headers=headers)


# --- diff -------------------------------------------------------------------------------------------
@router.get("/{name}/diff", summary="What changed between two versions: counts and a page of the rows")
def get_diff(
    name: NamePath,
    session: SessionDep,
    owner: Owner,
    from_: str = Query(alias="from", max_length=64, description="A version number, `latest` or a tag.",
                       examples=["1"]),
    to: str = Query(max_length=64, description="A version number, `latest` or a tag.", examples=["2"]),
    side: Literal["added", "removed"] | None = Query(None, description="Only the added or the removed rows."),
    limit: Limit = 50,
    offset: Offset = 0,
) -> DiffOut:
    dataset = dataset_of(session, owner, name)
    a, b = tags.resolve(session, dataset.id, from_), tags.resolve(session, dataset.id, to)
    change = diff.diff(session, a, b)
    rows = pages.diff_rows_page(session, change, offset, limit, side)
    why = review.committed_for(session, dataset.id, [r["id"] for r in rows if r["change"] == "removed"])
    total = {"added": change.added, "removed": change.removed}.get(side or "", change.added + change.removed)
    return DiffOut(from_=change.a, to=change.b, added=change.added, removed=change.removed,
                   corrected=change.corrected, added_by_method=change.added_by_method,
                   removed_by_method=change.removed_by_method, content_changed=change.content_changed,
                   rows=[DiffRowOut(**r, review=review_out(why.get(r["id"]))) for r in rows], total=total,
                   limit=limit, offset=offset)


# --- tags -----------------------------------------------------------------------------------------
@router.put("/{name}/tags/{tag}", summary="Point a tag at a version (moving `prod` back is the rollback)")
def set_tag(name: NamePath, tag: TagPath, body: TagSet, session: SessionDep, owner: Owner) -> TagOut:
    dataset = dataset_of(session, owner, name)
    tags.set_tag(session, dataset, tag, body.version)
    session.commit()
    now = tags.list_tags(session, dataset.id)
    return TagOut(name=tag, version=now[tag], tags=now)


@router.delete("/{name}/tags/{tag}", status_code=204, summary="Delete a tag (not `latest`)")
def delete_tag(name: NamePath, tag: TagPath, session: SessionDep, owner: Owner) -> Response:
    tags.delete_tag(session, dataset_of(session, owner, name), tag)
    session.commit()
    return Response(status_code=204)


# --- schedule -------------------------------------------------------------------------------------
def _schedule_out(session: Session, dataset: Dataset, history: int = 50) -> ScheduleOut:
    summary = ScheduleSummary.of(dataset, schedule.upcoming(dataset, utcnow()))
    fired = [FireOut.of(f) for f in fires.history(session, dataset.id, history)]
    return ScheduleOut(**summary.model_dump(), history=fired)


@router.get("/{name}/schedule", summary="The schedule: next five fire times and the history of fires")
def get_schedule(name: NamePath, session: SessionDep, owner: Owner,
                 history: int = Query(50, ge=0, le=MAX_PAGE, description="Fires to show, latest first.")
                 ) -> ScheduleOut:
    return _schedule_out(session, dataset_of(session, owner, name), history)


@router.put("/{name}/schedule", summary="Set (or replace) the build schedule; due times start now")
def set_schedule(name: NamePath, body: ScheduleSet, session: SessionDep, owner: Owner) -> ScheduleOut:
    dataset = dataset_of(session, owner, name)
    schedule.set_schedule(session, dataset, body.cron, body.timezone, body.missed_fire_policy)
    session.commit()
    return _schedule_out(session, dataset)


@router.delete("/{name}/schedule", status_code=204, summary="Remove the schedule (its fire history stays)")
def clear_schedule(name: NamePath, session: SessionDep, owner: Owner) -> Response:
    schedule.clear_schedule(session, dataset_of(session, owner, name))
    session.commit()
    return Response(status_code=204)


@router.post("/{name}/schedule/pause", summary="Pause the schedule, keeping the reason")
def pause_schedule(name: NamePath, session: SessionDep, owner: Owner,
                   body: SchedulePause | None = None) -> ScheduleOut:
    dataset = dataset_of(session, owner, name)
    schedule.pause(session, dataset, (body or SchedulePause()).reason)
    session.commit()
    return _schedule_out(session, dataset)


@router.post("/{name}/schedule/resume", summary="Resume the schedule; due times missed while paused are not built")
def resume_schedule(name: NamePath, session: SessionDep, owner: Owner) -> ScheduleOut:
    dataset = dataset_of(session, owner, name)
    schedule.resume(session, dataset)
    session.commit()
    return _schedule_out(session, dataset)


# --- builds -------------------------------------------------------------------------------------------
@router.post("/{name}/builds", status_code=202, response_model=JobOut,
             summary="Build a new version now (a `dataset_build` job, enqueued), or estimate what it will spend",
             responses={200: {"description": "dry_run: the estimate; nothing is stored or enqueued."}})
def build_now(name: NamePath, session: SessionDep, owner: Owner, settings: SettingsDep,
              dispatcher: DispatcherDep, body: BuildCreate | None = None) -> Any:
    dataset = dataset_of(session, owner, name)
    running = deletion.builds_in_progress(session, dataset.id)
    if running and not (body is not None and body.dry_run):
        raise HTTPException(409, f"build job {running[0]} of dataset {dataset.name!r} is already queued or running: "
                                 "wait for it (or cancel it) before asking for another")
    if body is not None and body.dry_run:  # from the earlier builds, else a pilot; nothing is stored
        try:
            est = build_estimate.estimate_build(session, dataset, settings.core_config(), pilot=body.pilot)
        except LLMError as exc:
            raise HTTPException(503, f"the model servers did not answer the pilot: {exc}",
                                headers={"Retry-After": "30"}) from None
        return JSONResponse({"dry_run": True, "dataset": dataset.name, "estimate": est.as_dict()})
    request = jobs.JobRequest(kind=dataset_build.KIND, params={"dataset_id": dataset.id}, owner=owner,
                              data_root=Path(settings.data_dir))
    job = requests.create_job(session, request, defaults_of(settings))
    session.commit()
    submit(session, dispatcher, job, undo="delete")
    return JobOut.of(job)
