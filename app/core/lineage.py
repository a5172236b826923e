"""A job's curated rows with their lineage: how each instruction was evolved from its root.

Evol-Instruct stores every generation: the roots (round 0, the pool it started from) and
each evolution with its parent, operation and round. The survivors of one lineage form a
chain root -> round 1 -> ... -> its tip (a failed evolution leaves the chain as it was).
The export default is every surviving generation, roots included, as in the paper (whose
dataset is the starting pool plus every round's survivors); `final_only` keeps each
lineage's last surviving generation (the root itself when every evolution of it failed),
and `include_roots=False` leaves round 0 out.

Works for any generation job: a Self-Instruct job's instructions are all roots.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.core import store
from app.core.jobs.registry import JobRequestError, produces_examples
from app.models import Fate, Instance, Instruction


class _Node(NamedTuple):
    """The columns of an instruction its lineage needs."""

    id: int
    instruction: str
    parent_id: int | None
    operation: str | None
    round: int
    fate: str
    detail: dict[str, Any]


class _Answer(NamedTuple):
    """An accepted instance of an instruction."""

    input: str
    output: str
    turns: list[dict[str, Any]] | None


def lineage_examples(session: Session, job_id: int, *, final_only: bool = False,
                     include_roots: bool = True) -> list[dict[str, Any]]:
    """Rows `{"id", "instruction", "input", "output", "lineage"}`, one per accepted instance
    of a chosen instruction, in the job's order. `lineage` is the list, root first and the
    row's own instruction last, of `{"instruction", "operation", "round"}` (the root's
    operation is None and its round 0)."""
    rows = [_Node._make(row) for row in session.execute(
        sa_select(col(Instruction.id), col(Instruction.instruction), col(Instruction.parent_id),
                  col(Instruction.operation), col(Instruction.round), col(Instruction.fate), col(Instruction.detail))
        .where(col(Instruction.job_id) == job_id)
        .order_by(col(Instruction.seq))
    ).all()]
    by_id = {r.id: r for r in rows}
    accepted = [r for r in rows if r.fate == Fate.accepted.value]
    chosen = _tips(accepted) if final_only else accepted
    if not include_roots:
        chosen = [r for r in chosen if r.parent_id is not None]
    chains = {r.id: _chain(r, by_id) for r in chosen}
    instances = session.exec(
        select(Instance.instruction_id, Instance.input, Instance.output, Instance.turns)
        .where(Instance.job_id == job_id, Instance.fate == Fate.accepted.value)
        .order_by(col(Instance.instruction_id), col(Instance.position))
    ).all()
    by_instruction: dict[int, list[_Answer]] = {}
    for instruction_id, input_, output, turns in instances:
        by_instruction.setdefault(instruction_id, []).append(_Answer(input_, output, list(turns) if turns else None))
    out = []
    for r in chosen:
        for inst in by_instruction.get(r.id, []):
            out.append(store.with_turns({"id": r.id, "instruction": r.instruction, "input": inst.input,
                                         "output": inst.output, "lineage": chains[r.id],
                                         **_root_origin(r, by_id)}, inst.turns))
    return out


def _root_origin(row: _Node, by_id: dict[int, _Node]) -> dict[str, Any]:
    """The persona or topic path the lineage's root was written for (`store.origin`), if any."""
    seen: set[int] = set()
    while row.parent_id is not None and row.parent_id in by_id and row.id not in seen:
        seen.add(row.id)
        row = by_id[row.parent_id]
    return store.origin(row.detail)


def _tips(accepted: list[_Node]) -> list[_Node]:
    """The accepted rows no accepted row names as parent: each lineage's last survivor."""
    parents = {r.parent_id for r in accepted if r.parent_id is not None}
    return [r for r in accepted if r.id not in parents]


def _chain(row: _Node, by_id: dict[int, _Node]) -> list[dict[str, Any]]:
    chain = []
    seen: set[int] = set()
    node: _Node | None = row
    while node is not None and node.id not in seen:
        seen.add(node.id)
        chain.append({"instruction": node.instruction, "operation": node.operation, "round": node.round})
        node = by_id.get(node.parent_id) if node.parent_id is not None else None
    return chain[::-1]


def export_rows(session: Session, job: Any, *, final_only: bool = False,
                include_roots: bool = True) -> list[dict[str, Any]]:
    """What an export of `job` writes, for the CLI and the API alike: an Evol-Instruct
    job's rows with their lineage (`lineage_examples`), any other generation job's curated
    rows as they are. Raises `JobRequestError` (a ValueError naming the option at fault)
    for a job without curated data, or lineage options asked of a job without lineage."""
    if not produces_examples(job.kind):
        raise JobRequestError("job_id", f"job {job.id} is a {job.kind} job; it has no curated data to export")
    if job.kind == "evol_instruct":
        return lineage_examples(session, job.id, final_only=final_only, include_roots=include_roots)
    if final_only or not include_roots:
        raise JobRequestError("final_only" if final_only else "include_roots",
                              f"job {job.id} is a {job.kind} job: final-only and no-roots apply to evol_instruct jobs")
    return store.curated_examples(session, job.id)
