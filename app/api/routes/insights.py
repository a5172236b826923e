"""What a job's rows add up to, and where one row came from.

* `GET /jobs/{id}/stats`: accepted and rejected over time (cumulative, from the rows'
  `created_at`), rejections per rule, the distribution of each accepted instruction's
  max ROUGE-L to the pool, the length of each curated example, and the tokens the job
  spent per curated example. The dashboard's charts draw these; the figures are computed
  here so a job of any size costs the page one small answer instead of every row.
* `GET /jobs/{id}/instructions/{instruction_id}/lineage`: the Evol-Instruct tree the row
  belongs to (its root first, each edge carrying the operation and the round), with the
  path from the root to the row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.core.jobs.results import Counters
from app.models import Fate, Instance, Instruction, Job

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"])

TIMELINE_POINTS = 60
ROUGE_BINS = 20  # bins of 0.05 over [0, 1]
LENGTH_BINS = 12
LINEAGE_NODES = 200
_WORD = re.compile(r"\S+")


class TimelinePoint(BaseModel):
    t: datetime
    accepted: int = Field(description="Accepted so far (cumulative).")
    rejected: int = Field(description="Rejected so far (cumulative).")


class Histogram(BaseModel):
    edges: list[float] = Field(description="Bin edges: bin i holds values in [edges[i], edges[i+1]).")
    counts: list[int]


class Tokens(BaseModel):
    prompt: int
    completion: int
    per_curated_example: float | None = Field(description="(prompt + completion) / curated examples.")


class JobStats(BaseModel):
    rows: int = Field(description="Candidate instructions the figures are computed from.")
    timeline: list[TimelinePoint]
    rejected_by_rule: dict[str, int]
    instances_rejected_by_rule: dict[str, int]
    operations: dict[str, dict[str, int]] = Field(description="Evol-Instruct: accepted and rejected per operation.")
    max_rouge_l_accepted: Histogram = Field(description="Each accepted instruction's max ROUGE-L to the pool.")
    rouge_l_threshold: float | None
    example_words: Histogram = Field(description="Words of each curated example (instruction, input and output).")
    tokens: Tokens


class LineageNode(BaseModel):
    id: int
    seq: int
    instruction: str
    fate: str
    rule: str | None
    operation: str | None = Field(description="The operation on the edge from the parent (none for a root).")
    round: int
    children: list[LineageNode]


class Lineage(BaseModel):
    root: LineageNode
    path: list[int] = Field(description="Instruction ids from the root to the asked row.")
    truncated: bool = Field(description=f"The tree had more than {LINEAGE_NODES} rows; the rest are left out.")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _timeline(points: list[tuple[datetime, bool]], started: datetime | None) -> list[TimelinePoint]:
    """Cumulative counts at up to TIMELINE_POINTS evenly spaced moments, the last row's
    included, after a zero at the job's start (the time before its first row shows)."""
    if not points:
        return []
    points.sort(key=lambda p: p[0])
    start, end = points[0][0], points[-1][0]
    head = [TimelinePoint(t=started, accepted=0, rejected=0)] if started is not None and started < start else []
    span = (end - start).total_seconds()
    steps = min(TIMELINE_POINTS, len(points)) if span > 0 else 1
    out, i, accepted, rejected = [], 0, 0, 0
    for step in range(1, steps + 1):
        moment = end if step == steps else datetime.fromtimestamp(start.timestamp() + span * step / steps, UTC)
        while i < len(points) and points[i][0] <= moment:
            accepted, rejected = accepted + points[i][1], rejected + (not points[i][1])
            i += 1
        out.append(TimelinePoint(t=moment, accepted=accepted, rejected=rejected))
    return head + out


def _histogram(values: list[float], edges: list[float]) -> Histogram:
    counts = [0] * (len(edges) - 1)
    for value in values:
        for i in range(len(counts)):
            if value < edges[i + 1] or i == len(counts) - 1:
                counts[i] += 1
                break
    return Histogram(edges=edges, counts=counts)


