"""A model-server outage longer than the outage budget pauses the job (back to `queued`,
saying why), it does not fail it: the reaper sends it again once the server is back."""

import socket

from app.core import store
from app.core.jobs import lifecycle
from app.core.params import SelfInstructParams
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.settings import Settings
from tests.conftest import DEFAULT_SEEDS


def test_an_outage_pauses_the_job_instead_of_failing_it(sqlite_url, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed
    fmt, tasks = load_seed_file(DEFAULT_SEEDS)
    with session_scope(sqlite_url) as session:
        seed_set = store.import_seed_set(session, "seeds", fmt, tasks)
        job_id = store.create_job(session, "self_instruct", SelfInstructParams(target=2).model_dump(mode="json"),
                                  seed_set_id=seed_set.id).id
    settings = Settings(data_dir=tmp_path, llm_base_urls=[dead], llm_model="m", llm_max_retries=1,
                        llm_backoff_s=0.01, llm_backoff_max_s=0.05, llm_outage_budget_s=0.5)

    job = lifecycle.run_job(sqlite_url, job_id, settings.core_config())
    assert job.status == "queued" and job.attempts == 1 and job.worker is None and job.finished_at is None
    assert job.error.startswith(f"waiting for the model server: no answer from the model server at {dead}")
    assert "cannot connect" in job.error and "sprout model serve" not in job.error
    # the paused job keeps the failed requests' count and last messages, naming the endpoint
    errors = job.counters["llm_last_errors"]
    assert job.counters["llm_errors"] >= len(errors) == 5
    assert all(e["endpoint"] == dead and e["message"] == f"{dead}: cannot connect (ConnectError)" for e in errors)

    # sent again (the model server still away, at another address): the counts add up over
    # both attempts, and the last messages are the newest
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    first_errors = job.counters["llm_errors"]
    moved = settings.model_copy(update={"llm": settings.llm.model_copy(update={"base_urls": (other,)})})
    job = lifecycle.run_job(sqlite_url, job_id, moved.core_config())
    assert job.status == "queued" and job.attempts == 2
    assert job.counters["llm_errors"] > first_errors
    assert [e["endpoint"] for e in job.counters["llm_last_errors"]] == [other] * 5
