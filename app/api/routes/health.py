"""`GET /healthz` (the process answers) and `GET /readyz` (its dependencies answer).

Readiness checks each dependency with a short timeout and reports all of them, so an
operator sees at once which one is down; any failure makes it a 503, which takes the
instance out of a load balancer until it recovers.
"""

from __future__ import annotations

import httpx
import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import SettingsDep
from app.api.schemas.health import Check, Readiness
from app.db import check_migrated, get_engine
from app.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database(settings: Settings) -> Check:
    url = settings.resolved_database_url
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        check_migrated(url)
    except Exception as exc:  # any failure is the answer, not an error
        return Check(ok=False, detail=_first_line(exc))
    return Check(ok=True, detail="reachable, schema up to date")


def _redis(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.readiness_timeout_s,
                                  socket_connect_timeout=settings.readiness_timeout_s)
    try:
        client.ping()
    except Exception as exc:
        return Check(ok=False, detail=_first_line(exc))
    finally:
        client.close()
    return Check(ok=True, detail="reachable")


def _llm(settings: Settings) -> Check:
    if not settings.llm.base_urls:
        return Check(ok=True, detail="embedded (started per job)")
    failures = []
    for base in settings.llm.base_urls:
        try:
            response = httpx.get(base.rstrip("/") + "/models", timeout=settings.readiness_timeout_s,
                                 headers={"Authorization": f"Bearer {settings.llm.api_key}"} if settings.llm.api_key else None)
            if response.status_code >= 400:
                failures.append(f"{base}: HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            failures.append(f"{base}: {_first_line(exc) or type(exc).__name__}")
    if failures:
        return Check(ok=False, detail="; ".join(failures))
    return Check(ok=True, detail=f"{len(settings.llm.base_urls)} endpoint(s) reachable")


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


@router.get("/readyz", summary="Database, Redis and the LLM endpoint(s) answer", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "A dependency is down."}})
def readyz(settings: SettingsDep) -> JSONResponse:
    checks = {"database": _database(settings), "redis": _redis(settings), "llm": _llm(settings)}
    ready = all(c.ok for c in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