def _length_edges(values: list[int]) -> list[float]:
    top = max(values, default=0)
    width = max(1, -(-(top + 1) // LENGTH_BINS))  # ceil, so the largest value falls in the last bin
    return [float(width * i) for i in range(LENGTH_BINS + 1)]


def _words(text: str) -> int:
    return len(_WORD.findall(text))


@router.get("/stats", summary="Figures over a job's rows: progress over time, rules, diversity, sizes")
def job_stats(job_id: IdPath, session: SessionDep, owner: Owner) -> JobStats:
    job = owned(session, Job, job_id, owner, "job")
    points: list[tuple[datetime, bool]] = []
    rouge: list[float] = []
    instruction_words: dict[int, int] = {}
    rows = session.exec(select(Instruction.id, Instruction.created_at, Instruction.fate, Instruction.max_rouge_l,
                               Instruction.instruction).where(Instruction.job_id == job_id)
                        .order_by(Instruction.seq).execution_options(yield_per=2000))
    for ident, created, fate, max_rouge_l, text in rows:
        accepted = fate == Fate.accepted.value
        points.append((_aware(created), accepted))
        if accepted:
            instruction_words[ident] = _words(text)
            if max_rouge_l is not None:
                rouge.append(max_rouge_l)
    lengths: list[int] = []
    if instruction_words:
        instances = session.exec(select(Instance.instruction_id, Instance.input, Instance.output)
                                 .where(Instance.job_id == job_id, Instance.fate == Fate.accepted.value)
                                 .execution_options(yield_per=2000))
        lengths = [instruction_words.get(iid, 0) + _words(i) + _words(o) for iid, i, o in instances]
    counters = Counters.of(job)
    prompt, completion = counters.prompt_tokens, counters.completion_tokens
    threshold = (job.params or {}).get("rouge_l_threshold")
    return JobStats(
        rows=len(points),
        timeline=_timeline(points, _aware(job.started_at) if job.started_at else None),
        rejected_by_rule=dict(counters.rejected),
        instances_rejected_by_rule=dict(counters.instances_rejected),
        operations=counters.operation_dicts(),
        max_rouge_l_accepted=_histogram(rouge, [round(i / ROUGE_BINS, 2) for i in range(ROUGE_BINS + 1)]),
        rouge_l_threshold=threshold if isinstance(threshold, int | float) else None,
        example_words=_histogram([float(v) for v in lengths], _length_edges(lengths)),
        tokens=Tokens(prompt=prompt, completion=completion,
                      per_curated_example=round((prompt + completion) / len(lengths), 1) if lengths else None),
    )


def _node(row: Instruction) -> LineageNode:
    return LineageNode(id=row.id, seq=row.seq, instruction=row.instruction, fate=row.fate, rule=row.rule,
                       operation=row.operation, round=row.round, children=[])


def _lineage(session: Session, job_id: int, row: Instruction) -> Lineage:
    path = [row]
    while path[0].parent_id is not None and len(path) <= LINEAGE_NODES:
        parent = session.get(Instruction, path[0].parent_id)
        if parent is None or parent.job_id != job_id:
            break
        path.insert(0, parent)
    root = _node(path[0])
    nodes, level, truncated = {root.id: root}, [root.id], False
    while level and not truncated:
        children = session.exec(select(Instruction).where(Instruction.job_id == job_id,
                                                          Instruction.parent_id.in_(level))
                                .order_by(Instruction.seq).limit(LINEAGE_NODES + 1 - len(nodes))).all()
        level = []
        for child in children:
            if len(nodes) >= LINEAGE_NODES:
                truncated = True
                break
            node = _node(child)
            nodes[child.id] = node
            nodes[child.parent_id].children.append(node)
            level.append(child.id)
    return Lineage(root=root, path=[r.id for r in path], truncated=truncated)


@router.get("/instructions/{instruction_id}/lineage",
            summary="The evolution tree of one row: its root first, operation and round on each edge")
def instruction_lineage(job_id: IdPath, instruction_id: IdPath, session: SessionDep, owner: Owner) -> Lineage:
    owned(session, Job, job_id, owner, "job")
    row = session.get(Instruction, instruction_id)
    if row is None or row.job_id != job_id:
        raise HTTPException(404, f"job {job_id} has no instruction with id {instruction_id}")
    return _lineage(session, job_id, row)

