"""`GET /metrics`: Prometheus text that the Prometheus parser reads, outside /api/v1 and
without a key; jobs by status from the database; LLM metrics that move with requests
(sent here to a fault-injecting server; a real job's are checked in
tests/integration/test_metrics_job.py)."""

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from app.core import store
from app.core.config import LLMConfig
from app.core.llm.client import LLMClient
from app.db import session_scope
from app.settings import Settings
from tests.fault_server import FaultyLLMServer
from tests.service_fixtures import api_settings, client  # noqa: F401


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_with_llm_requests(client, pg_url):
    with session_scope(pg_url) as s:
        store.create_job(s, "self_instruct", {"target": 1})
    before = samples(client.get("/metrics").text)  # no API key needed
    assert value(before, "sprout_jobs", kind="self_instruct", status="queued") == 1
    assert value(before, "sprout_jobs", kind="self_instruct", status="running") == 0

    with FaultyLLMServer(script=[(429, "{}")]) as srv:
        async def go():
            async with LLMClient(LLMConfig(base_urls=[srv.url], model="m", backoff_s=0.01, outage_budget_s=0, dialect="completions")) as c:
                for i in range(3):
                    await c.complete(str(i))
        asyncio.run(go())
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    ep = srv.url
    assert value(after, "sprout_llm_requests_total", endpoint=ep, outcome="ok") == 3
    assert value(after, "sprout_llm_requests_total", endpoint=ep, outcome="overload") == 1
    assert value(after, "sprout_llm_request_seconds_count", endpoint=ep) == 3
    assert value(after, "sprout_llm_tokens_total", endpoint=ep, kind="completion") == 6
    assert value(after, "sprout_llm_in_flight", endpoint=ep) == 0
    assert value(after, "sprout_llm_concurrency_limit", endpoint=ep) == 0  # the client is closed


def test_metrics_can_be_turned_off(pg_url, redis_url, tmp_path):
    from fastapi.testclient import TestClient

    from app.asgi import create_app

    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, metrics_enabled=False)
    with TestClient(create_app(settings)) as c:
        response = c.get("/metrics")
    assert response.status_code == 404 and "SPROUT_METRICS_ENABLED" in response.json()["detail"]
