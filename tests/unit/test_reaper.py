"""The reaper against the real PostgreSQL and Redis: a queued job whose message the broker
lost is sent again; a job whose message waits in its queue, or is held unacknowledged by a
worker, is not sent twice."""

from datetime import timedelta

from sqlmodel import select

from app.core import store
from app.core.params import SelfInstructParams
from app.core.seeds import SeedTaskData
from app.db import session_scope
from app.models import Job, utcnow
from app.settings import Settings
from tests.service_fixtures import queued_tasks
from workers import reaper
from workers.celery_app import MAINTENANCE_QUEUE, REAPER_TASK, enqueue, make_celery


def queued_job(url: str, age_s: float) -> int:
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "s", "tasks", [SeedTaskData("Name a colour.")], owner="alice")
        job = store.create_job(session, "self_instruct", SelfInstructParams(target=1).model_dump(mode="json"),
                               seed_set_id=seed_set.id, owner="alice")
        job.created_at = utcnow() - timedelta(seconds=age_s)
        return job.id


def test_a_queued_job_whose_message_was_lost_is_sent_again(pg_url, redis_url, tmp_path):
    import redis

    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, reaper_interval_s=5)
    celery = make_celery(settings)
    job_id = queued_job(pg_url, age_s=60)
    young = queued_job(pg_url, age_s=0)  # just created: its message may not be sent yet
    enqueue(celery, job_id, "self_instruct")
    assert reaper.reap(celery, settings) == []  # its message waits in the queue
    assert queued_tasks(redis_url, "generation") == [("sprout.run_job", job_id)]

    redis.Redis.from_url(redis_url).flushdb()  # the broker restarted empty
    assert reaper.reap(celery, settings) == [job_id]
    assert queued_tasks(redis_url, "generation") == [("sprout.run_job", job_id)]
    assert reaper.reap(celery, settings) == []  # sent once: the new message is seen
    with session_scope(pg_url) as session:
        assert [j.status for j in session.exec(select(Job).order_by(Job.id)).all()] == ["queued", "queued"]
    assert young not in [j for _, j in queued_tasks(redis_url, "generation")]


def test_a_message_held_unacknowledged_by_a_worker_counts_as_present(pg_url, redis_url, tmp_path):
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, reaper_interval_s=5)
    celery = make_celery(settings)
    job_id = queued_job(pg_url, age_s=60)
    enqueue(celery, job_id, "self_instruct")
    with celery.connection_for_read() as conn:
        queue = conn.SimpleQueue("generation")
        message = queue.get(timeout=10)  # delivered, not acknowledged: kombu keeps it in its unacked hash
        assert queued_tasks(redis_url, "generation") == []
        assert reaper.reap(celery, settings) == []
        message.ack()
        queue.close()
    assert reaper.reap(celery, settings) == [job_id]  # acknowledged and gone, the job still queued


def test_a_running_job_with_a_live_worker_is_not_sent(pg_url, redis_url, tmp_path):
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, reaper_interval_s=5)
    celery = make_celery(settings)
    running = queued_job(pg_url, age_s=60)
    with session_scope(pg_url) as session:
        job = session.get(Job, running)
        job.status, job.heartbeat_at = "running", utcnow()
    assert reaper.reap(celery, settings) == []


def test_the_reaper_has_a_queue_of_its_own(tmp_path):
    celery = make_celery(Settings(data_dir=tmp_path))
    entry = celery.conf.beat_schedule["reap-stale-jobs"]
    assert entry["task"] == REAPER_TASK and entry["options"]["queue"] == MAINTENANCE_QUEUE
    assert MAINTENANCE_QUEUE in [q.name for q in celery.conf.task_queues]
