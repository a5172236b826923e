"""`GET /api/v1/me`: the calling key's name and owner.

The owner is who the key acts for: its datasets, jobs and seed sets, and the reviewer
recorded on its review decisions. The dashboard shows it, and names it in the command that
makes a dataset on the command line for this owner (`sprout datasets --owner OWNER ...`).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import CurrentKey

router = APIRouter(tags=["keys"])


class MeOut(BaseModel):
    owner: str = Field(examples=["alice"])
    key_name: str = Field(examples=["alice-laptop"])


@router.get("/me", summary="The calling key's owner and name")
def me(key: CurrentKey) -> MeOut:
    return MeOut(owner=key.owner, key_name=key.name)
