"""A job's instructions and instances: paged, filtered by fate, rule and the LLM judge's
quality score (`min_quality`, `judge`), searched by text; each instance with its judge scores;
and the judges that scored the job (what a `judge=` can name).

`q` is a case-insensitive substring match (ILIKE; SQLite and PostgreSQL alike), with `%`
and `_` taken literally. Instructions are in decision order (`seq`) unless `sort` asks for
the most or least similar first (rows without a score last).

Both lists page by `offset`, or by keyset: each page's `next_after` names its last row's
sort key, and `after=` that value starts the next page just past it through the index,
where an `offset` deep into a million-row job makes the database walk every row before it.
The score sorts read their keyset pages (and their first page) through the index on
(`job_id`, `max_rouge_l`, `seq`) in up to three ordered parts: the rows tied with the key,
the scored rows beyond it, then the unscored ones by `seq`; each part an index range. A
page by offset reads the same parts from the offset within each (the unscored rows counted
on their own index range), and first reads only the keys of the rows from the offset, so
a deep page walks the index or sorts narrow keys instead of sorting whole rows.

`total` is a count of the matching rows, which at a million rows costs as much as the page
itself: it is counted on a page asked for by offset (the first page among them) and when
`count=true`, and left null on a page asked for by `after`, whose client has the total of
the page it started from (the dashboard asks for it again while the job runs).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import exists, func
from sqlmodel import Session, select

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Text
from app.api.schemas.results import (
    InstanceOut,
    InstanceWithInstruction,
    InstructionOut,
    JudgeList,
    JudgeOut,
    ResultsPage,
    ScoreOut,
)
from app.core.scoring import storage
from app.models import Fate, Instance, Instruction, Job

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"], route_class=LimitedJsonRoute)

FateQ = Annotated[Fate | None, Query(description="accepted or rejected.")]
RuleQ = Annotated[str | None, Query(max_length=64, description="Only rejections by this rule (e.g. too_similar).")]
SearchQ = Annotated[Text | None, Query(max_length=500, description="Case-insensitive text search.")]
LimitQ = Annotated[int, Query(ge=1, le=MAX_PAGE)]
OffsetQ = Annotated[int, Query(ge=0, le=2**31)]
AfterQ = Annotated[str | None, Query(max_length=64, description="Start just past this row: a page's `next_after` "
                                    "(keyset paging; with the same `sort`, and `offset` left at 0).")]
CountQ = Annotated[bool | None, Query(description="Count the matching rows (`total`): by default on a page by "
                                      "offset, not on a page by `after` (where `total` is then null).")]
MinQualityQ = Annotated[float | None, Query(ge=0, le=6, description="Only examples whose LLM-judge quality score "
                                            "(1-6) is at least this (the `judge=` judge's, else the latest).")]
JudgeQ = Annotated[str | None, Query(min_length=1, max_length=200,
                                     description="The judge model whose scores are shown and filtered on.")]
SortQ = Annotated[Literal["seq", "-seq", "max_rouge_l", "-max_rouge_l"],
                  Query(description="Order: seq (decision order), max_rouge_l; a leading - reverses it.")]
ORDER = {
    "seq": (Instruction.seq,),
    "-seq": (Instruction.seq.desc(),),
    "max_rouge_l": (Instruction.max_rouge_l.asc().nulls_last(), Instruction.seq),
    "-max_rouge_l": (Instruction.max_rouge_l.desc().nulls_last(), Instruction.seq),
}


def _bad_key(sort: str, after: str) -> Exception:
    return field_error(["query", "after"], f"not a key of sort={sort} (use a page's next_after): {after!r}")


def _after_seq(query, sort: str, after: str):
    """`query` restricted to the rows that come after the key `after` in a `seq` order."""
    try:
        seq = int(after)
    except ValueError:
        raise _bad_key(sort, after) from None
    return query.where(Instruction.seq > seq if sort == "seq" else Instruction.seq < seq)


def _score_key(sort: str, after: str) -> tuple[float | None, int]:
    """A score sort's key `score:seq` (`null:seq` for an unscored row)."""
    try:
        value, seq_text = after.rsplit(":", 1)
        seq = int(seq_text)
        score = None if value == "null" else float(value)
        if score is not None and not math.isfinite(score):
            raise ValueError(value)
    except ValueError:
        raise _bad_key(sort, after) from None
    return score, seq


