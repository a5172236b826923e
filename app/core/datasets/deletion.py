"""Which versions may be deleted: only the latest, and only while nothing depends on it.

A training run that used a version is recorded (`record_use`, called by whatever starts
the run); such a version is never deleted, so a model can always be traced back to the
exact rows it learnt from. Deleting any version but the latest would break the line
(versions are linear and each one is its parent plus a change), so that is refused too,
as is deleting a version a user tag points at (move or delete the tag first).

Deleting the latest version N undoes its change: the rows it added are deleted and the
rows it removed get `removed_in` back to null, its hash segments go and the ones it
closed reopen, and `latest` moves to N-1 (or goes, when N was the only version). Version
N-1 is then exactly what it was, hash included.

A whole dataset goes the same way: refused while a training run's version is among its
versions (the model's rows must stay traceable) or while a build of it is queued or
running (it would commit into nothing); otherwise its versions, examples, tags and fires
go with it (the tables cascade from `datasets`).
"""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.core.datasets import versions as v
from app.core.datasets.errors import DatasetBusy, VersionInUse
from app.core.store import id_of
from app.models import (
    Dataset,
    DatasetExample,
    DatasetHashSegment,
    DatasetTag,
    DatasetVersion,
    DatasetVersionUse,
    ExampleReview,
    Job,
    JobStatus,
)

BUILD_KIND = "dataset_build"  # the job kind that builds a dataset's versions (its params name the dataset)


def record_use(session: Session, version: DatasetVersion, job_id: int, purpose: str = "training") -> DatasetVersionUse:
    """Record that job `job_id` used `version` (idempotent); the version can no longer be deleted."""
    use = session.exec(
        select(DatasetVersionUse).where(DatasetVersionUse.version_id == version.id, DatasetVersionUse.job_id == job_id)
    ).first()
    if use is None:
        use = DatasetVersionUse(version_id=id_of(version), job_id=job_id, purpose=purpose)
        session.add(use)
        session.flush()
    return use


def uses(session: Session, version: DatasetVersion) -> list[DatasetVersionUse]:
    return list(session.exec(select(DatasetVersionUse).where(DatasetVersionUse.version_id == version.id)).all())


def delete_version(session: Session, dataset: Dataset, number: int) -> None:
    """Delete version `number`, which must be the latest, unused and without a user tag; the caller commits.
    Raises `VersionNotFound` or `VersionInUse` (saying why)."""
    change = v.begin_change(session, dataset, None)  # locks the dataset
    version = v.get_version(session, id_of(dataset), number)
    if change.parent is None or version.number != change.parent.number:
        raise VersionInUse(
            f"version {number} is not the latest ({change.parent.number if change.parent else 'none'}): "
            "only the latest version can be deleted, so every other version keeps its parent"
        )
    used = uses(session, version)
    if used:
        jobs = ", ".join(str(u.job_id) for u in used)
        raise VersionInUse(f"version {number} was used by job(s) {jobs}: a version a training run used is kept")
    tagged = session.exec(
        select(DatasetTag.name).where(DatasetTag.version_id == version.id, DatasetTag.name != v.LATEST_TAG)
    ).all()
    if tagged:
        raise VersionInUse(f"tag(s) {', '.join(sorted(tagged))} point at version {number}: move or delete them first")
    ds = id_of(dataset)
    session.execute(delete(DatasetExample).where(col(DatasetExample.dataset_id) == ds, col(DatasetExample.added_in) == number))
    session.execute(
        update(DatasetExample)
        .where(col(DatasetExample.dataset_id) == ds, col(DatasetExample.removed_in) == number)
        .values(removed_in=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(  # a deleted review's decisions are pending again (those on its new rows went with them)
        update(ExampleReview)
        .where(col(ExampleReview.dataset_id) == ds, col(ExampleReview.committed_in) == number)
        .values(committed_in=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(DatasetHashSegment).where(col(DatasetHashSegment.dataset_id) == ds,
                                         col(DatasetHashSegment.from_version) == number)
    )
    session.execute(
        update(DatasetHashSegment)
        .where(col(DatasetHashSegment.dataset_id) == ds, col(DatasetHashSegment.to_version) == number)
        .values(to_version=None)
        .execution_options(synchronize_session=False)
    )
    latest = session.exec(
        select(DatasetTag).where(DatasetTag.dataset_id == ds, DatasetTag.name == v.LATEST_TAG)
    ).first()
    parent = session.get(DatasetVersion, version.parent_id) if version.parent_id else None
    if latest is not None:
        if parent is None:
            session.delete(latest)
        else:
            latest.version_id = id_of(parent)
            session.add(latest)
    session.flush()
    session.delete(version)
    session.flush()
    session.expire_all()


def builds_in_progress(session: Session, dataset_id: int) -> list[int]:
    """Ids of the dataset's build jobs still queued or running, oldest first."""
    rows = session.exec(
        select(col(Job.id), Job.params)
        .where(Job.kind == BUILD_KIND, col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]))
        .order_by(col(Job.id))
    ).all()
    return [ident for ident, params in rows  # a stored row's id is never None
            if ident is not None and (params or {}).get("dataset_id") == dataset_id]


def delete_dataset(session: Session, dataset: Dataset) -> None:
    """Delete the dataset with its versions, examples, tags and schedule fires; the caller commits.
    Raises `VersionInUse` (a training run used one of its versions) or `DatasetBusy` (a build
    of it is queued or running)."""
    locked = session.exec(
        select(Dataset).where(Dataset.id == dataset.id).with_for_update().execution_options(populate_existing=True)
    ).one()
    used = session.exec(
        select(DatasetVersion.number, DatasetVersionUse.job_id)
        .join(DatasetVersionUse, col(DatasetVersionUse.version_id) == col(DatasetVersion.id))
        .where(DatasetVersion.dataset_id == locked.id)
        .order_by(col(DatasetVersion.number), col(DatasetVersionUse.job_id))
    ).all()
    if used:
        what = ", ".join(f"version {n} by job {j}" for n, j in used[:10])
        raise VersionInUse(
            f"dataset {locked.name!r} cannot be deleted: {what} — a version a training run used is kept"
        )
    building = builds_in_progress(session, id_of(locked))
    if building:
        raise DatasetBusy(
            f"dataset {locked.name!r} cannot be deleted while build job(s) {', '.join(map(str, building))} "
            "are queued or running: cancel them first"
        )
    session.delete(locked)
    session.flush()
