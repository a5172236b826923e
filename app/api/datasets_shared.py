"""Shared by the dataset routes (datasets, review, hand-off, diversity): the path parameters,
the caller's dataset looked up by name, a version's body, the service defaults, and a new
version's hand-off job made and submitted.

Public, so a route module never reaches into a sibling's private helpers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException
from fastapi import Path as PathParam
from sqlmodel import Session

from app.api.schemas.datasets import VersionOut
from app.core.datasets import pages
from app.core.datasets import versions as v
from app.core.handoff import training_gate
from app.core.jobs import dispatch, version_handoff
from app.core.jobs.dispatch import Dispatcher, DispatchUnavailable
from app.models import Dataset, DatasetVersion, Job

NamePath = Annotated[str, PathParam(max_length=100, description="The dataset's name.", examples=["support-sft"])]
RefPath = Annotated[str, PathParam(max_length=64, description="A version number, `latest`, or a tag.",
                                   examples=["latest"])]
CONFLICT = {409: {"description": "The change conflicts with stored state (see `detail`)."}}


def dataset_of(session: Session, owner: str, name: str) -> Dataset:
    """The caller's dataset `name` (another owner's is not found)."""
    return v.get_dataset(session, owner, name)


def version_out(session: Session, version: DatasetVersion) -> VersionOut:
    """A version's body: its tags, gated training run and hand-off job."""
    handoff_job = version_handoff.find(session, version.dataset_id, version.number)
    return VersionOut.of(version, pages.tags_by_version(session, version.dataset_id).get(version.number, []),
                         training=training_gate.latest_runs(session, [version.id]).get(version.id),
                         handoff_job_id=handoff_job.id if handoff_job is not None else None)


def defaults_of(settings: Any) -> dict[str, dict[str, Any]]:
    """The service defaults of every job kind (`CoreConfig.defaults`)."""
    return settings.core_config().defaults


def queue_handoff(session: Session, dispatcher: Dispatcher, dataset: Dataset, version: DatasetVersion,
                  defaults: dict[str, dict[str, Any]], force: bool = False) -> Job | None:
    """The version's `version_handoff` job, made and submitted (`dispatch.hand_off_version`: a
    broker that is away marks it failed, retry it with `POST /jobs/{id}/retry`, without
    undoing the version); `force` (asked for by the caller): then a 503."""
    try:
        return dispatch.hand_off_version(session, dataset, version, defaults, dispatcher, force=force)
    except DispatchUnavailable:
        raise HTTPException(503, "the job queue (Redis) is unreachable; try again shortly",
                            headers={"Retry-After": "5"}) from None
