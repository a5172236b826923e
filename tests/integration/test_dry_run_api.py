"""`POST /api/v1/jobs` with `"dry_run": true` on the embedded model: a pilot's estimate, and no job."""

import pytest

from app.settings import Settings
from tests.service_fixtures import Api, make_key

pytestmark = pytest.mark.integration


def test_dry_run_answers_an_estimate_and_stores_no_job(pg_url, redis_url, llm_base_url, tmp_path, reference_seeds):
    from fastapi.testclient import TestClient

    from app.asgi import create_app

    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data",
                        llm_base_urls=[llm_base_url], llm_concurrency=4)
    with TestClient(create_app(settings)) as client:
        api = Api(client, make_key(pg_url, "alice"))
        seed_set = api.ok("post", "/api/v1/seed-sets", 201,
                          json={"name": "s", "content": reference_seeds.read_text(encoding="utf-8")})["id"]
        body = api.ok("post", "/api/v1/jobs", 200, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                         "dry_run": True, "params": {"target": 20, "seed": 11,
                                                                                     "price_per_million_tokens": 1.0}})
        est = body["estimate"]
        print(f"\ndry run: {est}")
        assert body["dry_run"] and est["target"] == 20 and est["pilot_accepted"] >= 1
        assert est["low_total_tokens"] <= est["expected_total_tokens"] <= est["high_total_tokens"]
        assert est["expected_cost"] == pytest.approx(est["expected_total_tokens"] / 1e6, abs=1e-6)
        assert api.ok("get", "/api/v1/jobs")["total"] == 0
