"""100 concurrent requests on PostgreSQL: every one is answered, none with a 5xx.

With a sync session dependency, threads blocked waiting for a pooled connection filled
the thread pool while the requests holding the connections waited for a thread: the API
stalled until the pool timeout and answered 500s (issue 9, B). No timing is asserted here;
`benchmarks/api_load.py` measures the rates and latencies.
"""

import asyncio

import httpx

from app.asgi import create_app
from app.core import store
from app.core.params import SelfInstructParams
from app.core.seeds import SeedTaskData
from app.db import session_scope
from app.settings import Settings
from tests.service_fixtures import make_key

CLIENTS = 100


def test_a_hundred_concurrent_requests_get_no_5xx(pg_url, redis_url, tmp_path):
    key = make_key(pg_url, "alice")
    with session_scope(pg_url) as session:
        seed_set = store.import_seed_set(session, "s", "tasks", [SeedTaskData("Name a colour.")], owner="alice")
        ids = [store.create_job(session, "self_instruct", SelfInstructParams(target=5, seed=i).model_dump(mode="json"),
                                seed_set_id=seed_set.id, owner="alice").id for i in range(20)]
    app = create_app(Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path))

    async def one(client: httpx.AsyncClient, n: int) -> int:
        path = "/api/v1/jobs" if n % 2 else f"/api/v1/jobs/{ids[n % len(ids)]}"
        return (await client.get(path)).status_code

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sprout", timeout=120,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            return await asyncio.gather(*(one(client, n) for n in range(CLIENTS)))

    statuses = asyncio.run(burst())
    assert statuses == [200] * CLIENTS, sorted(set(statuses))


def test_a_request_that_waits_too_long_for_the_database_gets_a_503(pg_url, redis_url, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from app import db

    key = make_key(pg_url, "alice")
    monkeypatch.setattr(db, "POOL_SIZE", 0)  # no slot will ever be free
    monkeypatch.setattr(db, "POOL_TIMEOUT_S", 0.2)
    with TestClient(create_app(Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path))) as client:
        response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "busy" in response.json()["detail"]
