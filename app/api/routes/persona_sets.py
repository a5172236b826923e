"""Persona sets: upload (a JSONL or CSV file's text, or a list), list, get with personas.

The whole upload is parsed and checked (`app.core.methods.personas`) before anything is stored, in
one transaction: a bad line refuses the upload, named, and leaves nothing behind.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Query
from sqlalchemy import func
from sqlmodel import Session, select

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.persona_sets import PersonaSetCreate, PersonaSetDetail, PersonaSetOut
from app.core import store
from app.core.methods.personas import PersonaFormatError, parse_personas
from app.models import PersonaSet

router = APIRouter(prefix="/persona-sets", tags=["persona sets"], route_class=LimitedJsonRoute)


def _detail(session: Session, persona_set: PersonaSet) -> PersonaSetDetail:
    return PersonaSetDetail(**PersonaSetOut.model_validate(persona_set.model_dump()).model_dump(),
                            personas=store.persona_texts(session, persona_set.id))


@router.post("", status_code=201, summary="Upload a persona set (JSONL of {\"persona\"}, CSV, or a list)")
def create_persona_set(body: PersonaSetCreate, session: SessionDep, owner: Owner) -> PersonaSetDetail:
    try:
        if body.personas is not None:  # the same rules as a file's lines
            text = "".join(json.dumps({"persona": p}) + "\n" for p in body.personas)
            fmt, personas = parse_personas(text, "jsonl")
            fmt = "list"
        else:
            fmt, personas = parse_personas(body.content or "", body.format)
    except PersonaFormatError as exc:
        raise field_error(("body", "personas" if body.personas is not None else "content"), str(exc)) from None
    persona_set = store.import_persona_set(session, body.name, fmt, personas, owner=owner)
    session.commit()
    return _detail(session, persona_set)


@router.get("", summary="List persona sets")
def list_persona_sets(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                      offset: int = Query(0, ge=0, le=2**31)) -> Page[PersonaSetOut]:
    where = PersonaSet.owner == owner
    total = session.exec(select(func.count()).select_from(PersonaSet).where(where)).one()
    rows = session.exec(select(PersonaSet).where(where).order_by(PersonaSet.id.desc()).offset(offset)
                        .limit(limit)).all()
    return Page(items=[PersonaSetOut.model_validate(r.model_dump()) for r in rows], total=total, limit=limit,
                offset=offset)


@router.get("/{persona_set_id}", summary="A persona set with its personas")
def get_persona_set(persona_set_id: IdPath, session: SessionDep, owner: Owner) -> PersonaSetDetail:
    return _detail(session, owned(session, PersonaSet, persona_set_id, owner, "persona set"))
