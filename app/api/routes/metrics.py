"""`GET /metrics`: Prometheus text exposition, outside `/api/v1` and without an API key
(a scraper holds none; `SPROUT_METRICS_ENABLED=false` turns the route off).

Jobs by kind and status are counted from the database on each scrape (the database is the
truth, whichever process ran the jobs); the LLM and candidate metrics come from
`app.core.metrics`, aggregated over the workers' processes when they share the API's
`PROMETHEUS_MULTIPROC_DIR`.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func
from sqlmodel import select

from app.api.deps import SettingsDep
from app.core import metrics
from app.db import session_scope
from app.models import Job, JobStatus
from app.settings import Settings

router = APIRouter(tags=["metrics"])


def _jobs_exposition(settings: Settings) -> bytes:
    registry = CollectorRegistry()
    gauge = Gauge("sprout_jobs", "Jobs by kind and status.", ["kind", "status"], registry=registry)
    with session_scope(settings.resolved_database_url) as session:
        rows = session.exec(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
    kinds = {kind for kind, _, _ in rows}
    for kind in kinds:  # every status of a known kind, zeros included, so a rate never has gaps
        for status in JobStatus:
            gauge.labels(kind, status.value).set(0)
    for kind, status, count in rows:
        gauge.labels(kind, status).set(count)
    return generate_latest(registry)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(settings: SettingsDep) -> Response:
    if not settings.metrics_enabled:
        raise HTTPException(status_code=404, detail="metrics are off (SPROUT_METRICS_ENABLED=false)")
    body = await run_in_threadpool(lambda: _jobs_exposition(settings) + metrics.exposition())
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
