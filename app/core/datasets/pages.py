"""Paged reads for the shells: one page of datasets, of a version's rows, of a diff's rows.

The API answers lists a page at a time (`limit`, `offset`, `total`) and the CLI shows the
first rows of a version or a diff; both read through here, so no shell writes a query.
Rows come in the stable order (`added_in`, `position`) with the fields of
`versions.ROW_FIELDS`, as `versions.version_rows` streams them. A page is one short query
on the (dataset, added_in, position) index; a deep offset costs a scan of the rows before
it, so whole versions are read with `versions.version_rows` or `export.export_chunks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.core.datasets import diff as d
from app.core.datasets import versions as v
from app.models import Dataset, DatasetExample, DatasetTag, DatasetVersion


def datasets_page(session: Session, owner: str | None, offset: int, limit: int) -> tuple[int, list[Dataset]]:
    """(how many datasets the owner has, one page of them by name)."""
    where = Dataset.owner == v.owner_key(owner)
    total = session.exec(select(func.count()).select_from(Dataset).where(where)).one()
    rows = session.exec(select(Dataset).where(where).order_by(Dataset.name).offset(offset).limit(limit)).all()
    return total, list(rows)


def latest_versions(session: Session, dataset_ids: Sequence[int]) -> dict[int, DatasetVersion]:
    """Dataset id -> its latest version (datasets without a version are left out); one query."""
    if not dataset_ids:
        return {}
    newest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.number).label("number"))
        .where(col(DatasetVersion.dataset_id).in_(list(dataset_ids)))
        .group_by(col(DatasetVersion.dataset_id))
        .subquery()
    )
    rows = session.exec(
        select(DatasetVersion).join(
            newest, (col(DatasetVersion.dataset_id) == newest.c.dataset_id) & (col(DatasetVersion.number) == newest.c.number)
        )
    ).all()
    return {r.dataset_id: r for r in rows}


def tags_by_version(session: Session, dataset_id: int) -> dict[int, list[str]]:
    """Version number -> the names of the tags pointing at it, by name."""
    rows = session.exec(
        select(DatasetVersion.number, DatasetTag.name)
        .join(DatasetVersion, col(DatasetTag.version_id) == DatasetVersion.id)
        .where(DatasetTag.dataset_id == dataset_id)
        .order_by(DatasetTag.name)
    ).all()
    out: dict[int, list[str]] = {}
    for number, name in rows:
        out.setdefault(number, []).append(name)
    return out


def versions_page(session: Session, dataset_id: int, offset: int, limit: int) -> tuple[int, list[DatasetVersion]]:
    """(how many versions, one page of them, newest first)."""
    where = DatasetVersion.dataset_id == dataset_id
    total = session.exec(select(func.count()).select_from(DatasetVersion).where(where)).one()
    rows = session.exec(
        select(DatasetVersion).where(where).order_by(col(DatasetVersion.number).desc()).offset(offset).limit(limit)
    ).all()
    return total, list(rows)


def _rows(session: Session, dataset_id: int, condition: Any, offset: int, limit: int) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    columns = [getattr(DatasetExample, name) for name in v.ROW_FIELDS]
    stmt = (
        select(*columns)
        .where(DatasetExample.dataset_id == dataset_id, condition)
        .order_by(DatasetExample.added_in, DatasetExample.position)
        .offset(offset)
        .limit(limit)
    )
    return [dict(zip(v.ROW_FIELDS, r)) for r in session.connection().execute(stmt).all()]


def rows_page(session: Session, version: DatasetVersion, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows `offset` to `offset + limit` of `version` (its `row_count` is the total)."""
    return _rows(session, version.dataset_id, v.live_at(version.number), offset, limit)


def diff_rows_page(session: Session, change: d.VersionDiff, offset: int, limit: int,
                   side: d.Side | None = None) -> list[dict[str, Any]]:
    """One page of the rows of a diff, each with `change` ("added" or "removed"): the added
    rows first, then the removed ones (or only `side`'s), each side in the stable order."""
    sides: list[tuple[d.Side, int]] = [("added", change.added), ("removed", change.removed)]
    out: list[dict[str, Any]] = []
    if change.a == change.b:
        return out
    for name, count in sides:
        if side is not None and name != side:
            continue
        if offset >= count:
            offset -= count
            continue
        condition = d.side_condition(change.a, change.b, name)
        for row in _rows(session, change.dataset_id, condition, offset, limit - len(out)):
            out.append({"change": name, **row})
        offset = 0
        if len(out) >= limit:
            break
    return out
