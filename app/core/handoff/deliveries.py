"""Deliveries: a checked bundle sent to a destination, recorded, and retried until it lands.

`deliver` writes the bundle of a row source (with its preflight check) into the work
folder, records a `Delivery`, and makes the first attempt. A bundle that failed its
check is recorded `blocked`, with the report, and never sent. Each attempt is a
`DeliveryAttempt` row; a failure that may pass later (the Hub unreachable, a full disk)
sets `next_attempt_at` by exponential backoff (`retry_queue`, shared with webhooks) and `retry.retry_due` tries again; one that
cannot (a taken label, a refused token), or the last allowed attempt, marks it `failed`.
The bundle waits in the work folder until the delivery is done, so nothing is lost while
a destination is away. An attempt is claimed by a conditional UPDATE, so two processes
never send the same delivery at once; an attempt whose process died is taken over after
`claim_timeout_s`. A delivery that is done emits the `delivery_done` webhook event.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.core.errors import Conflict
from app.core.handoff import retry_queue, webhooks
from app.core.handoff.bundle import MANIFEST, Bundle, BundleOptions, read_manifest, write_bundle
from app.core.handoff.config import HandoffConfig
from app.core.handoff.destinations import DeliveryError, build
from app.core.handoff.meta import HandoffMeta
from app.core.handoff.preflight import Preflight
from app.core.handoff.retry_queue import DONE, FAILED, PENDING, RUNNING
from app.core.store import NotFound, get_row, id_of
from app.models import Delivery, DeliveryAttempt, Destination

BLOCKED = "blocked"  # checked and refused by the preflight: never queued
STATUSES = (PENDING, RUNNING, DONE, FAILED, BLOCKED)


def bundles_dir(work_dir: Path) -> Path:
    return Path(work_dir) / "handoff" / "bundles"


def record(session: Session, destination: Destination, bundle: Bundle, now: datetime,
           owner: str | None = None) -> Delivery:
    """The `Delivery` row of a written bundle: pending, or blocked by its preflight report."""
    report = bundle.preflight.as_dict() if bundle.preflight is not None else {"ok": False, "unchecked": True}
    blocked = not bundle.deliverable
    delivery = Delivery(
        owner=owner, destination_id=id_of(destination), source_kind=bundle.meta.source_kind,
        source_id=bundle.meta.source_id, label=bundle.meta.label, status=BLOCKED if blocked else PENDING,
        next_attempt_at=None if blocked else now, bundle_path=None if blocked else str(bundle.path),
        rows=bundle.stats.rows, formats=[f.format for f in bundle.files], preflight=report, created_at=now,
        last_error=(bundle.preflight.summary() if bundle.preflight else "the bundle was not checked") if blocked else None,
    )
    session.add(delivery)
    session.flush()
    return delivery


def deliver(session: Session, destination: Destination, rows: Iterable[dict[str, Any]], meta: HandoffMeta,
            preflight: Preflight, config: HandoffConfig, work_dir: Path, now: datetime,
            owner: str | None = None) -> Delivery:
    """Bundle, check, record and attempt once. Returns the delivery (done, pending a retry,
    failed or blocked). Commits."""
    options = BundleOptions(formats=tuple(config.formats), rows_per_shard=config.rows_per_shard)
    target = bundles_dir(work_dir) / f"{meta.label}-{uuid.uuid4().hex[:12]}"
    bundle = write_bundle(rows, meta, target, options, preflight)
    try:
        delivery = record(session, destination, bundle, now, owner)
        session.commit()
    except BaseException:
        shutil.rmtree(bundle.path, ignore_errors=True)
        raise
    if delivery.status == BLOCKED:
        shutil.rmtree(bundle.path, ignore_errors=True)  # the report is kept in the row
        return delivery
    return attempt(session, id_of(delivery), config, now) or delivery


def attempt(session: Session, delivery_id: int, config: HandoffConfig, now: datetime,
            force: bool = False) -> Delivery | None:
    """Try one delivery if it is due (`force`: pending, due or not); None when it is not
    due or another process holds it. Records the attempt, schedules the next one or ends
    the delivery; a done delivery emits `delivery_done` and sends it. Commits."""
    if not retry_queue.claim(session, Delivery, delivery_id, now, config, force):
        return None
    delivery = get_row(session, Delivery, delivery_id)
    session.refresh(delivery)
    destination = get_row(session, Destination, delivery.destination_id)
    error, retryable, location = None, True, None
    bundle_dir = Path(delivery.bundle_path or "")
    try:
        if not delivery.bundle_path or not (bundle_dir / MANIFEST).is_file():
            raise DeliveryError(f"the bundle waiting for this delivery is gone ({bundle_dir}); deliver the source again",
                                retryable=False)
        name = read_manifest(bundle_dir)["name"]
        target = build(destination.kind, destination.config,
                       hub_token=config.hub_token.get_secret_value() if config.hub_token else None,
                       hub_endpoint=config.hub_endpoint)
        location = target.deliver(bundle_dir, name, delivery.label)
    except DeliveryError as exc:
        error, retryable = str(exc), exc.retryable
    except ValueError as exc:  # a destination row that no longer validates
        error, retryable = f"destination {destination.id}: {exc}", False
    session.add(DeliveryAttempt(delivery_id=id_of(delivery), number=delivery.attempts, started_at=now,
                                finished_at=now, ok=error is None, error=error))
    retry_queue.settle(delivery, error, now, config, retryable)
    delivery.last_error = error
    emitted = []
    if delivery.status == DONE:
        delivery.location, delivery.finished_at = location, now
        emitted = webhooks.emit(session, "delivery_done", describe(delivery, destination), owner=delivery.owner,
                                now=now, source_kind=delivery.source_kind, source_id=delivery.source_id)
    elif delivery.status == FAILED:
        delivery.finished_at = now
    session.add(delivery)
    session.commit()
    if delivery.status == DONE:
        shutil.rmtree(bundle_dir, ignore_errors=True)
        webhooks.send_now(session, emitted, config, now)
    return delivery


class CannotRetry(Conflict, ValueError):
    """A delivery that a retry cannot help: done, blocked, running, or its bundle gone."""


def retry_now(session: Session, delivery_id: int, config: HandoffConfig, now: datetime) -> Delivery:
    """Try a pending or failed delivery again at once (a failed one gets one more attempt)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    session.refresh(delivery)
    if delivery.status in (DONE, BLOCKED, RUNNING):
        why = {DONE: "it is done", RUNNING: "an attempt is running",
               BLOCKED: "its preflight check failed; fix the data and deliver the source again"}[delivery.status]
        raise CannotRetry(f"delivery {delivery_id} cannot be retried: {why}")
    if not delivery.bundle_path or not (Path(delivery.bundle_path) / MANIFEST).is_file():
        raise CannotRetry(f"delivery {delivery_id} cannot be retried: its bundle is gone; deliver the source again")
    delivery.status, delivery.next_attempt_at, delivery.finished_at = PENDING, now, None
    session.add(delivery)
    session.commit()
    return attempt(session, delivery_id, config, now, force=True) or delivery


def describe(delivery: Delivery, destination: Destination | None) -> dict[str, Any]:
    """A delivery as the `delivery_done` event and the API show it."""
    return {
        "id": delivery.id, "status": delivery.status, "label": delivery.label,
        "source": {"kind": delivery.source_kind, "id": delivery.source_id},
        "destination": None if destination is None else {"id": destination.id, "name": destination.name,
                                                         "kind": destination.kind},
        "location": delivery.location, "rows": delivery.rows, "formats": delivery.formats,
        "preflight_ok": bool((delivery.preflight or {}).get("ok")), "attempts": delivery.attempts,
    }


def due_ids(session: Session, now: datetime, config: HandoffConfig, limit: int = 100) -> list[int]:
    return retry_queue.due_ids(session, Delivery, now, config, limit)


def attempts_of(session: Session, delivery_id: int) -> list[DeliveryAttempt]:
    return list(session.exec(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                             .order_by(col(DeliveryAttempt.number))).all())
