"""What changed between two versions of one dataset: the rows added and the rows removed.

Membership makes a diff a range query, not a comparison of two row sets: going from
version a to a later version b, the added rows are those with a < added_in <= b still
present in b, and the removed rows those present in a with a < removed_in <= b (the
`(dataset_id, removed_in)` index finds them). From a later version to an earlier one the
two sides swap. A corrected example shows as one removed row and one added row whose
`replaces_id` names the removed one; `corrected` counts such pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.datasets.errors import CrossDatasetDiff, DatasetError
from app.models import DatasetExample, DatasetVersion

Side = Literal["added", "removed"]


@dataclass
class VersionDiff:
    """Counts of the change from version `a` to version `b` (rows: `diff_rows`)."""

    dataset_id: int
    a: int
    b: int
    added: int
    removed: int
    corrected: int  # added rows that replace a removed row
    added_by_method: dict[str, int] = field(default_factory=dict)
    removed_by_method: dict[str, int] = field(default_factory=dict)
    content_changed: bool = False  # the two content hashes differ


def _appeared(lo: int, hi: int) -> Any:
    """Rows present in version hi and absent from version lo < hi."""
    return and_(col(DatasetExample.added_in) > lo, col(DatasetExample.added_in) <= hi, v.live_at(hi))


def _disappeared(lo: int, hi: int) -> Any:
    """Rows present in version lo < hi and absent from version hi."""
    return and_(
        col(DatasetExample.added_in) <= lo, col(DatasetExample.removed_in) > lo, col(DatasetExample.removed_in) <= hi
    )


def _condition(a: int, b: int, side: Side) -> Any:
    if a < b:
        return _appeared(a, b) if side == "added" else _disappeared(a, b)
    return _disappeared(b, a) if side == "added" else _appeared(b, a)


def side_condition(a: int, b: int, side: Side) -> Any:
    """The SQL condition "the row is on `side` of the change from version a to version b"."""
    if side not in ("added", "removed"):
        raise DatasetError(f"side: 'added' or 'removed', got {side!r}")
    return _condition(a, b, side)


def _check(a: DatasetVersion, b: DatasetVersion) -> None:
    if a.dataset_id != b.dataset_id:
        raise CrossDatasetDiff("a diff compares two versions of one dataset; these belong to two datasets")


def _by_method(session: Session, dataset_id: int, condition: Any) -> dict[str, int]:
    rows = session.exec(
        select(DatasetExample.method, func.count())
        .where(DatasetExample.dataset_id == dataset_id, condition)
        .group_by(DatasetExample.method)
    ).all()
    return dict(sorted((m, n) for m, n in rows))


def diff(session: Session, a: DatasetVersion, b: DatasetVersion) -> VersionDiff:
    """Counts of the change from `a` to `b` (any order; a == b is an empty diff).
    Raises `CrossDatasetDiff` when they belong to different datasets."""
    _check(a, b)
    ds = a.dataset_id
    if a.number == b.number:
        return VersionDiff(ds, a.number, b.number, 0, 0, 0)
    added = _by_method(session, ds, _condition(a.number, b.number, "added"))
    removed = _by_method(session, ds, _condition(a.number, b.number, "removed"))
    replaced = select(DatasetExample.id).where(
        DatasetExample.dataset_id == ds, _condition(a.number, b.number, "removed")
    )
    corrected = session.exec(
        select(func.count()).where(
            DatasetExample.dataset_id == ds, _condition(a.number, b.number, "added"),
            col(DatasetExample.replaces_id).in_(replaced),
        )
    ).one()
    return VersionDiff(
        ds, a.number, b.number, sum(added.values()), sum(removed.values()), corrected,
        added, removed, a.content_hash != b.content_hash,
    )


def diff_rows(session: Session, a: DatasetVersion, b: DatasetVersion, side: Side,
              page_size: int = v.PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """The rows `side` ("added" or "removed") going from `a` to `b`, streamed in the stable order."""
    _check(a, b)
    if side not in ("added", "removed"):
        raise DatasetError(f"side: 'added' or 'removed', got {side!r}")
    if a.number == b.number:
        return iter(())
    return v.stream_rows(session, a.dataset_id, _condition(a.number, b.number, side), page_size)


def diff_numbers(session: Session, dataset_id: int, a: int, b: int) -> VersionDiff:
    """`diff` by version numbers of one dataset (VersionNotFound for a missing one)."""
    return diff(session, v.get_version(session, dataset_id, a), v.get_version(session, dataset_id, b))
