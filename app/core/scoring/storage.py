"""Judge scores in SQL (`example_scores`): stored per (instance, aspect, judge), read back
per example.

Why per judge: old data can be scored again by a better judge later; that judge's rows
stand beside the first one's, and a reader picks a judge or takes the latest score of
each aspect. The same judge scoring again replaces its own rows (an upsert on the unique
(instance, aspect, judge)), so a resumed or repeated scoring job never stores twice.

An example's scores in flat form (`flat`: `quality`, `complexity`, `judge`) are what the
exports and a dataset's examples carry, so a removal query (`score="quality"`) and a
Parquet reader see the same numbers as the results API.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, and_, exists, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.core.scoring.judge import ERROR, OK, UNPARSEABLE, JudgeScore
from app.models import ExampleScore, Fate, Instance, Instruction, utcnow

_CHUNK = 1000


@dataclass
class ExampleToScore:
    instance_id: int
    instruction_id: int
    instruction: str
    input: str
    output: str


def examples_of(session: Session, job_id: int, *, only_accepted: bool = True) -> list[ExampleToScore]:
    """The job's examples in its order: its curated ones (accepted instances of accepted
    instructions), or every instance it stored."""
    query = (sa_select(col(Instance.id), col(Instruction.id), col(Instruction.instruction), col(Instance.input),
                       col(Instance.output))
             .join(Instruction, col(Instance.instruction_id) == col(Instruction.id))
             .where(col(Instance.job_id) == job_id))
    if only_accepted:
        query = query.where(col(Instruction.fate) == Fate.accepted.value, col(Instance.fate) == Fate.accepted.value)
    rows = session.execute(query.order_by(col(Instruction.seq), col(Instance.position))).all()
    return [ExampleToScore(*row) for row in rows]


def done_by(session: Session, job_id: int, judge: str, aspects: Sequence[str],
            scoring_job_id: int | None = None) -> set[int]:
    """Instances of the job that `judge` has an answer for on every aspect (an error is
    not an answer: it is asked again); with `scoring_job_id`, answers that job stored."""
    query = (select(ExampleScore.instance_id, ExampleScore.aspect)
             .where(ExampleScore.job_id == job_id, ExampleScore.judge == judge,
                    col(ExampleScore.aspect).in_(list(aspects)), col(ExampleScore.status).in_([OK, UNPARSEABLE])))
    if scoring_job_id is not None:
        query = query.where(ExampleScore.scoring_job_id == scoring_job_id)
    rows = session.exec(query).all()
    seen = Counter(instance_id for instance_id, _ in rows)
    return {instance_id for instance_id, n in seen.items() if n >= len(set(aspects))}


def to_score(session: Session, job_id: int, judge: str, aspects: Sequence[str], *,
             only_accepted: bool = True) -> list[ExampleToScore]:
    """The job's examples `judge` has not answered for yet (a resumed scoring job's rest)."""
    done = done_by(session, job_id, judge, aspects)
    return [e for e in examples_of(session, job_id, only_accepted=only_accepted) if e.instance_id not in done]


def save(session: Session, job_id: int, scoring_job_id: int | None,
         items: Iterable[tuple[int, Mapping[str, JudgeScore]]]) -> int:
    """Store each instance's scores, replacing what the same judge said before on the same
    aspect (the caller commits); returns the rows written."""
    now = utcnow()
    values: list[dict[str, Any]] = [{"instance_id": instance_id, "job_id": job_id, "scoring_job_id": scoring_job_id,
               "aspect": s.aspect, "judge": s.judge, "score": s.score, "parsed": s.parsed, "raw": s.raw,
               "status": s.status, "from_logprobs": s.from_logprobs, "created_at": now}
              for instance_id, scores in items for s in scores.values()]
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        keys = ["instance_id", "aspect", "judge"]
        replaced = ("scoring_job_id", "score", "parsed", "raw", "status", "from_logprobs", "created_at")
        upsert: Executable
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(ExampleScore)
            upsert = pg.on_conflict_do_update(index_elements=keys, set_={name: pg.excluded[name] for name in replaced})
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            lite = sqlite_insert(ExampleScore)
            upsert = lite.on_conflict_do_update(index_elements=keys,
                                                set_={name: lite.excluded[name] for name in replaced})
        session.execute(upsert, values)
        return len(values)
    for value in values:  # other databases: look up, then update or insert
        row = session.exec(select(ExampleScore).where(ExampleScore.instance_id == value["instance_id"],
                                                      ExampleScore.aspect == value["aspect"],
                                                      ExampleScore.judge == value["judge"])).first()
        if row is None:
            session.add(ExampleScore(**value))
        else:
            for key, item in value.items():
                setattr(row, key, item)
    session.flush()
    return len(values)


def _newer(a: ExampleScore, b: ExampleScore) -> bool:
    return (a.created_at, a.id) > (b.created_at, b.id)


def scores_of(session: Session, instance_ids: Sequence[int], judge: str | None = None
              ) -> dict[int, dict[str, ExampleScore]]:
    """{instance id: {aspect: row}}: `judge`'s rows, or the latest row of each aspect."""
    out: dict[int, dict[str, ExampleScore]] = {}
    ids = list(instance_ids)
    for start in range(0, len(ids), _CHUNK):
        query = select(ExampleScore).where(col(ExampleScore.instance_id).in_(ids[start:start + _CHUNK]))
        if judge is not None:
            query = query.where(ExampleScore.judge == judge)
        for row in session.exec(query).all():
            aspects = out.setdefault(row.instance_id, {})
            held = aspects.get(row.aspect)
            if held is None or _newer(row, held):
                aspects[row.aspect] = row
    return out


