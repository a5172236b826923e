"""The service around the routes: readiness per dependency, refusal of an un-migrated
database (app and `sprout api`), the OpenAPI document, and no traceback ever leaking."""

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from app.asgi import create_app
from app.cli import cli
from app.db import DatabaseNotMigrated
from app.settings import Settings
from tests.conftest import PG_ADMIN_URL
from tests.service_fixtures import api, api_settings, client  # noqa: F401


def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True, "detail": "reachable, schema up to date"}
    assert body["checks"]["redis"] == {"ok": True, "detail": "reachable"}
    assert body["checks"]["llm"] == {"ok": True, "detail": "embedded (started per job)"}


def test_readyz_is_503_naming_what_is_down(pg_url, tmp_path):
    settings = Settings(database_url=pg_url, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                        llm_base_urls=["http://127.0.0.1:9/v1"], readiness_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["redis"]["detail"]
    assert body["checks"]["llm"]["ok"] is False and "http://127.0.0.1:9/v1" in body["checks"]["llm"]["detail"]


@pytest.fixture
def unmigrated_url():
    name = f"sprout_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from app.db import dispose_engines

    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def test_the_api_refuses_an_unmigrated_database(unmigrated_url, redis_url, tmp_path, monkeypatch):
    app = create_app(Settings(database_url=unmigrated_url, redis_url=redis_url, data_dir=tmp_path))
    with pytest.raises(DatabaseNotMigrated, match="sprout db upgrade"), TestClient(app):
        pass
    monkeypatch.setenv("SPROUT_DATABASE_URL", unmigrated_url)
    result = CliRunner().invoke(cli, ["api", "--port", "8765"])
    assert result.exit_code == 1
    assert "sprout db upgrade" in str(result.exception) and "revision none" in str(result.exception)


def test_openapi_documents_every_route_with_examples(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/seed-sets", "/api/v1/seed-sets/{seed_set_id}", "/api/v1/jobs", "/api/v1/jobs/{job_id}",
                 "/api/v1/jobs/{job_id}/cancel", "/api/v1/jobs/{job_id}/retry", "/api/v1/jobs/{job_id}/instructions",
                 "/api/v1/jobs/{job_id}/instances", "/api/v1/exports", "/api/v1/exports/{export_id}",
                 "/api/v1/exports/{export_id}/download", "/healthz", "/readyz"):
        assert path in paths, path
    upload = paths["/api/v1/seed-sets"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(upload) and upload["application/json"]["examples"]
    schemas = schema["components"]["schemas"]
    for name in ("JobCreate", "SeedSetCreate", "ExportCreate"):
        assert schemas[name].get("examples"), name
    assert schemas["JobCreate"]["examples"][0]["kind"] == "self_instruct"
    assert paths["/api/v1/jobs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ValidationErrorBody")
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_an_unexpected_error_is_a_bare_500(api_settings):
    app = create_app(api_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; it was logged on the server"}
    assert "secret" not in response.text and "Traceback" not in response.text


def test_the_export_formats_match_the_core():
    from typing import get_args

    from app.api.schemas.exports import ExportFormat
    from app.api.schemas.handoff import Event
    from app.core.handoff import formats, webhooks

    assert set(get_args(ExportFormat)) == set(formats.FORMATS)
    assert get_args(Event) == webhooks.EVENTS



@pytest.mark.parametrize(
    "path, methods",
    [
        ("/api/v1/jobs", {"GET", "POST", "OPTIONS"}),
        ("/api/v1/jobs/1", {"GET", "DELETE", "OPTIONS"}),
        ("/api/v1/seed-sets/1", {"GET", "DELETE", "OPTIONS"}),
        ("/healthz", {"GET", "OPTIONS"}),
    ],
)
def test_options_and_405_list_every_method_of_the_path(api, path, methods):
    answer = api.client.options(path)
    assert answer.status_code == 204 and set(answer.headers["allow"].split(", ")) == methods, answer.headers
    wrong = api.client.put(path)
    assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) == methods
    assert wrong.json()["detail"]
