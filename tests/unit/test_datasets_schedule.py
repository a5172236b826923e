"""Schedules: cron and time zone validation, fire times, missed-fire policies, one fire per
due time with two schedulers (threads and processes on PostgreSQL), auto-pause."""

from __future__ import annotations

import multiprocessing as mp
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.core.datasets import fires
from app.core.datasets import schedule as sched
from app.core.datasets import versions as v
from app.core.datasets.errors import ScheduleError
from app.models import Dataset, Job, ScheduleFire
from tests.dataset_fixtures import db_url, examples, make_dataset, make_job, session_for

__all__ = ["db_url"]


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- validation and fire times -------------------------------------------------------------
@pytest.mark.parametrize("expr, match", [
    ("", "empty"),
    ("61 * * * *", "not a valid cron"),
    ("* * * *", "has 4 fields"),
    ("0 * * * * *", "has 6 fields"),
    ("@often", "unknown macro"),
    ("0 0 31 2 *", "never fires"),
    ("x" * 121, "at most 120"),
])
def test_bad_cron_expressions_are_named(expr, match):
    with pytest.raises(ScheduleError, match=f"cron: .*{match}"):
        sched.validate_cron(expr)


def test_good_cron_expressions():
    assert sched.validate_cron("  0  2 * * 1-5 ") == "0 2 * * 1-5"
    assert sched.validate_cron("@Daily") == "@daily"


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "../etc/passwd", "Europe/"])
def test_bad_time_zones_are_named(name):
    with pytest.raises(ScheduleError, match="timezone: "):
        sched.validate_timezone(name)


def test_bad_policy_is_named():
    with pytest.raises(ScheduleError, match="missed_fire_policy: 'always'"):
        sched.validate_policy("always")


def test_next_fire_times_are_local_times_in_utc():
    # 09:30 on weekdays in New York, asked on a Friday afternoon: Monday to Friday of the next week
    times = sched.next_fire_times("30 9 * * 1-5", "America/New_York", at(2026, 1, 9, 20, 0))
    assert times == [at(2026, 1, d, 14, 30) for d in (12, 13, 14, 15, 16)]
    # across the spring-forward of 2026-03-08, 09:30 local moves from 14:30 to 13:30 UTC
    assert sched.next_fire_times("30 9 * * *", "America/New_York", at(2026, 3, 7, 0, 0), 2) == [
        at(2026, 3, 7, 14, 30), at(2026, 3, 8, 13, 30)]


# --- due fires and the missed-fire policies -------------------------------------------------
HOURLY = "0 * * * *"


def test_nothing_due_before_the_first_fire_time():
    assert sched.due_fires(HOURLY, "UTC", "skip", at(2026, 5, 1, 10, 0), at(2026, 5, 1, 10, 59)) == []


def test_one_due_time_on_time_builds_under_both_policies():
    for policy in ("skip", "run_once"):
        assert sched.due_fires(HOURLY, "UTC", policy, at(2026, 5, 1, 10, 0), at(2026, 5, 1, 11, 1)) == [
            sched.DueFire(at(2026, 5, 1, 11, 0), "build")]


def test_skip_builds_the_latest_on_time_and_records_the_rest_as_one_missed_fire():
    due = sched.due_fires(HOURLY, "UTC", "skip", at(2026, 5, 1, 10, 0), at(2026, 5, 1, 14, 2))
    assert [(d.due_at, d.action) for d in due] == [(at(2026, 5, 1, 13, 0), "missed"), (at(2026, 5, 1, 14, 0), "build")]
    assert "missed 3 due times (2026-05-01T11:00:00+00:00 to 2026-05-01T13:00:00+00:00)" in due[0].reason


def test_skip_does_not_build_a_late_due_time():
    due = sched.due_fires(HOURLY, "UTC", "skip", at(2026, 5, 1, 10, 0), at(2026, 5, 1, 14, 30))
    assert [(d.due_at, d.action) for d in due] == [(at(2026, 5, 1, 14, 0), "missed")]
    assert "missed 4 due times" in due[0].reason and "1800 s late" in due[0].reason
    # a longer grace makes it on time
    due = sched.due_fires(HOURLY, "UTC", "skip", at(2026, 5, 1, 13, 0), at(2026, 5, 1, 14, 30), timedelta(hours=1))
    assert [(d.due_at, d.action) for d in due] == [(at(2026, 5, 1, 14, 0), "build")]


