"""Deliveries: a finished job's bundle, or a dataset version's, checked and sent to one of the
caller's destinations.

`POST` writes the bundle (every format, `dataset_info.json`, `axolotl.yaml`, the card),
runs the preflight check with the service's tokenizer (`SPROUT_HANDOFF__TOKENIZER`, else
the trainer's base model), records the delivery and makes the first attempt, all before
it answers: `done`, `pending` with `next_attempt_at` (the destination failed; `sprout beat`
retries it), `failed`, or `blocked` with the preflight report naming the rows at fault.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func
from sqlmodel import Session, select

from app.api.deps import IdPath, Owner, SessionDep, SettingsDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.handoff import AttemptOut, DeliveryCreate, DeliveryOut
from app.core.datasets import versions as ds_versions
from app.core.datasets.errors import DatasetError
from app.core.handoff import deliveries, sources
from app.core.handoff.preflight import Preflight, PreflightOptions
from app.models import Delivery, Destination, Job, JobStatus, utcnow
from app.settings import Settings

router = APIRouter(prefix="/deliveries", tags=["hand-off"], route_class=LimitedJsonRoute)


@lru_cache(maxsize=4)
def _tokenizer(spec: str, cache_dir: str) -> Any:
    from app.core.training.base_model import load_tokenizer

    return load_tokenizer(spec, Path(cache_dir))


def preflight_for(settings: Settings) -> Preflight:
    """The preflight check the service runs: its tokenizer's template, its max_length. The
    tokenizer is loaded once per process and copied per request (a fast tokenizer is not
    safe to share between threads)."""
    config = settings.handoff_config()
    tokenizer = copy.deepcopy(_tokenizer(str(config.tokenizer), str(settings.core_config().model_cache_dir)))
    options = PreflightOptions(max_length=config.max_length or settings.train.max_length,
                               allow_truncated=config.allow_truncated)
    return Preflight(tokenizer, options, template=str(config.tokenizer))


def out(session: Session, row: Delivery) -> DeliveryOut:
    log = [AttemptOut(number=a.number, started_at=a.started_at, ok=a.ok, error=a.error)
           for a in deliveries.attempts_of(session, row.id)]
    data = row.model_dump()
    return DeliveryOut(**{k: data[k] for k in DeliveryOut.model_fields if k in data}, attempt_log=log)


def _version_source(session: Session, body: DeliveryCreate, owner: str, config: Any, settings: Settings) -> Any:
    """(rows, meta) of the caller's dataset version the body names (422 naming the field)."""
    try:
        dataset = ds_versions.get_dataset(session, owner, body.dataset)
    except DatasetError:
        raise field_error(("body", "dataset"), f"no dataset named {body.dataset!r}") from None
    try:
        return sources.dataset_version_source(session, dataset, body.version, name=body.name, system=body.system,
                                              license=config.license, language=tuple(config.language),
                                              model=settings.llm.model)
    except DatasetError as exc:
        raise field_error(("body", "version"), str(exc)) from None


@router.post("", status_code=201, summary="Bundle a finished job or a dataset version, check it, and deliver it")
def create_delivery(body: DeliveryCreate, session: SessionDep, owner: Owner, settings: SettingsDep) -> DeliveryOut:
    job = session.get(Job, body.job_id) if body.job_id is not None else None
    if body.job_id is not None and (job is None or job.owner != owner):
        raise field_error(("body", "job_id"), f"no job with id {body.job_id}")
    if job is not None and not JobStatus(job.status).finished:
        raise field_error(("body", "job_id"), f"job {job.id} is {job.status}; deliver it once it has finished")
    destination = session.get(Destination, body.destination_id)
    if destination is None or destination.owner != owner:
        raise field_error(("body", "destination_id"), f"no destination with id {body.destination_id}")
    config = settings.handoff_config()
    if body.formats:
        config = config.model_copy(update={"formats": list(dict.fromkeys(body.formats))})
    if job is None:
        rows, meta = _version_source(session, body, owner, config, settings)
    else:
        rows, meta = sources.job_source(session, job.id, final_only=body.final_only, include_roots=body.include_roots,
                                        name=body.name, system=body.system, license=config.license,
                                        language=tuple(config.language), model=settings.llm.model)
    try:
        preflight = preflight_for(settings)
    except ValueError as exc:  # BaseModelError: the configured tokenizer cannot be loaded
        raise HTTPException(503, f"the preflight check cannot run: {exc}") from None
    delivery = deliveries.deliver(session, destination, rows, meta, preflight, config,
                                  Path(settings.data_dir), utcnow(), owner=owner)
    return out(session, delivery)


@router.get("", summary="List deliveries, newest first")
def list_deliveries(session: SessionDep, owner: Owner,
                    status: str | None = Query(None, pattern="^(pending|running|done|failed|blocked)$"),
                    limit: int = Query(50, ge=1, le=MAX_PAGE),
                    offset: int = Query(0, ge=0, le=2**31)) -> Page[DeliveryOut]:
    query = select(Delivery).where(Delivery.owner == owner)
    if status is not None:
        query = query.where(Delivery.status == status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Delivery.id.desc()).offset(offset).limit(limit)).all()
    return Page(items=[out(session, r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{delivery_id}", summary="One delivery, with its preflight report and every attempt")
def get_delivery(delivery_id: IdPath, session: SessionDep, owner: Owner) -> DeliveryOut:
    return out(session, owned(session, Delivery, delivery_id, owner, "delivery"))


@router.post("/{delivery_id}/retry", summary="Try a pending or failed delivery again now")
def retry_delivery(delivery_id: IdPath, session: SessionDep, owner: Owner, settings: SettingsDep) -> DeliveryOut:
    row = owned(session, Delivery, delivery_id, owner, "delivery")
    delivery = deliveries.retry_now(session, row.id, settings.handoff_config(), utcnow())  # CannotRetry: a 409
    return out(session, delivery)
