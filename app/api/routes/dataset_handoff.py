"""A dataset's hand-off: where its new versions go and whether they train a gated model; a
version's preflight check, its bundle as a zip, and its hand-off asked for again.

    GET/PUT /datasets/{name}/handoff                 destinations, training settings and gate
    GET     /datasets/{name}/versions/{ref}/check    the preflight report (200 whether it passes or not)
    GET     /datasets/{name}/versions/{ref}/bundle   every format, the card, dataset_info.json ... as a zip
    POST    /datasets/{name}/versions/{ref}/handoff  queue the version's hand-off job now (202): what
                                                     was not handed off yet (a destination added since,
                                                     training set since) is; nothing is done twice

A thin shell over `app.core.handoff` (`dataset_settings`, `sources.dataset_version_source`,
`bundle`) and the `version_handoff` job kind. A bundle is checked before it is offered: a
version that fails its preflight check answers 422 with the report naming its rows.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from app.api.datasets_shared import queue_handoff
from app.api.deps import DispatcherDep, Owner, SessionDep, SettingsDep
from app.api.errors import LimitedJsonRoute, request_error
from app.api.routes.deliveries import preflight_for
from app.api.schemas.handoff import DatasetHandoffOut, DatasetHandoffSet, DestinationOut
from app.api.schemas.jobs import JobOut
from app.core.datasets import tags
from app.core.datasets import versions as v
from app.core.handoff import dataset_settings, sources
from app.core.handoff.bundle import BundleOptions, write_bundle, zip_bundle
from app.core.handoff.config import Format
from app.core.handoff.preflight import Preflight
from app.models import Dataset
from app.settings import Settings

router = APIRouter(prefix="/datasets", tags=["hand-off"], route_class=LimitedJsonRoute)

NamePath = Annotated[str, PathParam(max_length=100, description="The dataset's name.", examples=["support-sft"])]
RefPath = Annotated[str, PathParam(max_length=64, description="A version number, `latest`, or a tag.",
                                   examples=["latest"])]
PREFLIGHT_FAILED = {422: {"description": "The version failed its preflight check: `preflight` names the rows."}}


def _settings_out(session: SessionDep, dataset: Dataset) -> DatasetHandoffOut:
    described = dataset_settings.describe(session, dataset)
    destinations = [DestinationOut.model_validate(d.model_dump())
                    for d in dataset_settings.destinations_of(session, dataset)]
    return DatasetHandoffOut(destinations=destinations, training=described["training"])


def _preflight(settings: Settings) -> Preflight:
    try:
        return preflight_for(settings)
    except ValueError as exc:  # the configured tokenizer cannot be loaded
        raise HTTPException(503, f"the preflight check cannot run: {exc}") from None


@router.get("/{name}/handoff", summary="Where the dataset's new versions go, and their gated training")
def get_handoff(name: NamePath, session: SessionDep, owner: Owner) -> DatasetHandoffOut:
    return _settings_out(session, v.get_dataset(session, owner, name))


@router.put("/{name}/handoff", summary="Set where new versions go and how they train (replaces both)")
def set_handoff(name: NamePath, body: DatasetHandoffSet, session: SessionDep, owner: Owner,
                settings: SettingsDep) -> DatasetHandoffOut:
    dataset = v.get_dataset(session, owner, name)
    dataset_settings.set_destinations(session, dataset, body.destination_ids)
    if body.training is None:
        dataset_settings.clear_training(session, dataset)
    else:
        t = body.training
        tasks = [task.model_dump() for task in t.eval_tasks] if t.eval_tasks is not None else None
        try:
            gate = dataset_settings.GateSettings(**t.gate.model_dump())
        except ValidationError as exc:  # the core's own checks of the tag
            raise request_error(exc, "body", "training", "gate") from None
        dataset_settings.set_training(
            session, dataset, params=t.params, gate=gate,
            data_dir=Path(settings.data_dir), eval_tasks=tasks, eval_source="tasks given over the API",
            defaults=settings.core_config().defaults.get("train", {}), data_root=Path(settings.data_dir))
    session.commit()
    return _settings_out(session, dataset)


@router.get("/{name}/versions/{ref}/check", summary="The version's preflight check (chat template, loss mask, "
            "max_length, empty fields), rows at fault named")
def check_version(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner, settings: SettingsDep) -> dict:
    dataset = v.get_dataset(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    preflight = _preflight(settings)
    for row in sources.version_rows(session, dataset.id, version.number):
        preflight.add(row)
    return {"dataset": dataset.name, "version": version.number, **preflight.finish().as_dict()}


@router.get(
    "/{name}/versions/{ref}/bundle",
    summary="The version's hand-off bundle as a zip: every format, dataset_info.json, axolotl.yaml, the card",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The bundle folder, zipped."},
               **PREFLIGHT_FAILED},
)
def download_bundle(
    name: NamePath,
    ref: RefPath,
    session: SessionDep,
    owner: Owner,
    settings: SettingsDep,
    format: list[Format] | None = Query(None, description="Formats to include (repeat); default: "
                                        "SPROUT_HANDOFF__FORMATS."),
):
    dataset = v.get_dataset(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    config = settings.handoff_config()
    options = BundleOptions(formats=tuple(dict.fromkeys(format or config.formats)),
                            rows_per_shard=config.rows_per_shard)
    preflight = _preflight(settings)
    rows, meta = sources.dataset_version_source(session, dataset, version.number, license=config.license,
                                                language=tuple(config.language), model=settings.llm.model)
    work = Path(settings.data_dir) / "handoff" / "downloads" / uuid.uuid4().hex
    try:
        bundle = write_bundle(rows, meta, work / meta.label, options, preflight)
        if not bundle.deliverable:
            report = bundle.preflight.as_dict() if bundle.preflight else None
            shutil.rmtree(work, ignore_errors=True)
            return JSONResponse({"detail": f"version {version.number} is not offered for download: "
                                 f"{bundle.preflight.summary() if bundle.preflight else 'unchecked'}",
                                 "preflight": report}, status_code=422)
        archive = zip_bundle(bundle.path, work / f"{dataset.name}-v{version.number}.zip")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(archive, media_type="application/zip", filename=archive.name,
                        headers={"X-Dataset-Version": str(version.number), "X-Content-Hash": version.content_hash},
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))


@router.post("/{name}/versions/{ref}/handoff", status_code=202,
             summary="Hand the version off again now: webhook, deliveries, gated training (a version_handoff job)")
def handoff_version(name: NamePath, ref: RefPath, session: SessionDep, owner: Owner, settings: SettingsDep,
                    dispatcher: DispatcherDep) -> JobOut:
    dataset = v.get_dataset(session, owner, name)
    version = tags.resolve(session, dataset.id, ref)
    return JobOut.of(queue_handoff(session, dispatcher, dataset, version, settings.core_config().defaults, force=True))