def test_grace_never_exceeds_one_period():
    # every minute: the latest due time is always within its period, so it builds
    due = sched.due_fires("* * * * *", "UTC", "skip", at(2026, 5, 1, 10, 0), at(2026, 5, 1, 10, 3, 59))
    assert [(d.due_at, d.action) for d in due] == [(at(2026, 5, 1, 10, 2), "missed"), (at(2026, 5, 1, 10, 3), "build")]


def test_run_once_makes_one_build_for_every_missed_due_time():
    due = sched.due_fires(HOURLY, "UTC", "run_once", at(2026, 5, 1, 10, 0), at(2026, 5, 3, 10, 30))
    assert [(d.due_at, d.action) for d in due] == [(at(2026, 5, 3, 10, 0), "build")]
    assert "one build for 48 due times" in due[0].reason


# --- claims: one fire per due time ----------------------------------------------------------
ANCHOR = at(2026, 5, 1, 10, 0)


def _scheduled(s, cron=HOURLY, policy="skip", anchor=ANCHOR, **recipe):
    ds = make_dataset(s, **recipe)
    sched.set_schedule(s, ds, cron, "UTC", policy, now=anchor)
    s.commit()
    return ds


def test_a_due_time_is_claimed_once(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s)
        due = at(2026, 5, 1, 11, 0)
        first = fires.claim_fire(s, ds.id, due)
        assert first is not None and first.status == "started"
        assert fires.claim_fire(s, ds.id, due) is None
        assert fires.claim_fire(s, ds.id, due + timedelta(hours=1)) is not None
        s.commit()
        assert s.exec(select(func.count()).select_from(ScheduleFire)).one() == 2
        assert fires.last_due_at(s, ds.id) == at(2026, 5, 1, 12, 0)


def test_two_threads_claiming_one_due_time_on_postgresql(pg_url):
    with session_for(pg_url) as s:
        ds_id = _scheduled(s).id
    barrier = threading.Barrier(2)
    won: list[bool] = []

    def claim():
        with session_for(pg_url) as s:
            barrier.wait()
            fire = fires.claim_fire(s, ds_id, at(2026, 5, 1, 11, 0))
            s.commit()
            won.append(fire is not None)

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, True]


def _start_build(s, dataset, fire):
    return make_job(s)


def _no_running_build(s, dataset):
    return None


def _tick_in_process(url, barrier, now, out):
    """One scheduler process: wait for the other, then tick once."""
    from app import db

    with session_for(url) as s:
        barrier.wait()
        claimed = fires.tick(s, now, _no_running_build, _start_build)
        out.put([(f.status, f.job_id) for f in claimed])
    db.dispose_engines()