def _score_parts(query, sort: str, key: tuple[float | None, int] | None) -> list:
    """The rows after `key` (None: from the start) in a score sort, as ordered parts whose
    concatenation is the sort's order, each one an index range on (job_id, max_rouge_l, seq).

    One query with `OR`s (beyond the score, or tied and past the seq, or unscored) makes the
    database collect and sort every row after the key; the parts let it stop at the page.
    The scored part is ordered without NULLS LAST (it holds no NULL), so PostgreSQL reads the
    descending sort backwards along the index (ties by seq sorted incrementally)."""
    score_col = Instruction.max_rouge_l
    desc = sort == "-max_rouge_l"
    by_score = (score_col.desc() if desc else score_col.asc(), Instruction.seq)
    unscored = query.where(score_col.is_(None))
    if key is None:
        return [query.where(score_col.is_not(None)).order_by(*by_score), unscored.order_by(Instruction.seq)]
    score, seq = key
    if score is None:  # past every scored row: the unscored ones, by seq
        return [unscored.where(Instruction.seq > seq).order_by(Instruction.seq)]
    return [query.where(score_col == score, Instruction.seq > seq).order_by(Instruction.seq),
            query.where(score_col < score if desc else score_col > score).order_by(*by_score),
            unscored.order_by(Instruction.seq)]


def _deferred(session: Session, job_id: int, ordered, offset: int, n: int) -> list[Instruction]:
    """`n` rows of the ordered query from `offset`, the rows skipped read as their `seq`
    alone (from the index, without the rows' text), then the page's rows by (job_id, seq)."""
    seqs = list(session.scalars(ordered.with_only_columns(Instruction.seq).offset(offset).limit(n)))
    if not seqs:
        return []
    found = {r.seq: r for r in session.exec(select(Instruction).where(Instruction.job_id == job_id,
                                                                         Instruction.seq.in_(seqs)))}
    return [found[seq] for seq in seqs]


def _score_page_by_offset(session: Session, job_id: int, query, sort: str, offset: int, n: int,
                          total: int | None) -> list[Instruction]:
    """A score sort's page by offset, as the two parts of `_score_parts` (the scored rows by
    score, then the unscored ones by seq), each walked along the index from the offset
    within it: one query over every row with NULLS LAST does not match the index's
    backward order, so the database sorted the whole job for a deep page.

    The unscored rows are an index range of their own (`max_rouge_l IS NULL`), so they are
    counted cheaply; the scored ones are the page's `total` less those (counted when the
    page has no total)."""
    scored_part, unscored_part = _score_parts(query, sort, None)
    unscored = session.exec(select(func.count()).select_from(
        query.where(Instruction.max_rouge_l.is_(None)).subquery())).one()
    scored = total - unscored if total is not None else session.exec(select(func.count()).select_from(
        query.where(Instruction.max_rouge_l.is_not(None)).subquery())).one()
    rows: list[Instruction] = []
    if offset < scored:
        rows = _deferred(session, job_id, scored_part, offset, n)
        offset = 0
    else:
        offset -= scored
    if len(rows) < n and offset < unscored:
        rows += _deferred(session, job_id, unscored_part, offset, n - len(rows))
    return rows


def _key_of(row: Instruction, sort: str) -> str:
    if sort in ("seq", "-seq"):
        return str(row.seq)
    return f"{'null' if row.max_rouge_l is None else repr(float(row.max_rouge_l))}:{row.seq}"


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scores(session: Session, instance_ids: list[int], judge: str | None) -> dict[int, dict[str, ScoreOut]]:
    found = storage.scores_of(session, instance_ids, judge)
    return {i: {aspect: ScoreOut.model_validate(row.model_dump()) for aspect, row in aspects.items()}
            for i, aspects in found.items()}


