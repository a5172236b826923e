"""Turn a job request into a stored job, or a `JobRequestError` naming the field at fault.

The API and the CLI both call `create_job`, so a request is judged by the same rules
whichever door it came through: the kind must be registered, its parameters valid (the
service defaults overridden by the caller's), and every row it references must exist and
belong to the caller (another owner's row is "not found", so ids reveal nothing).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from sqlmodel import Session, SQLModel

from app.core import store
from app.core.jobs.registry import JobRequest, JobRequestError, server_set
from app.core.jobs.registry import get as get_kind
from app.models import Job

M = TypeVar("M", bound=SQLModel)

MAX_ID = 2**31 - 1  # SQL integer ids


def owned_row(session: Session, model: type[M], ident: int | None, owner: str | None, field: str, what: str) -> M:
    """Row `ident` of `model` if `owner` owns it, else a `JobRequestError` on `field`.
    No owner (the command line, run by the operator) sees every row."""
    row = session.get(model, ident) if ident is not None and 1 <= ident <= MAX_ID else None
    if row is None or (owner is not None and getattr(row, "owner", None) != owner):
        raise JobRequestError(field, f"no {what} with id {ident}")
    return row


def validate(session: Session, request: JobRequest, defaults: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The arguments of `store.create_job` for `request`; raises `JobRequestError`, or
    pydantic's `ValidationError` for bad parameters (the shells name the field)."""
    kind = get_kind(request.kind)
    overrides = dict(request.params)
    for name in sorted(server_set(kind.params_model)):  # only a build says that a job is one of its steps
        if overrides.pop(name, None) is not None:
            raise JobRequestError(f"params.{name}", f"{name} is set by the service (a dataset build on its step "
                                  "jobs); a request cannot give it")
    if request.build is not None:
        overrides["build"] = request.build.model_dump(mode="json")
    params = kind.validate_params(overrides, defaults)
    args = kind.check(session, request, params)
    return {"kind": kind.name, "params": params.model_dump(mode="json"), "owner": request.owner, **args}


def create_job(session: Session, request: JobRequest, defaults: dict[str, dict[str, Any]] | None = None) -> Job:
    """Validate and store a job (flushed, not committed: the caller commits and enqueues)."""
    args = validate(session, request, defaults)
    result = args.pop("result", None)
    counters = args.pop("counters", None)
    job = store.create_job(session, **args)
    if result:
        job.result = result
    if counters is not None:
        job.counters = counters
    session.flush()
    created = get_kind(job.kind).on_created
    if created is not None:
        created(session, job)
    return job


__all__ = ["JobRequest", "JobRequestError", "ValidationError", "create_job", "owned_row", "validate"]
