"""Fixtures and helpers for the service tests: the API on the test PostgreSQL and Redis,
API keys, synthetic stored candidates, and real worker processes.

Import the fixtures a module uses by name (`from tests.service_fixtures import api`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPROUT = ROOT / ".venv" / "bin" / "sprout"


class Api:
    """A TestClient bound to one owner's key, with helpers that check the status code."""

    def __init__(self, client: Any, key: str):
        self.client, self.key = client, key
        self.headers = {"Authorization": f"Bearer {key}"}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(path: str, **kwargs: Any) -> Any:
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)(path, headers=headers, **kwargs)

        return call

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = getattr(self, method)(path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else response


def make_key(url: str, owner: str) -> str:
    from app.api import keys
    from app.db import session_scope

    with session_scope(url) as session:
        return keys.create_key(session, name=f"{owner}-key", owner=owner)[1]


@pytest.fixture
def api_settings(pg_url, redis_url, tmp_path):
    from app.settings import Settings

    return Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data")


@pytest.fixture
def client(api_settings):
    from fastapi.testclient import TestClient

    from app.asgi import create_app

    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def api(client, pg_url) -> Api:
    return Api(client, make_key(pg_url, "alice"))


@pytest.fixture
def other_api(client, pg_url) -> Api:
    return Api(client, make_key(pg_url, "bob"))


def queued_tasks(redis_url: str, queue: str) -> list[tuple[str, int]]:
    """(task name, job id) of the Celery messages waiting in a queue, oldest first."""
    import base64
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    out = []
    for message in reversed(raw):
        envelope = json.loads(message)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        out.append((envelope["headers"]["task"], args[0]))
    return out


def store_candidates(url: str, job_id: int, records: list[Any]) -> None:
    """Write decided candidates as the runner does (the real store code, made-up content)."""
    from app.core import store
    from app.db import session_scope

    with session_scope(url) as session:
        job = store.get_job(session, job_id)
        counters = {**store.empty_counters(), **job.counters}
        store.write_records(session, job_id, records, store.next_seq(session, job_id))
        for record in records:
            store.count_record(counters, record)
        job.counters = counters


# --- worker processes -------------------------------------------------------------------
class Process:
    """A service process (`sprout worker`, `sprout beat`) in its own process group."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([str(SPROUT), *args], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (a prefork worker's children too), as a crash would."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-n:])


def service_env(settings: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_") or k.startswith("SPROUT_TEST_")}
    env.update({
        "SPROUT_DATABASE_URL": settings.resolved_database_url,
        "SPROUT_REDIS_URL": settings.redis_url,
        "SPROUT_DATA_DIR": str(settings.data_dir),
        "SPROUT_JOB_FLUSH_S": "0.5",
        "SPROUT_JOB_BATCH_SIZE": "4",
        "SPROUT_LLM_CONCURRENCY": "4",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),  # `workers` even where the editable install predates it
        **extra,
    })
    return env


@pytest.fixture
def processes(tmp_path) -> Iterator[Callable[..., Process]]:
    """Start service processes; all are stopped at the end of the test."""
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str], name: str) -> Process:
        proc = Process(args, env, tmp_path / f"{name}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_for(check: Callable[[], Any], what: str, procs: list[Process] = (), poll_s: float = 0.5,
             hang_guard_s: float = 840) -> Any:
    """Poll until `check()` is truthy; a hang guard (not a timing assertion) ends a stuck test
    with the workers' logs."""
    deadline = time.monotonic() + hang_guard_s
    while True:
        value = check()
        if value:
            return value
        for proc in procs:
            if proc.proc.poll() is not None:
                pytest.fail(f"{proc.log_path.name} exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.log_path.name}\n{p.tail()}" for p in procs)
            pytest.fail(f"gave up waiting for {what}\n{logs}")
        time.sleep(poll_s)


__all__ = ["Api", "Process", "api", "api_settings", "client", "make_key", "other_api", "processes",
           "queued_tasks", "service_env", "store_candidates", "wait_for"]
