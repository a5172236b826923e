"""A dataset's build schedule: a cron expression in a time zone, and what is due when.

Fire times are those of `croniter` (five fields: minute hour day-of-month month
day-of-week, or a macro such as `@daily`) read in the dataset's IANA time zone and
returned in UTC, so a daily 02:00 build stays at 02:00 local time across DST changes
(croniter's rules apply: a wall time skipped by a spring-forward fires at the next
existing time, and a wall time in the hour repeated by a fall-back can fire twice, once
per UTC instant).

What is due at `now`: the fire times after `since` (the later of the last fire's due
time and the moment the schedule was set or resumed) up to `now`. With several due
(beat was down, or paused ticks), the missed-fire policy decides:

* `run_once`: one build for all of them, at the latest due time;
* `skip`: the latest due time builds only if it is *on time*, i.e. at most `grace` old
  (`DEFAULT_GRACE`, and never more than one period of the schedule, the gap from that
  due time to the next fire time); every other due time is recorded as missed.

Missed due times are recorded as one `missed` fire (at the latest of them) whose reason
says how many were missed since when, so a week-long outage of a minutely schedule
writes one row, not ten thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlmodel import Session

from app.core.datasets.errors import ScheduleError
from app.models import Dataset, MissedFirePolicy, utcnow

DEFAULT_GRACE = timedelta(minutes=5)
MAX_CRON_LENGTH = 120
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MAX_DUE_SCAN = 100_000  # due times counted before giving up counting exactly (a minutely schedule down ~70 days)


def validate_cron(expr: str) -> str:
    """The expression, stripped, if croniter accepts it with five fields (or a macro)."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("cron: empty expression; e.g. '0 2 * * *' (every day at 02:00)")
    expr = " ".join(expr.split())
    if len(expr) > MAX_CRON_LENGTH:
        raise ScheduleError(f"cron: at most {MAX_CRON_LENGTH} characters")
    if expr.startswith("@"):
        if expr.lower() not in _MACROS:
            raise ScheduleError(f"cron: unknown macro {expr!r}; use one of {', '.join(sorted(_MACROS))}")
        return expr.lower()
    fields = expr.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"cron: {expr!r} has {len(fields)} fields; use five: minute hour day-of-month month day-of-week"
        )
    if not croniter.is_valid(expr):
        raise ScheduleError(f"cron: {expr!r} is not a valid cron expression")
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))).get_next(datetime)
    except Exception as exc:
        raise ScheduleError(f"cron: {expr!r} never fires ({exc})") from None
    return expr


