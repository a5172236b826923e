"""Webhooks: URLs that receive the caller's events, signed; create, list, get, delete, and
every delivery of an event with each attempt (status code, error, time)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from sqlalchemy import func
from sqlmodel import Session, select

from app.api.deps import IdPath, Owner, SessionDep, owned
from app.api.errors import LimitedJsonRoute, field_error
from app.api.schemas.common import MAX_PAGE, Page
from app.api.schemas.handoff import AttemptOut, WebhookCreate, WebhookCreated, WebhookDeliveryOut, WebhookOut
from app.core.handoff import webhooks
from app.models import Webhook, WebhookAttempt, WebhookDelivery

router = APIRouter(prefix="/webhooks", tags=["hand-off"], route_class=LimitedJsonRoute)


def _out(row: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(row.model_dump())


@router.post("", status_code=201, summary="Create a webhook (its signing secret is shown once)")
def create_webhook(body: WebhookCreate, session: SessionDep, owner: Owner) -> WebhookCreated:
    try:
        url = webhooks.check_url(body.url)
    except ValueError as exc:
        raise field_error(("body", "url"), str(exc).partition(": ")[2]) from None
    row = Webhook(owner=owner, url=url, secret=body.secret or webhooks.new_secret(),
                  events=webhooks.check_events(body.events))
    session.add(row)
    session.commit()
    return WebhookCreated(**_out(row).model_dump(), secret=row.secret)


@router.get("", summary="List webhooks")
def list_webhooks(session: SessionDep, owner: Owner, limit: int = Query(50, ge=1, le=MAX_PAGE),
                  offset: int = Query(0, ge=0, le=2**31)) -> Page[WebhookOut]:
    query = select(Webhook).where(Webhook.owner == owner)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Webhook.id).offset(offset).limit(limit)).all()
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{webhook_id}", summary="One webhook")
def get_webhook(webhook_id: IdPath, session: SessionDep, owner: Owner) -> WebhookOut:
    return _out(owned(session, Webhook, webhook_id, owner, "webhook"))


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook and its delivery records")
def delete_webhook(webhook_id: IdPath, session: SessionDep, owner: Owner) -> Response:
    session.delete(owned(session, Webhook, webhook_id, owner, "webhook"))
    session.commit()
    return Response(status_code=204)


def _delivery_out(session: Session, row: WebhookDelivery) -> WebhookDeliveryOut:
    attempts = session.exec(select(WebhookAttempt).where(WebhookAttempt.webhook_delivery_id == row.id)
                            .order_by(WebhookAttempt.number)).all()
    log = [AttemptOut(number=a.number, started_at=a.started_at, ok=a.error is None, error=a.error,
                      status_code=a.status_code, duration_ms=a.duration_ms) for a in attempts]
    data = row.model_dump()
    return WebhookDeliveryOut(**{k: data[k] for k in WebhookDeliveryOut.model_fields if k in data}, attempt_log=log)


@router.get("/{webhook_id}/deliveries", summary="The webhook's events, newest first, with every attempt")
def list_webhook_deliveries(webhook_id: IdPath, session: SessionDep, owner: Owner,
                            status: str | None = Query(None, pattern="^(pending|running|done|failed)$"),
                            limit: int = Query(50, ge=1, le=MAX_PAGE),
                            offset: int = Query(0, ge=0, le=2**31)) -> Page[WebhookDeliveryOut]:
    owned(session, Webhook, webhook_id, owner, "webhook")
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit)).all()
    return Page(items=[_delivery_out(session, r) for r in rows], total=total, limit=limit, offset=offset)
