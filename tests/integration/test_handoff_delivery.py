"""Deliveries and webhooks on PostgreSQL: recorded, retried with backoff until they land,
blocked by a failed preflight, and webhooks signed and retried after a receiver's 500."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import select

from app.core import jobs
from app.core.handoff import deliveries, retry_queue, sources, webhooks
from app.core.handoff.config import HandoffConfig
from app.core.handoff.preflight import Preflight, PreflightOptions
from app.core.handoff.retry import retry_due
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.core.seeds import parse_seeds
from app.db import session_scope
from app.models import (
    Delivery,
    DeliveryAttempt,
    Destination,
    Instruction,
    Job,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from tests.handoff_fixtures import tiny_model_dir, tiny_tokenizer  # noqa: F401
from tests.service_fixtures import store_candidates
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

SEEDS = "".join(json.dumps({"instruction": f"Seed task number {i} asks for something.",
                            "instances": [{"input": "", "output": f"answer {i}"}]}) + "\n" for i in range(8))
CONFIG = HandoffConfig(formats=["sharegpt", "messages", "parquet"], retry_base_s=30, retry_max_s=600, max_attempts=3)


def make_job(url: str, owner: str | None = "alice", outputs: tuple[str, ...] = ("Rain on the roof.", "1/2")) -> int:
    from app.core import store

    _, tasks = parse_seeds(SEEDS, "self-instruct")
    with session_scope(url) as session:
        seed_set = store.import_seed_set(session, "seeds", "self-instruct", tasks, owner=owner)
        job = jobs.requests.create_job(session, jobs.JobRequest("self_instruct", {"target": 2},
                                                                seed_set_id=seed_set.id, owner=owner))
        job_id = job.id
    store_candidates(url, job_id, [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, max_rouge_l=0.2,
                        instances=[InstanceCandidate("", outputs[0])]),
        CandidateRecord("Draw a map.", False, rule="blacklisted_word"),
        CandidateRecord("Convert 50% to a fraction.", True, in_pool=True, instances=[InstanceCandidate("50%", outputs[1])]),
    ])
    with session_scope(url) as session:
        session.get(Job, job_id).status = "succeeded"
    return job_id


def destination(url: str, kind: str, config: dict, owner: str | None = "alice") -> int:
    with session_scope(url) as session:
        row = Destination(owner=owner, name=f"{kind}-{len(str(config))}", kind=kind, config=config)
        session.add(row)
        session.flush()
        return row.id


def deliver(url, job_id, destination_id, tokenizer, tmp_path, now, config=CONFIG, owner="alice"):
    with session_scope(url) as session:
        rows, meta = sources.job_source(session, job_id, name="rain")
        dest = session.get(Destination, destination_id)
        return deliveries.deliver(session, dest, rows, meta, Preflight(tokenizer, PreflightOptions(max_length=128)),
                                  config, tmp_path / "work", now, owner=owner)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_job_is_delivered_to_a_folder_with_its_card_and_attempt_recorded(pg_url, tiny_tokenizer, tmp_path):
    job_id = make_job(pg_url)
    dest = destination(pg_url, "folder", {"path": str(tmp_path / "shared")})
    now = utcnow()
    delivery = deliver(pg_url, job_id, dest, tiny_tokenizer, tmp_path, now)
    assert delivery.status == "done" and delivery.attempts == 1 and delivery.rows == 2
    landed = tmp_path / "shared" / "rain" / f"job-{job_id}"
    assert delivery.location == str(landed) and os.readlink(tmp_path / "shared" / "rain" / "latest") == f"job-{job_id}"
    assert sorted(p.name for p in landed.iterdir()) == ["README.md", "axolotl.yaml", "data", "dataset_info.json",
                                                       "manifest.json", "messages.jsonl", "preflight.json",
                                                       "sharegpt.jsonl"]
    card = (landed / "README.md").read_text()
    assert "| blacklisted_word | 1 |" in card and "| self_instruct | 2 |" in card and "seeds (id" in card
    rows = [json.loads(line) for line in (landed / "sharegpt.jsonl").read_text().splitlines()]
    assert rows[0]["method"] == "self_instruct" and rows[0]["job_id"] == job_id
    assert rows[0]["scores"] == {"max_rouge_l": 0.2}
    assert not Path(delivery.bundle_path).exists()  # the work copy is gone once delivered
    with session_scope(pg_url) as session:
        [attempt] = session.exec(select(DeliveryAttempt)).all()
        assert attempt.ok and attempt.number == 1 and attempt.error is None


def test_the_hub_unreachable_keeps_the_bundle_and_retries_with_backoff_until_failed(pg_url, tiny_tokenizer, tmp_path):
    job_id = make_job(pg_url)
    dest = destination(pg_url, "hub", {"repo_id": "my-org/rain", "private": True})
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    config = CONFIG.model_copy(update={"hub_token": SecretStr("hf_not_a_real_token"), "hub_endpoint": endpoint})
    now = utcnow()
    delivery = deliver(pg_url, job_id, dest, tiny_tokenizer, tmp_path, now, config)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at == now + timedelta(seconds=30)
    assert f"Hugging Face Hub at {endpoint}, repo my-org/rain" in delivery.last_error
    bundle = Path(delivery.bundle_path)
    assert (bundle / "manifest.json").is_file() and (bundle / "data").is_dir()  # nothing lost

    with session_scope(pg_url) as session:
        assert not retry_due(session, now + timedelta(seconds=29), config)  # not due yet
        second = retry_due(session, now + timedelta(seconds=30), config)
    assert second.deliveries == {delivery.id: "pending"}
    with session_scope(pg_url) as session:
        row = session.get(Delivery, delivery.id)
        assert row.attempts == 2 and row.next_attempt_at == now + timedelta(seconds=30 + 60)
        third = retry_due(session, now + timedelta(seconds=90), config)
    assert third.deliveries == {delivery.id: "failed"}  # max_attempts = 3
    with session_scope(pg_url) as session:
        row = session.get(Delivery, delivery.id)
        attempts = session.exec(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
                                .order_by(DeliveryAttempt.number)).all()
        assert row.status == "failed" and row.next_attempt_at is None
        assert [(a.number, a.ok) for a in attempts] == [(1, False), (2, False), (3, False)]
        assert all("Hugging Face Hub" in a.error for a in attempts)
        assert not retry_due(session, now + timedelta(days=1), config)  # a failed delivery is not retried by itself
    assert (bundle / "manifest.json").is_file()  # still there, for a manual retry

    # the destination comes back (here: the operator points it at a folder); a manual retry lands it
    with session_scope(pg_url) as session:
        session.get(Destination, dest).kind, session.get(Destination, dest).config = "folder", {"path": str(tmp_path / "s")}
    with session_scope(pg_url) as session:
        done = deliveries.retry_now(session, delivery.id, config, now + timedelta(days=1))
    assert done.status == "done" and done.attempts == 4 and (tmp_path / "s" / "rain" / f"job-{job_id}").is_dir()
    with session_scope(pg_url) as session, pytest.raises(deliveries.CannotRetry, match="it is done"):
        deliveries.retry_now(session, delivery.id, config, now)


def test_a_failing_preflight_blocks_the_delivery_and_names_the_rows(pg_url, tiny_tokenizer, tmp_path):
    job_id = make_job(pg_url, outputs=("Rain on the roof.", "   "))
    dest = destination(pg_url, "folder", {"path": str(tmp_path / "shared")})
    delivery = deliver(pg_url, job_id, dest, tiny_tokenizer, tmp_path, utcnow())
    assert delivery.status == "blocked" and delivery.attempts == 0 and delivery.next_attempt_at is None
    assert delivery.last_error == "preflight failed: empty_output (1)"
    [problem] = delivery.preflight["problems"]
    assert problem["check"] == "empty_output" and problem["index"] == 1
    with session_scope(pg_url) as session:
        converted = session.exec(select(Instruction).where(Instruction.instruction == "Convert 50% to a fraction.")).one()
        assert problem["id"] == converted.id  # the row is named by its id at the source
        assert session.exec(select(DeliveryAttempt)).all() == []
        assert not retry_due(session, utcnow() + timedelta(days=1), CONFIG)
    assert not (tmp_path / "shared").exists() and list((tmp_path / "work" / "handoff" / "bundles").iterdir()) == []


def test_an_attempt_is_claimed_once(pg_url, tiny_tokenizer, tmp_path):
    job_id = make_job(pg_url)
    dest = destination(pg_url, "hub", {"repo_id": "my-org/rain"})
    config = CONFIG.model_copy(update={"hub_token": SecretStr("hf_x"), "hub_endpoint": f"http://127.0.0.1:{_closed_port()}"})
    now = utcnow()
    delivery = deliver(pg_url, job_id, dest, tiny_tokenizer, tmp_path, now, config)
    later = now + timedelta(seconds=31)
    with session_scope(pg_url) as a, session_scope(pg_url) as b:
        assert retry_queue.claim(a, Delivery, delivery.id, later, config)
        assert not retry_queue.claim(b, Delivery, delivery.id, later, config)  # held by the first
        # a claim whose process died is taken over after claim_timeout_s
        assert retry_queue.claim(b, Delivery, delivery.id, later + timedelta(seconds=config.claim_timeout_s + 1), config)


# --- webhooks ----------------------------------------------------------------------------------
def add_webhook(url: str, hook_url: str, events: list[str], owner: str | None = "alice") -> tuple[int, str]:
    secret = webhooks.new_secret()
    with session_scope(url) as session:
        row = Webhook(owner=owner, url=hook_url, secret=secret, events=events)
        session.add(row)
        session.flush()
        return row.id, secret


def test_delivery_done_reaches_the_receiver_signed(pg_url, tiny_tokenizer, tmp_path):
    job_id = make_job(pg_url)
    dest = destination(pg_url, "folder", {"path": str(tmp_path / "shared")})
    with WebhookReceiver() as receiver:
        hook_id, secret = add_webhook(pg_url, receiver.url, ["delivery_done"])
        add_webhook(pg_url, receiver.url, ["job_finished"])  # not subscribed to this event
        add_webhook(pg_url, receiver.url, ["delivery_done"], owner="bob")  # another owner's
        delivery = deliver(pg_url, job_id, dest, tiny_tokenizer, tmp_path, utcnow())
    [got] = receiver.received
    assert got.path == "/hooks/sprout" and got.headers["X-Sprout-Event"] == "delivery_done"
    assert webhooks.verify(secret, got.body, got.headers["X-Sprout-Signature"])
    assert got.headers["X-Sprout-Signature"] == webhooks.sign(secret, got.body)
    assert not webhooks.verify("another secret", got.body, got.headers["X-Sprout-Signature"])
    event = json.loads(got.body)
    assert event["event"] == "delivery_done" and event["data"]["id"] == delivery.id
    assert event["data"]["location"] == delivery.location and event["data"]["source"] == {"kind": "job", "id": job_id}
    with session_scope(pg_url) as session:
        [sent] = session.exec(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)).all()
        assert sent.status == "done" and sent.attempts == 1 and sent.last_status_code == 200
        assert got.headers["X-Sprout-Delivery"] == str(sent.id)


def test_a_webhook_answered_500_is_retried_with_the_same_signed_body(pg_url):
    now = utcnow()
    with WebhookReceiver(statuses=(500,)) as receiver:
        hook_id, secret = add_webhook(pg_url, receiver.url, ["job_finished", "training_finished"])
        with session_scope(pg_url) as session:
            job = Job(kind="self_instruct", status="succeeded", owner="alice", finished_at=now,
                      counters={"accepted": 2}, result={"curated": 2})
            session.add(job)
            session.flush()
            emitted = webhooks.emit_job_finished(session, job, now)
            assert [d.event for d in emitted] == ["job_finished"]  # not a training job
            [first] = webhooks.send_now(session, emitted, CONFIG, now)
        assert first.status == "pending" and first.last_status_code == 500
        assert first.next_attempt_at == now + timedelta(seconds=30)
        with session_scope(pg_url) as session:
            assert retry_due(session, now + timedelta(seconds=10), CONFIG).webhooks == {}
            assert retry_due(session, now + timedelta(seconds=30), CONFIG).webhooks == {first.id: "done"}
    assert [r.status for r in receiver.received] == [500, 200]
    a, b = receiver.received
    assert a.body == b.body and a.headers["X-Sprout-Delivery"] == b.headers["X-Sprout-Delivery"]
    assert all(webhooks.verify(secret, r.body, r.headers["X-Sprout-Signature"]) for r in receiver.received)
    with session_scope(pg_url) as session:
        attempts = session.exec(select(WebhookAttempt).order_by(WebhookAttempt.number)).all()
        assert [(x.number, x.status_code, x.error is None) for x in attempts] == [(1, 500, False), (2, 200, True)]
        assert "HTTP 500" in attempts[0].error and attempts[0].duration_ms is not None


def test_a_training_job_also_emits_training_finished_and_an_unreachable_receiver_gives_up(pg_url):
    from app.core.jobs.sft import KIND

    now = utcnow()
    hook_id, _ = add_webhook(pg_url, f"http://127.0.0.1:{_closed_port()}/hook", ["training_finished"])
    config = CONFIG.model_copy(update={"max_attempts": 2})
    with session_scope(pg_url) as session:
        job = Job(kind=KIND, status="succeeded", owner="alice", finished_at=now,
                  result={"metrics": {"eval_loss_after": 1.2}, "run_dir": "/x"})
        running = Job(kind=KIND, status="running", owner="alice")
        session.add_all([job, running])
        session.flush()
        assert webhooks.emit_job_finished(session, running, now) == []
        emitted = webhooks.emit_job_finished(session, job, now)
        [sent] = webhooks.send_now(session, emitted, config, now)
    assert sent.event == "training_finished" and json.loads(sent.body)["data"]["metrics"] == {"eval_loss_after": 1.2}
    assert sent.status == "pending" and "ConnectError" in sent.last_error
    with session_scope(pg_url) as session:
        assert retry_due(session, now + timedelta(seconds=30), config).webhooks == {sent.id: "failed"}


def test_webhook_urls_and_events_are_checked():
    assert webhooks.check_events(["job_finished", "job_finished"]) == ["job_finished"]
    for bad in ([], ["job_done"]):
        with pytest.raises(ValueError, match="events: must be some of"):
            webhooks.check_events(bad)
    for bad in ("ftp://x/y", "not a url", "http://"):
        with pytest.raises(ValueError, match="url: must be"):
            webhooks.check_url(bad)