def test_two_scheduler_processes_fire_each_due_time_once(pg_url):
    with session_for(pg_url) as s:
        ds = _scheduled(s)
        ds_id = ds.id
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    now = at(2026, 5, 1, 12, 1)  # due: 11:00 (missed, skip) and 12:00 (build)
    procs = [ctx.Process(target=_tick_in_process, args=(pg_url, barrier, now, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = sorted(results[0] + results[1], key=str)
    with session_for(pg_url) as s:
        rows = s.exec(select(ScheduleFire).where(ScheduleFire.dataset_id == ds_id).order_by(ScheduleFire.due_at)).all()
        jobs = s.exec(select(Job)).all()
    assert [(r.due_at, r.status) for r in rows] == [(at(2026, 5, 1, 11, 0), "missed"), (at(2026, 5, 1, 12, 0), "started")]
    assert len(jobs) == 1 and rows[1].job_id == jobs[0].id
    assert claimed == sorted([("missed", None), ("started", jobs[0].id)], key=str)


# --- tick -----------------------------------------------------------------------------------
def test_tick_skips_while_a_build_runs_and_records_the_outcome(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s)
        running = make_job(s)
        s.commit()
        skipped = fires.tick(s, at(2026, 5, 1, 11, 0, 30), lambda s_, d: running, _start_build)
        assert [(f.status, f.reason) for f in skipped] == [("skipped", f"build job {running} was still running")]
        assert fires.tick(s, at(2026, 5, 1, 11, 0, 40), _no_running_build, _start_build) == []  # already fired

        started = fires.tick(s, at(2026, 5, 1, 12, 0, 5), _no_running_build, _start_build)
        assert [f.status for f in started] == ["started"] and started[0].job_id is not None
        fires.finish_build_fire(s, started[0].job_id, built=True, reason="version 1: 10 examples")
        assert fires.finish_build_fire(s, 999_999, built=False) is None
        s.commit()
        assert [(f.due_at.hour, f.status) for f in fires.history(s, ds.id)] == [(12, "built"), (11, "skipped")]


def test_tick_leaves_paused_and_unscheduled_datasets_alone_and_resume_forgets_the_pause(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s)
        make_dataset(s, name="unscheduled")
        sched.pause(s, ds, "holiday")
        s.commit()
        assert fires.tick(s, at(2026, 5, 1, 15, 0), _no_running_build, _start_build) == []
        assert sched.upcoming(ds, at(2026, 5, 1, 15, 0)) == []
        sched.resume(s, ds, now=at(2026, 5, 1, 15, 30))
        s.commit()
        assert ds.pause_reason is None
        assert sched.upcoming(ds, at(2026, 5, 1, 15, 30), 2) == [at(2026, 5, 1, 16, 0), at(2026, 5, 1, 17, 0)]
        assert fires.tick(s, at(2026, 5, 1, 15, 31), _no_running_build, _start_build) == []  # 11:00-15:00 passed while paused
        started = fires.tick(s, at(2026, 5, 1, 16, 0, 10), _no_running_build, _start_build)
        assert [(f.due_at, f.status) for f in started] == [(at(2026, 5, 1, 16, 0), "started")]


def test_a_failing_start_gives_the_due_time_back(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s)

        def broken(s_, d, f):
            raise RuntimeError("queue down")

        assert fires.tick(s, at(2026, 5, 1, 11, 0, 30), _no_running_build, broken) == []
        assert fires.last_due_at(s, ds.id) is None
        assert [f.status for f in fires.tick(s, at(2026, 5, 1, 11, 1), _no_running_build, _start_build)] == ["started"]


def test_schedule_errors_write_nothing(db_url):
    with session_for(db_url) as s:
        ds = make_dataset(s)
        s.commit()
        for cron, tz, policy in (("bad", "UTC", "skip"), ("0 * * * *", "Nowhere/City", "skip"),
                                 ("0 * * * *", "UTC", "sometimes")):
            with pytest.raises(ScheduleError):
                sched.set_schedule(s, ds, cron, tz, policy)
        with pytest.raises(ScheduleError, match="no schedule to pause"):
            sched.pause(s, ds)
        s.rollback()
        assert s.get(Dataset, ds.id).schedule_cron is None


# --- auto-pause ------------------------------------------------------------------------------
def test_auto_pause_at_the_size_cap_and_on_a_low_yield(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s, grow_by=10, size_cap=25, min_yield_share=0.3)
        assert fires.build_target(ds, 0) == 10 and fires.build_target(ds, 20) == 5 and fires.build_target(ds, 30) == 0
        assert fires.auto_pause(s, ds, added=10, row_count=10) is None and not ds.schedule_paused
        reason = fires.auto_pause(s, ds, added=2, row_count=12)
        assert "added 2 examples, fewer than 0.3 x grow_by (3)" in reason and "saturated" in reason
        assert ds.schedule_paused and ds.pause_reason == reason
        sched.resume(s, ds)
        reason = fires.auto_pause(s, ds, added=10, row_count=25)
        assert reason == "reached its size cap: 25 examples (cap 25)" and ds.schedule_paused
        s.commit()
        assert s.get(Dataset, ds.id).pause_reason == reason

        unscheduled = make_dataset(s, name="manual", grow_by=10)
        assert fires.auto_pause(s, unscheduled, added=0, row_count=0) is not None
        assert not unscheduled.schedule_paused


def test_auto_pause_after_real_commits(db_url):
    with session_for(db_url) as s:
        ds = _scheduled(s, grow_by=4, size_cap=6)
        version = v.commit_version(s, ds, examples(4))
        assert fires.auto_pause(s, ds, version.counts["added"], version.row_count) is None
        version = v.commit_version(s, ds, examples(fires.build_target(ds, version.row_count), start=4))
        assert version.row_count == 6
        assert "size cap" in fires.auto_pause(s, ds, version.counts["added"], version.row_count)


