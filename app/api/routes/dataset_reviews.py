"""Review of a dataset's latest version (`app.core.datasets.review`): a decision per row
(accept, reject with a reason, edit, rate), undo, a bulk decision over a query, the
progress, and the commit that makes the reviewed version (then handed off like any
curated version). The reviewer is the API key's owner; another owner's dataset is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from app.api.datasets_shared import CONFLICT, NamePath, dataset_of, defaults_of, queue_handoff, version_out
from app.api.deps import DispatcherDep, Owner, SessionDep, SettingsDep
from app.api.errors import LimitedJsonRoute
from app.api.schemas.common import MAX_ID
from app.api.schemas.datasets import VersionOut
from app.api.schemas.reviews import (
    BulkOut,
    BulkReview,
    ReviewCommit,
    ReviewMark,
    ReviewOut,
    ReviewProgress,
    ReviewState,
)
from app.core.datasets import review

router = APIRouter(prefix="/datasets", tags=["review"], route_class=LimitedJsonRoute)
ExamplePath = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The example's id (a row of the latest version).")]


@router.get("/{name}/review", summary="The review of the latest version: progress and the reasons offered")
def get_review(name: NamePath, session: SessionDep, owner: Owner) -> ReviewState:
    return ReviewState(**review.progress(session, dataset_of(session, owner, name)), reasons=list(review.REASONS))


@router.put("/{name}/review/rows/{example_id}", summary="Accept, reject (with a reason), edit or rate one row")
def mark_row(name: NamePath, example_id: ExamplePath, body: ReviewMark, session: SessionDep,
             owner: Owner) -> ReviewOut:
    dataset = dataset_of(session, owner, name)
    row = review.mark(session, dataset, example_id, body.status, owner, reason=body.reason, rating=body.rating,
                      output=body.output)
    session.commit()
    return ReviewOut(**review.as_dict(row))


@router.delete("/{name}/review/rows/{example_id}", status_code=204, summary="Undo: forget the decision on a row")
def unmark_row(name: NamePath, example_id: ExamplePath, session: SessionDep, owner: Owner) -> Response:
    review.unmark(session, dataset_of(session, owner, name), example_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{name}/review/bulk", summary="Accept or reject every row of the latest version a query matches")
def bulk(name: NamePath, body: BulkReview, session: SessionDep, owner: Owner) -> BulkOut:
    dataset = dataset_of(session, owner, name)
    if body.preview:
        return BulkOut(marked=review.count_matching(session, dataset, body.query), preview=True,
                       progress=ReviewProgress(**review.progress(session, dataset)))
    marked = review.mark_matching(session, dataset, body.query, body.status, owner, reason=body.reason)
    session.commit()
    return BulkOut(marked=marked, progress=ReviewProgress(**review.progress(session, dataset)))


@router.delete("/{name}/review", status_code=204, summary="Forget every pending decision (start again)")
def forget(name: NamePath, session: SessionDep, owner: Owner) -> Response:
    review.forget_pending(session, dataset_of(session, owner, name))
    session.commit()
    return Response(status_code=204)


@router.post("/{name}/review/commit", status_code=201, responses=CONFLICT,
             summary="Commit the review: a new version without the rejected rows, with the edits; card and diff "
                     "carry the counts and reasons")
def commit(name: NamePath, session: SessionDep, owner: Owner, settings: SettingsDep, dispatcher: DispatcherDep,
           body: ReviewCommit | None = None) -> VersionOut:
    dataset = dataset_of(session, owner, name)
    version = review.commit_review(session, dataset, expected_latest=(body or ReviewCommit()).expected_latest)
    session.commit()
    queue_handoff(session, dispatcher, dataset, version, defaults_of(settings))
    return version_out(session, version)
