"""What routes ask for, declared once as `Annotated` aliases: settings, a database session,
the caller's API key and owner, the Celery app, and owned-resource lookups.

Authentication is a bearer API key (`sprout apikey create`); its `owner` scopes every seed
set, job and export. Another owner's resource answers 404, as if it did not exist, so ids
reveal nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, TypeVar

from celery import Celery
from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, SQLModel

from app.api import keys
from app.db import session_scope
from app.models import ApiKey
from app.settings import Settings

MAX_ID = 2**31 - 1  # SQL integer ids

_bearer = HTTPBearer(auto_error=False, description="An API key made with `sprout apikey create`.")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request; routes that write commit before they answer."""
    with session_scope(settings.resolved_database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


CeleryDep = Annotated[Celery, Depends(get_celery)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def get_current_key(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> ApiKey:
    if credentials is None:
        raise _unauthorized("missing API key: send `Authorization: Bearer <key>` (make one with `sprout apikey create`)")
    key = keys.lookup(session, credentials.credentials)
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    return key


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]


def get_owner(key: CurrentKey) -> str:
    return key.owner


Owner = Annotated[str, Depends(get_owner)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric id.", examples=[1])]

M = TypeVar("M", bound=SQLModel)


def owned(session: Session, model: type[M], ident: int, owner: str, what: str) -> M:
    """The row `ident` of `model` if `owner` owns it; 404 otherwise (absent or not theirs)."""
    row = session.get(model, ident) if 1 <= ident <= MAX_ID else None
    if row is None or getattr(row, "owner", None) != owner:
        raise HTTPException(404, f"no {what} with id {ident}")
    return row
