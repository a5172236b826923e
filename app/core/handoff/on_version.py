"""What happens to a new dataset version, once it is committed: the `version_created` event,
its delivery to the dataset's destinations, and the preflight check a training run waits for.

Each step is idempotent, because the job that runs them (`app.core.jobs.version_handoff`)
may be taken over after its worker died: the event is emitted once per version, a
destination gets one delivery per version (a later attempt is the delivery's own retry),
and the check is the deliveries' own (a bundle is checked as it is written) or, with no
destination, one pass of `preflight.check_rows` over the version's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.core.datasets import versions as ds_versions
from app.core.handoff import deliveries, sources, webhooks
from app.core.handoff.config import HandoffConfig
from app.core.handoff.preflight import Preflight, PreflightReport
from app.core.store import id_of
from app.models import Dataset, DatasetVersion, Delivery, Destination, Webhook, WebhookDelivery

SOURCE_KIND = "dataset_version"
EVENT = "version_created"


def owner_of(dataset: Dataset) -> str | None:
    """The owner the dataset's deliveries, webhooks and jobs carry (the CLI's datasets: none)."""
    return None if dataset.owner == ds_versions.owner_key(None) else dataset.owner


def subscribed(session: Session, dataset: Dataset, event: str = EVENT) -> bool:
    """Does an active webhook of the dataset's owner listen to `event`?"""
    owner = owner_of(dataset)
    hooks = session.exec(select(Webhook.events).where(
        col(Webhook.owner).is_(None) if owner is None else col(Webhook.owner) == owner, col(Webhook.active).is_(True))).all()
    return any(event in (events or []) for events in hooks)


def version_event(dataset: Dataset, version: DatasetVersion, destinations: list[Destination],
                  training: bool) -> dict[str, Any]:
    """The `version_created` body's `data`."""
    return {
        "dataset": {"id": dataset.id, "name": dataset.name},
        "version": {"number": version.number, "id": version.id, "kind": version.kind,
                    "parent": version.number - 1 if version.parent_id is not None else None,
                    "row_count": version.row_count, "content_hash": version.content_hash, "counts": version.counts,
                    "build_job_id": version.build_job_id, "created_at": version.created_at.isoformat()},
        "destinations": [{"id": d.id, "name": d.name, "kind": d.kind} for d in destinations],
        "training": training,
    }


def announce(session: Session, dataset: Dataset, version: DatasetVersion, data: dict[str, Any],
             config: HandoffConfig, now: datetime) -> int:
    """Emit `version_created` for the version (once) and try each delivery of it now; returns
    how many webhook deliveries it queued (0 when it was emitted before). Commits."""
    done = session.exec(select(WebhookDelivery.id).where(
        WebhookDelivery.event == EVENT, WebhookDelivery.source_kind == SOURCE_KIND,
        WebhookDelivery.source_id == version.id)).first()
    if done is not None:
        return 0
    emitted = webhooks.emit(session, EVENT, data, owner=owner_of(dataset), now=now, source_kind=SOURCE_KIND,
                            source_id=version.id)
    webhooks.send_now(session, emitted, config, now)
    return len(emitted)


def existing_delivery(session: Session, version: DatasetVersion, destination: Destination) -> Delivery | None:
    return session.exec(select(Delivery).where(
        Delivery.destination_id == destination.id, Delivery.source_kind == SOURCE_KIND,
        Delivery.source_id == version.id).order_by(col(Delivery.id))).first()


def deliver(session: Session, dataset: Dataset, version: DatasetVersion, destination: Destination,
            preflight: Preflight, config: HandoffConfig, work_dir: Path, now: datetime,
            **card: Any) -> Delivery:
    """The version's delivery to `destination`: bundled, checked, recorded and attempted once
    (`deliveries.deliver`), unless it was made before. Commits."""
    made = existing_delivery(session, version, destination)
    if made is not None:
        return made
    rows, meta = sources.dataset_version_source(session, dataset, version.number, license=config.license,
                                                language=tuple(config.language), **card)
    return deliveries.deliver(session, destination, rows, meta, preflight, config, work_dir, now,
                              owner=owner_of(dataset))


def check(session: Session, dataset: Dataset, version: DatasetVersion, preflight: Preflight) -> PreflightReport:
    """The preflight check of the version's rows alone (no bundle)."""
    for row in sources.version_rows(session, id_of(dataset), version.number):
        preflight.add(row)
    return preflight.finish()


def delivery_line(delivery: Delivery, destination: Destination) -> dict[str, Any]:
    return {"id": delivery.id, "destination": destination.name, "status": delivery.status,
            "location": delivery.location, "error": delivery.last_error,
            "preflight_ok": bool((delivery.preflight or {}).get("ok"))}


PreflightFactory = Callable[[], Preflight]
