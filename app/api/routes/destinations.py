"""Destinations: where the caller's bundles go (a folder under the service's allowed roots,
or a Hugging Face Hub dataset repo); create, list, get, delete."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Response
from sqlalchemy import func
from sqlmodel import select

from app.api.deps import IdPath, Owner, SessionDep, SettingsDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.handoff import DestinationCreate, DestinationOut
from app.core.handoff import destinations
from app.models import Destination

router = APIRouter(prefix="/destinations", tags=["hand-off"], route_class=LimitedJsonRoute)


def _out(row: Destination) -> DestinationOut:
    return DestinationOut.model_validate(row.model_dump())


@router.post("", status_code=201, summary="Create a destination (a folder or a Hub dataset repo)")
def create_destination(body: DestinationCreate, session: SessionDep, owner: Owner,
                       settings: SettingsDep) -> DestinationOut:
    config = {"path": body.path, "mode": body.mode} if body.kind == "folder" \
        else {"repo_id": body.repo_id, "private": body.private}
    try:
        config = destinations.check_config(body.kind, config)
    except ValueError as exc:
        field, _, msg = str(exc).partition(": ")
        raise field_error(("body", field), msg) from None
    if body.kind == "folder":
        roots = [Path(r).resolve() for r in settings.handoff_config().folder_roots]
        if not any(Path(config["path"]).resolve().is_relative_to(r) for r in roots):
            raise field_error(("body", "path"), "must lie inside one of the service's hand-off folders "
                              f"(SPROUT_HANDOFF__FOLDER_ROOTS): {', '.join(map(str, roots))}")
    taken = session.exec(select(Destination).where(Destination.owner == owner, Destination.name == body.name)).first()
    if taken is not None:
        raise field_error(("body", "name"), f"you already have a destination named {body.name!r}")
    row = Destination(owner=owner, name=body.name, kind=body.kind, config=config)
    session.add(row)
    session.commit()
    return _out(row)


@router.get("", summary="List destinations")
def list_destinations(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                      offset: int = Query(0, ge=0, le=2**31)) -> Page[DestinationOut]:
    query = select(Destination).where(Destination.owner == owner)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Destination.id).offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{destination_id}", summary="One destination")
def get_destination(destination_id: IdPath, session: SessionDep, owner: Owner) -> DestinationOut:
    return _out(owned(session, Destination, destination_id, owner, "destination"))


@router.delete("/{destination_id}", status_code=204, summary="Delete a destination and its delivery records")
def delete_destination(destination_id: IdPath, session: SessionDep, owner: Owner) -> Response:
    session.delete(owned(session, Destination, destination_id, owner, "destination"))
    session.commit()
    return Response(status_code=204)
