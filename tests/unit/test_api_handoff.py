"""Hand-off over HTTP: Parquet and sharegpt exports, destinations confined to the service's
folders, deliveries (done, retried, blocked) with their reports and attempts, webhooks
with their deliveries, everything scoped to its owner."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from app.core import export, store
from app.core.handoff import sources, webhooks
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Job
from tests.handoff_fixtures import tiny_model_dir  # noqa: F401
from tests.service_fixtures import api, client, make_key, other_api, store_candidates  # noqa: F401
from tests.webhook_receiver import WebhookReceiver

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


@pytest.fixture
def api_settings(pg_url, redis_url, tmp_path, tiny_model_dir):
    from app.core.handoff.config import HandoffConfig
    from app.settings import Settings

    return Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data",
                    handoff=HandoffConfig(tokenizer=str(tiny_model_dir), max_length=256,
                                          formats=["sharegpt", "messages", "parquet"]))


def make_job(api, pg_url, outputs=("Rain on the roof.", "1/2"), status="succeeded"):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    store_candidates(pg_url, job, [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.25,
                        instances=[InstanceCandidate("", outputs[0])]),
        CandidateRecord("Draw a map.", False, rule="blacklisted_word"),
        CandidateRecord("Convert 50% to a fraction.", True, in_pool=True, instances=[InstanceCandidate("50%", outputs[1])]),
    ])
    with session_scope(pg_url) as session:
        session.get(Job, job).status = status
    return job


def test_parquet_and_sharegpt_exports(api, pg_url, tmp_path):
    from datasets import load_dataset

    job = make_job(api, pg_url)
    made = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": "parquet"})
    assert made["filename"].endswith(".parquet.zip") and made["rows"] == 2
    download = api.get(made["download_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as zf:
        assert zf.namelist() == ["data/train-00000-of-00001.parquet"]
        zf.extractall(tmp_path / "unzipped")
    ds = load_dataset(str(tmp_path / "unzipped"), split="train")
    assert ds["output"] == ["Rain on the roof.", "1/2"] and ds["method"] == ["self_instruct"] * 2
    assert json.loads(ds["scores"][0]) == {"max_rouge_l": 0.25}
    sharegpt = api.ok("post", "/api/v1/exports", 201, json={"job_id": job, "format": "sharegpt"})
    text = api.get(sharegpt["download_url"]).text
    with session_scope(pg_url) as session:
        assert text == export.render(sources.rows_for_format(session, store.get_job(session, job), "sharegpt"), "sharegpt")
    assert json.loads(text.splitlines()[1])["conversations"][0] == {"from": "human",
                                                                    "value": "Convert 50% to a fraction.\n\n50%"}
    refused = api.post("/api/v1/jobs", json={"kind": "sft", "export_id": made["id"]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "export_id"]


def test_destinations_are_confined_validated_and_owned(api, other_api, api_settings):
    root = api_settings.data_dir / "handoff" / "out"
    made = api.ok("post", "/api/v1/destinations", 201, json={"name": "cluster", "kind": "folder",
                                                             "path": str(root / "team")})
    assert made["config"] == {"path": str(root / "team")} and made["kind"] == "folder"
    hub = api.ok("post", "/api/v1/destinations", 201, json={"name": "hub", "kind": "hub", "repo_id": "my-org/rain"})
    assert hub["config"] == {"repo_id": "my-org/rain", "private": True}
    for body, loc, fragment in (
        ({"name": "x", "kind": "folder", "path": "/etc/sprout"}, ["body", "path"], "hand-off folders"),
        ({"name": "x", "kind": "folder", "path": "relative/dir"}, ["body", "path"], "absolute"),
        ({"name": "x", "kind": "folder", "path": str(root / ".." / ".." / "escape")}, ["body", "path"], "hand-off"),
        ({"name": "x", "kind": "hub", "repo_id": "no-slash"}, ["body", "repo_id"], "owner/name"),
        ({"name": "x", "kind": "hub", "path": "/x"}, ["body"], "takes 'repo_id'"),
        ({"name": "cluster", "kind": "folder", "path": str(root)}, ["body", "name"], "already have"),
        ({"name": "../x", "kind": "folder", "path": str(root)}, ["body", "name"], "pattern"),
        ({"name": "x", "kind": "s3", "path": str(root)}, ["body", "kind"], "'folder' or 'hub'"),
        ({"name": "x", "kind": "folder", "path": str(root), "mode": "888"}, ["body", "mode"], "octal file mode"),
        ({"name": "x", "kind": "folder", "path": str(root), "mode": "044"}, ["body", "mode"], "read and write"),
    ):
        response = api.post("/api/v1/destinations", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["loc"] == loc and fragment in response.json()["detail"], response.text
    moded = api.ok("post", "/api/v1/destinations", 201, json={"name": "private", "kind": "folder",
                                                              "path": str(root / "private"), "mode": "640"})
    assert moded["config"] == {"path": str(root / "private"), "mode": "0640"}
    assert api.ok("get", "/api/v1/destinations")["total"] == 3
    assert other_api.ok("get", "/api/v1/destinations")["total"] == 0
    assert other_api.get(f"/api/v1/destinations/{made['id']}").status_code == 404
    assert other_api.delete(f"/api/v1/destinations/{made['id']}").status_code == 404
    assert api.delete(f"/api/v1/destinations/{hub['id']}").status_code == 204
    assert api.get(f"/api/v1/destinations/{hub['id']}").status_code == 404


def test_a_delivery_lands_in_the_folder_and_its_webhook_is_signed(api, other_api, pg_url, api_settings):
    job = make_job(api, pg_url)
    root = api_settings.data_dir / "handoff" / "out"
    dest = api.ok("post", "/api/v1/destinations", 201, json={"name": "cluster", "kind": "folder", "path": str(root)})
    with WebhookReceiver() as receiver:
        hook = api.ok("post", "/api/v1/webhooks", 201, json={"url": receiver.url, "events": ["delivery_done"]})
        assert len(hook["secret"]) == 64 and "secret" not in api.ok("get", f"/api/v1/webhooks/{hook['id']}")
        delivery = api.ok("post", "/api/v1/deliveries", 201,
                          json={"job_id": job, "destination_id": dest["id"], "name": "rain"})
    assert delivery["status"] == "done" and delivery["label"] == f"job-{job}" and delivery["rows"] == 2
    assert delivery["location"] == str(root / "rain" / f"job-{job}") and delivery["formats"] == ["sharegpt", "messages",
                                                                                                 "parquet"]
    assert delivery["preflight"]["ok"] and [a["ok"] for a in delivery["attempt_log"]] == [True]
    assert (root / "rain" / f"job-{job}" / "README.md").is_file() and (root / "rain" / "latest").is_symlink()
    [got] = receiver.received
    assert webhooks.verify(hook["secret"], got.body, got.headers["X-Sprout-Signature"])
    sent = api.ok("get", f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert sent["total"] == 1 and sent["items"][0]["status"] == "done" and sent["items"][0]["body"] == got.body.decode()
    assert sent["items"][0]["attempt_log"][0]["status_code"] == 200
    assert api.ok("get", f"/api/v1/deliveries/{delivery['id']}") == delivery
    assert api.ok("get", "/api/v1/deliveries?status=done")["total"] == 1
    assert other_api.get(f"/api/v1/deliveries/{delivery['id']}").status_code == 404
    assert other_api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    # the other owner can neither deliver this job nor use this destination
    other_dest = other_api.ok("post", "/api/v1/destinations", 201,
                              json={"name": "mine", "kind": "folder", "path": str(root / "bob")})
    response = other_api.post("/api/v1/deliveries", json={"job_id": job, "destination_id": other_dest["id"]})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "job_id"]
    response = api.post("/api/v1/deliveries", json={"job_id": job, "destination_id": other_dest["id"]})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "destination_id"]
    retried = api.post(f"/api/v1/deliveries/{delivery['id']}/retry")
    assert retried.status_code == 409 and "it is done" in retried.json()["detail"]


def test_a_hub_delivery_without_a_token_fails_and_a_bad_job_is_blocked(api, pg_url, api_settings):
    job = make_job(api, pg_url)
    hub = api.ok("post", "/api/v1/destinations", 201, json={"name": "hub", "kind": "hub", "repo_id": "my-org/rain"})
    no_token = api.ok("post", "/api/v1/deliveries", 201, json={"job_id": job, "destination_id": hub["id"]})
    assert no_token["status"] == "failed" and "SPROUT_HANDOFF__HUB_TOKEN" in no_token["last_error"]  # none is set

    blocked_job = make_job(api, pg_url, outputs=("", "1/2"))
    blocked = api.ok("post", "/api/v1/deliveries", 201, json={"job_id": blocked_job, "destination_id": hub["id"]})
    assert blocked["status"] == "blocked" and blocked["attempts"] == 0 and blocked["attempt_log"] == []
    assert [(p["check"], p["index"]) for p in blocked["preflight"]["problems"]] == [("empty_output", 0)]
    again = api.post(f"/api/v1/deliveries/{blocked['id']}/retry")
    assert again.status_code == 409 and "preflight check failed" in again.json()["detail"]

    running = make_job(api, pg_url, status="running")
    response = api.post("/api/v1/deliveries", json={"job_id": running, "destination_id": hub["id"]})
    assert response.status_code == 422 and "once it has finished" in response.json()["detail"]
    for body, fragment in (({"job_id": job, "destination_id": hub["id"], "formats": ["csv"]}, "body.formats"),
                           ({"job_id": job, "destination_id": hub["id"], "final_only": True}, "final_only"),
                           ({"job_id": job, "destination_id": 999}, "no destination with id 999")):
        response = api.post("/api/v1/deliveries", json=body)
        assert response.status_code == 422 and fragment in response.json()["detail"], response.text


def test_webhooks_are_validated_and_owned(api, other_api):
    for body, fragment in (({"url": "ftp://x/y", "events": ["job_finished"]}, "body.url"),
                           ({"url": "https://x.example/h", "events": ["job_done"]}, "body.events"),
                           ({"url": "https://x.example/h", "events": []}, "body.events"),
                           ({"url": "https://x.example/h", "events": ["job_finished"], "secret": "short"}, "body.secret")):
        response = api.post("/api/v1/webhooks", json=body)
        assert response.status_code == 422 and fragment in response.json()["detail"], response.text
    hook = api.ok("post", "/api/v1/webhooks", 201, json={"url": "https://x.example/h", "events": ["job_finished"],
                                                         "secret": "s" * 32})
    assert hook["secret"] == "s" * 32 and api.ok("get", "/api/v1/webhooks")["total"] == 1
    assert other_api.ok("get", "/api/v1/webhooks")["total"] == 0
    assert other_api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204


def test_openapi_documents_the_handoff_routes_with_examples(client):
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/destinations", "/api/v1/destinations/{destination_id}", "/api/v1/deliveries",
                 "/api/v1/deliveries/{delivery_id}", "/api/v1/deliveries/{delivery_id}/retry", "/api/v1/webhooks",
                 "/api/v1/webhooks/{webhook_id}", "/api/v1/webhooks/{webhook_id}/deliveries"):
        assert path in schema["paths"], path
    for name in ("DestinationCreate", "DeliveryCreate", "WebhookCreate"):
        assert schema["components"]["schemas"][name].get("examples"), name
