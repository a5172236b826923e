"""SQL reads and writes the domain needs: seed sets, jobs, candidates, curated examples.

Kept apart from the methods (which know nothing of SQL) and from the shells (which call
these functions rather than writing queries of their own), so the API, the workers and
the CLI store and read a job the same way.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, insert, or_, update
from sqlmodel import Session, SQLModel, col, select

from app.core.errors import Conflict
from app.core.errors import NotFound as NotFound  # re-exported: callers catch store.NotFound
from app.core.filters.decontaminate import BenchmarkItem
from app.core.methods import topic_tree
from app.core.methods.candidates import CandidateRecord, StoredCandidate
from app.core.seeds import SeedTaskData
from app.models import (
    BenchmarkItemRow,
    BenchmarkSet,
    Fate,
    Instance,
    Instruction,
    Job,
    JobStatus,
    Persona,
    PersonaSet,
    SeedSet,
    SeedTask,
    TopicTree,
    utcnow,
)


class _Row(Protocol):
    id: int | None


def id_of(row: _Row) -> int:
    """A stored row's primary key. SQLModel types it `int | None` (None until the row is
    flushed); a row read back or flushed has one, and this says so to the type checker."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} row has no id yet (not flushed)")
    return row.id


M = TypeVar("M", bound=SQLModel)


def get_row(session: Session, model: type[M], row_id: int) -> M:
    """Row `row_id` of `model`, or `NotFound`: for a row the caller knows exists (one it
    claimed, or one a foreign key names), typed as present."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"no {model.__name__} with id {row_id}")
    return row


# --- seed sets ---------------------------------------------------------------------------
def import_seed_set(session: Session, name: str, fmt: str, tasks: list[SeedTaskData], owner: str | None = None) -> SeedSet:
    """Store a parsed seed file in one transaction (the caller commits)."""
    seed_set = SeedSet(name=name, owner=owner, source_format=fmt, task_count=len(tasks))
    session.add(seed_set)
    session.flush()
    for position, task in enumerate(tasks):
        session.add(
            SeedTask(
                seed_set_id=id_of(seed_set),
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
    rows = session.exec(select(SeedTask).where(col(SeedTask.seed_set_id) == seed_set_id).order_by(col(SeedTask.position))).all()
    return [SeedTaskData(r.instruction, list(r.instances), r.is_classification, r.name) for r in rows]


# --- persona sets --------------------------------------------------------------------------
def import_persona_set(session: Session, name: str, fmt: str, personas: list[str],
                       owner: str | None = None) -> PersonaSet:
    """Store a parsed persona file in one transaction (the caller commits)."""
    persona_set = PersonaSet(name=name, owner=owner, source_format=fmt, persona_count=len(personas))
    session.add(persona_set)
    session.flush()
    session.add_all(Persona(persona_set_id=id_of(persona_set), position=i, text=text) for i, text in enumerate(personas))
    session.flush()
    return persona_set


def persona_texts(session: Session, persona_set_id: int) -> list[str]:
    return list(session.exec(select(Persona.text).where(col(Persona.persona_set_id) == persona_set_id)
                             .order_by(col(Persona.position))).all())


# --- topic trees ---------------------------------------------------------------------------
def create_topic_tree(session: Session, name: str, tree: Any, owner: str | None = None) -> TopicTree:
    """Store an uploaded tree, checked (`topic_tree.TopicTreeError` names the node at fault)."""
    row = TopicTree(name=name, owner=owner, tree=topic_tree.check_tree(tree), made_by="upload")
    session.add(row)
    session.flush()
    return row


def replace_topic_tree(session: Session, row: TopicTree, tree: Any) -> TopicTree:
    """An edit: the tree replaced whole by a checked one; jobs that used it keep their rows' paths."""
    row.tree = topic_tree.check_tree(tree)
    row.made_by, row.updated_at = "edited", utcnow()
    session.add(row)
    session.flush()
    return row


# --- jobs ----------------------------------------------------------------------------------
def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return job


