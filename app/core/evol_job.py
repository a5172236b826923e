"""Build an Evol-Instruct job's engine from its stored inputs (the runner's `MethodSpec.build`).

Kept apart from `evol_instruct.py`, which knows no SQL: this module reads the job's pool
from the store, either a seed set (an uploaded file is imported as one) or another job's
accepted instructions (`job.source_job_id`, typically a Self-Instruct job), and refuses
a job that cannot run with a `JobInputError` naming why.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core import store
from app.core.candidates import StoredCandidate
from app.core.evol_instruct import EvolInstruct
from app.core.params import EvolInstructParams
from app.core.seeds import SeedTaskData
from app.models import Job, JobStatus


def source_pool(session: Session, job: Job) -> list[SeedTaskData]:
    """The instructions an Evol-Instruct job evolves, in their stored order.

    Raises ValueError (with a message for the user) when the job names no usable source.
    """
    if job.seed_set_id is not None and job.source_job_id is not None:
        raise ValueError("an evol_instruct job evolves a seed set or a source job, not both")
    if job.seed_set_id is not None:
        return store.seed_tasks(session, job.seed_set_id)
    if job.source_job_id is None:
        raise ValueError("an evol_instruct job needs a seed set or a source job")
    try:
        source = store.get_job(session, job.source_job_id)
    except store.NotFound:
        raise ValueError(f"source job {job.source_job_id} does not exist") from None
    if source.id == job.id or source.kind == "sft":
        raise ValueError(f"job {source.id} cannot be a source: evolve a seed set or a generation job")
    if not JobStatus(source.status).finished:
        # its accepted set is still growing; a resumed evolution must see the same pool
        raise ValueError(f"source job {source.id} is still {source.status}; evolve it once it has finished")
    pool = [
        SeedTaskData(c.instruction, list(c.instances), bool(c.is_classification))
        for c in store.stored_candidates(session, source.id)
        if c.accepted
    ]
    if not pool:
        raise ValueError(f"source job {source.id} has no accepted instructions to evolve")
    return pool


def build_evol_instruct(session: Session, job: Job, params: EvolInstructParams, client: Any,
                        previous: list[StoredCandidate], settings: Any) -> EvolInstruct:
    # imported here: the runner imports this module to register the job kind
    from app.core.runner import JobInputError, near_duplicate_index

    try:
        return EvolInstruct(params, client, source_pool(session, job), previous,
                            concurrency=settings.llm_concurrency, job_key=f"job{job.id}",
                            near_duplicates=near_duplicate_index(params, job.id, settings))
    except ValueError as exc:
        raise JobInputError(str(exc)) from None
