"""API keys: 401 without or with a bad key, owners see only their own resources, the
`sprout apikey` commands, and the routes that stay open."""

from typer.testing import CliRunner

from app.api import keys
from app.cli import cli
from app.db import session_scope
from tests.service_fixtures import api, api_settings, client, make_key, other_api  # noqa: F401

SEEDS = '{"instruction": "Give three tips for staying healthy.", "instances": [{"input": "", "output": "Sleep."}]}\n'


def test_calls_without_a_valid_key_get_401(client, pg_url):
    for headers in ({}, {"Authorization": "Bearer sk_not-a-real-key"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer"}):
        for method, path in (("get", "/api/v1/jobs"), ("post", "/api/v1/jobs"), ("get", "/api/v1/seed-sets"),
                             ("get", "/api/v1/exports/1/download"), ("get", "/api/v1/jobs/1/instructions")):
            response = getattr(client, method)(path, headers=headers)
            assert response.status_code == 401, (headers, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["detail"]


def test_a_revoked_key_gets_401(client, pg_url):
    key = make_key(pg_url, "carol")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    with session_scope(pg_url) as session:
        assert keys.revoke(session, key[:10]) is not None
    response = client.get("/api/v1/jobs", headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_keys_are_stored_hashed(pg_url):
    key = make_key(pg_url, "dave")
    with session_scope(pg_url) as session:
        (row,) = [r for r in keys.list_keys(session) if r.owner == "dave"]
    assert row.key_hash == keys.hash_key(key) and key not in row.key_hash and row.prefix == key[:10]


def test_open_routes_need_no_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    page = client.get("/dashboard")
    assert page.status_code == 200 and "/dashboard/static/app.js" in page.text and 'data-api="/api/v1"' in page.text
    assert client.get("/dashboard/static/app.js").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"


def test_another_owners_resources_are_not_found(api, other_api):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "mine", "content": SEEDS})
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"prompt_instructions": 2, "prompt_machine_instructions": 1,
                                                                           "stop_at_item": 5}})
    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": job["id"]})
    for method, path in (
        ("get", f"/api/v1/seed-sets/{seed_set['id']}"), ("delete", f"/api/v1/seed-sets/{seed_set['id']}"),
        ("get", f"/api/v1/jobs/{job['id']}"), ("post", f"/api/v1/jobs/{job['id']}/cancel"),
        ("post", f"/api/v1/jobs/{job['id']}/retry"), ("delete", f"/api/v1/jobs/{job['id']}"),
        ("get", f"/api/v1/jobs/{job['id']}/instructions"), ("get", f"/api/v1/jobs/{job['id']}/instances"),
        ("get", f"/api/v1/exports/{export['id']}"), ("get", f"/api/v1/exports/{export['id']}/download"),
    ):
        response = getattr(other_api, method)(path)
        assert response.status_code == 404, (path, response.text)
        assert "no " in response.json()["detail"]
    # nor can they be referenced in bodies
    response = other_api.post("/api/v1/jobs", json={"kind": "self_instruct", "seed_set_id": seed_set["id"]})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "seed_set_id"]
    response = other_api.post("/api/v1/exports", json={"job_id": job["id"]})
    assert response.status_code == 422 and "no job with id" in response.json()["detail"]
    assert other_api.ok("get", "/api/v1/jobs")["total"] == 0
    assert other_api.ok("get", "/api/v1/seed-sets")["total"] == 0
    assert other_api.ok("get", "/api/v1/exports")["total"] == 0
    assert api.ok("get", "/api/v1/jobs")["total"] == 1


def test_apikey_commands(pg_url, monkeypatch):
    monkeypatch.setenv("SPROUT_DATABASE_URL", pg_url)
    runner = CliRunner()
    created = runner.invoke(cli, ["apikey", "create", "--name", "ci", "--owner", "team-a"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("sk_")
    with session_scope(pg_url) as session:
        assert keys.lookup(session, key).owner == "team-a"
    listed = runner.invoke(cli, ["apikey", "list", "--json"])
    assert listed.exit_code == 0 and key not in listed.output and '"owner": "team-a"' in listed.output
    revoked = runner.invoke(cli, ["apikey", "revoke", key[:10]])
    assert revoked.exit_code == 0, revoked.output
    with session_scope(pg_url) as session:
        assert keys.lookup(session, key) is None
    missing = runner.invoke(cli, ["apikey", "revoke", "sk_nothing"])
    assert missing.exit_code != 0