def flat(aspects: Mapping[str, ExampleScore]) -> dict[str, Any]:
    """`{"quality": 4.2, "complexity": 2.9, "judge": "model"}`: each aspect's score (None
    when the answer was unparseable or failed) and the judge; an aspect another judge
    scored names its judge as `<aspect>_judge`."""
    if not aspects:
        return {}
    order = sorted(aspects, key=lambda a: (a != "quality", a))
    judge = aspects[order[0]].judge
    out: dict[str, Any] = {aspect: aspects[aspect].score for aspect in order}
    out["judge"] = judge
    for aspect in order[1:]:
        if aspects[aspect].judge != judge:
            out[f"{aspect}_judge"] = aspects[aspect].judge
    return out


def job_example_scores(session: Session, job_id: int, judge: str | None = None
                       ) -> dict[tuple[int, str, str], dict[str, Any]]:
    """The flat scores of a job's examples, keyed as its export rows can look them up:
    (instruction id, input, output)."""
    rows = session.exec(select(Instance.id, Instance.instruction_id, Instance.input, Instance.output)
                        .where(Instance.job_id == job_id,
                               exists().where(col(ExampleScore.instance_id) == col(Instance.id)))).all()
    scores = scores_of(session, [r[0] for r in rows if r[0] is not None], judge)  # a stored row's id is never None
    return {(r[1], r[2], r[3]): flat(scores[r[0]]) for r in rows if r[0] in scores}


def with_scores(rows: Iterable[dict[str, Any]], scores: Mapping[tuple[int, str, str], dict[str, Any]]
                ) -> Iterable[dict[str, Any]]:
    """Export rows (`id` the instruction's) with the judge's scores merged into `scores`."""
    for row in rows:
        ident = row.get("id")  # an instruction's id: a row without one has no scores
        judged = scores.get((ident, row.get("input", ""), row.get("output", ""))) if isinstance(ident, int) else None
        if judged:
            row = {**row, "scores": {**(row.get("scores") or {}), **judged}}
        yield row


def score_at_least(instance_id: Any, aspect: str, minimum: float, judge: str | None = None) -> Any:
    """A SQL condition on an instance id column: its `aspect` score is at least `minimum`
    (`judge`'s score, or the latest one of that aspect)."""
    # an alias's columns are SQL expressions, which the model types as the values they hold
    s: Any = aliased(ExampleScore)
    condition = exists().where(s.instance_id == instance_id, s.aspect == aspect, s.score >= minimum)
    if judge is not None:
        return condition.where(s.judge == judge)
    t: Any = aliased(ExampleScore)
    newer = exists().where(t.instance_id == s.instance_id, t.aspect == s.aspect,
                           or_(t.created_at > s.created_at, and_(t.created_at == s.created_at, t.id > s.id)))
    return condition.where(~newer)


def judges_of(session: Session, job_id: int) -> list[dict[str, Any]]:
    """The judges that scored a job's examples, the latest first: each with the aspects it
    scored, how many examples it has a row for, and when it last scored (what a reader
    picks a judge from when several scored the same job)."""
    rows = session.exec(select(ExampleScore.judge, ExampleScore.aspect, func.count(col(ExampleScore.id)),
                               func.max(ExampleScore.created_at))
                        .where(ExampleScore.job_id == job_id)
                        .group_by(ExampleScore.judge, ExampleScore.aspect)).all()
    judges: dict[str, dict[str, Any]] = {}
    for judge, aspect, n, last in rows:
        entry = judges.setdefault(judge, {"judge": judge, "aspects": [], "examples": 0, "last_scored_at": last})
        entry["aspects"].append(aspect)
        entry["examples"] = max(entry["examples"], n)  # one row per example and aspect
        entry["last_scored_at"] = max(entry["last_scored_at"], last)
    for entry in judges.values():
        entry["aspects"].sort(key=lambda a: (a != "quality", a))
    return sorted(judges.values(), key=lambda e: (e["last_scored_at"], e["judge"]), reverse=True)


def summary(session: Session, job_id: int, judge: str, aspects: Sequence[str],
            scoring_job_id: int | None = None) -> dict[str, Any]:
    """Per aspect, over the job's examples this judge scored (with `scoring_job_id`: in
    that job): how many, mean and median of the scores, the histogram of the digits
    answered (1-6), unparseable and failed answers."""
    out: dict[str, Any] = {"judge": judge}
    for aspect in aspects:
        query = (select(ExampleScore.score, ExampleScore.parsed, ExampleScore.status)
                 .where(ExampleScore.job_id == job_id, ExampleScore.judge == judge, ExampleScore.aspect == aspect))
        if scoring_job_id is not None:
            query = query.where(ExampleScore.scoring_job_id == scoring_job_id)
        rows = session.exec(query).all()
        values = [score for score, _, status in rows if status == OK and score is not None]
        digits = Counter(parsed for _, parsed, status in rows if status == OK and parsed is not None)
        out[aspect] = {
            "scored": len(values),
            "unparseable": sum(1 for *_, status in rows if status == UNPARSEABLE),
            "errors": sum(1 for *_, status in rows if status == ERROR),
            "mean": round(statistics.fmean(values), 4) if values else None,
            "median": round(statistics.median(values), 4) if values else None,
            "histogram": {str(i): digits.get(i, 0) for i in range(1, 7)},
        }
    return out
