"""Webhooks: signed JSON events, each attempt recorded, retried with backoff.

Events: `version_created` (a dataset version was committed), `delivery_done` (a bundle
reached its destination), `training_finished` (a fine-tuning job ended; a dataset
version's gated run carries the version and the gate's decision), `job_finished` (any job
ended). `emit` stores one `WebhookDelivery` per subscribed webhook of the resource's
owner, with the exact body to send; `send` posts it. Every try of the same delivery sends
the same bytes with the same `X-Sprout-Delivery` id, so a receiver can drop duplicates.

Signature, as GitHub signs its webhooks: `X-Sprout-Signature: sha256=<hex>`, the
HMAC-SHA256 of the raw request body keyed with the webhook's secret. A receiver computes
the same over the bytes it received and compares in constant time (`verify`). The body
carries `created_at`, so a receiver can also refuse old replays.

A 2xx answer is success; anything else (an error status, a timeout, a refused
connection) is retried after `HandoffConfig.backoff(attempts)` until `max_attempts`,
then the delivery is marked failed. A delivery is claimed by a conditional UPDATE before
it is sent, so two processes retrying at once never send it twice at the same time (the
queue, shared with deliveries: `retry_queue`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session, col, select

from app.core.handoff import retry_queue
from app.core.handoff.config import HandoffConfig
from app.core.handoff.retry_queue import DONE, PENDING
from app.core.store import get_row, id_of
from app.models import Webhook, WebhookAttempt, WebhookDelivery

EVENTS = ("version_created", "delivery_done", "training_finished", "job_finished")
SIGNATURE_HEADER = "X-Sprout-Signature"
EVENT_HEADER = "X-Sprout-Event"
DELIVERY_HEADER = "X-Sprout-Delivery"
USER_AGENT = "Sprout-Webhook/1"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver runs: does `header` sign exactly `body` with `secret`?"""
    return bool(header) and hmac.compare_digest(sign(secret, body), header or "")


def new_secret() -> str:
    return secrets.token_hex(32)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url: must be an http:// or https:// URL with a host, got {url!r}")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise ValueError(f"events: must be some of {', '.join(EVENTS)}; got {', '.join(unknown) or 'none'}")
    return list(dict.fromkeys(events))


def _owned_by(owner: str | None) -> Any:
    return col(Webhook.owner).is_(None) if owner is None else col(Webhook.owner) == owner


def emit(session: Session, event: str, data: dict[str, Any], *, owner: str | None, now: datetime,
         source_kind: str | None = None, source_id: int | None = None) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook of `owner` subscribed to it (flushed, not committed)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
    hooks = session.exec(select(Webhook).where(_owned_by(owner), col(Webhook.active).is_(True))
                         .order_by(col(Webhook.id))).all()
    event_id = uuid.uuid4().hex
    body = json.dumps({"id": event_id, "event": event, "created_at": now.isoformat(timespec="seconds"),
                       "data": data}, ensure_ascii=False, default=str)
    out = []
    for hook in hooks:
        if event not in (hook.events or []):
            continue
        delivery = WebhookDelivery(webhook_id=id_of(hook), event=event, event_id=event_id, source_kind=source_kind,
                                   source_id=source_id, body=body, status=PENDING, next_attempt_at=now, created_at=now)
        session.add(delivery)
        out.append(delivery)
    session.flush()
    return out


def send(session: Session, delivery_id: int, config: HandoffConfig, now: datetime,
         client: httpx.Client | None = None) -> WebhookDelivery | None:
    """Try one webhook delivery now if it is due (or its last try died); returns it, or None
    when it was not due or another process holds it. Commits."""
    if not retry_queue.claim(session, WebhookDelivery, delivery_id, now, config):
        return None
    delivery = get_row(session, WebhookDelivery, delivery_id)
    session.refresh(delivery)
    hook = get_row(session, Webhook, delivery.webhook_id)
    body = delivery.body.encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: delivery.event,
               DELIVERY_HEADER: str(delivery.id), SIGNATURE_HEADER: sign(hook.secret, body)}
    status_code, error = None, None
    started = time.monotonic()
    own = client is None
    client = client or httpx.Client(timeout=config.webhook_timeout_s, follow_redirects=False)
    try:
        response = client.post(hook.url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if own:
            client.close()
    duration_ms = int((time.monotonic() - started) * 1000)
    session.add(WebhookAttempt(webhook_delivery_id=id_of(delivery), number=delivery.attempts, started_at=now,
                               duration_ms=duration_ms, status_code=status_code, error=error))
    delivery.last_status_code, delivery.last_error = status_code, error
    retry_queue.settle(delivery, error, now, config)
    if delivery.status == DONE:
        delivery.delivered_at = now
    session.add(delivery)
    session.commit()
    return delivery


def due_ids(session: Session, now: datetime, config: HandoffConfig, limit: int = 100) -> list[int]:
    return retry_queue.due_ids(session, WebhookDelivery, now, config, limit)


def send_due(session: Session, now: datetime, config: HandoffConfig, limit: int = 100) -> list[WebhookDelivery]:
    """Send every webhook delivery that is due; returns those tried."""
    tried = []
    with httpx.Client(timeout=config.webhook_timeout_s, follow_redirects=False) as client:
        for delivery_id in due_ids(session, now, config, limit):
            delivery = send(session, delivery_id, config, now, client)
            if delivery is not None:
                tried.append(delivery)
    return tried


def send_now(session: Session, deliveries: Sequence[WebhookDelivery], config: HandoffConfig,
             now: datetime) -> list[WebhookDelivery]:
    """Commit freshly emitted deliveries and try each once right away (failures wait for a retry)."""
    ids = [id_of(d) for d in deliveries]
    session.commit()
    if not ids:
        return []
    with httpx.Client(timeout=config.webhook_timeout_s, follow_redirects=False) as client:
        return [d for d in (send(session, i, config, now, client) for i in ids) if d is not None]


def emit_job_finished(session: Session, job: Any, now: datetime) -> list[WebhookDelivery]:
    """`job_finished` for a job that ended (succeeded, failed, cancelled), and
    `training_finished` too when it was a fine-tuning job; nothing for a job still queued
    or running (a paused job goes back to the queue)."""
    from app.core.jobs.results import read_result
    from app.core.jobs.sft import KIND as TRAINING_KIND
    from app.core.jobs.sft import SftResult
    from app.models import JobStatus

    if not JobStatus(job.status).finished:
        return []
    data = {"job": {"id": job.id, "kind": job.kind, "status": job.status, "error": job.error,
                    "counters": job.counters, "result": job.result,
                    "finished_at": job.finished_at.isoformat() if job.finished_at else None}}
    out = emit(session, "job_finished", data, owner=job.owner, now=now, source_kind="job", source_id=job.id)
    if job.kind == TRAINING_KIND:
        result = read_result(job, SftResult)
        # a failed run has no metrics (null, as the event always said)
        training = {**data, "metrics": result.metrics if "metrics" in result.model_fields_set else None,
                    "run_dir": result.run_dir}
        source = result.source
        if source.dataset_id is not None:  # a dataset version's run, and the gate's decision on it
            training["dataset"] = {"id": source.dataset_id, "name": source.dataset, "version": source.version}
            training["gate"] = result.gate
        out += emit(session, "training_finished", training, owner=job.owner, now=now, source_kind="job",
                    source_id=job.id)
    return out
