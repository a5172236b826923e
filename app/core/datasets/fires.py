"""Schedule fires: each due time of a dataset fires once, however many schedulers run.

A fire is claimed by inserting its `schedule_fires` row, unique per (dataset, due time),
with `INSERT ... ON CONFLICT DO NOTHING` (PostgreSQL and SQLite alike): the scheduler
whose insert lands owns the due time, any other one gets nothing back and moves on. On
PostgreSQL a second insert of the same key waits for the first transaction and then finds
the row, so two beat processes never both start a build. The fire's status then records
what happened: `started` (its build job was created), then `built` or `failed`;
`skipped` (a build of the dataset was still running), or `missed` (see schedule.py).

After a build the schedule may pause itself (`auto_pause`), with the reason kept on the
dataset: when the dataset reached the recipe's size cap, or when the build added fewer
than `min_yield_share` x `grow_by` examples (the seed pool is saturated, and more builds
would burn compute on rejects).

`tick` ties it together for a scheduler; the job registry's part (is a build of this
dataset running, create a build job) is passed in, so this module needs no job kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.core.datasets import schedule as sched
from app.core.datasets.versions import recipe_of
from app.core.store import id_of
from app.models import Dataset, FireStatus, ScheduleFire, utcnow

log = logging.getLogger("sprout.datasets")


def claim_fire(session: Session, dataset_id: int, due_at: datetime, status: FireStatus = FireStatus.started,
               reason: str | None = None) -> ScheduleFire | None:
    """Insert the fire row for (dataset, due time); None when another scheduler already has it.

    The row is flushed, not committed: commit (with whatever the fire started) to make
    the claim final; a rollback gives the due time back."""
    now = utcnow()
    values: dict[str, Any] = {"dataset_id": dataset_id, "due_at": due_at, "status": status.value, "reason": reason,
              "created_at": now, "updated_at": now}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        keys = ["dataset_id", "due_at"]
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(ScheduleFire).values(**values).on_conflict_do_nothing(
                index_elements=keys).returning(col(ScheduleFire.id))
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(ScheduleFire).values(**values).on_conflict_do_nothing(
                index_elements=keys).returning(col(ScheduleFire.id))
        fire_id = session.execute(stmt).scalar()
        return session.get(ScheduleFire, fire_id) if fire_id is not None else None
    try:  # other databases: a savepoint around a plain insert
        with session.begin_nested():
            fire = ScheduleFire(**values)
            session.add(fire)
        return fire
    except IntegrityError:
        return None


def record_fire(session: Session, fire: ScheduleFire, status: FireStatus, reason: str | None = None,
                job_id: int | None = None) -> ScheduleFire:
    """Set what became of a fire (the caller commits)."""
    fire.status = status.value
    if reason is not None:
        fire.reason = reason
    if job_id is not None:
        fire.job_id = job_id
    fire.updated_at = utcnow()
    session.add(fire)
    session.flush()
    return fire


def finish_build_fire(session: Session, job_id: int, built: bool, reason: str | None = None) -> ScheduleFire | None:
    """Mark the fire that started build job `job_id` built or failed; None when the build was
    not started by a schedule (a manual build)."""
    fire = session.exec(select(ScheduleFire).where(ScheduleFire.job_id == job_id)).first()
    if fire is None:
        return None
    return record_fire(session, fire, FireStatus.built if built else FireStatus.failed, reason)


def last_due_at(session: Session, dataset_id: int) -> datetime | None:
    return session.exec(select(func.max(ScheduleFire.due_at)).where(ScheduleFire.dataset_id == dataset_id)).one()


def history(session: Session, dataset_id: int, limit: int = 50) -> list[ScheduleFire]:
    """The latest fires first."""
    return list(session.exec(
        select(ScheduleFire).where(ScheduleFire.dataset_id == dataset_id)
        .order_by(col(ScheduleFire.due_at).desc()).limit(limit)
    ).all())


# --- auto-pause -------------------------------------------------------------------------------
def build_target(dataset: Dataset, row_count: int) -> int:
    """How many examples the next build should add: `grow_by`, or less to stop at the size cap."""
    recipe = recipe_of(dataset)
    if recipe.size_cap is None:
        return recipe.grow_by
    return max(0, min(recipe.grow_by, recipe.size_cap - row_count))


def auto_pause_reason(dataset: Dataset, added: int, row_count: int) -> str | None:
    """Why the schedule should pause after a build that added `added` examples and left
    `row_count` in the latest version; None when it should go on."""
    recipe = recipe_of(dataset)
    if recipe.size_cap is not None and row_count >= recipe.size_cap:
        return f"reached its size cap: {row_count} examples (cap {recipe.size_cap})"
    wanted = recipe.min_yield_share * recipe.grow_by
    if added < wanted:
        return (
            f"the last build added {added} examples, fewer than {recipe.min_yield_share:g} x grow_by "
            f"({wanted:g}): the seed pool looks saturated"
        )
    return None


def auto_pause(session: Session, dataset: Dataset, added: int, row_count: int) -> str | None:
    """Pause the schedule (keeping the reason) when `auto_pause_reason` says so; returns the reason.
    A dataset without a schedule is left alone. The caller commits."""
    reason = auto_pause_reason(dataset, added, row_count)
    if reason is not None and dataset.schedule_cron is not None and not dataset.schedule_paused:
        sched.pause(session, dataset, reason)
    return reason


# --- one scheduler tick -----------------------------------------------------------------------
RunningBuild = Callable[[Session, Dataset], int | None]
StartBuild = Callable[[Session, Dataset, ScheduleFire], int]


def scheduled_datasets(session: Session) -> list[Dataset]:
    return list(session.exec(
        select(Dataset).where(col(Dataset.schedule_cron).is_not(None), col(Dataset.schedule_paused).is_(False))
        .order_by(col(Dataset.id))
    ).all())


def tick(session: Session, now: datetime, running_build: RunningBuild, start_build: StartBuild,
         grace: timedelta = sched.DEFAULT_GRACE) -> list[ScheduleFire]:
    """Fire what is due for every scheduled, unpaused dataset; returns the fires this call claimed.

    For each due time this call wins (`claim_fire`): a `missed` one is recorded; a
    `build` one is `skipped` when `running_build(session, dataset)` names a build job
    still queued or running, else `start_build(session, dataset, fire)` creates the build
    job (in this session) and returns its id, kept on the fire (`started`). Each
    dataset's fires are committed together with the jobs they created, so a crash
    leaves either both or neither; enqueue the started jobs after `tick` returns.
    `grace` must exceed the scheduler's tick interval (see `schedule.due_fires`).
    """
    claimed: list[ScheduleFire] = []
    for dataset_id in [d.id for d in scheduled_datasets(session)]:
        try:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None or dataset.schedule_cron is None or dataset.schedule_paused:
                continue
            last = last_due_at(session, id_of(dataset))
            anchor = dataset.schedule_anchor_at or dataset.created_at
            since = max(last, anchor) if last is not None else anchor
            mine: list[ScheduleFire] = []
            for due in sched.due_fires(dataset.schedule_cron, dataset.schedule_timezone,
                                       dataset.missed_fire_policy, since, now, grace):
                status = FireStatus.missed if due.action == "missed" else FireStatus.started
                fire = claim_fire(session, id_of(dataset), due.due_at, status, due.reason)
                if fire is None:
                    continue
                if due.action == "build":
                    job_id = running_build(session, dataset)
                    if job_id is not None:
                        record_fire(session, fire, FireStatus.skipped, f"build job {job_id} was still running",
                                    job_id=None)
                    else:
                        record_fire(session, fire, FireStatus.started, job_id=start_build(session, dataset, fire))
                mine.append(fire)
            session.commit()
            claimed += mine
        except Exception:
            session.rollback()
            log.exception("schedule tick failed for dataset %s", dataset_id)
    return claimed