def create_job(
    session: Session,
    kind: str,
    params: dict[str, Any],
    seed_set_id: int | None = None,
    source_job_id: int | None = None,
    owner: str | None = None,
) -> Job:
    job = Job(
        kind=kind,
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


# --- the lifecycle's SQL: claim, heartbeat, batch commit, finish ------------------------------
class LostClaim(Conflict, RuntimeError):
    """Another worker took this job over (this one was presumed dead)."""


def claim_job(session: Session, job_id: int, worker: str, stale_after_s: float) -> bool:
    """Take the job for `worker` if it is queued, or running with a heartbeat older than
    `stale_after_s` (its worker died), or already held by `worker`. One conditional UPDATE,
    so two workers racing for one job cannot both win."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    result = session.exec(  # an UPDATE: a cursor result, with the rows it changed
        update(Job)
        .where(col(Job.id) == job_id)
        .where(col(Job.cancel_requested).is_(False))
        .where(
            or_(
                col(Job.status) == JobStatus.queued.value,
                (col(Job.status) == JobStatus.running.value)
                & (or_(col(Job.worker) == worker, col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < stale)),
            )
        )
        .values(status=JobStatus.running.value, worker=worker, attempts=Job.attempts + 1,
                heartbeat_at=now, started_at=func.coalesce(Job.started_at, now),
                # a job paused by an outage said why it waited; running again, it does not
                error=None)
    )
    return result.rowcount == 1


def heartbeat(session: Session, job_id: int, worker: str, counters: dict[str, Any] | None = None) -> bool:
    """Refresh the heartbeat (and the counters, when given) while `worker` holds the job.

    Returns True when a cancel was requested; raises `LostClaim` when another worker holds it."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if counters is not None:
        values["counters"] = counters
    result = session.exec(update(Job).where(col(Job.id) == job_id, col(Job.worker) == worker).values(**values))
    if result.rowcount != 1:
        raise LostClaim(f"job {job_id} was taken over by another worker")
    cancel = session.exec(select(Job.cancel_requested).where(Job.id == job_id)).one()
    return bool(cancel)


def commit_batch(session: Session, job_id: int, worker: str, records: list[CandidateRecord], first_seq: int,
                 counters: dict[str, Any]) -> int:
    """Write decided candidates with the job's counters and heartbeat, in the caller's
    transaction, only while `worker` holds the job; returns the next seq."""
    seq = write_records(session, job_id, records, first_seq)
    heartbeat(session, job_id, worker, counters)
    return seq


def finish_job(session: Session, job_id: int, worker: str, status: JobStatus, error: str | None = None,
               result: dict[str, Any] | None = None, counters: dict[str, Any] | None = None) -> bool:
    """End the job if `worker` still holds it (a taken-over job's record is its new owner's)."""
    job = session.get(Job, job_id)
    if job is None or job.worker != worker:
        return False
    job.status, job.error = status.value, error
    job.finished_at = job.heartbeat_at = utcnow()
    if result:
        job.result = {**job.result, **result}
    if counters:
        job.counters = {**job.counters, **counters}
    return True


def pause_job(session: Session, job_id: int, worker: str, reason: str,
              counters: dict[str, Any] | None = None) -> bool:
    """Put a running job back in the queue (its model server is away): it keeps what it
    stored, and the reaper sends it again; `error` says why it waits. `counters` (the live
    ones, as a heartbeat writes them) keep the failed requests' count and last messages."""
    job = session.get(Job, job_id)
    if job is None or job.worker != worker:
        return False
    if counters:
        job.counters = {**job.counters, **counters}
    job.status, job.error, job.worker = JobStatus.queued.value, reason, None
    job.heartbeat_at = utcnow()
    return True


def request_cancel(job: Job) -> None:
    """Queued: cancelled at once. Running: its worker stops it at the next heartbeat."""
    if JobStatus(job.status).finished:
        return
    job.cancel_requested = True
    if job.status == JobStatus.queued.value:
        job.status = JobStatus.cancelled.value
        job.finished_at = utcnow()


# --- candidates ------------------------------------------------------------------------------
def next_seq(session: Session, job_id: int) -> int:
    return (session.exec(select(func.max(Instruction.seq)).where(Instruction.job_id == job_id)).one() or 0) + 1


def write_records(session: Session, job_id: int, records: list[CandidateRecord], first_seq: int) -> int:
    """Insert records with consecutive `seq` numbers (unique per job); returns the next seq.

    Rows are written a run of records at a time (one multi-row INSERT each, not one
    statement and round trip per candidate); a run ends before a record whose parent is in
    it, so the parent has its id when the child names it. Rows get their ids in `seq`
    order, as when each was flushed alone.

    The rows go in as plain values through the tables (`insert(...).returning(id)` in the
    order given), not as ORM objects: building and flushing an object per row cost more
    than the INSERTs (about 0.25 ms a candidate). The values are the ones the models'
    defaults gave (`created_at` now, `most_similar`, `detail` and `turns` as given).
    """
    session.flush()  # what the caller left pending goes first, as when these were flushed with it
    instructions, instances = Instruction.__table__, Instance.__table__  # type: ignore[attr-defined]
    new_ids = insert(instructions).returning(instructions.c.id, sort_by_parameter_order=True)
    accepted, rejected = Fate.accepted.value, Fate.rejected.value
    seq = first_seq
    todo = list(records)
    while todo:
        run: list[CandidateRecord] = []
        in_run: set[int] = set()
        for record in todo:
            if record.parent is not None and id(record.parent) in in_run:
                break
            run.append(record)
            in_run.add(id(record))
        todo = todo[len(run):]
        rows: list[dict[str, Any]] = []
        for record in run:
            parent = record.parent
            rows.append({
                "job_id": job_id,
                "seq": seq,
                "instruction": record.instruction,
                "fate": record.fate,
                "rule": record.rule,
                "max_rouge_l": record.max_rouge_l,
                "most_similar": record.most_similar,
                "mean_rouge_l": record.mean_rouge_l,
                "in_pool": record.in_pool,
                "is_classification": record.is_classification,
                "parent_id": parent.row_id if parent is not None else None,
                "operation": record.operation,
                "round": record.round,
                "detail": record.detail,
                "created_at": utcnow(),
            })
            seq += 1
        ids = session.exec(new_ids, params=rows).scalars().all()
        examples: list[dict[str, Any]] = []
        for record, row_id in zip(run, ids, strict=True):
            record.row_id = row_id
            examples.extend(
                {
                    "instruction_id": row_id,
                    "job_id": job_id,
                    "position": position,
                    "input": inst.input,
                    "output": inst.output,
                    "turns": list(getattr(inst, "turns", None) or []),
                    "fate": accepted if inst.accepted and record.accepted else rejected,
                    "rule": inst.rule,
                }
                for position, inst in enumerate(record.instances)
            )
        if examples:
            session.exec(insert(instances), params=examples)
    return seq


def stored_candidates(session: Session, job_id: int) -> list[StoredCandidate]:
    """What earlier attempts of a job committed, in order, for a resumed method."""
    rows = session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(col(Instruction.seq))).all()
    instances = _accepted_instances(session, [id_of(r) for r in rows])
    return [
        StoredCandidate(
            row_id=id_of(r),
            instruction=r.instruction,
            accepted=r.fate == Fate.accepted.value,
            rule=r.rule,
            in_pool=r.in_pool,
            parent_id=r.parent_id,
            operation=r.operation,
            round=r.round,
            is_classification=r.is_classification,
            instances=instances.get(id_of(r), []),
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
            .where(col(Instance.instruction_id).in_(chunk), Instance.fate == Fate.accepted.value)
            .order_by(col(Instance.instruction_id), col(Instance.position))
        ).all()
        for r in rows:
            out[r.instruction_id].append({"input": r.input, "output": r.output})
    return out


def curated_examples(session: Session, job_id: int) -> list[dict[str, Any]]:
    """A job's curated data: one row per accepted instance of an accepted instruction.

    Rows carry `instruction`, `input`, `output`, and `id` (the instruction's row id) so
    an exporter can add lineage or other columns; a conversation also carries `turns`, and an
    instruction written as a persona or for a topic its `persona` or `topic_path`.
    """
    rows = session.exec(
        select(Instruction, Instance)
        .join(Instance, col(Instance.instruction_id) == col(Instruction.id))
        .where(
            Instruction.job_id == job_id,
            Instruction.fate == Fate.accepted.value,
            Instance.fate == Fate.accepted.value,
        )
        .order_by(col(Instruction.seq), col(Instance.position))
    ).all()
    return [with_turns({"id": ins.id, "instruction": ins.instruction, "input": inst.input, "output": inst.output,
                        **origin(ins.detail)}, inst.turns) for ins, inst in rows]


ORIGIN_KEYS = ("persona", "topic_path")


def origin(detail: dict[str, Any] | None) -> dict[str, Any]:
    """What a row says of where its instruction came from: the persona it was written as, the
    topic path it was written for (the persona and topic-tree kinds record them)."""
    return {k: detail[k] for k in ORIGIN_KEYS if detail and detail.get(k)}


def with_turns(row: dict[str, Any], turns: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The row with its conversation's later turns, when it has any (a single-turn row stays as it was)."""
    return {**row, "turns": list(turns)} if turns else row



# --- benchmark sets (decontamination) ------------------------------------------------------
def import_benchmark_set(session: Session, name: str, fmt: str, items: list[BenchmarkItem],
                         owner: str | None = None) -> BenchmarkSet:
    """Store a parsed benchmark file in one transaction (the caller commits)."""
    benchmark = BenchmarkSet(name=name, owner=owner, source_format=fmt, item_count=len(items))
    session.add(benchmark)
    session.flush()
    session.add_all(BenchmarkItemRow(benchmark_set_id=id_of(benchmark), position=i, item=item.item[:200],
                                     prompt=item.prompt, output=item.output) for i, item in enumerate(items))
    session.flush()
    return benchmark


def benchmark_items(session: Session, benchmark_set_id: int) -> list[BenchmarkItem]:
    """A benchmark set's items, named `<set name>` (the report groups hits by it)."""
    benchmark = session.get(BenchmarkSet, benchmark_set_id)
    if benchmark is None:
        raise NotFound(f"no benchmark set with id {benchmark_set_id}")
    rows = session.exec(select(BenchmarkItemRow).where(BenchmarkItemRow.benchmark_set_id == benchmark_set_id)
                        .order_by(col(BenchmarkItemRow.position))).all()
    label = f"{benchmark.name} (#{benchmark.id})"
    return [BenchmarkItem(label, r.item, r.prompt, r.output) for r in rows]


def contamination_details(session: Session, job_id: int) -> list[dict[str, Any]]:
    """The `detail` of a job's candidates that hit a benchmark item (for its report)."""
    rows = session.exec(select(Instruction.detail).where(Instruction.job_id == job_id)).all()
    return [dict(d) for d in rows if d and d.get("contamination")]