def _instances_of(session: Session, ids: list[int], judge: str | None) -> dict[int, list[InstanceOut]]:
    out: dict[int, list[InstanceOut]] = defaultdict(list)
    if ids:
        rows = session.exec(select(Instance).where(Instance.instruction_id.in_(ids))
                            .order_by(Instance.instruction_id, Instance.position)).all()
        scores = _scores(session, [r.id for r in rows], judge)
        for r in rows:
            out[r.instruction_id].append(InstanceOut(**r.model_dump(), scores=scores.get(r.id, {})))
    return out


def _with_pool_fates(session: Session, job_id: int, rows: list[Instruction]) -> list[dict]:
    """Each row's `most_similar` entries with the fate that pool row ended with.

    A `too_similar` rejection names the pool rows it was measured against; a pool row can
    still end outside the dataset (e.g. `over_target`, or its instances all rejected), and
    the evidence must say so rather than point at a row that is not in the dataset. An entry
    that matches none of the job's rows (a seed) is left as it is.
    """
    texts = {e.get("instruction") for r in rows for e in r.most_similar} - {None}
    found: dict[str, Instruction] = {}
    if texts:
        matches = session.exec(select(Instruction).where(Instruction.job_id == job_id,
                                                         Instruction.instruction.in_(texts))
                               .order_by(Instruction.in_pool.desc(), Instruction.seq)).all()
        for m in matches:
            found.setdefault(m.instruction, m)
    out = []
    for r in rows:
        similar = []
        for e in r.most_similar:
            m = found.get(e.get("instruction"))
            similar.append({**e, "id": m.id, "seq": m.seq, "fate": m.fate, "rule": m.rule} if m else dict(e))
        out.append(similar)
    return out


@router.get("/instructions", summary="The job's candidate instructions, with fate, rule and instances")
def list_instructions(job_id: IdPath, session: SessionDep, owner: Owner, fate: FateQ = None, rule: RuleQ = None,
                      q: SearchQ = None, sort: SortQ = "seq", limit: LimitQ = 50,
                      offset: OffsetQ = 0, after: AfterQ = None, min_quality: MinQualityQ = None,
                      judge: JudgeQ = None, count: CountQ = None) -> ResultsPage[InstructionOut]:
    owned(session, Job, job_id, owner, "job")
    query = select(Instruction).where(Instruction.job_id == job_id)
    if fate is not None:
        query = query.where(Instruction.fate == fate.value)
    if rule is not None:
        query = query.where(Instruction.rule == rule)
    if q:
        query = query.where(Instruction.instruction.ilike(_like(q), escape="\\"))
    if min_quality is not None:  # an instruction with at least one instance of that quality
        query = query.where(exists().where(Instance.instruction_id == Instruction.id,
                                           storage.score_at_least(Instance.id, "quality", min_quality, judge)))
    total = session.exec(select(func.count()).select_from(query.subquery())).one() \
        if _counted(count, after) else None
    if after is not None:
        _no_offset_with(after, offset)
    if sort in ("seq", "-seq"):
        if after is not None:
            query = _after_seq(query, sort, after)
        ordered = query.order_by(*ORDER[sort])
        rows = _deferred(session, job_id, ordered, offset, limit + 1) if offset else \
            list(session.exec(ordered.limit(limit + 1)).all())
    elif offset:
        rows = _score_page_by_offset(session, job_id, query, sort, offset, limit + 1, total)
    else:
        rows = []
        for part in _score_parts(query, sort, None if after is None else _score_key(sort, after)):
            rows += session.exec(part.limit(limit + 1 - len(rows))).all()
            if len(rows) > limit:
                break
    more, rows = len(rows) > limit, rows[:limit]
    instances = _instances_of(session, [r.id for r in rows], judge)
    similar = _with_pool_fates(session, job_id, rows)
    items = [InstructionOut(**{**r.model_dump(), "most_similar": s}, instances=instances.get(r.id, []))
             for r, s in zip(rows, similar)]
    return ResultsPage(items=items, total=total, limit=limit, offset=offset,
                       next_after=_key_of(rows[-1], sort) if more else None)