def validate_timezone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("timezone: empty; use an IANA name such as 'UTC' or 'Europe/Paris'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"timezone: unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'") from None


def validate_policy(policy: str) -> str:
    values = [p.value for p in MissedFirePolicy]
    if policy not in values:
        raise ScheduleError(f"missed_fire_policy: {policy!r} is not one of {', '.join(values)}")
    return policy


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return dt.astimezone(ZoneInfo("UTC"))


def fire_times_after(cron: str, timezone: str, after: datetime) -> croniter:
    """An iterator of the fire times strictly after `after` (call `.get_next(datetime)`)."""
    tz = validate_timezone(timezone)
    return croniter(validate_cron(cron), _utc(after).astimezone(tz))


def next_fire_times(cron: str, timezone: str, after: datetime, n: int = 5) -> list[datetime]:
    """The next `n` fire times strictly after `after`, in UTC."""
    it = fire_times_after(cron, timezone, after)
    return [_utc(it.get_next(datetime)) for _ in range(n)]


@dataclass(frozen=True)
class DueFire:
    """A due time to act on: `build` (start a build) or `missed` (record only)."""

    due_at: datetime  # UTC
    action: str  # "build" or "missed"
    reason: str | None = None


def due_fires(cron: str, timezone: str, policy: str, since: datetime, now: datetime,
              grace: timedelta = DEFAULT_GRACE) -> list[DueFire]:
    """What is due in (since, now] under `policy` (see the module docstring), oldest first."""
    validate_policy(policy)
    since, now = _utc(since), _utc(now)
    it = fire_times_after(cron, timezone, since)
    first = _utc(it.get_next(datetime))
    if first > now:
        return []
    before_latest, latest, count = None, first, 1
    while count < _MAX_DUE_SCAN:
        t = _utc(it.get_next(datetime))
        if t > now:
            break
        before_latest, latest, count = latest, t, count + 1
    exact = count < _MAX_DUE_SCAN
    if policy == MissedFirePolicy.run_once.value:
        if count == 1:
            return [DueFire(latest, "build")]
        n = f"{count}" if exact else f"at least {count}"
        return [DueFire(latest, "build", f"one build for {n} due times from {first.isoformat()} (policy run_once)")]
    period = _utc(fire_times_after(cron, timezone, latest).get_next(datetime)) - latest
    if now - latest <= min(grace, period):
        if before_latest is None:
            return [DueFire(latest, "build")]
        return [DueFire(before_latest, "missed", _missed_reason(count - 1, exact, first, before_latest)),
                DueFire(latest, "build")]
    return [DueFire(latest, "missed", _missed_reason(count, exact, first, latest, late_by=now - latest))]


def _missed_reason(n: int, exact: bool, first: datetime, last: datetime, late_by: timedelta | None = None) -> str:
    what = f"{n} due time{'s' if n != 1 else ''}" if exact else f"at least {n} due times"
    span = first.isoformat() if n == 1 else f"{first.isoformat()} to {last.isoformat()}"
    late = f"; the latest was {int(late_by.total_seconds())} s late" if late_by is not None else ""
    return f"missed {what} ({span}) while no scheduler ran (policy skip){late}"


# --- the schedule on the dataset -------------------------------------------------------------
def set_schedule(session: Session, dataset: Dataset, cron: str, timezone: str = "UTC",
                 missed_fire_policy: str = MissedFirePolicy.skip.value, now: datetime | None = None) -> Dataset:
    """Set (or replace) the schedule; fires are due from `now` on, and it is unpaused. The caller commits."""
    cron = validate_cron(cron)
    validate_timezone(timezone)
    validate_policy(missed_fire_policy)
    dataset.schedule_cron, dataset.schedule_timezone, dataset.missed_fire_policy = cron, timezone, missed_fire_policy
    dataset.schedule_paused, dataset.pause_reason = False, None
    dataset.schedule_anchor_at = _utc(now or utcnow())
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.flush()
    return dataset


def clear_schedule(session: Session, dataset: Dataset) -> Dataset:
    dataset.schedule_cron, dataset.schedule_anchor_at = None, None
    dataset.schedule_paused, dataset.pause_reason = False, None
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.flush()
    return dataset


def pause(session: Session, dataset: Dataset, reason: str = "paused by request") -> Dataset:
    if dataset.schedule_cron is None:
        raise ScheduleError(f"dataset {dataset.name!r} has no schedule to pause")
    dataset.schedule_paused, dataset.pause_reason = True, reason
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.flush()
    return dataset


def resume(session: Session, dataset: Dataset, now: datetime | None = None) -> Dataset:
    """Unpause; due times that passed while paused are not built (fires are due from `now`)."""
    if dataset.schedule_cron is None:
        raise ScheduleError(f"dataset {dataset.name!r} has no schedule to resume")
    dataset.schedule_paused, dataset.pause_reason = False, None
    dataset.schedule_anchor_at = _utc(now or utcnow())
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.flush()
    return dataset


def upcoming(dataset: Dataset, now: datetime, n: int = 5) -> list[datetime]:
    """The next `n` fire times of the dataset's schedule (empty when none, or paused)."""
    if dataset.schedule_cron is None or dataset.schedule_paused:
        return []
    return next_fire_times(dataset.schedule_cron, dataset.schedule_timezone, now, n)
