"""Review of a dataset's latest version, a row at a time or over a query: accept, reject
(with a reason), edit the output, rate 1-5; then commit the review as a new version.

A decision is stored as soon as it is made (`example_reviews`, pending), with the reviewer
(the API key's owner) and the time, so a review survives a reload, can be undone, and
several reviewers see one progress. Committing turns the pending decisions into version
N+1 (`VersionKind.review`): rejected rows removed, edited rows corrected (a new row whose
`replaces_id` names the original, which stays in every earlier version), and the counts,
ratings and reasons under `counts.review`, which the card prints. The decisions are kept
with `committed_in = N+1`, so the diff of that version says why each row left.

Accepting or rating alone changes no row: such a review is kept pending and counted in
the next commit that rejects or edits something (`EmptyChange` until then).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.datasets.curation import Correction, ExampleQuery, apply_review, find_examples, live_rows
from app.core.datasets.errors import DatasetError, EmptyChange, VersionNotFound
from app.core.store import id_of
from app.models import Dataset, DatasetExample, DatasetVersion, ExampleReview, ReviewStatus, utcnow

# the short list the dashboard offers; any other reason may be typed
REASONS = ("wrong answer", "incomplete answer", "off topic", "unsafe or harmful", "duplicate", "low quality")
MAX_REASON = 500
STATUSES = tuple(s.value for s in ReviewStatus)
_CHUNK = 1000


def _latest(session: Session, dataset: Dataset) -> int:
    number = v.latest_number(session, id_of(dataset))
    if number == 0:
        raise EmptyChange(f"dataset {dataset.name!r} has no version yet: nothing to review")
    return number


def _check(status: str, reason: str | None, rating: int | None, output: str | None) -> None:
    if status not in STATUSES:
        raise DatasetError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    if rating is not None and not 1 <= rating <= 5:
        raise DatasetError(f"rating: {rating} is not between 1 and 5")
    if reason is not None and len(reason) > MAX_REASON:
        raise DatasetError(f"reason: longer than {MAX_REASON} characters")
    if status == ReviewStatus.edited.value and (output is None or not output.strip()):
        raise DatasetError("output: an edit needs the new output (not empty)")
    if status != ReviewStatus.edited.value and output is not None:
        raise DatasetError(f"output: only an edit carries a new output (status is {status})")


def _pending(session: Session, dataset_id: int, example_ids: Sequence[int] | None = None) -> list[ExampleReview]:
    stmt = select(ExampleReview).where(ExampleReview.dataset_id == dataset_id, col(ExampleReview.committed_in).is_(None))
    if example_ids is not None:
        out: list[ExampleReview] = []
        for start in range(0, len(example_ids), _CHUNK):
            chunk = list(example_ids[start : start + _CHUNK])
            out += session.exec(stmt.where(col(ExampleReview.example_id).in_(chunk))).all()
        return out
    return list(session.exec(stmt.order_by(col(ExampleReview.id))).all())


def _store(session: Session, dataset_id: int, example_id: int, existing: ExampleReview | None, **fields: Any
           ) -> ExampleReview:
    row = existing or ExampleReview(dataset_id=dataset_id, example_id=example_id, **fields)
    for key, value in fields.items():
        setattr(row, key, value)
    row.reviewed_at = utcnow()
    session.add(row)
    return row


def mark(session: Session, dataset: Dataset, example_id: int, status: str, reviewer: str, *,
         reason: str | None = None, rating: int | None = None, output: str | None = None) -> ExampleReview:
    """Record (or replace) the pending decision on one row of the latest version. The caller commits."""
    _check(status, reason, rating, output)
    number = _latest(session, dataset)
    row = live_rows(session, id_of(dataset), [example_id], number)[example_id]
    if status == ReviewStatus.edited.value and output == row.output:
        raise EmptyChange(f"output: example {example_id} already reads so: nothing to edit")
    existing = next(iter(_pending(session, id_of(dataset), [example_id])), None)
    reason = reason.strip() or None if reason is not None else None
    return _store(session, id_of(dataset), example_id, existing, status=status, reason=reason, rating=rating,
                  output=output, reviewer=reviewer)


def unmark(session: Session, dataset: Dataset, example_id: int) -> None:
    """Undo: forget the pending decision on a row. `VersionNotFound` when there is none."""
    existing = _pending(session, id_of(dataset), [example_id])
    if not existing:
        raise VersionNotFound(f"example {example_id} has no pending review in dataset {dataset.name!r}")
    for row in existing:
        session.delete(row)


def mark_matching(session: Session, dataset: Dataset, query: ExampleQuery, status: str, reviewer: str, *,
                  reason: str | None = None) -> int:
    """Accept or reject every row of the latest version that `query` matches (e.g. judge
    quality <= 2); returns how many. Edits are one row at a time. The caller commits."""
    if status == ReviewStatus.edited.value:
        raise DatasetError("status: a bulk action accepts or rejects; edit rows one at a time")
    _check(status, reason, None, None)
    number = _latest(session, dataset)
    ids = [row["id"] for row in find_examples(session, id_of(dataset), number, query)]
    existing = {r.example_id: r for r in _pending(session, id_of(dataset), ids)}
    reason = reason.strip() or None if reason is not None else None
    for example_id in ids:
        _store(session, id_of(dataset), example_id, existing.get(example_id), status=status, reason=reason,
               rating=existing[example_id].rating if example_id in existing else None, output=None,
               reviewer=reviewer)
    return len(ids)


def count_matching(session: Session, dataset: Dataset, query: ExampleQuery) -> int:
    """How many rows of the latest version `query` matches (a bulk action's preview)."""
    return sum(1 for _ in find_examples(session, id_of(dataset), _latest(session, dataset), query))


def as_dict(row: ExampleReview) -> dict[str, Any]:
    return {"status": row.status, "reason": row.reason, "rating": row.rating, "output": row.output,
            "reviewer": row.reviewer, "reviewed_at": row.reviewed_at, "committed_in": row.committed_in}


def pending_for(session: Session, dataset_id: int, example_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Example id -> its pending decision, for a page of rows."""
    return {r.example_id: as_dict(r) for r in _pending(session, dataset_id, list(example_ids))}


def committed_for(session: Session, dataset_id: int, example_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Example id -> the committed decision that removed or replaced it, for a diff's rows."""
    out: dict[int, dict[str, Any]] = {}
    ids = list(example_ids)
    for start in range(0, len(ids), _CHUNK):
        rows = session.exec(
            select(ExampleReview).where(
                ExampleReview.dataset_id == dataset_id, col(ExampleReview.committed_in).is_not(None),
                col(ExampleReview.example_id).in_(ids[start : start + _CHUNK]),
            ).order_by(col(ExampleReview.committed_in))
        ).all()
        out.update({r.example_id: as_dict(r) for r in rows})
    return out


def progress(session: Session, dataset: Dataset) -> dict[str, Any]:
    """How far the review of the latest version is: rows, decided by status, rated, reviewers."""
    latest = v.latest_version(session, id_of(dataset))
    rows = _pending(session, id_of(dataset))
    by_status = Counter(r.status for r in rows)
    total = latest.row_count if latest else 0
    return {
        "version": latest.number if latest else None, "total": total,
        "reviewed": len(rows), "unreviewed": max(0, total - len(rows)),
        **{s: by_status.get(s, 0) for s in STATUSES},
        "rated": sum(1 for r in rows if r.rating is not None),
        "reviewers": sorted({r.reviewer for r in rows}),
    }


def _figures(rows: Sequence[ExampleReview]) -> dict[str, Any]:
    by_status = Counter(r.status for r in rows)
    ratings = [r.rating for r in rows if r.rating is not None]
    reasons = Counter(r.reason or "no reason given" for r in rows if r.status == ReviewStatus.rejected.value)
    times = [r.reviewed_at for r in rows]
    return {
        **{s: by_status.get(s, 0) for s in STATUSES},
        "rated": len(ratings),
        "rating_mean": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "ratings": {str(k): n for k, n in sorted(Counter(ratings).items())},
        "reasons": dict(reasons.most_common()),
        "reviewers": sorted({r.reviewer for r in rows}),
        "first_reviewed_at": min(times).isoformat(timespec="seconds") if times else None,
        "last_reviewed_at": max(times).isoformat(timespec="seconds") if times else None,
    }


def commit_review(session: Session, dataset: Dataset, *, expected_latest: int | None = None) -> DatasetVersion:
    """The pending decisions as a new version (see the module). Decisions on rows that left
    the dataset since (another change) are dropped. Raises `EmptyChange` when no row is
    rejected or edited, `VersionConflict`. The caller commits."""
    change = v.begin_change(session, dataset, expected_latest)
    if change.parent is None:
        raise EmptyChange(f"dataset {dataset.name!r} has no version yet: nothing to review")
    rows = _pending(session, id_of(dataset))
    ids = [r.example_id for r in rows]
    still: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        still |= _live_ids(session, id_of(dataset), ids[start : start + _CHUNK])
    stale = [r for r in rows if r.example_id not in still]
    for r in stale:
        session.delete(r)
    rows = [r for r in rows if r.example_id in still]
    rejected = [r.example_id for r in rows if r.status == ReviewStatus.rejected.value]
    edited = [Correction(r.example_id, output=r.output) for r in rows if r.status == ReviewStatus.edited.value]
    if not rejected and not edited:
        raise EmptyChange(f"no row rejected or edited in the review of version {change.parent.number}: "
                          "accepting or rating alone makes no new version")
    figures = _figures(rows)
    figures["stale_dropped"] = len(stale)
    version = apply_review(session, change, rejected, edited, figures)
    for r in rows:
        r.committed_in = version.number
        session.add(r)
    session.flush()
    return version


def _live_ids(session: Session, dataset_id: int, ids: Sequence[int]) -> set[int]:
    return {ident for ident in session.exec(  # a stored row's id is never None
        select(col(DatasetExample.id)).where(
            DatasetExample.dataset_id == dataset_id, col(DatasetExample.id).in_(list(ids)),
            col(DatasetExample.removed_in).is_(None),
        )
    ).all() if ident is not None}


def forget_pending(session: Session, dataset: Dataset) -> int:
    """Drop every pending decision on the dataset (start the review again); returns how many."""
    result = session.exec(  # a DELETE: a cursor result, with the rows it removed
        delete(ExampleReview).where(col(ExampleReview.dataset_id) == id_of(dataset),
                                    col(ExampleReview.committed_in).is_(None))
    )
    return result.rowcount or 0