def _counted(count: bool | None, after: str | None) -> bool:
    """Whether a page counts its `total`: when asked (`count`), else on a page by offset."""
    return count if count is not None else after is None


def _no_offset_with(after: str, offset: int) -> None:
    if offset:
        raise field_error(["query", "offset"], f"give offset or after, not both (offset={offset}, after={after!r})")


@router.get("/instances", summary="The job's instances (input/output pairs), with fate and rule")
def list_instances(job_id: IdPath, session: SessionDep, owner: Owner, fate: FateQ = None, rule: RuleQ = None,
                   q: SearchQ = None, limit: LimitQ = 50, offset: OffsetQ = 0, after: AfterQ = None,
                   min_quality: MinQualityQ = None, judge: JudgeQ = None,
                   count: CountQ = None) -> ResultsPage[InstanceWithInstruction]:
    owned(session, Job, job_id, owner, "job")
    on_instances = [Instance.job_id == job_id]  # filters on the instances alone
    if fate is not None:
        on_instances.append(Instance.fate == fate.value)
    if rule is not None:
        on_instances.append(Instance.rule == rule)
    if min_quality is not None:
        on_instances.append(storage.score_at_least(Instance.id, "quality", min_quality, judge))
    query = select(Instance, Instruction.instruction, Instruction.seq) \
        .join(Instruction, Instance.instruction_id == Instruction.id).where(*on_instances)
    total = None
    if q:
        pattern = _like(q)
        query = query.where(Instance.input.ilike(pattern, escape="\\") | Instance.output.ilike(pattern, escape="\\")
                            | Instruction.instruction.ilike(pattern, escape="\\"))
        if _counted(count, after):
            total = session.exec(select(func.count()).select_from(query.subquery())).one()
    elif _counted(count, after):  # the join changes no count: counted on the instances alone, much cheaper
        total = session.exec(select(func.count()).select_from(Instance).where(*on_instances)).one()
    if after is not None:
        _no_offset_with(after, offset)
        try:
            seq, position = (int(part) for part in after.split(":"))
        except ValueError:
            raise field_error(["query", "after"], f"not an instance key (use a page's next_after): {after!r}") from None
        # `seq >= ` first, on the instructions' (job_id, seq) index, so the database starts there
        query = query.where(Instruction.job_id == job_id, Instruction.seq >= seq,
                            (Instruction.seq > seq) | (Instance.position > position))
    ordered = query.order_by(Instruction.seq, Instance.position)
    if offset:  # the rows skipped are sorted as ids alone, without their text; then the page's rows by id
        ids = list(session.scalars(ordered.with_only_columns(Instance.id).offset(offset).limit(limit + 1)))
        found = {row[0].id: row for row in session.exec(
            select(Instance, Instruction.instruction, Instruction.seq)
            .join(Instruction, Instance.instruction_id == Instruction.id).where(Instance.id.in_(ids)))} if ids else {}
        rows = [found[i] for i in ids]
    else:
        rows = list(session.exec(ordered.limit(limit + 1)).all())
    more, rows = len(rows) > limit, rows[:limit]
    scores = _scores(session, [inst.id for inst, _, _ in rows], judge)
    items = [InstanceWithInstruction(**inst.model_dump(), instruction=text, scores=scores.get(inst.id, {}))
             for inst, text, _ in rows]
    return ResultsPage(items=items, total=total, limit=limit, offset=offset,
                       next_after=f"{rows[-1][2]}:{rows[-1][0].position}" if more else None)


@router.get("/judges", summary="The LLM judges that scored the job's examples, the latest first")
def list_judges(job_id: IdPath, session: SessionDep, owner: Owner) -> JudgeList:
    owned(session, Job, job_id, owner, "job")
    return JudgeList(items=[JudgeOut(**entry) for entry in storage.judges_of(session, job_id)])
