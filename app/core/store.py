"""SQL reads and writes the domain needs: seed sets, jobs, candidates, curated examples.

Kept apart from the methods (which know nothing of SQL) and from the shells (which call
these functions rather than writing queries of their own), so the API, the workers and
the CLI store and read a job the same way.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from app.core.candidates import CandidateRecord, StoredCandidate
from app.core.seeds import SeedTaskData
from app.models import Fate, Instance, Instruction, Job, JobKind, JobStatus, SeedSet, SeedTask


class NotFound(LookupError):
    pass


# --- seed sets ---------------------------------------------------------------------------
def import_seed_set(session: Session, name: str, fmt: str, tasks: list[SeedTaskData], owner: str | None = None) -> SeedSet:
    """Store a parsed seed file in one transaction (the caller commits)."""
    seed_set = SeedSet(name=name, owner=owner, source_format=fmt, task_count=len(tasks))
    session.add(seed_set)
    session.flush()
    for position, task in enumerate(tasks):
        session.add(
            SeedTask(
                seed_set_id=seed_set.id,
                position=position,
                name=task.name,
                instruction=task.instruction,
                is_classification=task.is_classification,
                instances=task.instances,
            )
        )
    session.flush()
    return seed_set


def seed_tasks(session: Session, seed_set_id: int) -> list[SeedTaskData]:
    rows = session.exec(select(SeedTask).where(SeedTask.seed_set_id == seed_set_id).order_by(SeedTask.position)).all()
    return [SeedTaskData(r.instruction, list(r.instances), r.is_classification, r.name) for r in rows]


# --- jobs ----------------------------------------------------------------------------------
def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


def create_job(
    session: Session,
    kind: JobKind | str,
    params: dict[str, Any],
    seed_set_id: int | None = None,
    source_job_id: int | None = None,
    owner: str | None = None,
) -> Job:
    job = Job(
        kind=JobKind(kind).value,
        params=params,
        seed_set_id=seed_set_id,
        source_job_id=source_job_id,
        owner=owner,
        counters=empty_counters(),
    )
    session.add(job)
    session.flush()
    return job


def empty_counters() -> dict[str, Any]:
    return {
        "generated": 0,
        "accepted": 0,
        "rejected": {},
        "in_pool": 0,
        "instances": 0,
        "instances_rejected": {},
        "operations": {},
        "llm_requests": 0,
        "llm_errors": 0,
        "llm_retries": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }


def count_record(counters: dict[str, Any], record: CandidateRecord) -> None:
    """Add one decided candidate to a job's counters."""
    counters["generated"] += 1
    if record.accepted:
        counters["accepted"] += 1
    else:
        counters["rejected"][record.rule or "unknown"] = counters["rejected"].get(record.rule or "unknown", 0) + 1
    counters["in_pool"] += int(record.in_pool)
    if record.operation:
        ops = counters["operations"].setdefault(record.operation, {"accepted": 0, "rejected": 0})
        ops[record.fate] += 1
    for inst in record.instances:
        if inst.accepted and record.accepted:
            counters["instances"] += 1
        elif inst.rule:
            counters["instances_rejected"][inst.rule] = counters["instances_rejected"].get(inst.rule, 0) + 1


def reset_for_retry(job: Job) -> None:
    """A failed or cancelled job goes back to the queue, keeping what it stored."""
    job.status = JobStatus.queued.value
    job.error = None
    job.cancel_requested = False
    job.finished_at = None
    job.worker = None


# --- candidates ------------------------------------------------------------------------------
def next_seq(session: Session, job_id: int) -> int:
    return (session.exec(select(func.max(Instruction.seq)).where(Instruction.job_id == job_id)).one() or 0) + 1


def write_records(session: Session, job_id: int, records: list[CandidateRecord], first_seq: int) -> int:
    """Insert records with consecutive `seq` numbers (unique per job); returns the next seq.

    Rows are flushed one by one so that each gets its id before a later record of the
    same batch names it as parent.
    """
    seq = first_seq
    for record in records:
        parent = record.parent
        row = Instruction(
            job_id=job_id,
            seq=seq,
            instruction=record.instruction,
            fate=record.fate,
            rule=record.rule,
            max_rouge_l=record.max_rouge_l,
            most_similar=record.most_similar,
            mean_rouge_l=record.mean_rouge_l,
            in_pool=record.in_pool,
            is_classification=record.is_classification,
            parent_id=parent.row_id if parent is not None else None,
            operation=record.operation,
            round=record.round,
            detail=record.detail,
        )
        session.add(row)
        session.flush()
        record.row_id = row.id
        for position, inst in enumerate(record.instances):
            session.add(
                Instance(
                    instruction_id=row.id,
                    job_id=job_id,
                    position=position,
                    input=inst.input,
                    output=inst.output,
                    fate=Fate.accepted.value if inst.accepted and record.accepted else Fate.rejected.value,
                    rule=inst.rule,
                )
            )
        seq += 1
    session.flush()
    return seq


def stored_candidates(session: Session, job_id: int) -> list[StoredCandidate]:
    """What earlier attempts of a job committed, in order, for a resumed method."""
    rows = session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
    instances = _accepted_instances(session, [r.id for r in rows])
    return [
        StoredCandidate(
            row_id=r.id,
            instruction=r.instruction,
            accepted=r.fate == Fate.accepted.value,
            rule=r.rule,
            in_pool=r.in_pool,
            parent_id=r.parent_id,
            operation=r.operation,
            round=r.round,
            is_classification=r.is_classification,
            instances=instances.get(r.id, []),
            detail=dict(r.detail or {}),
        )
        for r in rows
    ]


def _accepted_instances(session: Session, instruction_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = defaultdict(list)
    for start in range(0, len(instruction_ids), 1000):
        chunk = instruction_ids[start : start + 1000]
        rows = session.exec(
            select(Instance)
            .where(Instance.instruction_id.in_(chunk), Instance.fate == Fate.accepted.value)
            .order_by(Instance.instruction_id, Instance.position)
        ).all()
        for r in rows:
            out[r.instruction_id].append({"input": r.input, "output": r.output})
    return out


def curated_examples(session: Session, job_id: int) -> list[dict[str, Any]]:
    """A job's curated data: one row per accepted instance of an accepted instruction.

    Rows carry `instruction`, `input`, `output`, and `id` (the instruction's row id) so
    an exporter can add lineage or other columns.
    """
    rows = session.exec(
        select(Instruction, Instance)
        .join(Instance, Instance.instruction_id == Instruction.id)
        .where(
            Instruction.job_id == job_id,
            Instruction.fate == Fate.accepted.value,
            Instance.fate == Fate.accepted.value,
        )
        .order_by(Instruction.seq, Instance.position)
    ).all()
    return [{"id": ins.id, "instruction": ins.instruction, "input": inst.input, "output": inst.output} for ins, inst in rows]

